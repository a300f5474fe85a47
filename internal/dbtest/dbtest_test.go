package dbtest

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// placeholder returns the n-th bind placeholder in tg's SQL dialect.
func placeholder(tg Target, n int) string {
	if tg.Name == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

func mustExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// roundTrip creates a table in tg, inserts a row and reads it back.
func roundTrip(t *testing.T, tg Target) {
	t.Helper()
	db := Open(t, tg)
	mustExec(t, db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(100) NOT NULL)")
	mustExec(t, db, "INSERT INTO notes (id, body) VALUES ("+placeholder(tg, 1)+", "+placeholder(tg, 2)+")", 7, "hello "+tg.Name)
	var body string
	err := db.QueryRowContext(t.Context(), "SELECT body FROM notes WHERE id = "+placeholder(tg, 1), 7).Scan(&body)
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if want := "hello " + tg.Name; body != want {
		t.Errorf("read back %q, want %q", body, want)
	}
}

func TestEachRoundTrip(t *testing.T) {
	var ran []string
	Each(t, func(t *testing.T, tg Target) {
		ran = append(ran, tg.Name)
		roundTrip(t, tg)
	})
	if len(ran) == 0 || ran[0] != SQLite {
		t.Errorf("targets run: %v; want sqlite first", ran)
	}
	t.Logf("ran on %v", ran)
}

// Two calls hand out two empty databases on every target: the same table
// can be created in both, and a row in one is not seen in the other.
func TestTargetsAreIsolated(t *testing.T) {
	first, second := Targets(t), Targets(t)
	if len(first) != len(second) {
		t.Fatalf("Targets returned %d, then %d targets", len(first), len(second))
	}
	for i := range first {
		a, b := first[i], second[i]
		t.Run(a.Name, func(t *testing.T) {
			if a.DSN == b.DSN {
				t.Fatalf("both calls got DSN %s", redact(a.DSN))
			}
			roundTrip(t, a)
			db := Open(t, b)
			mustExec(t, db, "CREATE TABLE notes (id INTEGER PRIMARY KEY)")
			var n int
			if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM notes").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("second database sees %d rows of the first", n)
			}
		})
	}
}

// The PostgreSQL target works in its own schema, not in public.
func TestPostgresSchema(t *testing.T) {
	Each(t, func(t *testing.T, tg Target) {
		if tg.Name != Postgres {
			t.Skip("PostgreSQL only")
		}
		var schema string
		if err := Open(t, tg).QueryRowContext(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		if schema == "" || schema == "public" || !strings.Contains(tg.DSN, "search_path="+schema) {
			t.Errorf("current_schema() = %q with DSN %s", schema, redact(tg.DSN))
		}
	})
}

// t.TempDir keeps '#' and '%' of a test name; the SQLite DSN must escape them.
func TestSQLiteOddPath(t *testing.T) {
	t.Run("odd #1 100% name", func(t *testing.T) {
		tg := Targets(t)[0]
		if tg.Name != SQLite {
			t.Fatalf("first target is %s", tg.Name)
		}
		roundTrip(t, tg)
	})
}
