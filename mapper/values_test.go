package mapper

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// TestParseTagValueOptions: type= keeps the commas inside parentheses, and
// the per-database, decimal and json options parse into their fields.
func TestParseTagValueOptions(t *testing.T) {
	tests := []struct {
		in   string
		want Tag
	}{
		{"amount,type=DECIMAL(20,4)", Tag{Name: "amount", Type: "DECIMAL(20,4)"}},
		{"amount,type=DECIMAL(20, 4),unique", Tag{Name: "amount", Type: "DECIMAL(20, 4)", Unique: true}},
		{"amount,type=NUMERIC(12,2)", Tag{Name: "amount", Type: "NUMERIC(12,2)"}},
		{"id,type.mysql=BINARY(16),type.postgres=UUID,type.sqlite=BLOB",
			Tag{Name: "id", Types: DialectTypes{MySQL: "BINARY(16)", Postgres: "UUID", SQLite: "BLOB"}}},
		{"id,type=TEXT,type.postgres=ENUM_T", Tag{Name: "id", Type: "TEXT", Types: DialectTypes{Postgres: "ENUM_T"}}},
		{"balance,precision=20,scale=4", Tag{Name: "balance", Precision: 20, Scale: 4}},
		{"balance,precision=65", Tag{Name: "balance", Precision: 65}},
		{"balance,precision=1,scale=0", Tag{Name: "balance", Precision: 1}},
		{"attrs,json", Tag{Name: "attrs", JSON: true}},
	}
	for _, tt := range tests {
		got, err := ParseTag(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseTag(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseTagValueOptionErrors(t *testing.T) {
	tests := []struct{ in, reason string }{
		{"id,type.oracle=NUMBER", `option "type.oracle" names no database Tally knows (known: type.mysql, type.postgres, type.sqlite)`},
		{"id,type.mysql=", "type needs a value, e.g. type=BIGINT"},
		{"id,type.mysql=A,type.mysql=B", `option "type.mysql" repeated`},
		{"id,type=DECIMAL(20,4", `type "DECIMAL(20,4" has unbalanced parentheses`},
		{"b,precision=0", `precision must be an integer from 1 to 65, got "0"`},
		{"b,precision=66", `precision must be an integer from 1 to 65, got "66"`},
		{"b,precision=20,scale=31", `scale must be an integer from 0 to 30, got "31"`},
		{"b,scale=2", "scale needs a precision too, e.g. precision=20,scale=4"},
		{"b,precision=4,scale=5", "scale 5 is larger than precision 4"},
		{"b,json=yes", `option "json" takes no value`},
	}
	for _, tt := range tests {
		_, err := ParseTag(tt.in)
		var te *TagError
		if !errors.As(err, &te) || te.Reason != tt.reason {
			t.Errorf("ParseTag(%q) = %v; want a *TagError %q", tt.in, err, tt.reason)
		}
	}
}

type hiddenColumn struct {
	ID     int64  `db:"id,pk"`
	secret string `db:"secret"`
}

type hiddenSkipped struct {
	ID     int64 `db:"id,pk"`
	secret string
	other  string `db:"-"`
}

type floatDecimal struct {
	ID    int64   `db:"id,pk"`
	Price float64 `db:"price,precision=10,scale=2"`
}

type jsonKey struct {
	ID map[string]int `db:"id,pk,json"`
}

type jsonModel struct {
	ID    int64            `db:"id,pk"`
	Attrs map[string]any   `db:"attrs,json"`
	Point *struct{ X int } `db:"point,json"`
	Raw   json.RawMessage  `db:"raw"`
	U     uint64           `db:"u"`
}

// TestUnexportedFieldWithDBTagIsDefinitionError: a db tag on a field that
// Tally cannot reach is a mistake, reported with the field's name.
func TestUnexportedFieldWithDBTagIsDefinitionError(t *testing.T) {
	_, err := NewRegistry().Table(reflect.TypeFor[hiddenColumn]())
	var de *DefinitionError
	if !errors.As(err, &de) || de.Field != "secret" || de.Reason != `an unexported field cannot be a column: export it, or tag it db:"-"` {
		t.Fatalf("Table(hiddenColumn) = %v; want a *DefinitionError for field secret", err)
	}
	if _, err := NewRegistry().Table(reflect.TypeFor[hiddenSkipped]()); err != nil {
		t.Errorf("unexported fields without a db tag, or with db:\"-\": %v", err)
	}
	_ = hiddenColumn{secret: ""}
	_ = hiddenSkipped{secret: "", other: ""}
}

func TestValueOptionDefinitionErrors(t *testing.T) {
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[floatDecimal](): "Price",
		reflect.TypeFor[jsonKey]():      "ID",
	} {
		var de *DefinitionError
		if _, err := NewRegistry().Table(typ); !errors.As(err, &de) || de.Field != want {
			t.Errorf("Table(%v) = %v; want a *DefinitionError for %s", typ, err, want)
		}
	}
}

// TestJSONColumns: a json column binds its encoding/json text (NULL for
// nil), scans it back, and sees a change made in place.
func TestJSONColumns(t *testing.T) {
	tab := mustTable[jsonModel](t)
	obj := &jsonModel{ID: 1, Attrs: map[string]any{"a": 1.0}}
	v, err := callValue(tab.Acc.Value(obj, tab.Column("attrs")))
	if err != nil || v != `{"a":1}` {
		t.Errorf("Value(attrs) = %v, %v; want {\"a\":1}", v, err)
	}
	if v := tab.Acc.Value(obj, tab.Column("point")); v != nil {
		t.Errorf("Value(nil point) = %v, want nil", v)
	}
	snap := tab.Acc.Snapshot(obj)
	obj.Attrs["a"] = 2.0
	if ch := tab.Acc.Changed(obj, snap, nil); len(ch) != 1 || ch[0].Name != "attrs" {
		t.Errorf("Changed after editing the map in place = %v, want [attrs]", colNames(ch))
	}
	got := &jsonModel{}
	type scanner interface{ Scan(any) error }
	if err := tab.Acc.Addr(got, tab.Column("point")).(scanner).Scan([]byte(`{"X":7}`)); err != nil || got.Point == nil || got.Point.X != 7 {
		t.Errorf("Scan(point) = %v, %+v", err, got.Point)
	}
	before := got.Point
	if err := tab.Acc.Addr(got, tab.Column("point")).(scanner).Scan("not json"); err == nil || got.Point != before {
		t.Errorf("Scan(bad json) = %v and point %v; want an error and the field unchanged", err, got.Point)
	}
	if v := tab.Acc.Value(&jsonModel{Raw: json.RawMessage(`[1]`)}, tab.Column("raw")); v != "[1]" {
		t.Errorf("Value(raw) = %#v, want the text [1]", v)
	}
	if c := tab.Uint64Column(); c == nil || c.Name != "u" {
		t.Errorf("Uint64Column() = %v, want u", c)
	}
}

// callValue is what the driver binds for v: its Value, if it has one.
func callValue(v any) (any, error) {
	if vr, ok := v.(driver.Valuer); ok {
		return vr.Value()
	}
	return v, nil
}

// TestScanKeepsEmptyBytesAndUTC: a zero-length value is not NULL, and a
// time scanned in any location is stored in UTC.
func TestScanKeepsEmptyBytesAndUTC(t *testing.T) {
	var b []byte
	nb := (*nullBytes)(unsafe.Pointer(&b))
	if err := nb.Scan([]byte(nil)); err != nil || b == nil {
		t.Errorf("Scan([]byte(nil)) = %v, %#v; want a non-nil empty slice", err, b)
	}
	if err := nb.Scan(nil); err != nil || b != nil {
		t.Errorf("Scan(nil) = %v, %#v; want nil", err, b)
	}
	var tm time.Time
	at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", 3600))
	if err := (*utcTime)(&tm).Scan(at); err != nil || tm != at.UTC() || tm.Location() != time.UTC {
		t.Errorf("Scan(%v) = %v, %v; want %v", at, err, tm, at.UTC())
	}
	var u [16]byte
	if err := (*bytes16)(&u).Scan("123e4567-e89b-12d3-a456-426614174000"); err != nil || u[0] != 0x12 || u[15] != 0 {
		t.Errorf("Scan(uuid text) = %v, %x", err, u)
	}
	if err := (*bytes16)(&u).Scan("123e4567"); err == nil {
		t.Error("Scan(short text) accepted")
	}
}

// TestNullStringIsTellableFromEveryString checks the NULL of generated
// snapshots' *string columns: it survives copies, and no string a program
// or driver makes — empty, built from bytes, sliced — is taken for it.
func TestNullStringIsTellableFromEveryString(t *testing.T) {
	null := NullString()
	cp := null
	if !IsNullString(null) || !IsNullString(cp) || null != "" {
		t.Fatalf("NullString() = %q: IsNullString %v, copy %v", null, IsNullString(null), IsNullString(cp))
	}
	for _, s := range []string{"", string([]byte{}), "x", "abc"[3:], string(make([]byte, 0, 8))} {
		if IsNullString(s) {
			t.Errorf("IsNullString(%q) = true", s)
		}
	}
	var dst string
	for _, tc := range []struct {
		v    any
		null bool
		want string
	}{{nil, true, ""}, {"a", false, "a"}, {"", false, ""}, {(*string)(nil), true, ""}, {new(string), false, ""}} {
		if err := AssignNullString(&dst, tc.v); err != nil {
			t.Fatalf("AssignNullString(%#v): %v", tc.v, err)
		}
		if IsNullString(dst) != tc.null || dst != tc.want {
			t.Errorf("AssignNullString(%#v) = %q (null %v), want %q (null %v)", tc.v, dst, IsNullString(dst), tc.want, tc.null)
		}
	}
	dst = "kept"
	if err := AssignNullString(&dst, 1.5); err == nil || dst != "kept" {
		t.Errorf("AssignNullString(1.5) = %v, left %q; want an error and the value kept", err, dst)
	}
}

// TestStringEqualIsEquality checks the flush's string test against ==:
// shared data, equal copies, different lengths and contents, and empty
// strings with different data pointers.
func TestStringEqualIsEquality(t *testing.T) {
	s := "owner 1"
	cp := string([]byte(s))
	for _, tc := range [][2]string{{s, s}, {s, cp}, {s, "owner 2"}, {s, "owner"}, {"", ""}, {"", string([]byte{})}, {"", NullString()}, {"a", ""}} {
		if got, want := StringEqual(tc[0], tc[1]), tc[0] == tc[1]; got != want {
			t.Errorf("StringEqual(%q, %q) = %v, want %v", tc[0], tc[1], got, want)
		}
	}
}
