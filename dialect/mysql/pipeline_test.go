package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// pipelineConn opens an engine on tg's MySQL database with dsnExtra added
// to the DSN, makes table pipe (id, v), and returns a connection of it.
func pipelineConn(t *testing.T, tg dbtest.Target, dsnExtra string) (*sql.Conn, *sql.DB) {
	t.Helper()
	ctx := context.Background()
	dsn := tg.DSN
	if dsnExtra != "" {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + dsnExtra
	}
	eng, err := orm.Open(ctx, tg.Driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	db := eng.DB().DB
	for _, q := range []string{
		"DROP TABLE IF EXISTS pipe",
		"CREATE TABLE pipe (id BIGINT AUTO_INCREMENT PRIMARY KEY, v BIGINT NOT NULL)",
		"INSERT INTO pipe (v) VALUES (1), (2)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, db
}

// onMySQL runs fn on the MySQL/MariaDB target only.
func onMySQL(t *testing.T, fn func(t *testing.T, tg dbtest.Target)) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.MySQL {
			t.Skip("this package tests MySQL")
		}
		fn(t, tg)
	})
}

func pipe(t *testing.T, c *sql.Conn, stmts []dialect.BatchStmt) ([]int64, error) {
	t.Helper()
	rows, ok, err := dialect.MariaDB.(dialect.Batcher).Pipeline(context.Background(), c, stmts)
	if !ok {
		t.Fatal("Pipeline declined a connection orm.Open made")
	}
	return rows, err
}

// A commit's statements go in one multi-statement query and come back
// with each statement's own row count, in order; an UPDATE that matches a
// row without changing it counts 1 (clientFoundRows), so a MustAffect
// statement does not fail on it; a Row statement's rows reach its Row
// function.
func TestPipelineReturnsEachStatementsRowCount(t *testing.T) {
	onMySQL(t, func(t *testing.T, tg dbtest.Target) {
		c, db := pipelineConn(t, tg, "")
		var keys []int64
		rows, err := pipe(t, c, []dialect.BatchStmt{
			{SQL: "BEGIN"},
			{SQL: "UPDATE pipe SET v = ? WHERE id = ?", Args: []any{10, 1}, MustAffect: true},
			{SQL: "UPDATE pipe SET v = v WHERE id = ?", Args: []any{2}, MustAffect: true},
			{SQL: "DELETE FROM pipe WHERE id IN (?, ?)", Args: []any{7, 8}},
			{SQL: "INSERT INTO pipe (v) VALUES (?), (?) RETURNING id", Args: []any{3, 4}, Row: func(scan func(dest ...any) error) error {
				var k int64
				err := scan(&k)
				keys = append(keys, k)
				return err
			}},
			{SQL: "UPDATE pipe SET v = v + 1 WHERE id > ?", Args: []any{0}},
			{SQL: "COMMIT"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{0, 1, 1, 0, 2, 4, 0}; !slices.Equal(rows, want) {
			t.Errorf("rows = %v, want %v", rows, want)
		}
		if len(keys) != 2 || keys[0] == 0 || keys[1] <= keys[0] {
			t.Errorf("keys = %v, want two rising keys", keys)
		}
		var sum int64
		if err := db.QueryRow("SELECT SUM(v) FROM pipe").Scan(&sum); err != nil || sum != 11+3+4+5 {
			t.Errorf("sum = %d (%v), want %d: the work committed", sum, err, 11+3+4+5)
		}
	})
}

// A MustAffect statement that matches no row fails at the server, which
// runs nothing after it: the COMMIT in the same query does not happen, and
// the rows before it are returned with the error.
func TestPipelineStopsAtAStatementThatMatchedNoRow(t *testing.T) {
	onMySQL(t, func(t *testing.T, tg dbtest.Target) {
		c, db := pipelineConn(t, tg, "")
		ctx := context.Background()
		rows, err := pipe(t, c, []dialect.BatchStmt{
			{SQL: "BEGIN"},
			{SQL: "UPDATE pipe SET v = ? WHERE id = ?", Args: []any{10, 1}, MustAffect: true},
			{SQL: "UPDATE pipe SET v = ? WHERE id = ?", Args: []any{20, 99}, MustAffect: true},
			{SQL: "UPDATE pipe SET v = ? WHERE id = ?", Args: []any{30, 2}},
			{SQL: "COMMIT"},
		})
		if _, ok := errors.AsType[*mysql.MySQLError](err); !ok {
			t.Fatalf("err = %v, want the server's error", err)
		}
		if want := []int64{0, 1}; !slices.Equal(rows, want) {
			t.Errorf("rows = %v, want %v: the statements before the failing one", rows, want)
		}
		if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		var v1, v2 int64
		if err := db.QueryRow("SELECT (SELECT v FROM pipe WHERE id = 1), (SELECT v FROM pipe WHERE id = 2)").Scan(&v1, &v2); err != nil || v1 != 1 || v2 != 2 {
			t.Errorf("rows hold %d, %d (%v), want 1, 2: nothing committed", v1, v2, err)
		}
	})
}

// A commit larger than one query's bound goes as several queries, in
// order, with every count.
func TestPipelineSplitsALargeCommit(t *testing.T) {
	onMySQL(t, func(t *testing.T, tg dbtest.Target) {
		c, db := pipelineConn(t, tg, "")
		// Statements padded to 64 KiB each: 100 of them exceed the 4 MiB
		// bound of one query.
		pad := strings.Repeat(" ", 64<<10)
		stmts := []dialect.BatchStmt{{SQL: "BEGIN"}}
		for i := range 100 {
			stmts = append(stmts, dialect.BatchStmt{SQL: "UPDATE pipe SET v = v + ? WHERE id = 1" + pad, Args: []any{i}, MustAffect: true})
		}
		stmts = append(stmts, dialect.BatchStmt{SQL: "COMMIT"})
		rows, err := pipe(t, c, stmts)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(stmts) || rows[1] != 1 || rows[100] != 1 {
			t.Fatalf("rows = %d counts (%v...), want %d, each update 1", len(rows), rows[:3], len(stmts))
		}
		var v int64
		if err := db.QueryRow("SELECT v FROM pipe WHERE id = 1").Scan(&v); err != nil || v != 1+99*100/2 {
			t.Errorf("v = %d (%v), want %d", v, err, 1+99*100/2)
		}
	})
}

// A DSN that turns multiStatements off is obeyed: the pipeline declines
// and sends nothing, and the commit goes one statement at a time.
func TestPipelineDeclinedWithoutMultiStatements(t *testing.T) {
	onMySQL(t, func(t *testing.T, tg dbtest.Target) {
		c, _ := pipelineConn(t, tg, "multiStatements=false")
		_, ok, err := dialect.MariaDB.(dialect.Batcher).Pipeline(context.Background(), c, []dialect.BatchStmt{{SQL: "BEGIN"}, {SQL: "COMMIT"}})
		if ok || err != nil {
			t.Fatalf("Pipeline = ok %v, err %v; want declined", ok, err)
		}
		var n int
		if err := c.QueryRowContext(context.Background(), "SELECT 1; SELECT 2").Scan(&n); err == nil {
			t.Fatal("a stacked query ran with multiStatements=false")
		}
	})
}
