package sqlite

// What SQLite's per-connection statement cache guarantees in normal use:
// statements are reused, a statement whose rows are open is not shared,
// TEMP tables and schema changes work, the cached text is bounded, and the
// driver's connection is reachable.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tallyorm/tally/orm"
)

// tempDSN returns the DSN of a new database file in a temp dir of t.
func tempDSN(t testing.TB) string {
	// t.TempDir keeps characters such as '#' and '%' from the test name,
	// and a file: DSN is a URI to SQLite, so escape what a URI path cannot
	// hold literally.
	path := filepath.Join(t.TempDir(), "tally.db")
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// StmtRow is the model of these tests.
type StmtRow struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,unique,size=32"`
	N    int64  `db:"n"`
}

// openEngine opens a new SQLite database (or dsn, if not empty) with opts and
// closes the engine when the test ends.
func openEngine(t *testing.T, dsn string, opts ...orm.Option) *orm.Engine {
	t.Helper()
	if dsn == "" {
		dsn = tempDSN(t)
	}
	eng, err := orm.Open(context.Background(), "sqlite", dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// pinConn takes a connection of eng's pool for the test and returns it
// with its cache.
func pinConn(t *testing.T, eng *orm.Engine) (*sql.Conn, *cachingConn) {
	t.Helper()
	conn, err := eng.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, rawCache(t, conn)
}

// rawCache returns conn's cache. Reading it through Raw holds the
// connection's lock, so the state read is not racing with a statement.
func rawCache(t *testing.T, conn *sql.Conn) *cachingConn {
	t.Helper()
	var cc *cachingConn
	if err := conn.Raw(func(c any) error {
		var ok bool
		if cc, ok = c.(*cachingConn); !ok {
			return fmt.Errorf("driver connection is %T, want *cachingConn", c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return cc
}

// openStmtCache opens a new SQLite database with a cache of size
// statements and one connection, so that every statement meets the same
// cache, and seeds StmtRow's table.
func openStmtCache(t *testing.T, size int, opts ...orm.Option) (*orm.Engine, *cachingConn) {
	t.Helper()
	eng := openEngine(t, "", append([]orm.Option{orm.WithSQLiteStatementCache(size), orm.WithMaxOpenConns(1)}, opts...)...)
	seedStmtRows(t, eng)
	conn, err := eng.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cc := rawCache(t, conn)
	if _, ok := cc.Unwrap().(driver.Pinger); !ok {
		t.Fatalf("Unwrap gave %T, want the driver's connection", cc.Unwrap())
	}
	return eng, cc
}

// seedStmtRows creates StmtRow's table with rows r0..r19, N 0..19 (keys
// 1..20).
func seedStmtRows(t *testing.T, eng *orm.Engine) {
	t.Helper()
	ctx := context.Background()
	if err := eng.CreateTables(ctx, StmtRow{}); err != nil {
		t.Fatal(err)
	}
	s := eng.NewSession()
	defer s.Close()
	for i := range 20 {
		if err := s.Add(&StmtRow{Name: fmt.Sprint("r", i), N: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStatementCacheReusesStatement(t *testing.T) {
	eng, cc := openStmtCache(t, 64)
	ctx := context.Background()
	prepared := len(cc.byKey)
	for i := range 10 {
		s := eng.NewSession()
		r, err := orm.Get[StmtRow](ctx, s, int64(i+1))
		if err != nil || r.N != int64(i) {
			t.Fatalf("Get %d: %+v %v", i+1, r, err)
		}
		s.Close()
	}
	// One SELECT by key (and BEGIN/ROLLBACK are not statements the cache
	// sees: database/sql sends them through BeginTx).
	if got := len(cc.byKey) - prepared; got != 1 {
		t.Fatalf("10 Gets by key cached %d new statements, want 1: %v", got, cachedQueries(cc))
	}
}

// A session is busy while its Iter runs, so nesting happens in code using
// the pool directly: two open result sets of one transaction share its
// connection.
func TestStatementCacheNestedSameSQLNotShared(t *testing.T) {
	eng, cc := openStmtCache(t, 64)
	ctx := context.Background()
	tx, err := eng.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = "SELECT n FROM stmt_rows WHERE n < ? ORDER BY id"
	outer, err := tx.QueryContext(ctx, q, 5)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for outer.Next() {
		var r int64
		if err := outer.Scan(&r); err != nil {
			t.Fatal(err)
		}
		// The same SQL text as the outer loop's, whose rows are open: it
		// must not reuse (and reset) the outer statement.
		inner, err := tx.QueryContext(ctx, q, 5)
		if err != nil {
			t.Fatal(err)
		}
		for inner.Next() {
			var n int64
			if err := inner.Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == r {
				pairs = append(pairs, fmt.Sprint(n))
			}
		}
		if err := inner.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pairs, ","); got != "0,1,2,3,4" {
		t.Fatalf("nested iteration over the same statement gave %q, want 0,1,2,3,4", got)
	}
	for _, cs := range cachedStmts(cc) {
		if cs.busy {
			t.Fatalf("statement still busy after its rows closed: %s", cs.query)
		}
	}
}

func TestStatementCacheErrorsAndSchemaChanges(t *testing.T) {
	eng, _ := openStmtCache(t, 64)
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()
	// A failed run of a cached INSERT leaves the statement usable.
	for range 2 {
		if err := s.Add(&StmtRow{Name: "r1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("duplicate name: %v", err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(&StmtRow{Name: "fresh"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A TEMP table exists on one connection only: the statement is
	// prepared on the connection that runs it.
	if _, err := s.Exec(ctx, "CREATE TEMP TABLE scratch (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Exec(ctx, "INSERT INTO scratch (x) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Schema changes recompile cached statements.
	if n, err := orm.Query[StmtRow](s).Count(ctx); err != nil || n != 21 {
		t.Fatalf("Count: got %d, %v; want 21, nil", n, err)
	}
	s.Close()
	if err := eng.DropTables(ctx, StmtRow{}); err != nil {
		t.Fatal(err)
	}
	if err := eng.CreateTables(ctx, StmtRow{}); err != nil {
		t.Fatal(err)
	}
	s2 := eng.NewSession()
	defer s2.Close()
	if n, err := orm.Query[StmtRow](s2).Count(ctx); err != nil || n != 0 {
		t.Fatalf("count after recreate: %d, %v", n, err)
	}
	s2.Close() // its transaction holds the one connection
	// Column types come through the cached rows.
	rows, err := eng.DB().QueryContext(ctx, "SELECT id, name FROM stmt_rows")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil || len(cts) != 2 || cts[0].DatabaseTypeName() == "" {
		t.Fatalf("column types: %v, %v", cts, err)
	}
}

func TestStatementCacheOffCachesNothing(t *testing.T) {
	eng, cc := openStmtCache(t, 0)
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()
	for i := range 3 {
		if r, err := orm.Get[StmtRow](ctx, s, int64(i+1)); err != nil || r.N != int64(i) {
			t.Fatalf("Get %d: got %+v, %v; want N %d", i+1, r, err, i)
		}
	}
	if n, err := orm.Query[StmtRow](s).Count(ctx); err != nil || n != 20 {
		t.Fatalf("Count: got %d, %v; want 20, nil", n, err)
	}
	if cc.lru.Len() != 0 || len(cc.byKey) != 0 {
		t.Fatalf("cache off, but it holds %v", cachedQueries(cc))
	}
}

// Without a statement, modernc's Exec returns neither a result nor an
// error; database/sql's RowsAffected would then dereference nil — inside
// Tally's own reporting, too, when a hook is set.
func TestExecWithoutStatementHasResult(t *testing.T) {
	for _, size := range []int{0, 64} {
		var events int
		eng, _ := openStmtCache(t, size, orm.WithQueryHook(func(context.Context, orm.QueryEvent) { events++ }))
		s := eng.NewSession()
		for _, q := range []string{"", "-- nothing", "/* c */ ;"} {
			res, err := s.Exec(context.Background(), q)
			if err != nil {
				t.Fatalf("cache %d, Exec(%q): %v", size, q, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 0 {
				t.Fatalf("cache %d, Exec(%q): RowsAffected %d, %v", size, q, n, err)
			}
		}
		s.Close()
		if events == 0 {
			t.Fatal("the hook saw nothing")
		}
	}
}

func cachedStmts(cc *cachingConn) []*cachedStmt {
	var out []*cachedStmt
	for el := cc.lru.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*cachedStmt))
	}
	return out
}

func cachedQueries(cc *cachingConn) []string {
	var out []string
	for _, cs := range cachedStmts(cc) {
		out = append(out, cs.query)
	}
	return out
}

func TestStatementCacheBoundsCachedText(t *testing.T) {
	eng, cc := openStmtCache(t, 64)
	ctx := context.Background()
	// Statements padded with a comment to a given length.
	padded := func(k, length int) string {
		q := fmt.Sprintf("SELECT count(*) FROM stmt_rows WHERE n >= %d /*", k)
		return q + strings.Repeat("x", length-len(q)-2) + "*/"
	}
	count := func(q string) int64 {
		t.Helper()
		var n int64
		if err := eng.DB().QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	long := padded(3, maxCachedSQL+1)
	if n := count(long); n != 17 {
		t.Fatalf("long statement counted %d", n)
	}
	if cc.byKey[long] != nil {
		t.Fatal("a statement longer than maxCachedSQL was cached")
	}
	for k := range 20 {
		if n := count(padded(k, 10<<10)); n != int64(20-k) {
			t.Fatalf("n >= %d: %d", k, n)
		}
		if cc.text > maxCachedSQLTotal {
			t.Fatalf("after %d statements of 10 KiB the cache holds %d bytes of SQL", k+1, cc.text)
		}
	}
	total := 0
	for _, cs := range cachedStmts(cc) {
		total += len(cs.query)
	}
	if total != cc.text || cc.lru.Len() < 10 {
		t.Fatalf("cache holds %d statements, %d bytes of SQL, counted %d", cc.lru.Len(), total, cc.text)
	}
}

func TestStartsWithAttach(t *testing.T) {
	for q, want := range map[string]bool{
		"ATTACH 'x.db' AS aux":                     true,
		"  attach database ? as aux":               true,
		"-- note\n/* c */ ;Attach ':memory:' AS m": true,
		"SELECT 1; ATTACH 'x' AS y":                false, // documented limit: first statement only
		"DETACH aux":                               false,
		"/* unterminated":                          false,
		"-- only a comment":                        false,
		"attac":                                    false,
		"":                                         false,
	} {
		if got := startsWithAttach(q); got != want {
			t.Errorf("startsWithAttach(%q) = %v, want %v", q, got, want)
		}
	}
}
