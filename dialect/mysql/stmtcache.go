package mysql

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"

	"github.com/go-sql-driver/mysql"
)

// Each connection keeps its recent statements prepared on the server and
// runs a statement with arguments through them: one round trip (execute)
// where the driver would otherwise prepare, execute and close (three), or
// interpolate the arguments into the text (one, but the server parses
// every value as a literal). Measured on MariaDB 10.11 (orm's
// BenchmarkMySQLStatementCache), a read by key takes 0.92 of the
// interpolated time and the writes the same (the disk's time); GORM's
// PrepareStmt mode does the same.
// Statements without arguments, and the pipelined commit's
// multi-statement queries (which the protocol cannot prepare), still go
// as text.

// The server's max_prepared_stmt_count (16382 by default) bounds the
// statements of all connections: a pool of 32 connections keeping 64 each
// holds at most 2,048. When the server refuses to prepare one more, the
// connection interpolates from then on.

// asTextKey marks, in a context, a statement that must go as text: the
// pipelined commit's multi-statement query.
type asTextKey struct{}

// stmtCache is a connection's prepared statements, least recently used
// first out. A connection is used by one goroutine at a time.
type stmtCache struct {
	size    int // at most this many statements; 0: none, interpolate
	byQuery map[string]*list.Element
	lru     list.List // of *cachedStmt, most recent at the front
	// off is set when the server refused to prepare (its statement limit)
	// or cannot prepare these statements: the connection interpolates.
	off bool
}

type cachedStmt struct {
	query string
	stmt  driver.Stmt
}

// prepared returns query's prepared statement on c, preparing it if need
// be; nil with a nil error means "send it as text".
func (c *watchConn) prepared(ctx context.Context, query string) (driver.Stmt, error) {
	sc := &c.stmts
	if sc.off || sc.size == 0 || c.galera(ctx) {
		return nil, nil
	}
	if el, ok := sc.byQuery[query]; ok {
		sc.lru.MoveToFront(el)
		return el.Value.(*cachedStmt).stmt, nil
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
			switch me.Number {
			case 1461, // ER_MAX_PREPARED_STMT_COUNT_REACHED
				1295, // ER_UNSUPPORTED_PS: the statement cannot be prepared
				1390: // ER_PS_MANY_PARAM: more than 65,535 placeholders
				if me.Number == 1461 {
					sc.off = true
				}
				return nil, nil
			}
		}
		return nil, err
	}
	if sc.byQuery == nil {
		sc.byQuery = make(map[string]*list.Element, sc.size)
	}
	if sc.lru.Len() >= sc.size {
		old := sc.lru.Back()
		sc.drop(old)
	}
	sc.byQuery[query] = sc.lru.PushFront(&cachedStmt{query: query, stmt: st})
	return st, nil
}

// drop closes and forgets one cached statement.
func (sc *stmtCache) drop(el *list.Element) {
	cs := sc.lru.Remove(el).(*cachedStmt)
	delete(sc.byQuery, cs.query)
	_ = cs.stmt.Close()
}

// forget drops query's statement after an error that may mean the server
// no longer holds it as prepared (ER_NEED_REPREPARE, ER_UNKNOWN_STMT_HANDLER).
func (c *watchConn) forget(query string, err error) bool {
	me, ok := errors.AsType[*mysql.MySQLError](err)
	if !ok || me.Number != 1615 && me.Number != 1243 {
		return false
	}
	if el, ok := c.stmts.byQuery[query]; ok {
		c.stmts.drop(el)
	}
	return true
}

// closeStmts closes every cached statement: the connection is closing.
func (sc *stmtCache) closeStmts() {
	for sc.lru.Len() > 0 {
		sc.drop(sc.lru.Back())
	}
}

// asText reports whether a statement goes as text, not prepared.
func asText(ctx context.Context, args []driver.NamedValue) bool {
	return len(args) == 0 || ctx.Value(asTextKey{}) != nil
}

// viaPrepared runs fn on query's cached statement. ok is false when the
// statement goes as text instead: no arguments, a multi-statement query,
// or a statement the server will not prepare (twice gone stale).
func viaPrepared[R any](ctx context.Context, c *watchConn, query string, args []driver.NamedValue, fn func(driver.Stmt) (R, error)) (r R, ok bool, err error) {
	if asText(ctx, args) {
		return r, false, nil
	}
	for range 2 {
		st, err := c.prepared(ctx, query)
		if err != nil || st == nil {
			return r, err != nil, err
		}
		r, err = fn(st)
		if err != nil && c.forget(query, err) {
			continue // prepare it again, once
		}
		return r, true, err
	}
	return r, false, nil
}

// ExecContext runs query prepared (cached) when it has arguments.
func (c *watchConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	res, ok, err := viaPrepared(ctx, c, query, args, func(st driver.Stmt) (driver.Result, error) {
		return st.(driver.StmtExecContext).ExecContext(ctx, args)
	})
	if ok {
		return res, err
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

// QueryContext runs query prepared (cached) when it has arguments.
func (c *watchConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	rows, ok, err := viaPrepared(ctx, c, query, args, func(st driver.Stmt) (driver.Rows, error) {
		return st.(driver.StmtQueryContext).QueryContext(ctx, args)
	})
	if ok {
		return rows, err
	}
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

// Close closes the cached statements, then the connection.
func (c *watchConn) Close() error {
	c.stmts.closeStmts()
	return c.Conn.Close()
}
