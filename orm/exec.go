package orm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"
)

// querier is what statements run on: the pool, a connection or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// observation times one statement for the query hooks and the logger. When
// neither is configured it is empty and costs nothing, keeping the hot path
// as close to raw database/sql as possible.
type observation struct {
	e     *Engine
	start time.Time
	op    Op
	sql   string
	args  []any
	// pipelined: sent in one round trip with the statement reported
	// before it (QueryEvent.Pipelined).
	pipelined bool
}

func (e *Engine) observe(op Op, query string, args []any) observation {
	if len(e.cfg.hooks) == 0 && e.cfg.logger == nil {
		return observation{}
	}
	return observation{e: e, start: time.Now(), op: op, sql: query, args: args}
}

// done reports the statement to the hooks and the logger.
func (o observation) done(ctx context.Context, rows int64, err error) {
	if o.e == nil {
		return
	}
	ev := QueryEvent{SQL: o.sql, Args: o.args, Duration: time.Since(o.start), Rows: rows, Err: err, Op: o.op, Pipelined: o.pipelined}
	for _, h := range o.e.cfg.hooks {
		h(ctx, ev)
	}
	if l := o.e.cfg.logger; l != nil && l.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{
			slog.String("op", ev.Op), slog.String("sql", ev.SQL), slog.Int("args", len(ev.Args)),
			slog.Duration("duration", ev.Duration), slog.Int64("rows", ev.Rows),
		}
		if err != nil {
			// Not err.Error(): MySQL quotes the offending value in its
			// messages ("Duplicate entry 'x'"), and values stay out of logs.
			attrs = append(attrs, slog.String("error", o.e.errorSummary(err)))
		}
		l.LogAttrs(ctx, slog.LevelDebug, "tally: statement", attrs...)
	}
}

// exec runs a statement on q, classifying its error and reporting it.
func (e *Engine) exec(ctx context.Context, q querier, query string, args []any) (sql.Result, error) {
	return e.execOp(ctx, q, OpExec, query, args)
}

// execOp is exec with the Op its QueryEvent reports.
func (e *Engine) execOp(ctx context.Context, q querier, op Op, query string, args []any) (sql.Result, error) {
	args, err := valuerArgs(args)
	if err != nil {
		return nil, err
	}
	obs := e.observe(op, query, args)
	res, err := q.ExecContext(ctx, query, args...)
	err = classify(e.dialect, err)
	if obs.e != nil {
		rows := int64(-1)
		if err == nil {
			rows = rowsAffected(res)
		}
		obs.done(ctx, rows, err)
	}
	return res, err
}

// rowsAffected is res.RowsAffected for reporting, -1 when unknown. A
// driver that returns no result with no error (modernc, for SQL that is
// only comments, on a pool passed to New) makes database/sql's
// RowsAffected dereference nil: reporting must not turn that into a panic.
func rowsAffected(res sql.Result) (n int64) {
	defer func() {
		if recover() != nil {
			n = -1
		}
	}()
	n, err := res.RowsAffected()
	if err != nil {
		return -1
	}
	return n
}

// valuerArgs calls the driver.Valuer arguments' Value methods itself,
// recovering a panic into an error. database/sql calls them while it holds
// the transaction's lock, and a panic there leaves that lock held: the
// following Rollback would wait forever and the connection never return.
// args is returned as is (no allocation) when it holds no Valuer.
func valuerArgs(args []any) ([]any, error) {
	var out []any
	for i, a := range args {
		if b, ok := bytes16Arg(a); ok {
			if out == nil {
				out = slices.Clone(args)
			}
			out[i] = b
			continue
		}
		vr, ok := a.(driver.Valuer)
		if !ok {
			continue
		}
		if out == nil {
			out = slices.Clone(args)
		}
		if rv := reflect.ValueOf(a); rv.Kind() == reflect.Pointer && rv.IsNil() {
			out[i] = nil // database/sql binds a nil Valuer pointer as NULL
			continue
		}
		v, err := callValuer(vr)
		if err != nil {
			return nil, fmt.Errorf("orm: argument %d (%T): %w", i+1, a, err)
		}
		out[i] = v
	}
	if out == nil {
		return args, nil
	}
	return out, nil
}

func callValuer(vr driver.Valuer) (v driver.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("its Value method panicked: %v", p)
		}
	}()
	return vr.Value()
}

// closeRows ends a query: the first of err and the iteration error wins,
// the rows are closed, and the result is classified and reported to the
// hooks with n, the rows read.
func (e *Engine) closeRows(ctx context.Context, rows *sql.Rows, obs observation, n int64, err error) error {
	if err == nil {
		err = rows.Err()
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	err = classify(e.dialect, err)
	obs.done(ctx, n, err)
	return err
}

// query runs a query on q. The caller must call the returned
// observation's done with the number of rows read and the iteration error
// once the rows are closed. (A value, not a closure: no allocation.)
func (e *Engine) query(ctx context.Context, q querier, query string, args []any) (*sql.Rows, observation, error) {
	args, err := valuerArgs(args)
	if err != nil {
		return nil, observation{}, err
	}
	obs := e.observe(OpQuery, query, args)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		err = classify(e.dialect, err)
		obs.done(ctx, -1, err)
		return nil, observation{}, err
	}
	return rows, obs, nil
}

// serverReply reports whether err is an error the database server (or
// SQLite) sent, as opposed to a failure to talk to it. SQLite's errors
// are all its answers, its connection errors too (a full disk).
func (e *Engine) serverReply(err error) bool {
	if errors.Is(err, ErrConnection) && !e.caps.InProcess {
		return false
	}
	_, ok := e.dialect.ServerError(err)
	return ok
}

// errorSummary describes an error without the values a driver message may
// quote: its class and the database's code.
func (e *Engine) errorSummary(err error) string {
	class := "error"
	var de *DBError
	if errors.As(err, &de) {
		class = de.Class.String()
	}
	if code, ok := e.dialect.ServerError(err); ok {
		return class + " (" + code + ")"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err.Error()
	}
	return class
}
