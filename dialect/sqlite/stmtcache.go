package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"reflect"
	"strings"
)

// SQLite compiles every statement it runs; modernc's driver does so on
// each QueryContext and ExecContext, which is a fifth of a 100-row INSERT
// and a third of a read by key. Tally's statements repeat (the same SELECT
// by key, the same INSERT batch shape), so on SQLite each connection keeps
// its most recently used statements compiled, the way mattn/go-sqlite3's
// _stmt_cache_size does. The cache is per connection, inside the driver:
// a statement is prepared on the connection that runs it (so TEMP tables
// work), preparing never waits for the pool, and nothing outlives its
// connection. A statement whose rows are still open (a nested query with
// the same SQL inside an Iter loop) is not shared: the second use runs
// uncached. A connection with attached databases caches nothing (see
// cachingConn.attached); it notices an ATTACH that is a statement of its
// own or was made by a connection hook, not one inside a script.

// A compiled statement takes memory roughly in proportion to its text (a
// multi-row INSERT compiles to opcodes per row), so besides the count each
// connection bounds the text it keeps compiled, and a statement longer
// than maxCachedSQL (a bulk INSERT of hundreds of rows, which compiling
// costs little against) is never cached.
const (
	maxCachedSQL      = 16 << 10
	maxCachedSQLTotal = 128 << 10
)

// stmtCacheConnector opens connections of the registered "sqlite" driver
// wrapped in a statement cache of size statements each (none when size is
// 0: the wrapper still gives every Exec a result, which modernc's
// connection does not for SQL without a statement).
type stmtCacheConnector struct {
	drv  driver.Driver
	dsn  string
	size int
}

func (c *stmtCacheConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	conn = newCachingConn(conn, c.size)
	if cc, ok := conn.(*cachingConn); ok {
		// A connection hook may have attached databases already.
		if cc.attached, err = hasAttached(ctx, cc.innerConn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// hasAttached reports whether conn has databases attached besides main
// and temp.
func hasAttached(ctx context.Context, conn driver.QueryerContext) (bool, error) {
	rows, err := conn.QueryContext(ctx, "SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp')", nil)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		return false, err
	}
	n, _ := v[0].(int64)
	return n > 0, nil
}

// startsWithAttach reports whether query's first statement is an ATTACH,
// past blanks and comments.
func startsWithAttach(query string) bool {
	for i := 0; i < len(query); {
		switch {
		case strings.IndexByte(" \t\n\r\f;", query[i]) >= 0:
			i++
		case strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				return false
			}
			i += j + 1
		case strings.HasPrefix(query[i:], "/*"):
			j := strings.Index(query[i+2:], "*/")
			if j < 0 {
				return false
			}
			i += j + 4
		default:
			return len(query)-i >= 6 && strings.EqualFold(query[i:i+6], "attach")
		}
	}
	return false
}

func (c *stmtCacheConnector) Driver() driver.Driver { return c.drv }

// innerConn is what the cache needs of the wrapped connection; modernc's
// has all of it.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is a connection with an LRU of prepared statements. Like any
// driver.Conn it is used by one goroutine at a time (database/sql holds the
// connection's lock around every call, Rows.Close included), so it needs
// no lock of its own.
type cachingConn struct {
	innerConn
	size  int
	lru   list.List // of *cachedStmt, most recent first
	byKey map[string]*list.Element
	text  int // bytes of SQL text cached
	// attached: the connection has databases attached and caches nothing
	// more. A compiled statement re-checks the schema only of the
	// databases it reads, so one that resolved a name to an attached
	// database would go on reading it after another connection created
	// that name in main, which takes precedence.
	attached bool
}

type cachedStmt struct {
	query string
	st    driver.Stmt
	busy  bool // its rows are open
	gone  bool // evicted while busy: close it when the rows close
}

// discard closes a statement that left the cache, or, while its rows are
// open, has their Close do it.
func (cs *cachedStmt) discard() {
	if cs.busy {
		cs.gone = true
	} else {
		cs.st.Close()
	}
}

func newCachingConn(conn driver.Conn, size int) driver.Conn {
	ic, ok := conn.(innerConn)
	if !ok {
		return conn // not the driver this was written for: no cache
	}
	return &cachingConn{innerConn: ic, size: size, byKey: map[string]*list.Element{}}
}

// Unwrap returns the driver's own connection, for code that needs its
// driver-specific methods through sql.Conn.Raw.
func (c *cachingConn) Unwrap() driver.Conn { return c.innerConn }

// take returns the cached statement for query, preparing and caching it on
// a miss; nil if it is busy or too long to cache, which the caller runs
// uncached.
func (c *cachingConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	if c.attached || c.size == 0 {
		return nil, nil
	}
	if startsWithAttach(query) {
		c.attached = true
		c.drop()
		return nil, nil
	}
	if el, ok := c.byKey[query]; ok {
		cs := el.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(el)
		return cs, nil
	}
	if len(query) > maxCachedSQL {
		return nil, nil
	}
	st, err := c.innerConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cs := &cachedStmt{query: query, st: st}
	c.byKey[query] = c.lru.PushFront(cs)
	c.text += len(query)
	for c.lru.Len() > c.size || c.text > maxCachedSQLTotal {
		old := c.lru.Remove(c.lru.Back()).(*cachedStmt)
		delete(c.byKey, old.query)
		c.text -= len(old.query)
		old.discard()
	}
	return cs, nil
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.innerConn.QueryContext(ctx, query, args)
	}
	rows, err := cs.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, cs: cs}, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	var res driver.Result
	if cs == nil {
		res, err = c.innerConn.ExecContext(ctx, query, args)
	} else {
		res, err = cs.st.(driver.StmtExecContext).ExecContext(ctx, args)
	}
	if err == nil && res == nil {
		// modernc returns no result for SQL that is only blanks and
		// comments, and database/sql's RowsAffected then dereferences nil.
		res = driver.RowsAffected(0)
	}
	return res, err
}

// drop empties the cache: idle statements are closed now, busy ones when
// their rows close.
func (c *cachingConn) drop() {
	for el := c.lru.Front(); el != nil; el = el.Next() {
		el.Value.(*cachedStmt).discard()
	}
	c.lru.Init()
	clear(c.byKey)
	c.text = 0
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	c.drop()
	return c.innerConn.Close()
}

// cachedRows gives its statement back when closed. It forwards the column
// type methods modernc's rows have, so sql.ColumnType works as without the
// cache.
type cachedRows struct {
	driver.Rows
	cs *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.cs != nil {
		r.cs.busy = false
		if r.cs.gone {
			r.cs.st.Close()
		}
		r.cs = nil
	}
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
