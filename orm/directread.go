package orm

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the reads that go to the driver directly. On PostgreSQL
// (pgx, a dialect.Batcher) a read in autocommit is handed to pgx on a
// pooled connection instead of going through database/sql, which boxes
// every value of every row as a driver.Value and converts it again with
// reflection in Rows.Scan: for a Load of 1,100 rows that was a third of
// the client's work. The fields get exactly what database/sql would have
// given them (BatchStmt.DBScan, see dialect/postgres/dbscan.go). Reads in
// a transaction keep to database/sql's *sql.Tx, which lends no
// connection; so do Iter, Raw and projections, which hand rows out one
// at a time.

// errStopRows, returned by a row function of readRows, ends the read
// early without an error.
var errStopRows = errors.New("orm: stop reading rows")

// directReads records whether the engine's connections refused a direct
// read (off: a driver that is not pgx's, or wrapped; no read tries again)
// and, per table, whether its fields are all ones the dialect scans
// exactly as database/sql does (tables: *mapper.Table to bool).
type directReads struct {
	off    atomic.Bool
	tables sync.Map
}

// directScan reports whether reads of t's rows (and of dests, the
// fields scanned before them, if any) may go to the driver directly.
func (e *Engine) directScan(t *mapper.Table, dests ...any) bool {
	dr, ok := e.dialect.(dialect.DirectReader)
	if !ok || e.direct.off.Load() {
		return false
	}
	for _, d := range dests {
		if !dr.DirectScan(d) {
			return false
		}
	}
	if v, ok := e.direct.tables.Load(t); ok {
		return v.(bool)
	}
	obj := reflect.New(t.Type).Interface()
	all := true
	for _, c := range t.Columns {
		if !dr.DirectScan(t.Acc.Addr(obj, c)) {
			all = false
			break
		}
	}
	e.direct.tables.Store(t, all)
	return all
}

// readRows runs a read and calls row for each row it returns, with the
// function that scans the row. row may return errStopRows to end the read
// early. direct says whether the fields row scans into allow a direct
// read (Engine.directScan). It returns the rows seen and the first error,
// classified, after reporting the statement to the hooks.
func (s *Session) readRows(ctx context.Context, direct bool, query string, args []any, row func(scan func(dest ...any) error) error) (int64, error) {
	if direct {
		if n, done, err := s.readDirect(ctx, query, args, row); done {
			return n, err
		}
	}
	rows, obs, err := s.query(ctx, query, args)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	scan := rows.Scan // once: a method value made in the loop allocates per row
	for rows.Next() {
		n++
		if err = row(scan); err != nil {
			break
		}
	}
	if errors.Is(err, errStopRows) {
		err = nil
	}
	return n, s.e.closeRows(ctx, rows, obs, n, err)
}

// readDirect runs the read on the driver directly when it can (see the
// top of this file) and reports whether it did; when it did not, nothing
// was sent.
func (s *Session) readDirect(ctx context.Context, query string, args []any, row func(scan func(dest ...any) error) error) (int64, bool, error) {
	e := s.e
	b, ok := e.dialect.(dialect.Batcher)
	if !ok || e.direct.off.Load() || s.tx != nil || s.readsInTx() || s.rec != nil || s.lost != nil || e.replicas != nil {
		return 0, false, nil
	}
	args, err := valuerArgs(args)
	if err != nil {
		return 0, true, err
	}
	obs := e.observe(OpQuery, query, args)
	n := int64(0)
	st := dialect.BatchStmt{SQL: query, Args: args, DBScan: true, Row: func(scan func(dest ...any) error) error {
		n++
		return row(scan)
	}}
	stmts := []dialect.BatchStmt{st}
	// As database/sql does for a query, a connection found broken before
	// anything was sent is replaced, a few times at most.
	for try := 0; ; try++ {
		c, cerr := e.db.Conn(ctx)
		if cerr != nil {
			s.stats.Statements++
			s.stats.Queries++
			err = classify(e.dialect, cerr)
			obs.done(ctx, -1, err)
			return 0, true, err
		}
		n = 0
		_, ok, err = b.Pipeline(ctx, c, stmts)
		c.Close()
		if !ok {
			e.direct.off.Store(true)
			return 0, false, nil
		}
		if err == nil || !errors.Is(err, driver.ErrBadConn) || try == 2 {
			break
		}
	}
	s.stats.Statements++
	s.stats.Queries++
	s.direct++
	if errors.Is(err, errStopRows) {
		err = nil
	}
	err = classify(e.dialect, err)
	obs.done(ctx, n, err)
	return n, true, err
}
