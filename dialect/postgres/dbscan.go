package postgres

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// This file scans the rows of a read that Tally sends straight to pgx
// (BatchStmt.DBScan) so that every field gets exactly what database/sql,
// over pgx's own stdlib driver, would have given it. The read is then
// cheaper, not different: database/sql boxes each value of each row as a
// driver.Value and converts it again with reflection in Rows.Scan, while
// pgx decodes a column of a matching Go type straight into the field.
//
// A column is scanned natively only when pgx and database/sql are known
// to agree on it: an integer, text, boolean or float8 column into a field
// of the builtin Go type that holds it (or a pointer to one, NULL being
// nil). Every other column is decoded into the driver.Value that pgx's
// stdlib driver would produce (valueFunc, which follows its
// Rows.initValueFuncs case by case) and handed on as database/sql would:
// to the field's Scan method (Tally's time, bytes and JSON rules, sql.Null*,
// the user's own types), or converted by convertAssign's rules through
// sql.Null[T], which is database/sql's own conversion.

// databaseSQLFormats are the result formats pgx's stdlib driver asks for
// (its databaseSQLResultFormats): binary for the types it decodes
// itself, text for every other, which it hands on as a string. A DBScan
// read asks for the same, so that every value is decoded from the same
// bytes.
var databaseSQLFormats = pgx.QueryResultFormatsByOID{
	pgtype.BoolOID:        1,
	pgtype.ByteaOID:       1,
	pgtype.CIDOID:         1,
	pgtype.DateOID:        1,
	pgtype.Float4OID:      1,
	pgtype.Float8OID:      1,
	pgtype.Int2OID:        1,
	pgtype.Int4OID:        1,
	pgtype.Int8OID:        1,
	pgtype.OIDOID:         1,
	pgtype.TimestampOID:   1,
	pgtype.TimestamptzOID: 1,
	pgtype.XIDOID:         1,
}

// dbScanArgs returns args for a DBScan read: the result formats first,
// which pgx takes as a query option.
func dbScanArgs(args []any) []any {
	out := make([]any, 0, len(args)+1)
	return append(append(out, databaseSQLFormats), args...)
}

// dbScanner scans rs's rows; plan is made from the first row's dests.
type dbScanner struct {
	rs    pgx.Rows
	m     *pgtype.Map
	cols  []dbCol
	pass  []any // the dests handed to pgx: a native column's own, else nil (pgx skips it); set per row
	typed []reflect.Type
	// native is set when every column is scanned natively: dest then
	// goes to pgx as it is.
	native bool
}

// dbCol is one column's scan: native, or through the stdlib value.
type dbCol struct {
	native bool
	value  func(src []byte) (driver.Value, error)
}

func newDBScanner(rs pgx.Rows) *dbScanner {
	return &dbScanner{rs: rs, m: rs.Conn().TypeMap()}
}

// scan reads the current row into dest.
func (d *dbScanner) scan(dest ...any) error {
	if d.cols == nil || !d.samePlan(dest) {
		if err := d.plan(dest); err != nil {
			return err
		}
	}
	if d.native {
		return d.rs.Scan(dest...)
	}
	pass := d.pass
	for i, c := range d.cols {
		if c.native {
			pass[i] = dest[i]
		}
	}
	if err := d.rs.Scan(pass...); err != nil {
		return err
	}
	raw := d.rs.RawValues()
	for i, c := range d.cols {
		if c.native {
			continue
		}
		var v driver.Value
		if raw[i] != nil {
			var err error
			if v, err = c.value(raw[i]); err != nil {
				return fmt.Errorf("convert field %d failed: %w", i, err)
			}
		}
		if err := assign(dest[i], v); err != nil {
			name := d.rs.FieldDescriptions()[i].Name
			return fmt.Errorf("sql: Scan error on column index %d, name %q: %w", i, name, err)
		}
	}
	return nil
}

// samePlan reports whether dest has the types the plan was made for:
// Tally scans every row of a result into the same field types.
func (d *dbScanner) samePlan(dest []any) bool {
	if len(dest) != len(d.typed) {
		return false
	}
	for i, x := range dest {
		if reflect.TypeOf(x) != d.typed[i] {
			return false
		}
	}
	return true
}

func (d *dbScanner) plan(dest []any) error {
	fds := d.rs.FieldDescriptions()
	if len(dest) != len(fds) {
		return fmt.Errorf("sql: expected %d destination arguments in Scan, not %d", len(fds), len(dest))
	}
	d.cols = make([]dbCol, len(fds))
	d.pass = make([]any, len(fds))
	d.typed = make([]reflect.Type, len(fds))
	d.native = true
	for i, fd := range fds {
		d.typed[i] = reflect.TypeOf(dest[i])
		if nativeScan(fd.DataTypeOID, dest[i]) {
			d.cols[i].native = true
			continue
		}
		d.native = false
		d.cols[i].value = valueFunc(d.m, fd.DataTypeOID, fd.Format)
	}
	return nil
}

// nativeScan reports whether pgx scanning a column of type oid into dest
// gives what database/sql would: the same value, NULL as nil into a
// pointer, and an error for NULL into a non-pointer.
func nativeScan(oid uint32, dest any) bool {
	switch dest.(type) {
	case *int64, **int64, *int, **int:
		return oid == pgtype.Int8OID || oid == pgtype.Int4OID || oid == pgtype.Int2OID
	case *int32, **int32:
		return oid == pgtype.Int4OID || oid == pgtype.Int2OID
	case *string, **string:
		return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.BPCharOID || oid == pgtype.NameOID
	case *bool, **bool:
		return oid == pgtype.BoolOID
	case *float64, **float64:
		return oid == pgtype.Float8OID
	}
	return false
}

// valueFunc returns the decoding of a column of type oid into the
// driver.Value pgx's stdlib driver gives database/sql for it: the cases of
// its Rows.initValueFuncs (pgx v5), kept in step with it.
func valueFunc(m *pgtype.Map, oid uint32, format int16) func(src []byte) (driver.Value, error) {
	switch oid {
	case pgtype.BoolOID:
		return planned[bool](m, oid, format, func(d bool) (driver.Value, error) { return d, nil })
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		return planned[[]byte](m, oid, format, func(d []byte) (driver.Value, error) { return d, nil })
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		return planned[pgtype.Uint32](m, oid, format, pgtype.Uint32.Value)
	case pgtype.DateOID:
		return planned[pgtype.Date](m, oid, format, pgtype.Date.Value)
	case pgtype.Float4OID:
		return planned[float32](m, oid, format, func(d float32) (driver.Value, error) { return float64(d), nil })
	case pgtype.Float8OID:
		return planned[float64](m, oid, format, func(d float64) (driver.Value, error) { return d, nil })
	case pgtype.Int2OID:
		return planned[int16](m, oid, format, func(d int16) (driver.Value, error) { return int64(d), nil })
	case pgtype.Int4OID:
		return planned[int32](m, oid, format, func(d int32) (driver.Value, error) { return int64(d), nil })
	case pgtype.Int8OID:
		return planned[int64](m, oid, format, func(d int64) (driver.Value, error) { return d, nil })
	case pgtype.TimestampOID:
		return planned[pgtype.Timestamp](m, oid, format, pgtype.Timestamp.Value)
	case pgtype.TimestamptzOID:
		return planned[pgtype.Timestamptz](m, oid, format, pgtype.Timestamptz.Value)
	}
	return planned[string](m, oid, format, func(d string) (driver.Value, error) { return d, nil })
}

// planned decodes into a T with pgx's plan for it, then makes the value.
// Each call decodes into a fresh T: a []byte must not be shared between
// rows, as the stdlib driver's is not once database/sql has copied it.
func planned[T any](m *pgtype.Map, oid uint32, format int16, value func(T) (driver.Value, error)) func(src []byte) (driver.Value, error) {
	var zero T
	plan := m.PlanScan(oid, format, &zero)
	return func(src []byte) (driver.Value, error) {
		var d T
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return value(d)
	}
}

// canScan reports whether a read's rows can be scanned into dest with
// DBScan giving exactly database/sql's result: dest is a sql.Scanner, an
// *any, or a *T or **T for a builtin T that database/sql converts into
// (bool, the integer and float kinds, string, []byte, time.Time). Other
// types (a named type, a struct) go through database/sql's reflection,
// which DBScan does not reproduce: reads into them stay on database/sql.
func canScan(dest any) bool {
	if _, ok := dest.(sql.Scanner); ok {
		return true
	}
	if _, ok := dest.(*any); ok {
		return true
	}
	t := reflect.TypeOf(dest)
	if t == nil || t.Kind() != reflect.Pointer {
		return false
	}
	if e := t.Elem(); e.Kind() == reflect.Pointer {
		t = e
	}
	_, ok := builtinAssign[t]
	return ok
}

// builtinAssign converts a driver.Value into a *T for each builtin T
// canScan accepts, by database/sql's own conversion: sql.Null[T].Scan is
// convertAssign into a *T, as Rows.Scan into a *T is.
var builtinAssign = map[reflect.Type]func(dest any, v driver.Value) error{}

func init() {
	addBuiltin[bool]()
	addBuiltin[int]()
	addBuiltin[int8]()
	addBuiltin[int16]()
	addBuiltin[int32]()
	addBuiltin[int64]()
	addBuiltin[uint]()
	addBuiltin[uint8]()
	addBuiltin[uint16]()
	addBuiltin[uint32]()
	addBuiltin[uint64]()
	addBuiltin[float32]()
	addBuiltin[float64]()
	addBuiltin[string]()
	addBuiltin[[]byte]()
	addBuiltin[time.Time]()
}

func addBuiltin[T any]() {
	builtinAssign[reflect.TypeFor[*T]()] = func(dest any, v driver.Value) error {
		p := dest.(*T)
		if v == nil {
			if b, ok := dest.(*[]byte); ok {
				*b = nil // NULL into a []byte is nil, not an error
				return nil
			}
			return fmt.Errorf("converting NULL to %v is unsupported", reflect.TypeFor[T]())
		}
		var n sql.Null[T]
		if err := n.Scan(v); err != nil {
			return err
		}
		*p = n.V
		return nil
	}
}

// assign stores v, a driver.Value, in dest (one canScan accepts) as
// database/sql's Rows.Scan would.
func assign(dest any, v driver.Value) error {
	if sc, ok := dest.(sql.Scanner); ok {
		return sc.Scan(v)
	}
	if p, ok := dest.(*any); ok {
		if b, ok := v.([]byte); ok {
			v = bytes.Clone(b) // database/sql copies bytes into an any
		}
		*p = v
		return nil
	}
	t := reflect.TypeOf(dest)
	if f := builtinAssign[t]; f != nil {
		return f(dest, v)
	}
	f := builtinAssign[t.Elem()]
	if f == nil {
		return fmt.Errorf("unsupported Scan, storing driver.Value type %T into type %T", v, dest)
	}
	// A **T: NULL is nil, anything else a new T holding the value.
	pp := reflect.ValueOf(dest).Elem()
	if v == nil {
		pp.SetZero()
		return nil
	}
	n := reflect.New(t.Elem().Elem())
	if err := f(n.Interface(), v); err != nil {
		return err
	}
	pp.Set(n)
	return nil
}
