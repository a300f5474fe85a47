package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tallyorm/tally/dialect"
	"modernc.org/sqlite"
)

// *sqlite.Error is what classify matches by its method.
var _ codeError = (*sqlite.Error)(nil)

// openSQLite opens a new database file with the given DSN parameters.
func openSQLite(t *testing.T, params string) *sql.DB {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?" + params
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, e interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := e.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func sqliteCode(t *testing.T, err error) int {
	t.Helper()
	se, ok := errors.AsType[*sqlite.Error](err)
	if !ok {
		t.Fatalf("got %T %v, want a *sqlite.Error", err, err)
	}
	return se.Code()
}

// modernc.org/sqlite turns on extended result codes, so Code() tells a
// unique from a foreign-key violation. These are the errors it really
// returns, not constructed ones.
func TestClassifySQLiteReal(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, "_pragma=foreign_keys(1)")
	for _, q := range []string{
		"CREATE TABLE parent (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, n INTEGER CHECK (n >= 0))",
		"CREATE TABLE tag (name TEXT PRIMARY KEY)",
		"CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id))",
		"INSERT INTO parent (id, email, n) VALUES (1, 'a@x', 0)",
		"INSERT INTO tag VALUES ('go')",
		"INSERT INTO child VALUES (1, 1)",
	} {
		mustExec(t, db, q)
	}
	tests := []struct {
		name     string
		query    string
		wantCode int
		want     dialect.Class
	}{
		{"UNIQUE column", "INSERT INTO parent (id, email) VALUES (2, 'a@x')", 2067, dialect.ClassUnique},
		{"INTEGER PRIMARY KEY", "INSERT INTO parent (id, email) VALUES (1, 'b@x')", 1555, dialect.ClassUnique},
		{"TEXT PRIMARY KEY", "INSERT INTO tag VALUES ('go')", 1555, dialect.ClassUnique},
		{"no parent", "INSERT INTO child VALUES (2, 99)", 787, dialect.ClassForeignKey},
		{"parent referenced", "DELETE FROM parent WHERE id = 1", 787, dialect.ClassForeignKey},
		{"NOT NULL", "INSERT INTO parent (id, email) VALUES (3, NULL)", 1299, dialect.ClassOther},
		{"CHECK", "INSERT INTO parent (id, email, n) VALUES (3, 'c@x', -1)", 275, dialect.ClassOther},
		{"syntax", "INSERT INTO", 1, dialect.ClassOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, tt.query)
			if err == nil {
				t.Fatalf("%s succeeded", tt.query)
			}
			if code := sqliteCode(t, err); code != tt.wantCode {
				t.Errorf("code %d (%v), want %d", code, err, tt.wantCode)
			}
			if got := dialect.SQLite.Classify(wrapped(err)); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}

func TestClassifySQLiteBusy(t *testing.T) {
	ctx := context.Background()
	// busy_timeout(0): fail at once instead of waiting for the lock.
	db := openSQLite(t, "_pragma=busy_timeout(0)&_pragma=journal_mode(wal)")
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO t VALUES (1), (2)")
	a, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	check := func(what string, err error, wantCode int) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if code := sqliteCode(t, err); code != wantCode {
			t.Errorf("%s: code %d (%v), want %d", what, code, err, wantCode)
		}
		if got := dialect.SQLite.Classify(wrapped(err)); got != dialect.ClassRetryable {
			t.Errorf("%s: Classify(%v) = %v, want retryable", what, err, got)
		}
	}

	// Two writers: SQLITE_BUSY.
	mustExec(t, a, "BEGIN IMMEDIATE")
	_, err = b.ExecContext(ctx, "BEGIN IMMEDIATE")
	check("second writer", err, 5)
	mustExec(t, a, "ROLLBACK")

	// A reader whose snapshot another connection has since changed cannot
	// start writing: SQLITE_BUSY_SNAPSHOT.
	mustExec(t, a, "BEGIN")
	var n int
	if err := a.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	mustExec(t, b, "INSERT INTO t VALUES (3)")
	_, err = a.ExecContext(ctx, "INSERT INTO t VALUES (4)")
	check("stale snapshot", err, 517)
	mustExec(t, a, "ROLLBACK")

	// Dropping a table that one's own open statement still reads:
	// SQLITE_LOCKED. (SQLITE_LOCKED_SHAREDCACHE cannot be provoked this way:
	// modernc.org/sqlite waits for shared-cache locks until ctx is done.)
	rows, err := a.QueryContext(ctx, "SELECT id FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	rows.Next()
	_, err = a.ExecContext(ctx, "DROP TABLE t")
	check("table in use", err, 6)
}
