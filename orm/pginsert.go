package orm

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the direct INSERT of a single-statement commit on a
// dialect whose driver Tally reaches below database/sql (dialect.Batcher:
// PostgreSQL on pgx). database/sql costs a multi-row INSERT dearly per
// argument: a driver.NamedValue each, which pgx's stdlib driver copies
// back into an []any, and every generated key comes back boxed as a
// driver.Value before Scan converts it. Handed to the driver on the
// commit's connection instead, in autocommit as before, the arguments go
// to pgx as they are and pgx scans the keys straight into the fields; a
// statement of many rows goes as one array per column (see
// dialect/postgres/unnest.go). The values bound are the ones database/sql
// would hand to pgx, whose stdlib driver passes every argument through
// unchanged (CheckNamedValue), after Tally's own conversion (valuerArgs),
// done here too. Hooks see the INSERT ... VALUES and its values, as on
// every database.
//
// Binding a field through a pointer to it, to save boxing its value, was
// measured and is worse: pgx dereferences a pointer argument with
// reflect, which allocates the value it boxes, and more.

var scannerType = reflect.TypeFor[sql.Scanner]()

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
// ... RETURNING of batch with args (Tally's, not yet converted), through
// the driver directly when it can (see the top of this file), and reports
// whether it did; when it did not, nothing was sent and the caller takes
// the usual path. Its error follows the usual path's rules:
// driver.ErrBadConn when nothing was sent, else the statement's error.
// The caller has logged the undo records of ret.
func (s *Session) insertDirect(ctx context.Context, t *mapper.Table, q string, args []any, batch []*identity.Entry, ret []*mapper.Column) (bool, error) {
	// Only where the driver beats database/sql (dialect.DirectReader:
	// pgx). MySQL's Batcher sends its statements as text, with the values
	// written into it, where database/sql runs the INSERT as a cached
	// prepared statement with binary values: measured on MariaDB, 100
	// rows took 1.3 times as long and 40 KB more through the pipeline.
	b, ok := s.e.dialect.(dialect.DirectReader)
	if !ok || !s.alone.armed || s.tx != nil || s.readOnly || !directScannable(ret) {
		return false, nil
	}
	args, err := valuerArgs(args)
	if err != nil {
		return true, err
	}
	obs := s.e.observe(OpQuery, q, args)
	if _, err := s.aloneConn(ctx, nil); err != nil {
		return true, err
	}
	s.stats.Queries++
	i := 0
	var prev int64
	key := -1 // the generated integer key's place in ret, whose order is checked
	if t.IntKey() && t.PK[0].Auto {
		key = slices.Index(ret, t.PK[0])
	}
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
		if key >= 0 {
			k := scannedInt(dest[key], t, obj)
			if i > 0 && k <= prev {
				return fmt.Errorf("orm: INSERT ... RETURNING gave keys out of order (%d after %d)", k, prev)
			}
			prev = k
		}
		i++
		return nil
	}
	cols := t.Insertable() // as insert binds them
	st := dialect.BatchStmt{SQL: q, Args: args, Row: row, Cols: len(cols)}
	st.Into, st.Returning = insertParts(s.e, t, cols, ret)
	_, ok, err = b.Pipeline(ctx, s.alone.conn, []dialect.BatchStmt{st})
	if !ok {
		// Not pgx's connection (a wrapped driver): nothing was sent.
		s.alone.sent = false
		s.stats.Statements--
		s.stats.Queries--
		return false, nil
	}
	err = classify(s.e.dialect, err)
	if err == nil && i != len(batch) {
		err = fmt.Errorf("orm: INSERT returned %d rows for %d objects", i, len(batch))
	}
	obs.done(ctx, int64(i), err)
	return true, err
}

// scannedInt reads the integer key just scanned into p, a pointer to the
// field, without boxing it as Value would.
func scannedInt(p any, t *mapper.Table, obj any) int64 {
	if v := reflect.ValueOf(p); v.Kind() == reflect.Pointer && v.Elem().CanInt() {
		return v.Elem().Int()
	}
	k, _ := keyval.Int64(t.Acc.Value(obj, t.PK[0]))
	return k
}

// insertParts returns the INSERT of t's rows without its VALUES: the
// "INSERT INTO t (c1, ...)" before them and the " RETURNING ..." after,
// as insertSQL writes them.
func insertParts(e *Engine, t *mapper.Table, cols, ret []*mapper.Column) (into, returning string) {
	d := e.dialect
	into = e.stmts.get(stmtKey{t, "insert-into", 0}, func() string {
		return strings.TrimSuffix(insertSQL(d, t, cols, ret, 0, false), " VALUES ")
	})
	returning = e.stmts.get(stmtKey{t, "insert-returning", 0}, func() string {
		return strings.TrimPrefix(insertSQL(d, t, cols, ret, 0, true), into+" VALUES ")
	})
	return into, returning
}
