package mapper

import (
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"time"
	"unsafe"
)

// This file holds the value rules that make a column read back exactly
// what was written, on every database: empty []byte is not NULL, times are
// UTC microseconds, 16-byte arrays (UUIDs) are 16 bytes, and json columns
// are marshalled by encoding/json.

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// plain reports whether the tag has a name and no option, as an embedded
// struct's tag must.
func (t Tag) plain() bool {
	return !t.Skip && !t.PK && !t.Auto && !t.Version && !t.Unique && !t.Index && !t.ReadOnly &&
		t.Size == 0 && t.Type == "" && t.Types == (DialectTypes{}) && t.Precision == 0 && !t.JSON &&
		!t.Created && !t.Updated && !t.SoftDelete
}

// checkValueOptions says why the json and precision options do not fit a
// field of type t, or "".
func checkValueOptions(t reflect.Type, tag Tag) string {
	if tag.JSON {
		switch {
		case tag.PK || tag.Auto || tag.Version:
			return "a json column cannot be pk, auto or version"
		case tag.Precision > 0:
			return "a column cannot be both json and a decimal (precision=)"
		}
	}
	if tag.Precision > 0 {
		base := t
		for base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		scanValuer := reflect.PointerTo(base).Implements(scannerType) && base.Implements(valuerType)
		if base.Kind() != reflect.String && !scanValuer {
			// A float would round the value the database keeps exactly.
			return fmt.Sprintf("precision= declares an exact decimal, which a %v field cannot hold exactly: "+
				"use a string, or a decimal type implementing sql.Scanner and driver.Valuer", t)
		}
	}
	return ""
}

// isUint64 reports whether t stores a 64-bit unsigned integer.
func isUint64(t reflect.Type) bool {
	for {
		switch {
		case t.Kind() == reflect.Pointer:
			t = t.Elem()
		case t.Kind() == reflect.Struct && t.PkgPath() == "database/sql" && t.NumField() == 2 && t.Field(1).Name == "Valid":
			t = t.Field(0).Type
		default:
			return t.Kind() == reflect.Uint64 || t.Kind() == reflect.Uint && t.Size() == 8
		}
	}
}

// isByteArray16 reports a [16]byte or a named type of it, such as
// github.com/google/uuid's UUID: stored as 16 bytes, whatever its Valuer
// says (uuid.UUID's gives the 36-character text, which BINARY(16) refuses).
func isByteArray16(t reflect.Type) bool {
	return t.Kind() == reflect.Array && t.Len() == 16 && t.Elem().Kind() == reflect.Uint8
}

// nullBytes is the scan target of a []byte field. database/sql and some
// drivers (modernc's SQLite) hand back a zero-length value as a nil
// []byte; a nil interface alone is NULL, so an empty value stays non-nil.
type nullBytes []byte

// Scan copies src, keeping empty and NULL apart.
func (b *nullBytes) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*b = nil
	case []byte:
		*b = append(make([]byte, 0, len(v)), v...)
	case string:
		*b = append(make([]byte, 0, len(v)), v...)
	default:
		return fmt.Errorf("mapper: cannot scan a %T into a []byte field", src)
	}
	return nil
}

// rawMessageOps are bytesOps that bind the JSON as text: PostgreSQL's jsonb
// takes text, and a []byte argument is sent in binary format, which jsonb
// reads differently.
func rawMessageOps(o colOps) colOps {
	o.value = func(p unsafe.Pointer) any {
		b := *(*[]byte)(p)
		if b == nil {
			return nil
		}
		return string(b)
	}
	return o
}

// TimePrecision is what every database Tally supports keeps of a time:
// microseconds (MySQL DATETIME(6), PostgreSQL TIMESTAMPTZ). Times are
// truncated to it when written, in the object too, so that the writing
// session holds what any later read returns.
const TimePrecision = time.Microsecond

// normTime is a time as Tally stores it: UTC, truncated to TimePrecision,
// without a monotonic reading.
func normTime(t time.Time) time.Time { return t.Truncate(TimePrecision).UTC() }

// utcTime is the scan target of a time.Time field: PostgreSQL's driver
// returns times in time.Local, the others in UTC; every load is UTC.
type utcTime time.Time

// Scan stores src in UTC.
func (t *utcTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*t = utcTime(v.UTC())
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	case nil:
		return fmt.Errorf("mapper: cannot scan NULL into a time.Time field; use *time.Time or sql.NullTime")
	}
	return fmt.Errorf("mapper: cannot scan a %T into a time.Time field", src)
}

// timeLayouts are the text forms a time comes back in from a column that
// its driver does not parse (a SQLite column not declared DATETIME).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

func (t *utcTime) parse(s string) error {
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			*t = utcTime(v.UTC())
			return nil
		}
	}
	return fmt.Errorf("mapper: cannot read %q as a time", s)
}

// utcTimePtr is the scan target of a *time.Time field: its one field has
// the layout of the field, so the field's address is its address.
type utcTimePtr struct{ t *time.Time }

// Scan stores nil for NULL, else a new UTC time.
func (p *utcTimePtr) Scan(src any) error {
	if src == nil {
		p.t = nil
		return nil
	}
	var v utcTime
	if err := v.Scan(src); err != nil {
		return err
	}
	tm := time.Time(v)
	p.t = &tm
	return nil
}

// timeOps serve a time.Time field. Value normalises the field in place
// (see TimePrecision): it is called exactly when the value is written.
func timeOps() colOps {
	return colOps{
		addr: func(p unsafe.Pointer) any { return (*utcTime)(p) },
		value: func(p unsafe.Pointer) any {
			t := (*time.Time)(p)
			*t = normTime(*t)
			return *t
		},
		// Equal, not ==: the same instant read back from the database
		// carries another location and must not count as a change.
		equal: func(a, b unsafe.Pointer) bool { return (*time.Time)(a).Equal(*(*time.Time)(b)) },
		copy:  copyPlain[time.Time],
	}
}

// uuidOps serve a 16-byte array field (see isByteArray16): read back from
// 16 bytes or from the text form PostgreSQL's uuid type returns. The value
// is the field's own (a generated accessor returns the same); the orm binds
// every 16-byte array as its 16 bytes, whatever its Valuer says.
func uuidOps(t reflect.Type) colOps {
	return colOps{
		addr:  func(p unsafe.Pointer) any { return (*bytes16)(p) },
		value: func(p unsafe.Pointer) any { return reflect.NewAt(t, p).Elem().Interface() },
		equal: func(a, b unsafe.Pointer) bool { return *(*[16]byte)(a) == *(*[16]byte)(b) },
		copy:  copyPlain[[16]byte],
	}
}

// bytes16 is the scan target of a 16-byte array field.
type bytes16 [16]byte

// Scan accepts 16 raw bytes, or a UUID's 32 hex digits with or without
// dashes and braces.
func (u *bytes16) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case []byte:
		if len(v) == 16 {
			copy(u[:], v)
			return nil
		}
		s = string(v)
	case string:
		s = v
	case nil:
		return fmt.Errorf("mapper: cannot scan NULL into a 16-byte field; use a pointer to it")
	default:
		return fmt.Errorf("mapper: cannot scan a %T into a 16-byte field", src)
	}
	digits := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '-' && c != '{' && c != '}' {
			digits = append(digits, c)
		}
	}
	var out [16]byte
	if n, err := hex.Decode(out[:], digits); err != nil || n != 16 || len(digits) != 32 {
		return fmt.Errorf("mapper: cannot read %q as 16 bytes (a UUID)", s)
	}
	*u = out
	return nil
}

// jsonOps serve a field tagged json: bound as the text encoding/json makes
// of it (a nil pointer, map, slice or interface is NULL), read back with
// json.Unmarshal, compared and copied deeply.
func jsonOps(t reflect.Type) colOps {
	o := reflectOps(t, false, false)
	o.getInt = nil
	o.addr = func(p unsafe.Pointer) any { return jsonScan{reflect.NewAt(t, p).Elem()} }
	o.value = func(p unsafe.Pointer) any {
		v := reflect.NewAt(t, p).Elem()
		switch v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			if v.IsNil() {
				return nil
			}
		}
		return jsonValue{v.Interface()}
	}
	if o.clone == nil {
		o.clone = func(dst, src unsafe.Pointer) {
			reflect.NewAt(t, dst).Elem().Set(reflect.NewAt(t, src).Elem())
		}
	}
	o.copy = o.clone
	return o
}

// jsonValue marshals a json column's value when it is bound; a value that
// cannot be marshalled fails the statement with encoding/json's error.
type jsonValue struct{ v any }

// Value returns the JSON text.
func (j jsonValue) Value() (driver.Value, error) {
	b, err := json.Marshal(j.v)
	if err != nil {
		return nil, fmt.Errorf("mapper: json column: %w", err)
	}
	return string(b), nil
}

// jsonScan unmarshals a json column into its field, which is left as it
// was when the text is not valid JSON for it.
type jsonScan struct{ dst reflect.Value }

// Scan decodes src; NULL sets the zero value.
func (j jsonScan) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		j.dst.SetZero()
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("mapper: cannot scan a %T into a json column", src)
	}
	n := reflect.New(j.dst.Type())
	if err := json.Unmarshal(b, n.Interface()); err != nil {
		return fmt.Errorf("mapper: json column of type %v: %w", j.dst.Type(), err)
	}
	j.dst.Set(n.Elem())
	return nil
}

// nullTime has the layout of sql.NullTime and sql.Null[time.Time]: a time,
// then a validity flag.
type nullTime struct {
	T     time.Time
	Valid bool
}

// utcNullTime is the scan target of a sql.NullTime or sql.Null[time.Time]
// field: NULL is invalid, a time is stored in UTC.
type utcNullTime nullTime

// Scan stores src in UTC, or marks NULL.
func (n *utcNullTime) Scan(src any) error {
	if src == nil {
		*n = utcNullTime{}
		return nil
	}
	var v utcTime
	if err := v.Scan(src); err != nil {
		return err
	}
	*n = utcNullTime{T: time.Time(v), Valid: true}
	return nil
}

// isNullTime reports sql.NullTime and sql.Null[time.Time].
func isNullTime(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == "database/sql" && t.NumField() == 2 &&
		t.Field(0).Type == timeType && t.Field(1).Type.Kind() == reflect.Bool && t.Size() == unsafe.Sizeof(nullTime{})
}

// nullTimeOps serve sql.NullTime and sql.Null[time.Time] fields as timeOps
// serve time.Time: written as UTC microseconds (the field too), read in UTC.
func nullTimeOps(t reflect.Type) colOps {
	o := reflectOps(t, true, true)
	o.addr = func(p unsafe.Pointer) any { return (*utcNullTime)(p) }
	o.value = func(p unsafe.Pointer) any {
		// The field's own type is bound (its Valuer gives NULL or the
		// time), as a generated accessor binds it.
		if n := (*nullTime)(p); n.Valid {
			n.T = normTime(n.T)
		}
		return reflect.NewAt(t, p).Elem().Interface()
	}
	o.copy = copyPlain[nullTime]
	return o
}

// valueRules returns acc, a generated accessor of tab, made to follow this
// file's rules: the columns whose reading or binding the rules change are
// served by the reflective operations, the others by acc. It returns acc
// itself when no column is concerned.
func valueRules(tab *Table, acc Accessor) Accessor {
	for _, c := range tab.Columns {
		if c.ops.rule {
			return ruledAccessor{Accessor: acc, t: tab}
		}
	}
	return acc
}

// ruledAccessor is a generated accessor with the columns of valueRules
// read and bound by their reflective operations.
type ruledAccessor struct {
	Accessor
	t *Table
}

var _ BatchSnapshotter = ruledAccessor{}

// Unwrap returns the generated accessor.
func (a ruledAccessor) Unwrap() Accessor { return a.Accessor }

// Unwrap returns the accessor a table was given: for a generated accessor
// that the mapper serves some columns of (see [Registry.Table]), the
// generated one; otherwise acc itself. It is for tests and tools that check
// which accessor is installed.
func Unwrap(acc Accessor) Accessor {
	if r, ok := acc.(ruledAccessor); ok {
		return r.Accessor
	}
	return acc
}

func (a ruledAccessor) Addr(obj any, c *Column) any {
	if c.ops.rule {
		return c.ops.addr(unsafe.Add(base(obj), c.offset))
	}
	return a.Accessor.Addr(obj, c)
}

// Value serves an object of the table's type itself. A snapshot, of the
// generated accessor's own type, goes to the generated accessor, and a
// time from it is normalised as the reflective accessor's Value
// normalises it: a snapshot of an object not yet written (Merge's, or the
// one taken before a hook) holds the time as the caller set it.
func (a ruledAccessor) Value(obj any, c *Column) any {
	if c.ops.rule && reflect.TypeOf(obj) == a.t.ptrType {
		return c.ops.value(unsafe.Add(base(obj), c.offset))
	}
	v := a.Accessor.Value(obj, c)
	if c.ops.rule {
		return normTimeValue(v)
	}
	return v
}

// normTimeValue is v with the time it holds, if any, as Tally writes it
// (see TimePrecision); v is the value of a time.Time, *time.Time,
// sql.NullTime or sql.Null[time.Time] column, or of another column, which
// is returned as it is.
func normTimeValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return normTime(x)
	case sql.NullTime:
		if x.Valid {
			x.Time = normTime(x.Time)
		}
		return x
	case sql.Null[time.Time]:
		if x.Valid {
			x.V = normTime(x.V)
		}
		return x
	}
	return v
}

func (a ruledAccessor) SnapshotBatch(n int, obj func(i int) any, put func(i int, snap any)) {
	if bs, ok := a.Accessor.(BatchSnapshotter); ok {
		bs.SnapshotBatch(n, obj, put)
		return
	}
	for i := range n {
		put(i, a.Accessor.Snapshot(obj(i)))
	}
}
