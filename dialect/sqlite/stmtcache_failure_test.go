package sqlite

// What the statement cache guarantees where statements end in other ways
// than success: cancellation and timeouts, failed steps, SQLITE_BUSY,
// concurrency with a small cache, rows left open when a transaction ends,
// statements that are not single statements, savepoints, Engine.Close with
// rows open, and no goroutine leaks. Where behaviour is compared, the
// reference is the same engine without the cache
// (WithSQLiteStatementCache(0)).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyorm/tally/orm"
	"go.uber.org/goleak"
)

// slowCountSQL counts to its argument; counting to a billion takes far
// longer than any test, so only cancellation ends it.
const slowCountSQL = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) SELECT count(*) FROM c"

// slowRowsSQL streams 1, 2, 3, ... up to its argument, a row at a time.
const slowRowsSQL = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) SELECT x FROM c"

// cacheState describes conn's cache under the connection's lock: the
// cached statements, most recent first, a '*' marking a busy one.
func cacheState(t *testing.T, conn *sql.Conn) (state string, busy int) {
	t.Helper()
	var out []string
	if err := conn.Raw(func(c any) error {
		cc := c.(*cachingConn)
		if cc.lru.Len() != len(cc.byKey) {
			return fmt.Errorf("lru holds %d statements, byKey %d", cc.lru.Len(), len(cc.byKey))
		}
		text := 0
		for el := cc.lru.Front(); el != nil; el = el.Next() {
			cs := el.Value.(*cachedStmt)
			if cc.byKey[cs.query] != el {
				return fmt.Errorf("byKey does not index %q", cs.query)
			}
			if cs.gone {
				return fmt.Errorf("statement in the cache marked gone: %q", cs.query)
			}
			text += len(cs.query)
			q := cs.query
			if cs.busy {
				q = "*" + q
				busy++
			}
			out = append(out, q)
		}
		if text != cc.text {
			return fmt.Errorf("text counted %d, statements hold %d", cc.text, text)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " | "), busy
}

// assertNoBusy fails if a statement of conn's cache is still busy.
func assertNoBusy(t *testing.T, conn *sql.Conn) {
	t.Helper()
	if state, busy := cacheState(t, conn); busy != 0 {
		t.Fatalf("%d cached statements still busy: %s", busy, state)
	}
}

// queryColumn runs a one-column query and returns its values, failing the
// test on any error, Scan's and the rows' included.
func queryColumn[T any](t *testing.T, ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) []T {
	t.Helper()
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// queryInt reads a one-row, one-integer query.
func queryInt(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// A cached statement cancelled or timed
// out while it runs returns the context's error promptly, and the same
// connection then runs it (and others) again with right results.
func TestStatementCacheCancelledStatementRunsAgain(t *testing.T) {
	eng := openEngine(t, "", orm.WithSQLiteStatementCache(4), orm.WithMaxOpenConns(2))
	conn, _ := pinConn(t, eng)
	ctx := context.Background()
	if n, err := queryInt(ctx, conn, slowCountSQL, 10); err != nil || n != 10 {
		t.Fatalf("warm-up: %d %v", n, err)
	}
	if state, _ := cacheState(t, conn); !strings.Contains(state, slowCountSQL) {
		t.Fatalf("the slow statement was not cached: %s", state)
	}
	type run struct {
		name string
		do   func(ctx context.Context) error
	}
	runs := []run{
		{"query", func(ctx context.Context) error {
			_, err := queryInt(ctx, conn, slowCountSQL, int64(1e9))
			return err
		}},
		{"exec", func(ctx context.Context) error {
			_, err := conn.ExecContext(ctx, slowCountSQL, int64(1e9))
			return err
		}},
	}
	for _, r := range runs {
		for _, how := range []string{"timeout", "cancel"} {
			var cctx context.Context
			var cancel context.CancelFunc
			want := context.DeadlineExceeded
			if how == "timeout" {
				cctx, cancel = context.WithTimeout(ctx, 80*time.Millisecond)
			} else {
				want = context.Canceled
				cctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(80*time.Millisecond, cancel)
			}
			start := time.Now()
			err := r.do(cctx)
			el := time.Since(start)
			cancel()
			if !errors.Is(err, want) {
				t.Fatalf("%s %s: err %v, want %v", r.name, how, err, want)
			}
			if el > 2*time.Second {
				t.Fatalf("%s %s: took %v to return", r.name, how, el)
			}
			assertNoBusy(t, conn)
			// The same statement, and others, on the same connection.
			for _, k := range []int64{1, 7, 1000} {
				if n, err := queryInt(ctx, conn, slowCountSQL, k); err != nil || n != k {
					t.Fatalf("%s %s, then count to %d: %d %v", r.name, how, k, n, err)
				}
			}
			if res, err := conn.ExecContext(ctx, slowCountSQL, 5); err != nil {
				t.Fatalf("%s %s, then exec: %v", r.name, how, err)
			} else if _, err := res.RowsAffected(); err != nil {
				t.Fatal(err)
			}
			if n, err := queryInt(ctx, conn, "SELECT ? + 1", 41); err != nil || n != 42 {
				t.Fatalf("%s %s, then another statement: %d %v", r.name, how, n, err)
			}
			assertNoBusy(t, conn)
		}
	}
}

// The same through the pool and through a
// session, where a cancelled statement may cost its connection; the next
// statements must still be right.
func TestStatementCacheCancelThroughPoolAndSession(t *testing.T) {
	eng := openEngine(t, "", orm.WithSQLiteStatementCache(3), orm.WithMaxOpenConns(1))
	if err := eng.CreateTables(context.Background(), StmtRow{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := range 3 {
		if n, err := queryInt(ctx, eng.DB(), slowCountSQL, 10); err != nil || n != 10 {
			t.Fatalf("round %d warm-up: %d %v", round, n, err)
		}
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		start := time.Now()
		_, err := queryInt(tctx, eng.DB(), slowCountSQL, int64(1e9))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("round %d: %v after %v", round, err, time.Since(start))
		}
		// A session: the cancelled statement is inside its transaction.
		s := eng.NewSession()
		if _, err := s.Exec(ctx, "INSERT INTO stmt_rows (name, n) VALUES (?, ?)", fmt.Sprint("a", round), round); err != nil {
			t.Fatal(err)
		}
		tctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = orm.Raw[StmtRow](s, "SELECT id, name, n FROM stmt_rows WHERE n < (SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) SELECT x FROM c))", int64(1e9)).All(tctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d, session query: %v", round, err)
		}
		s.Close()
		for _, k := range []int64{3, 100} {
			if n, err := queryInt(ctx, eng.DB(), slowCountSQL, k); err != nil || n != k {
				t.Fatalf("round %d, count to %d: %d %v", round, k, n, err)
			}
		}
		s = eng.NewSession()
		rows, err := orm.Raw[StmtRow](s, "SELECT id, name, n FROM stmt_rows WHERE n < (SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) SELECT x FROM c))", 1000).All(ctx)
		// The INSERT was rolled back with its session.
		if err != nil || len(rows) != 0 {
			t.Fatalf("round %d: %d rows, %v", round, len(rows), err)
		}
		s.Close()
	}
	conn, _ := pinConn(t, eng)
	assertNoBusy(t, conn)
}

// The context of a cached query ends
// while its rows are being read; database/sql closes the rows, the
// statement is given back (not busy) and runs again from its start.
func TestStatementCacheCancelMidRowsReleasesStatement(t *testing.T) {
	eng := openEngine(t, "", orm.WithSQLiteStatementCache(2), orm.WithMaxOpenConns(1))
	conn, _ := pinConn(t, eng)
	ctx := context.Background()
	for round := range 3 {
		qctx, cancel := context.WithCancel(ctx)
		rows, err := conn.QueryContext(qctx, slowRowsSQL, int64(1e9))
		if err != nil {
			t.Fatal(err)
		}
		read := 0
		for rows.Next() {
			var x int64
			if err := rows.Scan(&x); err != nil {
				// database/sql closed the rows between Next and Scan.
				if read < 5 || !errors.Is(err, context.Canceled) {
					t.Fatalf("round %d, row %d: %v", round, read+1, err)
				}
				break
			}
			read++
			if x != int64(read) {
				t.Fatalf("round %d: row %d is %d", round, read, x)
			}
			if read == 5 {
				cancel()
			}
			if read > 5e6 {
				t.Fatal("rows not closed after the context was cancelled")
			}
		}
		if err := rows.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: rows.Err %v", round, err)
		}
		rows.Close()
		cancel()
		assertNoBusy(t, conn)
		// The same statement from its start, fully read.
		if got := queryColumn[int64](t, ctx, conn, slowRowsSQL, 4); !slices.Equal(got, []int64{1, 2, 3, 4}) {
			t.Fatalf("round %d after cancel: %v", round, got)
		}
		assertNoBusy(t, conn)
	}
}

// A transaction whose context ends
// while rows of a cached statement are open is rolled back by
// database/sql, which closes the rows first; the connection stays in the
// pool (the cache forwards SessionResetter and Validator) with no busy
// statement, and the statement runs again.
func TestStatementCacheTxCancelWithRowsOpenKeepsConnection(t *testing.T) {
	eng, cc := openStmtCache(t, 3)
	ctx := context.Background()
	const q = "SELECT n FROM stmt_rows WHERE n >= ? ORDER BY id"
	for round := range 3 {
		tctx, cancel := context.WithCancel(ctx)
		tx, err := eng.DB().BeginTx(tctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := tx.QueryContext(ctx, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatal(rows.Err())
		}
		cancel()
		// Rollback waits for the rows to close.
		for rows.Next() {
		}
		rows.Close()
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("round %d rollback: %v", round, err)
		}
		conn, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := rawCache(t, conn); got != cc {
			t.Logf("round %d: the connection was replaced", round)
		}
		assertNoBusy(t, conn)
		var ns []int64
		rows, err = conn.QueryContext(ctx, q, 17)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var n int64
			rows.Scan(&n)
			ns = append(ns, n)
		}
		if err := rows.Close(); err != nil || !slices.Equal(ns, []int64{17, 18, 19}) {
			t.Fatalf("round %d: %v %v", round, ns, err)
		}
		assertNoBusy(t, conn)
		conn.Close()
	}
}

// Rows of cached statements left
// open when the transaction ends (Rollback and Commit) are closed by
// database/sql; no statement stays busy, and each is reused afterwards.
func TestStatementCacheRowsOpenAtTxEndAreReleased(t *testing.T) {
	eng, cc := openStmtCache(t, 2)
	ctx := context.Background()
	qs := []string{
		"SELECT n FROM stmt_rows WHERE n >= ? ORDER BY id",
		"SELECT name FROM stmt_rows WHERE n >= ? ORDER BY id",
		"SELECT id FROM stmt_rows WHERE n >= ? ORDER BY id",
	}
	for _, end := range []string{"rollback", "commit", "rollback"} {
		tx, err := eng.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var open []*sql.Rows
		for _, q := range qs {
			rows, err := tx.QueryContext(ctx, q, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !rows.Next() {
				t.Fatal(rows.Err())
			}
			open = append(open, rows)
		}
		// The same text again while the first rows are open: uncached.
		rows, err := tx.QueryContext(ctx, qs[2], 3)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, rows)
		if end == "rollback" {
			err = tx.Rollback()
		} else {
			err = tx.Commit()
		}
		if err != nil {
			t.Fatalf("%s with rows open: %v", end, err)
		}
		for i, r := range open {
			if r.Next() {
				t.Fatalf("rows %d still deliver after %s", i, end)
			}
			r.Close()
		}
		conn, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rawCache(t, conn) != cc {
			t.Fatalf("after %s the connection was replaced", end)
		}
		assertNoBusy(t, conn)
		for _, q := range qs {
			rows, err := conn.QueryContext(ctx, q, 18)
			if err != nil {
				t.Fatal(err)
			}
			k := 0
			for rows.Next() {
				k++
			}
			if err := rows.Close(); err != nil || k != 2 {
				t.Fatalf("after %s: %q gave %d rows, %v", end, q, k, err)
			}
		}
		assertNoBusy(t, conn)
		conn.Close()
	}
}

// Cached statements whose step fails (a
// CHECK, a unique key, a runtime error in the middle of the rows, missing
// arguments) run again with other arguments and give right results.
func TestStatementCacheFailedStepsRunAgain(t *testing.T) {
	eng := openEngine(t, "", orm.WithSQLiteStatementCache(8), orm.WithMaxOpenConns(1))
	conn, _ := pinConn(t, eng)
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE chk (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0), u TEXT UNIQUE)"); err != nil {
		t.Fatal(err)
	}
	const ins = "INSERT INTO chk (v, u) VALUES (?, ?)"
	const upd = "UPDATE chk SET v = ? WHERE u = ?"
	const ret = "INSERT INTO chk (v, u) VALUES (?, ?) RETURNING id, v"
	exec := func(q string, wantErr string, args ...any) {
		t.Helper()
		_, err := conn.ExecContext(ctx, q, args...)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("%s %v: err %v, want %q", q, args, err, wantErr)
		}
	}
	for round := range 3 {
		u := func(s string) string { return fmt.Sprint(s, round) }
		exec(ins, "", 1, u("a"))
		exec(ins, "CHECK constraint failed", -1, u("b"))
		exec(ins, "UNIQUE constraint failed", 2, u("a"))
		exec(ins, "NOT NULL constraint failed", nil, u("n"))
		exec(ins, "", 3, u("c"))
		exec(upd, "CHECK constraint failed", -5, u("a"))
		exec(upd, "", 9, u("a"))
		// A failing INSERT ... RETURNING through Query fails at its first
		// step, inside QueryContext.
		if rows, err := conn.QueryContext(ctx, ret, -1, u("r")); err == nil {
			rows.Close()
			t.Fatal("RETURNING insert violating CHECK succeeded")
		}
		rows, err := conn.QueryContext(ctx, ret, 4, u("r"))
		if err != nil {
			t.Fatal(err)
		}
		var id, v int64
		if !rows.Next() || rows.Scan(&id, &v) != nil || v != 4 || id == 0 {
			t.Fatalf("RETURNING: %d %d %v", id, v, rows.Err())
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		// Arguments missing, then given.
		if _, err := queryInt(ctx, conn, "SELECT ? + ?", 1); err == nil {
			t.Fatal("a missing argument was not reported")
		}
		if n, err := queryInt(ctx, conn, "SELECT ? + ?", 1, 2); err != nil || n != 3 {
			t.Fatalf("SELECT ? + ?: %d %v", n, err)
		}
		// A named argument missing, then given: the cached statement
		// must not keep the value of an earlier run.
		if n, err := queryInt(ctx, conn, "SELECT :a * 10 + :b", sql.Named("a", 4), sql.Named("b", 2)); err != nil || n != 42 {
			t.Fatalf("named: %d %v", n, err)
		}
		if _, err := queryInt(ctx, conn, "SELECT :a * 10 + :b", sql.Named("a", 4)); err == nil {
			t.Fatal("a missing named argument was not reported")
		}
		if n, err := queryInt(ctx, conn, "SELECT :a * 10 + :b", sql.Named("b", 1), sql.Named("a", 7)); err != nil || n != 71 {
			t.Fatalf("named: %d %v", n, err)
		}
		var sum int64
		var cnt int
		if err := conn.QueryRowContext(ctx, "SELECT coalesce(sum(v), 0), count(*) FROM chk WHERE u LIKE ?", "%"+fmt.Sprint(round)).Scan(&sum, &cnt); err != nil || sum != 9+3+4 || cnt != 3 {
			t.Fatalf("round %d: sum %d count %d %v", round, sum, cnt, err)
		}
	}
	// A runtime error on the third row of a cached query.
	const overflow = "SELECT CASE WHEN x = 3 THEN abs(-9223372036854775807 - 1) ELSE x END FROM (" + slowRowsSQL + ")"
	for round := range 3 {
		rows, err := conn.QueryContext(ctx, overflow, 5)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for rows.Next() {
			var x int64
			if err := rows.Scan(&x); err != nil {
				t.Fatal(err)
			}
			got = append(got, x)
		}
		if err := rows.Err(); err == nil || !strings.Contains(err.Error(), "overflow") || !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("round %d: rows %v, err %v (want 1, 2 then integer overflow)", round, got, err)
		}
		rows.Close()
		assertNoBusy(t, conn)
		rows, err = conn.QueryContext(ctx, overflow, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for rows.Next() {
			var x int64
			if err := rows.Scan(&x); err != nil {
				t.Fatal(err)
			}
			got = append(got, x)
		}
		if err := rows.Close(); err != nil || rows.Err() != nil || !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("round %d, rerun: %v %v %v", round, got, rows.Err(), err)
		}
	}
	assertNoBusy(t, conn)
}

// A session's cached INSERT and
// UPDATE fail on a unique key, the session rolls back, and the same
// statements then succeed.
func TestStatementCacheSurvivesFailedFlush(t *testing.T) {
	eng, cc := openStmtCache(t, 3)
	ctx := context.Background()
	for round := range 3 {
		s := eng.NewSession()
		r, err := orm.Get[StmtRow](ctx, s, int64(1))
		if err != nil {
			t.Fatal(err)
		}
		r.Name = "r2" // taken by row 3
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("round %d update: %v", round, err)
		}
		r.Name = fmt.Sprint("renamed", round)
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("round %d, update again: %v", round, err)
		}
		if err := s.Add(&StmtRow{Name: "r5", N: 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("round %d insert: %v", round, err)
		}
		s.Rollback(ctx)
		if err := s.Add(&StmtRow{Name: fmt.Sprint("new", round), N: 100 + int64(round)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("round %d insert again: %v", round, err)
		}
		s.Close()
		s = eng.NewSession()
		got, err := orm.Get[StmtRow](ctx, s, int64(1))
		if err != nil || got.Name != fmt.Sprint("renamed", round) {
			t.Fatalf("round %d: row 1 is %+v %v", round, got, err)
		}
		n, err := orm.Query[StmtRow](s).Where("n >= ?", 100).Count(ctx)
		if err != nil || n != int64(round+1) {
			t.Fatalf("round %d: %d new rows, %v", round, n, err)
		}
		s.Close()
	}
	if len(cc.byKey) > 3 {
		t.Fatalf("cache of 3 holds %d", len(cc.byKey))
	}
}

// Two engines on one file. While one holds the
// write lock, the other's cached write statements fail busy (after the
// DSN's short busy_timeout), its reads still work, and once the lock is
// released the same statements succeed. Then a deferred transaction whose
// snapshot is stale fails its cached write (SQLITE_BUSY_SNAPSHOT) and the
// next transaction succeeds with it.
func TestStatementCacheBusyWritesSucceedOnceLockIsFree(t *testing.T) {
	dir := t.TempDir()
	dsn := "file:" + filepath.Join(dir, "busy.db") + "?_pragma=busy_timeout(50)"
	engA := openEngine(t, dsn)
	engB := openEngine(t, dsn, orm.WithSQLiteStatementCache(4), orm.WithMaxOpenConns(2)) // one pinned, one for sessions
	ctx := context.Background()
	if _, err := engA.DB().ExecContext(ctx, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	const ins = "INSERT INTO kv (k, v) VALUES (?, ?)"
	const ret = "INSERT INTO kv (k, v) VALUES (?, ?) RETURNING k"
	const cnt = "SELECT count(*) FROM kv"
	connB, _ := pinConn(t, engB)
	engC := openEngine(t, "file:"+filepath.Join(dir, "busy.db"), orm.WithSQLiteStatementCache(4), orm.WithMaxOpenConns(1))
	connC, _ := pinConn(t, engC)
	if _, err := connC.ExecContext(ctx, ins, 3, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := connC.ExecContext(ctx, ret, 4, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := connB.ExecContext(ctx, ins, 1, "b"); err != nil {
		t.Fatal(err)
	}
	if n, err := queryInt(ctx, connB, ret, 2, "b"); err != nil || n != 2 {
		t.Fatalf("got %d, %v; want 2, nil", n, err)
	}
	isBusy := func(err error) bool {
		return err != nil && (strings.Contains(err.Error(), "database is locked") || strings.Contains(err.Error(), "SQLITE_BUSY"))
	}
	for round := range 3 {
		base := int64(10 * (round + 1))
		txA, err := engA.DB().BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
		if err != nil {
			t.Fatal(err)
		}
		if _, err := txA.ExecContext(ctx, ins, base, "a"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := connB.ExecContext(ctx, ins, base+1, "b"); !isBusy(err) {
			t.Fatalf("round %d: cached insert while locked: %v", round, err)
		}
		if _, err := queryInt(ctx, connB, ret, base+2, "b"); !isBusy(err) {
			t.Fatalf("round %d: cached RETURNING insert while locked: %v", round, err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("busy took %v", el)
		}
		// A session of B: its IMMEDIATE begin fails busy, retryable.
		sB := engB.NewSession()
		if _, err := sB.Exec(ctx, ins, base+3, "s"); !errors.Is(err, orm.ErrRetryable) {
			t.Fatalf("round %d: session insert while locked: %v", round, err)
		}
		sB.Close()
		// An engine with Tally's default busy_timeout (10 s): a context
		// that ends ends the cached statement's wait for the lock.
		for _, q := range []string{ins, ret} {
			tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			start := time.Now()
			_, err := connC.ExecContext(tctx, q, base+7, "c")
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
				t.Fatalf("round %d: %s waiting for the lock with a 100 ms context: %v after %v", round, q, err, time.Since(start))
			}
		}
		if n, err := queryInt(ctx, connB, cnt); err != nil || n != int64(4+3*round) {
			t.Fatalf("round %d: B reads %d rows while A writes, %v", round, n, err)
		}
		assertNoBusy(t, connB)
		if err := txA.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := connB.ExecContext(ctx, ins, base+1, "b"); err != nil {
			t.Fatalf("round %d: insert after the lock was released: %v", round, err)
		}
		if n, err := queryInt(ctx, connB, ret, base+2, "b"); err != nil || n != base+2 {
			t.Fatalf("round %d: RETURNING insert after the lock was released: %d %v", round, n, err)
		}
		if _, err := connC.ExecContext(ctx, "DELETE FROM kv WHERE k = ?", base+7); err != nil {
			t.Fatalf("round %d: C after its cancelled waits: %v", round, err)
		}
		assertNoBusy(t, connC)
		if n, err := queryInt(ctx, connB, cnt); err != nil || n != int64(4+3*round+3) {
			t.Fatalf("round %d: %d rows, %v", round, n, err)
		}
		// Stale snapshot: B reads in a deferred transaction, A writes.
		txB, err := connB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // plain BEGIN
		if err != nil {
			t.Fatal(err)
		}
		if _, err := queryInt(ctx, txB, cnt); err != nil {
			t.Fatal(err)
		}
		if _, err := engA.DB().ExecContext(ctx, ins, base+4, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := txB.ExecContext(ctx, ins, base+5, "b"); !isBusy(err) {
			t.Fatalf("round %d: write on a stale snapshot: %v", round, err)
		}
		txB.Rollback()
		if _, err := connB.ExecContext(ctx, "DELETE FROM kv WHERE k = ?", base+4); err != nil {
			t.Fatalf("round %d: delete after the stale snapshot: %v", round, err)
		}
		assertNoBusy(t, connB)
	}
	ks := queryColumn[int64](t, ctx, engA.DB(), "SELECT k FROM kv ORDER BY k")
	want := []int64{1, 2, 3, 4, 10, 11, 12, 20, 21, 22, 30, 31, 32}
	if !slices.Equal(ks, want) {
		t.Fatalf("keys %v, want %v", ks, want)
	}
}

// 16 goroutines share an engine whose
// connections cache 2 statements each, mixing Gets, queries of several
// SQL texts, inserts through the pool and through sessions, and session
// Iters; every result is checked exactly.
func TestStatementCacheConcurrentResultsExact(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	dsn := tempDSN(t)
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", dsn, orm.WithSQLiteStatementCache(2), orm.WithMaxOpenConns(4))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	seedStmtRows(t, eng)
	if _, err := eng.DB().ExecContext(ctx, "CREATE TABLE stmt_log (g INTEGER NOT NULL, i INTEGER NOT NULL, via TEXT NOT NULL, UNIQUE (g, i))"); err != nil {
		t.Fatal(err)
	}

	const workers, iters = 16, 40
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) {
				errc <- fmt.Errorf("worker %d: "+format, append([]any{g}, args...)...)
			}
			for i := range iters {
				k := int64((g*7+i)%20 + 1) // an id, 1..20; row k has n = k-1
				switch (g + i) % 8 {
				case 0:
					s := eng.NewSession()
					r, err := orm.Get[StmtRow](ctx, s, k)
					s.Close()
					if err != nil || r.N != k-1 || r.Name != fmt.Sprint("r", k-1) {
						fail("Get %d: %+v %v", k, r, err)
						return
					}
				case 1:
					// Five SQL texts, more than a connection caches.
					off := int64(i % 5)
					q := fmt.Sprintf("SELECT n + %d FROM stmt_rows WHERE id = ?", off)
					n, err := queryInt(ctx, eng.DB(), q, k)
					if err != nil || n != k-1+off {
						fail("%s [%d]: %d %v", q, k, n, err)
						return
					}
				case 2:
					rows, err := eng.DB().QueryContext(ctx, "SELECT id, n FROM stmt_rows WHERE n < ? ORDER BY id", k)
					if err != nil {
						fail("query: %v", err)
						return
					}
					var want int64 = 1
					for rows.Next() {
						var id, n int64
						if err := rows.Scan(&id, &n); err != nil || id != want || n != id-1 {
							rows.Close()
							fail("row %d: id %d n %d %v", want, id, n, err)
							return
						}
						want++
					}
					if err := rows.Close(); err != nil || rows.Err() != nil || want != k+1 {
						fail("query n < %d: %d rows, %v %v", k, want-1, err, rows.Err())
						return
					}
				case 3:
					if _, err := eng.DB().ExecContext(ctx, "INSERT INTO stmt_log (g, i, via) VALUES (?, ?, ?)", g, i, "pool"); err != nil {
						fail("insert: %v", err)
						return
					}
				case 4:
					err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
						_, err := s.Exec(ctx, "INSERT INTO stmt_log (g, i, via) VALUES (?, ?, ?)", g, i, "session")
						return err
					})
					if err != nil {
						fail("session insert: %v", err)
						return
					}
				case 5:
					s := eng.NewSession()
					var ids []int64
					for r, err := range orm.Query[StmtRow](s).Where("n < ?", k).OrderBy("id").Iter(ctx) {
						if err != nil {
							s.Close()
							fail("Iter: %v", err)
							return
						}
						ids = append(ids, r.ID)
					}
					s.Close()
					if int64(len(ids)) != k || ids[0] != 1 || ids[len(ids)-1] != k {
						fail("Iter n < %d: %v", k, ids)
						return
					}
				case 6:
					// A statement timed out in its first step.
					tctx, cancel := context.WithTimeout(ctx, time.Duration(1+i%5)*time.Millisecond)
					_, err := queryInt(tctx, eng.DB(), slowCountSQL, int64(1e9))
					cancel()
					if !errors.Is(err, context.DeadlineExceeded) {
						fail("slow query: %v", err)
						return
					}
				case 7:
					// A session's Iter whose context is cancelled midway.
					s := eng.NewSession()
					cctx, cancel := context.WithCancel(ctx)
					var ids []int64
					var iterErr error
					for r, err := range orm.Query[StmtRow](s).Where("n >= ?", 0).OrderBy("id").Iter(cctx) {
						if err != nil {
							iterErr = err
							break
						}
						ids = append(ids, r.ID)
						if len(ids) == 3 {
							cancel()
						}
					}
					cancel()
					// The session goes on after the cancelled query.
					r, err := orm.Get[StmtRow](ctx, s, k)
					s.Close()
					// Rows read before database/sql saw the cancellation
					// are right; a short read ends with the context's error.
					prefix := len(ids) >= 3 && len(ids) <= 20
					for j, id := range ids {
						prefix = prefix && id == int64(j+1)
					}
					if !prefix || len(ids) < 20 && !errors.Is(iterErr, context.Canceled) || err != nil || r.N != k-1 {
						fail("cancelled Iter: %v %v, then orm.Get %d: %+v %v", ids, iterErr, k, r, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	var want []string
	for g := range workers {
		for i := range iters {
			switch (g + i) % 8 {
			case 3:
				want = append(want, fmt.Sprintf("%d/%d/pool", g, i))
			case 4:
				want = append(want, fmt.Sprintf("%d/%d/session", g, i))
			}
		}
	}
	rows, err := eng.DB().QueryContext(ctx, "SELECT g, i, via FROM stmt_log ORDER BY g, i")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var g, i int
		var via string
		if err := rows.Scan(&g, &i, &via); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d/%d/%s", g, i, via))
	}
	rows.Close()
	if !slices.Equal(got, want) {
		t.Fatalf("log has %d rows, want %d", len(got), len(want))
	}
	// Every connection's cache is consistent and idle.
	conns := make([]*sql.Conn, 0, 4)
	for range 4 {
		c, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if state, busy := cacheState(t, c); busy != 0 || strings.Count(state, " | ") > 1 {
			t.Errorf("cache of 2: %s", state)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if st := eng.DB().Stats(); st.InUse != 0 {
		t.Errorf("%d connections in use", st.InUse)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, leaks)
}

// scriptStep is one statement of a script run with and without the cache.
type scriptStep struct {
	query bool // QueryContext, else ExecContext
	sql   string
	args  []any
}

// runStep runs st on conn and describes the outcome: the error, or the
// columns and rows, or RowsAffected and LastInsertId (or their panic:
// database/sql's Result of a nil driver result panics).
func runStep(ctx context.Context, conn *sql.Conn, st scriptStep, aux string) (out string) {
	args := slices.Clone(st.args)
	for i, a := range args {
		switch a {
		case "@aux":
			args[i] = aux
		case "@aux2":
			args[i] = aux + "2"
		}
	}
	if !st.query {
		res, err := conn.ExecContext(ctx, st.sql, args...)
		if err != nil {
			return "error: " + err.Error()
		}
		defer func() {
			if p := recover(); p != nil {
				out = fmt.Sprint("result panics: ", p)
			}
		}()
		ra, err1 := res.RowsAffected()
		id, err2 := res.LastInsertId()
		return fmt.Sprintf("ok affected %d %v, id %d %v", ra, err1, id, err2)
	}
	rows, err := conn.QueryContext(ctx, st.sql, args...)
	if err != nil {
		return "error: " + err.Error()
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "columns error: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v:", cols)
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return b.String() + " scan error: " + err.Error()
		}
		fmt.Fprintf(&b, " %v", vals)
	}
	if err := rows.Err(); err != nil {
		fmt.Fprintf(&b, " rows error: %v", err)
	}
	if err := rows.Close(); err != nil {
		fmt.Fprintf(&b, " close error: %v", err)
	}
	return b.String()
}

// The cache changes no outcome: it runs scripts, empty and comment-only
// SQL, DDL, PRAGMAs, ATTACH/DETACH, TEMP objects that shadow main ones,
// views, savepoints, explicit transactions, RETURNING, bad SQL and bad
// arguments on one connection with a cache of 2 and on one without a
// cache, twice over (the second round runs cached statements), and
// compares every outcome.
func TestStatementCacheMatchesUncached(t *testing.T) {
	ctx := context.Background()
	q := func(sql string, args ...any) scriptStep { return scriptStep{true, sql, args} }
	x := func(sql string, args ...any) scriptStep { return scriptStep{false, sql, args} }
	steps := []scriptStep{
		x("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"),
		x("INSERT INTO t (b) VALUES (?)", "one"),
		x("INSERT INTO t (b) VALUES (?)", "two"),
		x("SELECT 1; SELECT 2"),
		q("SELECT 1; SELECT 2"),
		q("SELECT 1 AS x; SELECT 'two' AS y, 3 AS z"),
		x("INSERT INTO t (b) VALUES ('s1'); INSERT INTO t (b) VALUES ('s2')"),
		x("INSERT INTO t (b) VALUES (?); INSERT INTO t (b) VALUES (?)", "p1"),
		q("INSERT INTO t (b) VALUES ('q1'); SELECT count(*) FROM t"),
		q("SELECT count(*) FROM t; INSERT INTO t (b) VALUES ('q2')"),
		x("SELECT 1; SELEC 2"),
		q("SELECT 1; SELEC 2"),
		x(""),
		q(""),
		x("-- just a comment"),
		q("/* a comment */"),
		x(";"),
		q("  ;  ;"),
		x("SELECT 1; -- trailing comment"),
		q("SELECT 1; /* trailing */"),
		q("SELECT a, b FROM t ORDER BY a"),
		x("PRAGMA user_version = 7"),
		q("PRAGMA user_version"),
		x("PRAGMA user_version"),
		q("PRAGMA table_info(t)"),
		q("SELECT * FROM t ORDER BY a"),
		x("ALTER TABLE t ADD COLUMN c INTEGER DEFAULT 5"),
		q("PRAGMA table_info(t)"),
		q("SELECT * FROM t ORDER BY a"),
		x("ALTER TABLE t DROP COLUMN c"),
		q("SELECT * FROM t ORDER BY a"),
		x("ATTACH DATABASE ? AS aux", "@aux"),
		x("CREATE TABLE IF NOT EXISTS aux.t (z)"),
		x("INSERT INTO aux.t VALUES (?)", 9),
		q("SELECT * FROM aux.t"),
		q("SELECT count(*) FROM t"),
		q("SELECT name FROM pragma_database_list ORDER BY seq"),
		x("DETACH DATABASE aux"),
		q("SELECT * FROM aux.t"),
		// Another file under the same name: the cached statements must
		// read the new one.
		x("ATTACH DATABASE ? AS aux", "@aux2"),
		q("SELECT * FROM aux.t"),
		x("CREATE TABLE IF NOT EXISTS aux.t (z)"),
		x("INSERT INTO aux.t VALUES (?)", 10),
		q("SELECT * FROM aux.t"),
		x("DETACH DATABASE aux"),
		x("ATTACH DATABASE ? AS aux", "@aux"),
		q("SELECT * FROM aux.t"),
		x("DETACH DATABASE aux"),
		x("ALTER TABLE t RENAME TO t2"),
		q("SELECT * FROM t ORDER BY a"),
		x("ALTER TABLE t2 RENAME TO t"),
		q("SELECT * FROM t ORDER BY a"),
		x("CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET b = b || '!' WHERE a = new.a; END"),
		x("INSERT INTO t (b) VALUES (?)", "trig"),
		q("SELECT b FROM t ORDER BY a DESC LIMIT 1"),
		x("DROP TRIGGER tr"),
		x("INSERT INTO t (b) VALUES (?)", "trig"),
		q("SELECT b FROM t ORDER BY a DESC LIMIT 1"),
		x("PRAGMA query_only = 1"),
		x("INSERT INTO t (b) VALUES (?)", "ro"),
		x("PRAGMA query_only = 0"),
		x("INSERT INTO t (b) VALUES (?)", "ro"),
		x("CREATE TEMP TABLE t (x)"),
		q("SELECT * FROM t"),
		x("INSERT INTO t VALUES (?)", 1),
		q("SELECT * FROM t"),
		x("DROP TABLE temp.t"),
		q("SELECT * FROM t ORDER BY a"),
		x("CREATE VIEW v AS SELECT b FROM t"),
		q("SELECT * FROM v ORDER BY b"),
		x("DROP VIEW v"),
		q("SELECT * FROM v ORDER BY b"),
		x("CREATE TEMP VIEW v AS SELECT a FROM t"),
		q("SELECT * FROM v ORDER BY a"),
		x("DROP VIEW v"),
		x("SAVEPOINT sp"),
		x("INSERT INTO t (b) VALUES (?)", "in savepoint"),
		q("SELECT count(*) FROM t"),
		x("ROLLBACK TO sp"),
		x("RELEASE sp"),
		q("SELECT count(*) FROM t"),
		x("RELEASE sp"),
		x("BEGIN"),
		x("INSERT INTO t (b) VALUES (?)", "in tx"),
		x("BEGIN"),
		q("SELECT count(*) FROM t"),
		x("ROLLBACK"),
		x("ROLLBACK"),
		q("SELECT count(*) FROM t"),
		x("SELEC 1"),
		q("SELECT ?, ?", 1),
		q("SELECT ?, ?", 1, 2, 3),
		q("SELECT ?2, ?1", "a", "b"),
		q("SELECT :a || :b", sql.Named("a", "x"), sql.Named("b", "y")),
		q("SELECT :a || :b", sql.Named("b", "y")),
		q("SELECT ?", []byte("blob")),
		q("SELECT ?", nil),
		x("INSERT INTO t (b) VALUES (?) RETURNING a", "ret"),
		q("INSERT INTO t (b) VALUES (?), (?) RETURNING a, b", "r1", "r2"),
		q("SELECT changes(), total_changes() > 0"),
		x("DELETE FROM t WHERE b LIKE ?", "r%"),
		x("UPDATE t SET b = upper(b)"),
		x("VACUUM"),
		x("PRAGMA foreign_keys = OFF"),
		q("PRAGMA foreign_keys"),
		x("PRAGMA foreign_keys = ON"),
		q("PRAGMA foreign_keys"),
		q("PRAGMA journal_mode"),
		// Connection settings that change how statements compile.
		x("PRAGMA case_sensitive_like = 1"),
		q("SELECT 'a' LIKE 'A', count(*) FROM t WHERE b LIKE 'ONE'"),
		x("PRAGMA case_sensitive_like = 0"),
		q("SELECT 'a' LIKE 'A', count(*) FROM t WHERE b LIKE 'ONE'"),
		x("PRAGMA short_column_names = 0"),
		x("PRAGMA full_column_names = 1"),
		q("SELECT t.a, x.a FROM t JOIN t AS x USING (a) ORDER BY 1 LIMIT 1"),
		x("PRAGMA full_column_names = 0"),
		x("PRAGMA short_column_names = 1"),
		q("SELECT t.a, x.a FROM t JOIN t AS x USING (a) ORDER BY 1 LIMIT 1"),
		x("PRAGMA reverse_unordered_selects = 1"),
		q("SELECT a FROM t"),
		x("PRAGMA reverse_unordered_selects = 0"),
		q("SELECT a FROM t"),
		x("CREATE TEMP TABLE tt (x)"),
		x("INSERT INTO tt VALUES (1)"),
		x("PRAGMA temp_store = MEMORY"),
		q("SELECT * FROM tt"),
		x("PRAGMA temp_store = DEFAULT"),
		x("PRAGMA recursive_triggers = 1"),
		q("PRAGMA recursive_triggers"),
		x("PRAGMA recursive_triggers = 0"),
		x("CREATE INDEX t_b ON t (b)"),
		q("SELECT a FROM t WHERE b = ?", "ONE"),
		x("DROP INDEX t_b"),
		q("SELECT a FROM t WHERE b = ?", "ONE"),
		x("DROP TABLE t"),
		q("SELECT * FROM t"),
		x("INSERT INTO t (b) VALUES (?)", "gone"),
	}
	var outs [2][]string
	for i, size := range []int{2, 0} {
		eng := openEngine(t, "", orm.WithSQLiteStatementCache(size), orm.WithMaxOpenConns(1))
		conn, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		aux := filepath.Join(t.TempDir(), "aux.db")
		for range 2 {
			for _, st := range steps {
				outs[i] = append(outs[i], runStep(ctx, conn, st, aux))
			}
		}
		if size > 0 {
			assertNoBusy(t, conn)
		}
		conn.Close()
	}
	for j := range outs[0] {
		if outs[0][j] != outs[1][j] {
			st := steps[j%len(steps)]
			t.Errorf("round %d, %q %v:\n  cached:   %s\n  uncached: %s", j/len(steps)+1, st.sql, st.args, outs[0][j], outs[1][j])
		}
	}
}

// stmtClosed reports whether modernc's statement st was closed: Close
// zeroes both its handles.
func stmtClosed(t *testing.T, st any) bool {
	t.Helper()
	v := reflect.ValueOf(st)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		t.Fatalf("statement is %T", st)
	}
	psql, pstmt := v.Elem().FieldByName("psql"), v.Elem().FieldByName("pstmt")
	if !psql.IsValid() || !pstmt.IsValid() {
		t.Fatalf("modernc's stmt has no psql/pstmt fields: %T", st)
	}
	return psql.Uint() == 0 && pstmt.Uint() == 0
}

// connClosed reports whether modernc's connection was closed.
func connClosed(t *testing.T, c any) bool {
	t.Helper()
	db := reflect.ValueOf(c).Elem().FieldByName("db")
	if !db.IsValid() {
		t.Fatalf("modernc's conn has no db field: %T", c)
	}
	return db.Uint() == 0
}

// The engine is closed while a
// transaction holds rows of a cached statement (one evicted while busy,
// one still cached) and while a session's Iter runs. The rows still read
// right; once they and the transaction end, the connection and every
// statement the cache prepared are closed, and no goroutine is left.
func TestStatementCacheEngineCloseClosesEveryStatement(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	ctx := context.Background()
	for _, variant := range []string{"tx", "iter"} {
		dsn := tempDSN(t)
		eng, err := orm.Open(ctx, "sqlite", dsn, orm.WithSQLiteStatementCache(2), orm.WithMaxOpenConns(1))
		if err != nil {
			t.Fatal(err)
		}
		seedStmtRows(t, eng)
		conn, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cc := rawCache(t, conn)
		conn.Close()
		seen := map[*cachedStmt]bool{}
		note := func() {
			for el := cc.lru.Front(); el != nil; el = el.Next() {
				seen[el.Value.(*cachedStmt)] = true
			}
		}
		note()
		switch variant {
		case "tx":
			tx, err := eng.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			const evicted = "SELECT n FROM stmt_rows WHERE n >= ? ORDER BY id"
			const kept = "SELECT name FROM stmt_rows WHERE n >= ? ORDER BY id"
			r1, err := tx.QueryContext(ctx, evicted, 0)
			if err != nil {
				t.Fatal(err)
			}
			note()
			held := cc.byKey[evicted].Value.(*cachedStmt)
			for k := range 3 {
				if _, err := queryInt(ctx, tx, fmt.Sprintf("SELECT count(*) FROM stmt_rows WHERE n > %d", k)); err != nil {
					t.Fatal(err)
				}
				note()
			}
			if !held.busy || !held.gone {
				t.Fatalf("the held statement was not evicted while busy: busy %v gone %v", held.busy, held.gone)
			}
			r2, err := tx.QueryContext(ctx, kept, 10)
			if err != nil {
				t.Fatal(err)
			}
			note()
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			var ns []int64
			var names []string
			for r1.Next() {
				var n int64
				r1.Scan(&n)
				ns = append(ns, n)
				if r2.Next() {
					var name string
					r2.Scan(&name)
					names = append(names, name)
				}
			}
			if err := r1.Err(); err != nil || len(ns) != 20 || ns[19] != 19 || len(names) != 10 || names[0] != "r10" {
				t.Fatalf("rows after orm.Engine.Close: %v %v %v", ns, names, err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			r1.Close()
			r2.Close()
		case "iter":
			s := eng.NewSession()
			var ids []int64
			for r, err := range orm.Query[StmtRow](s).OrderBy("id").Iter(ctx) {
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, r.ID)
				if r.ID == 5 {
					note()
					if err := eng.Close(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(ids) != 20 || ids[19] != 20 {
				t.Fatalf("Iter across orm.Engine.Close: %v", ids)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := orm.Get[StmtRow](ctx, eng.NewSession(), int64(1)); err == nil {
				t.Fatal("a orm.Get after orm.Engine.Close succeeded")
			}
		}
		if !connClosed(t, cc.innerConn) {
			t.Fatalf("%s: the driver connection is still open after orm.Engine.Close and the rows ended", variant)
		}
		if len(seen) < 2 {
			t.Fatalf("%s: only %d statements seen", variant, len(seen))
		}
		for cs := range seen {
			if !stmtClosed(t, cs.st) {
				t.Errorf("%s: statement never closed (busy %v, gone %v): %s", variant, cs.busy, cs.gone, cs.query)
			}
		}
	}
	goleak.VerifyNone(t, leaks)
}

// Session.Savepoint, nested, failing and
// succeeding, repeated so that SAVEPOINT, RELEASE and ROLLBACK TO run
// cached; the database ends as the savepoints say.
func TestStatementCacheRunsSavepointStatements(t *testing.T) {
	eng, cc := openStmtCache(t, 3)
	ctx := context.Background()
	errInner := errors.New("inner fails")
	for round := range 4 {
		s := eng.NewSession()
		name := func(tag string) string { return fmt.Sprintf("sp%d-%s", round, tag) }
		err := s.Savepoint(ctx, func() error {
			if err := s.Add(&StmtRow{Name: name("outer"), N: 1000}); err != nil {
				return err
			}
			// A nested savepoint that fails: its row is rolled back.
			if err := s.Savepoint(ctx, func() error {
				if err := s.Add(&StmtRow{Name: name("inner"), N: 1000}); err != nil {
					return err
				}
				if err := s.Flush(ctx); err != nil {
					return err
				}
				return errInner
			}); !errors.Is(err, errInner) {
				return fmt.Errorf("inner savepoint: %v", err)
			}
			// A nested savepoint whose flush fails on a unique key.
			if err := s.Savepoint(ctx, func() error {
				return s.Add(&StmtRow{Name: "r1", N: 1000})
			}); !errors.Is(err, orm.ErrUniqueViolation) {
				return fmt.Errorf("duplicate in savepoint: %v", err)
			}
			// And one that succeeds.
			return s.Savepoint(ctx, func() error {
				_, err := s.Exec(ctx, "UPDATE stmt_rows SET n = n + 1 WHERE name = ?", name("outer"))
				return err
			})
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		s.Close()
		names := queryColumn[string](t, ctx, eng.DB(), "SELECT name || ':' || n FROM stmt_rows WHERE n >= 1000 ORDER BY id")
		var want []string
		for r := range round + 1 {
			want = append(want, fmt.Sprintf("sp%d-outer:1001", r))
		}
		if !slices.Equal(names, want) {
			t.Fatalf("round %d: rows %v, want %v", round, names, want)
		}
	}
	if cc.lru.Len() > 3 {
		t.Fatalf("cache of 3 holds %d", cc.lru.Len())
	}
}

// In rollback-journal mode a reader's
// open statement holds a SHARED lock that keeps a writer from committing.
// After every way a cached statement can end (rows read to the end,
// closed early, QueryRow, a runtime error, an empty result, Exec of a
// SELECT, a context cancelled mid-rows or mid-step), the reader's pinned
// connection must hold no lock: a writer on another engine commits.
func TestStatementCacheHoldsNoLockAfterStatementEnds(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "journal.db") + "?_pragma=journal_mode(DELETE)&_pragma=busy_timeout(50)"
	writer := openEngine(t, dsn, orm.WithSQLiteStatementCache(0))
	reader := openEngine(t, dsn, orm.WithSQLiteStatementCache(4), orm.WithMaxOpenConns(1))
	ctx := context.Background()
	var mode string
	if err := writer.DB().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "delete" {
		t.Fatalf("journal mode %q, %v", mode, err)
	}
	if _, err := writer.DB().ExecContext(ctx, "CREATE TABLE w (k INTEGER PRIMARY KEY, v INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 50; i++ {
		if _, err := writer.DB().ExecContext(ctx, "INSERT INTO w (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	conn, _ := pinConn(t, reader)
	const sel = "SELECT v FROM w WHERE v >= ? ORDER BY k"
	const overflow = "SELECT CASE WHEN v = 3 THEN abs(-9223372036854775807 - 1) ELSE v END FROM w ORDER BY k"
	k := 1000
	commit := func(after string) {
		t.Helper()
		// The writer's SHARED lock upgrade at COMMIT fails busy while
		// the reader holds one.
		tx, err := writer.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("after %s: begin: %v", after, err)
		}
		k++
		if _, err := tx.ExecContext(ctx, "INSERT INTO w (k, v) VALUES (?, 0)", k); err != nil {
			tx.Rollback()
			t.Fatalf("after %s: insert: %v", after, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("after %s the reader's connection still holds a lock: commit: %v", after, err)
		}
		assertNoBusy(t, conn)
	}
	// The check works: with rows open, the commit fails.
	rows, err := conn.QueryContext(ctx, sel, 0)
	if err != nil || !rows.Next() {
		t.Fatal(err)
	}
	tx, err := writer.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO w (k, v) VALUES (999, 0)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("a commit succeeded while a reader had rows open: the lock check proves nothing")
	}
	tx.Rollback()
	rows.Close()
	commit("rows closed early")

	for round := range 2 {
		// Read to the end.
		rows, err := conn.QueryContext(ctx, sel, 45)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if n != 6 {
			t.Fatalf("round %d: %d rows", round, n)
		}
		commit("rows read to the end (not closed explicitly)")
		rows.Close()
		// QueryRow: one row of many.
		if v, err := queryInt(ctx, conn, sel, 10); err != nil || v != 10 {
			t.Fatalf("got %d, %v; want 10, nil", v, err)
		}
		commit("QueryRow")
		// An empty result.
		if _, err := queryInt(ctx, conn, sel, 1e6); !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		commit("an empty result")
		// A runtime error on the third row.
		rows, err = conn.QueryContext(ctx, overflow)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		if rows.Err() == nil {
			t.Fatal("no overflow error")
		}
		rows.Close()
		commit("a runtime error")
		// Exec of a SELECT.
		if _, err := conn.ExecContext(ctx, sel, 0); err != nil {
			t.Fatal(err)
		}
		commit("Exec of a SELECT")
		// Cancelled mid-rows.
		cctx, cancel := context.WithCancel(ctx)
		rows, err = conn.QueryContext(cctx, sel, 0)
		if err != nil {
			t.Fatal(err)
		}
		rows.Next()
		cancel()
		for rows.Next() {
		}
		rows.Close()
		commit("a context cancelled mid-rows")
		// Timed out in its first step.
		tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		_, err = queryInt(tctx, conn, "SELECT count(*) FROM w, ("+slowRowsSQL+")", int64(1e9))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("slow query: %v", err)
		}
		commit("a timeout")
	}
}

// Another connection of the
// pool changes the schema; the cached statements of the first connection
// must see the change as freshly prepared ones do: new columns, a dropped
// and recreated table, PRAGMA table_info, a new trigger.
func TestStatementCacheSeesSchemaChangedElsewhere(t *testing.T) {
	eng := openEngine(t, "", orm.WithSQLiteStatementCache(8), orm.WithMaxOpenConns(2))
	ctx := context.Background()
	c1, _ := pinConn(t, eng)
	c2, _ := pinConn(t, eng)
	mustExec := func(c *sql.Conn, q string, args ...any) {
		t.Helper()
		if _, err := c.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(c2, "CREATE TABLE s (a INTEGER PRIMARY KEY, b TEXT)")
	mustExec(c2, "INSERT INTO s (b) VALUES ('x')")
	step := func(q string) string { return runStep(ctx, c1, scriptStep{query: true, sql: q}, "") }
	const star = "SELECT * FROM s ORDER BY a"
	const info = "SELECT name FROM pragma_table_info('s') ORDER BY cid"
	const pragma = "PRAGMA table_info(s)"
	check := func(q, want string) {
		t.Helper()
		if got := step(q); got != want {
			t.Fatalf("%s:\n got  %s\n want %s", q, got, want)
		}
	}
	check(star, "[a b]: [1 x]")
	check(info, "[name]: [a] [b]")
	check(pragma, "[cid name type notnull dflt_value pk]: [0 a INTEGER 0 <nil> 1] [1 b TEXT 0 <nil> 0]")
	mustExec(c2, "ALTER TABLE s ADD COLUMN c INTEGER DEFAULT 7")
	check(star, "[a b c]: [1 x 7]")
	check(info, "[name]: [a] [b] [c]")
	check(pragma, "[cid name type notnull dflt_value pk]: [0 a INTEGER 0 <nil> 1] [1 b TEXT 0 <nil> 0] [2 c INTEGER 0 7 0]")
	mustExec(c2, "DROP TABLE s")
	if got := step(star); !strings.Contains(got, "no such table") {
		t.Fatalf("after DROP elsewhere: %s", got)
	}
	mustExec(c2, "CREATE TABLE s (z TEXT, a INTEGER PRIMARY KEY)")
	mustExec(c2, "INSERT INTO s (z) VALUES ('new')")
	check(star, "[z a]: [new 1]")
	// A trigger created elsewhere fires for a cached INSERT.
	mustExec(c1, "INSERT INTO s (z) VALUES (?)", "before")
	mustExec(c2, "CREATE TRIGGER s_up AFTER INSERT ON s BEGIN UPDATE s SET z = upper(z) WHERE a = new.a; END")
	mustExec(c1, "INSERT INTO s (z) VALUES (?)", "after")
	check(star, "[z a]: [new 1] [before 2] [AFTER 3]")
	assertNoBusy(t, c1)
}

// A connection with an attached database reads as without the cache. It
// runs "SELECT v FROM x", which names the attached aux.x while main has no
// x; another connection then creates main.x, which takes precedence for an
// unqualified name. A compiled statement verifies only the schema of the
// database it read (aux), so a cached one would go on reading aux.x; the
// connection caches nothing, and reads main.x as a fresh statement does.
func TestStatementCacheAttachedDatabaseReadsAsUncached(t *testing.T) {
	ctx := context.Background()
	got := map[int]string{}
	for _, size := range []int{0, 4} {
		eng := openEngine(t, "", orm.WithSQLiteStatementCache(size), orm.WithMaxOpenConns(2))
		c1, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c1.Close()
		c2, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		aux := filepath.Join(t.TempDir(), "aux.db")
		for _, q := range []string{"CREATE TABLE main.other (v TEXT)", "ATTACH DATABASE '" + aux + "' AS aux", "CREATE TABLE aux.x (v TEXT)", "INSERT INTO aux.x VALUES ('aux')"} {
			if _, err := c1.ExecContext(ctx, q); err != nil {
				t.Fatal(q, err)
			}
		}
		var v string
		if err := c1.QueryRowContext(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != "aux" {
			t.Fatalf("cache %d, before: %q %v", size, v, err)
		}
		for _, q := range []string{"CREATE TABLE main.x (v TEXT)", "INSERT INTO main.x VALUES ('main')"} {
			if _, err := c2.ExecContext(ctx, q); err != nil {
				t.Fatal(q, err)
			}
		}
		// Any statement reading main makes c1 load main's new schema.
		if _, err := queryInt(ctx, c1, "SELECT count(*) FROM other"); err != nil {
			t.Fatal(err)
		}
		if err := c1.QueryRowContext(ctx, "SELECT v FROM x").Scan(&v); err != nil {
			t.Fatal(err)
		}
		got[size] = v
	}
	if got[0] != "main" {
		t.Fatalf("without the cache the unqualified name reads %q, want main", got[0])
	}
	if got[4] != got[0] {
		t.Fatalf("the same SQL text reads %s.x with the cache and %s.x without it", got[4], got[0])
	}
}

// The cache keeps the most recently
// used statements (a statement used again is not the next evicted), and
// every statement it evicts or drops is closed, busy ones when their rows
// close, so churning through many texts leaves only the cached ones open.
func TestStatementCacheEvictsLeastRecentAndClosesEvicted(t *testing.T) {
	eng := openEngine(t, "", orm.WithSQLiteStatementCache(3), orm.WithMaxOpenConns(1))
	ctx := context.Background()
	conn, cc := pinConn(t, eng)
	seen := map[*cachedStmt]bool{}
	note := func() {
		for el := cc.lru.Front(); el != nil; el = el.Next() {
			seen[el.Value.(*cachedStmt)] = true
		}
	}
	sel := func(k int) string { return fmt.Sprintf("SELECT %d + ?", k) }
	run := func(k int) {
		t.Helper()
		if n, err := queryInt(ctx, conn, sel(k), 1); err != nil || n != int64(k+1) {
			t.Fatalf("%s: %d %v", sel(k), n, err)
		}
		note()
	}
	run(1)
	run(2)
	run(3)
	run(1) // 1 is now the most recent: 2 goes next
	run(4)
	if state, _ := cacheState(t, conn); state != strings.Join([]string{sel(4), sel(1), sel(3)}, " | ") {
		t.Fatalf("after 1 2 3 1 4 the cache holds %s", state)
	}
	// Churn, with rows of one statement held open across evictions.
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	held, err := tx.QueryContext(ctx, sel(1000), 1)
	if err != nil {
		t.Fatal(err)
	}
	note()
	for k := 5; k < 300; k++ {
		if n, err := queryInt(ctx, tx, sel(k), 1); err != nil || n != int64(k+1) {
			t.Fatalf("%s: %d %v", sel(k), n, err)
		}
		note()
	}
	var n int64
	if !held.Next() || held.Scan(&n) != nil || n != 1001 {
		t.Fatalf("held rows after churn: %d %v", n, held.Err())
	}
	held.Close()
	tx.Rollback()
	cached := map[*cachedStmt]bool{}
	for el := cc.lru.Front(); el != nil; el = el.Next() {
		cached[el.Value.(*cachedStmt)] = true
	}
	if len(cached) != 3 || len(seen) < 290 {
		t.Fatalf("%d cached, %d seen", len(cached), len(seen))
	}
	open := 0
	for cs := range seen {
		if closed := stmtClosed(t, cs.st); closed == cached[cs] {
			if !closed {
				open++
				t.Errorf("statement dropped from the cache but never closed (busy %v, gone %v): %s", cs.busy, cs.gone, cs.query)
			} else {
				t.Errorf("cached statement closed: %s", cs.query)
			}
		}
	}
	if open > 0 {
		t.Fatalf("%d statements leaked", open)
	}
}

// On an in-memory database the driver
// keeps a connection whose statement was interrupted (dropping it would
// drop the data), so the cache with the interrupted statement lives on:
// it and the others must keep working.
func TestStatementCacheInMemoryCancelKeepsWorking(t *testing.T) {
	eng := openEngine(t, ":memory:", orm.WithSQLiteStatementCache(2), orm.WithMaxOpenConns(1))
	ctx := context.Background()
	if _, err := eng.DB().ExecContext(ctx, "CREATE TABLE m (v INTEGER)"); err != nil {
		t.Fatal(err)
	}
	conn, err := eng.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cc := rawCache(t, conn)
	conn.Close()
	const ins = "INSERT INTO m (v) SELECT count(*) FROM (" + slowRowsSQL + ")"
	for round := range 3 {
		for _, q := range []string{slowCountSQL, ins} {
			tctx, cancel := context.WithTimeout(ctx, 40*time.Millisecond)
			_, err := eng.DB().ExecContext(tctx, q, int64(1e9))
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("round %d, %s: %v", round, q, err)
			}
			if n, err := queryInt(ctx, eng.DB(), slowCountSQL, 6); err != nil || n != 6 {
				t.Fatalf("round %d after %s: %d %v", round, q, n, err)
			}
			if _, err := eng.DB().ExecContext(ctx, ins, round+1); err != nil {
				t.Fatalf("round %d, insert after %s: %v", round, q, err)
			}
		}
	}
	var sum, cnt int64
	if err := eng.DB().QueryRowContext(ctx, "SELECT sum(v), count(*) FROM m").Scan(&sum, &cnt); err != nil || sum != 2*(1+2+3) || cnt != 6 {
		t.Fatalf("sum %d count %d %v", sum, cnt, err)
	}
	conn, err = eng.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if rawCache(t, conn) != cc {
		t.Fatal("the in-memory connection was replaced (its data with it?)")
	}
	assertNoBusy(t, conn)
}
