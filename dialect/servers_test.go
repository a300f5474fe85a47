package dialect_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/dialect"
	tallymysql "github.com/tallyorm/tally/dialect/mysql"
	"github.com/tallyorm/tally/internal/dbtest"
)

// These tests hold each dialect to the real database: SQLite always, and
// the MySQL/MariaDB and PostgreSQL servers that internal/dbtest reaches.

func TestMain(m *testing.M) { dbtest.Main(m) }

// openTarget opens tg and returns the dialect for it, chosen as an
// application would: by driver name, or by the server's version for MySQL.
func openTarget(t *testing.T, tg dbtest.Target) (*sql.DB, dialect.Dialect) {
	t.Helper()
	switch tg.Name {
	case dbtest.MySQL:
		// DATETIME reads back as time.Time, in the zone it was written in.
		cfg, err := tallymysql.Config(tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ParseTime, cfg.Loc = true, time.UTC
		tg.DSN = cfg.FormatDSN()
	case dbtest.SQLite:
		tg.DSN += "?_pragma=foreign_keys(1)"
	}
	db := dbtest.Open(t, tg)
	if tg.Name == dbtest.MySQL {
		var version string
		if err := db.QueryRow("SELECT VERSION()").Scan(&version); err != nil {
			t.Fatal(err)
		}
		t.Logf("server %s", version)
		return db, dialect.ForMySQLServer(version)
	}
	d, err := dialect.ByName(tg.Driver)
	if err != nil {
		t.Fatal(err)
	}
	return db, d
}

func mustExec(t *testing.T, e interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := e.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// Each row runs through Expand and then on the server, which checks that
// the placeholders Expand wrote are the ones the database binds, and that
// the ones it left alone were text.
func TestServerRebind(t *testing.T) {
	tests := []struct {
		only  string // run on this target only; "" for all
		query string
		args  []any
		want  string
	}{
		{"", "SELECT ? /* ? */ -- ?\n", []any{"x"}, "x"},
		{"", "SELECT '?'", nil, "?"},
		{"", "SELECT 'it''s ?'", nil, "it's ?"},
		{"", "SELECT COUNT(*) FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) x WHERE n IN (?) AND n <> ?", []any{[]int64{1, 2, 3}, 2}, "2"},

		{dbtest.MySQL, `SELECT CONCAT('a\'?', ?)`, []any{"b"}, "a'?b"},
		{dbtest.MySQL, `SELECT CONCAT("\"?""", ?)`, []any{"b"}, `"?"b`},
		{dbtest.MySQL, "SELECT `a?` FROM (SELECT ? AS `a?`) x", []any{"b"}, "b"},
		{dbtest.MySQL, "SELECT ? # ?\n", []any{"b"}, "b"},
		{dbtest.MySQL, "SELECT 1--?", []any{1}, "2"}, // 1 - (-1): no comment without a space
		{dbtest.MySQL, "SELECT 1-- ?", nil, "1"},

		{dbtest.Postgres, `SELECT 'a\' || ?`, []any{"b"}, `a\b`},
		{dbtest.Postgres, `SELECT E'\'?' || ?`, []any{"b"}, "'?b"},
		{dbtest.Postgres, `SELECT "a?" FROM (SELECT ?::text AS "a?") x`, []any{"b"}, "b"},
		{dbtest.Postgres, "SELECT $$?$$ || $t$ ' ? $$ $t$ || ?", []any{"b"}, "? ' ? $$ b"},
		{dbtest.Postgres, "SELECT ?::text /* a /* nested ? */ ? */", []any{"b"}, "b"},
		{dbtest.Postgres, `SELECT '{"a": 1}'::jsonb ?? ?`, []any{"a"}, "true"},
		{dbtest.Postgres, `SELECT '{"a": 1}'::jsonb ??| array['b', ?]`, []any{"a"}, "true"},
		{dbtest.Postgres, "SELECT 1--?", nil, "1"},

		{dbtest.SQLite, `SELECT 'a\' || ?`, []any{"b"}, `a\b`},
		{dbtest.SQLite, `SELECT "a?" || [b?] || ` + "`c?`" + ` FROM (SELECT ? AS "a?", ? AS [b?], ? AS ` + "`c?`" + `)`, []any{"x", "y", "z"}, "xyz"},
		{dbtest.SQLite, "SELECT 1--?", nil, "1"},
	}
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		db, d := openTarget(t, tg)
		for _, tt := range tests {
			if tt.only != "" && tt.only != tg.Name {
				continue
			}
			q, args, err := dialect.Expand(d, tt.query, tt.args)
			if err != nil {
				t.Errorf("Expand(%q): %v", tt.query, err)
				continue
			}
			var got string
			if err := db.QueryRow(q, args...).Scan(&got); err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", q, got, tt.want)
			}
		}
	})
}

// The errors each database really returns classify as documented.
func TestServerClassify(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		db, d := openTarget(t, tg)
		id, inline := d.AutoIncrement(d.Quote("id"), nil)
		pk := ""
		if !inline {
			pk = ", PRIMARY KEY (" + d.Quote("id") + ")"
		}
		email, err := d.ColumnType(dialect.Column{Type: reflect.TypeFor[string](), Key: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"CREATE TABLE parent (" + id + ", email " + email + " NOT NULL UNIQUE" + pk + ")",
			"CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id BIGINT, FOREIGN KEY (parent_id) REFERENCES parent (id))",
			"INSERT INTO parent (id, email) VALUES (1, 'a@x'), (2, 'b@x')",
			"INSERT INTO child (id, parent_id) VALUES (1, 1)",
		} {
			mustExec(t, db, q)
		}
		tests := []struct {
			name  string
			query string
			want  dialect.Class
		}{
			{"duplicate key", "INSERT INTO parent (id, email) VALUES (1, 'c@x')", dialect.ClassUnique},
			{"duplicate unique", "INSERT INTO parent (id, email) VALUES (3, 'a@x')", dialect.ClassUnique},
			{"no parent", "INSERT INTO child (id, parent_id) VALUES (2, 99)", dialect.ClassForeignKey},
			{"parent referenced", "DELETE FROM parent WHERE id = 1", dialect.ClassForeignKey},
			{"not null", "INSERT INTO parent (id, email) VALUES (4, NULL)", dialect.ClassOther},
			{"syntax", "INSERT INTO", dialect.ClassOther},
		}
		for _, tt := range tests {
			_, err := db.ExecContext(ctx, tt.query)
			if err == nil {
				t.Errorf("%s: %s succeeded", tt.name, tt.query)
				continue
			}
			if got := d.Classify(fmt.Errorf("orm: insert: %w", err)); got != tt.want {
				t.Errorf("%s: Classify(%v) = %v, want %v", tt.name, err, got, tt.want)
			}
		}
		if tg.Name == dbtest.SQLite {
			return // no row locks: TestClassifySQLiteBusy covers its lock errors
		}

		// A row lock another transaction holds, taken with NOWAIT.
		tx1, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx1.Rollback()
		mustExec(t, tx1, "SELECT id FROM parent WHERE id = 2 FOR UPDATE")
		tx2, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx2.Rollback()
		_, err = tx2.ExecContext(ctx, "SELECT id FROM parent WHERE id = 2 FOR UPDATE NOWAIT")
		if got := d.Classify(err); got != dialect.ClassRetryable {
			t.Errorf("NOWAIT: Classify(%v) = %v, want retryable", err, got)
		}
		tx1.Rollback()
		tx2.Rollback()

		// A deadlock: each transaction waits for the row the other holds.
		// The server aborts one of them (PostgreSQL after deadlock_timeout).
		tx1, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx1.Rollback()
		tx2, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx2.Rollback()
		mustExec(t, tx1, "UPDATE parent SET email = 'a1@x' WHERE id = 1")
		mustExec(t, tx2, "UPDATE parent SET email = 'b1@x' WHERE id = 2")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, step := range []struct {
			tx *sql.Tx
			id int
		}{{tx1, 2}, {tx2, 1}} {
			wg.Go(func() {
				_, errs[i] = step.tx.ExecContext(ctx, d.Rebind("UPDATE parent SET email = 'z@x' WHERE id = ?"), step.id)
				if errs[i] != nil {
					step.tx.Rollback() // release the other
				}
			})
		}
		wg.Wait()
		deadlock := errors.Join(errs...)
		if deadlock == nil || errs[0] != nil && errs[1] != nil {
			t.Fatalf("deadlock: errors %v and %v, want exactly one", errs[0], errs[1])
		}
		if got := d.Classify(deadlock); got != dialect.ClassRetryable {
			t.Errorf("deadlock: Classify(%v) = %v, want retryable", deadlock, got)
		}
	})
}

// The DDL that ColumnType and AutoIncrement write makes a table that stores
// and returns every supported Go type, and Returning tells the truth.
func TestServerColumnTypes(t *testing.T) {
	type row struct {
		B   bool
		I8  int8
		I64 int64
		U16 uint16
		U64 uint64
		F32 float32
		F64 float64
		S   string
		K   string `key:"true"`
		Bs  []byte
		T   time.Time
		NS  sql.NullString
		NI  sql.NullInt32
		NT  sql.Null[time.Time]
		P   *int32
	}
	i32 := int32(-7)
	want := row{
		B: true, I8: -8, I64: -1 << 40, U16: 65535, U64: 1 << 40, F32: 1.5, F64: 0.1,
		S: "it's ?", K: "key", Bs: []byte{0, 1, 2, 255},
		T:  time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC),
		NS: sql.NullString{String: "x", Valid: true},
		NT: sql.Null[time.Time]{V: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), Valid: true},
		P:  &i32,
	}
	rt := reflect.TypeFor[row]()
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		db, d := openTarget(t, tg)
		id, inline := d.AutoIncrement(d.Quote("id"), reflect.TypeFor[int64]())
		cols, names := []string{id}, []string{}
		for f := range rt.Fields() {
			typ, err := d.ColumnType(dialect.Column{Type: f.Type, Key: f.Tag.Get("key") == "true"})
			if err != nil {
				t.Fatal(err)
			}
			cols = append(cols, d.Quote(f.Name)+" "+typ)
			names = append(names, d.Quote(f.Name))
		}
		if !inline {
			cols = append(cols, "PRIMARY KEY ("+d.Quote("id")+")")
		}
		cols = append(cols, "UNIQUE ("+d.Quote("K")+")")
		table := d.Quote("all types")
		mustExec(t, db, "CREATE TABLE "+table+" ("+strings.Join(cols, ", ")+")")

		insert := "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") VALUES (" +
			strings.Repeat("?, ", len(names)-1) + "?)"
		args := []any{want.B, want.I8, want.I64, want.U16, want.U64, want.F32, want.F64, want.S, want.K, want.Bs,
			want.T, want.NS, want.NI, want.NT, want.P}
		returning := " RETURNING " + d.Quote("id")
		var gotID int64
		if d.Returning() {
			if err := db.QueryRow(d.Rebind(insert+returning), args...).Scan(&gotID); err != nil {
				t.Fatal(err)
			}
		} else {
			res, err := db.Exec(d.Rebind(insert), args...)
			if err != nil {
				t.Fatal(err)
			}
			if gotID, err = res.LastInsertId(); err != nil {
				t.Fatal(err)
			}
			// Returning is false only where the server rejects it.
			if _, err := db.Exec(d.Rebind(insert+returning), args...); err == nil {
				t.Error("INSERT ... RETURNING succeeded, but Returning() is false")
			}
		}
		if gotID != 1 {
			t.Errorf("generated id = %d, want 1", gotID)
		}

		var got row
		err := db.QueryRow("SELECT "+strings.Join(names, ", ")+" FROM "+table+" WHERE "+d.Quote("id")+" = 1").
			Scan(&got.B, &got.I8, &got.I64, &got.U16, &got.U64, &got.F32, &got.F64, &got.S, &got.K, &got.Bs,
				&got.T, &got.NS, &got.NI, &got.NT, &got.P)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
	})
}

// A multi-row INSERT ... RETURNING yields one row per inserted row, in
// order, wherever Returning is true.
func TestServerReturningOrder(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		db, d := openTarget(t, tg)
		if !d.Returning() {
			t.Skip("this server has no RETURNING")
		}
		id, inline := d.AutoIncrement(d.Quote("id"), nil)
		if !inline {
			id += ", PRIMARY KEY (" + d.Quote("id") + ")"
		}
		mustExec(t, db, "CREATE TABLE r ("+id+", name VARCHAR(10))")
		mustExec(t, db, "INSERT INTO r (name) VALUES ('first')")
		rows, err := db.Query(d.Rebind("INSERT INTO r (name) VALUES (?), (?), (?) RETURNING id, name"), "c", "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		type ret struct {
			ID   int64
			Name string
		}
		var got []ret
		for rows.Next() {
			var r ret
			if err := rows.Scan(&r.ID, &r.Name); err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]ret{{2, "c"}, {3, "a"}, {4, "b"}}, got); diff != "" {
			t.Errorf("RETURNING rows (-want +got):\n%s", diff)
		}
	})
}

// MaxParams parameters bind; one more does not. On MySQL the limit is the
// server's for prepared statements: Tally's DSN interpolates arguments on
// the client, which has no such limit, but a DSN with
// interpolateParams=false (or an unsafe collation) prepares, so the
// limit is checked with interpolation off.
func TestServerMaxParams(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name == dbtest.MySQL {
			tg.DSN += map[bool]string{true: "&", false: "?"}[strings.Contains(tg.DSN, "?")] + "interpolateParams=false"
		}
		db, d := openTarget(t, tg)
		query := func(n int) error {
			args := make([]any, n)
			for i := range args {
				args[i] = i + 1
			}
			from := ""
			if d.Name() == "mysql" {
				from = " FROM DUAL"
			}
			q := "SELECT 1" + from + " WHERE 0 NOT IN (" + strings.Repeat("?,", n-1) + "?)"
			var one int
			return db.QueryRow(d.Rebind(q), args...).Scan(&one)
		}
		max := d.MaxParams()
		if err := query(max); err != nil {
			t.Errorf("%d parameters: %v", max, err)
		}
		if err := query(max + 1); err == nil {
			t.Errorf("%d parameters accepted; MaxParams is too low", max+1)
		}
	})
}
