package orm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the direct INSERT of a single-statement commit on a
// dialect whose driver Tally reaches below database/sql (dialect.Batcher:
// PostgreSQL on pgx). database/sql costs a multi-row INSERT dearly per
// argument — a driver.NamedValue each, then pgx's stdlib copies them back
// into an []any, and every generated key comes back boxed as a
// driver.Value before Scan converts it — and boxing each string or large
// integer field into an `any` costs an allocation more. Sent as a
// one-statement pgx batch on the commit's connection, in autocommit as
// before, the arguments of plain fields are pointers to them (pgx reads
// through a pointer as it reads the value, and a pointer in an interface
// needs no allocation), and the keys are scanned by pgx straight into the
// fields. The values are bound exactly as database/sql would hand them to
// pgx (its stdlib driver passes every argument through unchanged).

// directArg says how insertDirect binds a column: through a pointer to
// the field, or as the accessor's Value (converted as database/sql's
// path converts it: Valuers called by Tally, 16-byte arrays as bytes).
type directArg bool

const (
	argValue directArg = false
	argAddr  directArg = true
)

var valuerType = reflect.TypeFor[driver.Valuer]()
var scannerType = reflect.TypeFor[sql.Scanner]()

// directArgs returns how each of cols is bound. A pointer is used only
// for a field whose kind pgx encodes the same through a pointer and whose
// accessor binds the field as it is: strings, bools, signed integers and
// floats that are neither Valuers nor json columns. Times, []byte,
// pointers, unsigned integers, 16-byte arrays and Valuers go by Value,
// where the mapper's value rules (UTC microseconds, empty bytes not NULL,
// UUID bytes) and Tally's recovery of a panicking Valuer apply.
func directArgs(cols []*mapper.Column, out []directArg) []directArg {
	for _, c := range cols {
		out = append(out, argValue)
		if c.JSON || c.Type.Implements(valuerType) || reflect.PointerTo(c.Type).Implements(valuerType) {
			continue
		}
		switch c.Type.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Float32, reflect.Float64:
			out[len(out)-1] = argAddr
		}
	}
	return out
}

// directScannable reports whether pgx may scan a generated column
// straight into its field as database/sql's conversion would: a signed
// integer (a serial or identity key) that is not a Scanner.
func directScannable(ret []*mapper.Column) bool {
	for _, c := range ret {
		switch c.Type.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		default:
			return false
		}
		if reflect.PointerTo(c.Type).Implements(scannerType) {
			return false
		}
	}
	return true
}

// insertDirect runs the single statement of a commit, a multi-row INSERT
// ... RETURNING of batch, through the driver directly when it can (see
// the top of this file), and reports whether it did; when it did not,
// nothing was sent and the caller takes the usual path. Its error
// follows the usual path's rules: driver.ErrBadConn when nothing was
// sent, else the statement's error.
func (s *Session) insertDirect(ctx context.Context, t *mapper.Table, q string, cols []*mapper.Column, batch []*identity.Entry, ret []*mapper.Column) (bool, error) {
	b, ok := s.e.dialect.(dialect.Batcher)
	if !ok || !s.alone.armed || s.tx != nil || s.rec != nil || s.readOnly || !directScannable(ret) {
		return false, nil
	}
	var buf [16]directArg
	how := directArgs(cols, buf[:0])
	args := make([]any, 0, len(batch)*len(cols))
	valued := false
	for _, e := range batch {
		obj := e.Obj()
		for i, c := range cols {
			if how[i] == argAddr {
				// Only a pointer to the field's own type: one to another
				// type (a scan adapter) could bind differently.
				if p := t.Acc.Addr(obj, c); reflect.TypeOf(p).Elem() == c.Type {
					args = append(args, p)
					continue
				}
			}
			args = append(args, t.Acc.Value(obj, c))
			valued = true
		}
	}
	if valued {
		var err error
		if args, err = valuerArgs(args); err != nil {
			return true, err
		}
	}
	var obs observation
	if len(s.e.cfg.hooks) > 0 || s.e.cfg.logger != nil {
		// Hooks and the logger see values, as on every other path.
		vals := make([]any, 0, len(args))
		for _, e := range batch {
			for _, c := range cols {
				vals = append(vals, t.Acc.Value(e.Obj(), c))
			}
		}
		if vals, err := valuerArgs(vals); err == nil {
			obs = s.e.observe(OpQuery, q, vals)
		}
	}
	if _, err := s.aloneConn(ctx, nil); err != nil {
		return true, err
	}
	s.stats.Queries++
	for _, e := range batch {
		for _, c := range ret {
			s.logFlush(undo{kind: undoSetCol, e: e, col: c, old: t.Acc.Value(e.Obj(), c)})
		}
	}
	i := 0
	var prev int64
	checkOrder := t.IntKey() && t.PK[0].Auto
	row := func(scan func(dest ...any) error) error {
		if i >= len(batch) {
			return fmt.Errorf("orm: INSERT returned more rows than it inserted")
		}
		obj := batch[i].Obj()
		dest := s.dest[:0]
		for _, c := range ret {
			dest = append(dest, t.Acc.Addr(obj, c))
		}
		s.dest = dest
		if err := scan(dest...); err != nil {
			return err
		}
		if checkOrder {
			k, _ := keyval.Int64(t.Acc.Value(obj, t.PK[0]))
			if i > 0 && k <= prev {
				return fmt.Errorf("orm: INSERT ... RETURNING gave keys out of order (%d after %d)", k, prev)
			}
			prev = k
		}
		i++
		return nil
	}
	_, ok, err := b.Pipeline(ctx, s.alone.conn, []dialect.BatchStmt{{SQL: q, Args: args, Row: row}})
	if !ok {
		// Not pgx's connection (a wrapped driver): nothing was sent.
		s.alone.sent = false
		s.stats.Statements--
		s.stats.Queries--
		s.flushLog = s.flushLog[:len(s.flushLog)-len(batch)*len(ret)]
		return false, nil
	}
	err = classify(s.e.dialect, err)
	if err == nil && i != len(batch) {
		err = fmt.Errorf("orm: INSERT returned %d rows for %d objects", i, len(batch))
	}
	obs.done(ctx, int64(i), err)
	return true, err
}
