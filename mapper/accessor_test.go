package mapper

import (
	"database/sql"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	_ "github.com/tallyorm/tally/dialect/sqlite"
)

func ptr[T any](v T) *T { return &v }

// fullKinds returns a Kinds with every column set to a non-zero value,
// including extremes of the integer types that a round trip must keep.
func fullKinds() *Kinds {
	at := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("EST", -5*3600))
	return &Kinds{
		ID: 1, B: true, I: -42, I8: math.MinInt8, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MinInt64,
		U: 42, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxInt64,
		F32: 1.5, F64: -3.25, S: "héllo", Bytes: []byte{0, 1, 2, 0xff},
		Email: "a@example.com", Level: 3, UUID: UUID{0: 0xde, 1: 0xad, 15: 0x01}, T: at,
		PI: ptr[int64](7), PS: ptr("p"), PF: ptr(2.5), PB: ptr(false), PT: ptr(at.Add(time.Hour)),
		PBytes: ptr([]byte("pb")), PUUID: &UUID{0: 9}, PEmail: ptr(Email("b@example.com")),
		NS: sql.NullString{String: "ns", Valid: true}, NI: sql.NullInt64{Int64: -9, Valid: true},
		NF: sql.NullFloat64{Float64: 0.5, Valid: true}, NB: sql.NullBool{Bool: true, Valid: true},
		NT: sql.NullTime{Time: at.UTC(), Valid: true}, NG: sql.Null[int64]{V: 11, Valid: true},
	}
}

// nullKinds has every nullable column NULL.
func nullKinds() *Kinds {
	return &Kinds{ID: 2, Email: "n@example.com", UUID: UUID{15: 2}, T: time.Unix(0, 0).UTC()}
}

// sqliteType is the declared type of a Kinds column in SQLite; the driver
// turns DATETIME text back into time.Time.
func sqliteType(c *Column) string {
	switch name := c.Type.String(); {
	case strings.Contains(name, "time.Time") || name == "sql.NullTime":
		return "DATETIME"
	case strings.Contains(name, "uint8") || strings.Contains(name, "UUID"):
		return "BLOB"
	case strings.Contains(name, "float") || name == "sql.NullFloat64":
		return "REAL"
	case strings.Contains(name, "string") || strings.Contains(name, "Email") || name == "sql.NullString":
		return "TEXT"
	}
	return "INTEGER"
}

// openKinds opens an in-memory SQLite database holding a kinds table with
// one column per Kinds column.
func openKinds(t *testing.T, tab *Table) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // each connection to :memory: is its own database
	t.Cleanup(func() { db.Close() })
	var defs []string
	for _, c := range tab.Columns {
		defs = append(defs, c.Name+" "+sqliteType(c))
	}
	if _, err := db.Exec("CREATE TABLE kinds (" + strings.Join(defs, ", ") + ")"); err != nil {
		t.Fatal(err)
	}
	return db
}

func insertKinds(t *testing.T, db *sql.DB, tab *Table, obj *Kinds) {
	t.Helper()
	var args []any
	for _, c := range tab.Columns {
		args = append(args, tab.Acc.Value(obj, c))
	}
	q := "INSERT INTO kinds (" + strings.Join(colNames(tab.Columns), ", ") + ") VALUES (?" + strings.Repeat(", ?", len(args)-1) + ")"
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("insert %d: %v", obj.ID, err)
	}
}

func selectKinds(t *testing.T, db *sql.DB, tab *Table, id int64, into *Kinds) {
	t.Helper()
	var dest []any
	for _, c := range tab.Columns {
		dest = append(dest, tab.Acc.Addr(into, c))
	}
	q := "SELECT " + strings.Join(colNames(tab.Columns), ", ") + " FROM kinds WHERE id = ?"
	if err := db.QueryRow(q, id).Scan(dest...); err != nil {
		t.Fatalf("select %d: %v", id, err)
	}
}

// TestAccessorSQLiteRoundTrip binds every column with Value, reads it back
// into fields through Addr, and expects the object it started from.
func TestAccessorSQLiteRoundTrip(t *testing.T) {
	tab := mustTable[Kinds](t)
	db := openKinds(t, tab)

	want := fullKinds()
	insertKinds(t, db, tab, want)
	got := &Kinds{}
	selectKinds(t, db, tab, want.ID, got)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("round trip of non-NULL values (-want +got):\n%s", d)
	}

	// NULL scans into every nullable field, replacing what was there.
	insertKinds(t, db, tab, nullKinds())
	got = fullKinds()
	selectKinds(t, db, tab, 2, got)
	if d := cmp.Diff(nullKinds(), got); d != "" {
		t.Errorf("round trip of NULLs (-want +got):\n%s", d)
	}

	// A NULL read back compares unchanged with a snapshot of the nil values
	// it was written from.
	if ch := tab.Acc.Changed(got, tab.Acc.Snapshot(nullKinds()), nil); len(ch) != 0 {
		t.Errorf("Changed after a NULL round trip = %v", colNames(ch))
	}
	// So does a float32, and a time: binding it truncated the object's
	// own field to microseconds in UTC, which is what is read back.
	got = &Kinds{}
	selectKinds(t, db, tab, 1, got)
	if ch := tab.Acc.Changed(got, tab.Acc.Snapshot(want), nil); len(ch) != 0 {
		t.Errorf("Changed after a round trip = %v", colNames(ch))
	}
}

// TestAccessorValueNil checks that the bind value of every NULL column is
// nil or a Valuer that yields nil, so the driver writes NULL.
func TestAccessorValueNil(t *testing.T) {
	tab := mustTable[Kinds](t)
	obj := nullKinds()
	for _, c := range tab.Columns {
		if !c.Nullable {
			continue
		}
		v := tab.Acc.Value(obj, c)
		switch v := v.(type) {
		case nil:
		case []byte:
			if v != nil {
				t.Errorf("Value(%s) = %#v, want nil", c.Name, v)
			}
		default:
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() || rv.Kind() == reflect.Struct && rv.FieldByName("Valid").Bool() {
				t.Errorf("Value(%s) = %#v, want NULL", c.Name, v)
			}
		}
	}
}

func TestAccessorEmptyBytesIsNotNull(t *testing.T) {
	tab := mustTable[Kinds](t)
	db := openKinds(t, tab)
	obj := nullKinds()
	obj.Bytes = []byte{}
	insertKinds(t, db, tab, obj)
	var isNull bool
	if err := db.QueryRow("SELECT bytes IS NULL FROM kinds").Scan(&isNull); err != nil {
		t.Fatal(err)
	}
	if isNull {
		t.Error("an empty []byte was written as NULL")
	}
}

func TestSnapshotChanged(t *testing.T) {
	tab := mustTable[Kinds](t)
	nan := math.NaN()
	now := time.Now() // carries a monotonic clock reading
	tests := []struct {
		name   string
		start  func(*Kinds) // adjusts fullKinds before the snapshot; nil for none
		change func(*Kinds)
		want   []string // the columns Changed reports
	}{
		{"nothing", nil, func(*Kinds) {}, nil},
		{"bool to zero", nil, func(k *Kinds) { k.B = false }, []string{"b"}},
		{"int to zero", nil, func(k *Kinds) { k.I = 0 }, []string{"i"}},
		{"int8", nil, func(k *Kinds) { k.I8++ }, []string{"i8"}},
		{"int16", nil, func(k *Kinds) { k.I16-- }, []string{"i16"}},
		{"int32", nil, func(k *Kinds) { k.I32++ }, []string{"i32"}},
		{"int64 to zero", nil, func(k *Kinds) { k.I64 = 0 }, []string{"i64"}},
		{"uint", nil, func(k *Kinds) { k.U = 0 }, []string{"u"}},
		{"uint8", nil, func(k *Kinds) { k.U8 = 0 }, []string{"u8"}},
		{"uint16", nil, func(k *Kinds) { k.U16 = 0 }, []string{"u16"}},
		{"uint32", nil, func(k *Kinds) { k.U32 = 0 }, []string{"u32"}},
		{"uint64", nil, func(k *Kinds) { k.U64 = math.MaxUint64 }, []string{"u64"}},
		{"float32", nil, func(k *Kinds) { k.F32 = 0 }, []string{"f32"}},
		{"float64", nil, func(k *Kinds) { k.F64 = 0 }, []string{"f64"}},
		{"float64 NaN stays unchanged", func(k *Kinds) { k.F64 = nan }, func(k *Kinds) { k.F64 = nan }, nil},
		{"float64 to NaN", nil, func(k *Kinds) { k.F64 = nan }, []string{"f64"}},
		{"float32 NaN stays unchanged", func(k *Kinds) { k.F32 = float32(nan) }, func(*Kinds) {}, nil},
		{"float64 -0 is a change of bits", nil, func(k *Kinds) { k.F64 = math.Copysign(0, -1) }, []string{"f64"}},
		{"string to empty", nil, func(k *Kinds) { k.S = "" }, []string{"s"}},
		{"bytes edited in place", nil, func(k *Kinds) { k.Bytes[0] = 'X' }, []string{"bytes"}},
		{"bytes appended", nil, func(k *Kinds) { k.Bytes = append(k.Bytes, 1) }, []string{"bytes"}},
		{"bytes same content, new slice", nil, func(k *Kinds) { k.Bytes = slices.Clone(k.Bytes) }, nil},
		{"bytes to nil", nil, func(k *Kinds) { k.Bytes = nil }, []string{"bytes"}},
		{"bytes nil to empty", func(k *Kinds) { k.Bytes = nil }, func(k *Kinds) { k.Bytes = []byte{} }, []string{"bytes"}},
		{"bytes empty to nil", func(k *Kinds) { k.Bytes = []byte{} }, func(k *Kinds) { k.Bytes = nil }, []string{"bytes"}},
		{"bytes empty stays empty", func(k *Kinds) { k.Bytes = []byte{} }, func(k *Kinds) { k.Bytes = make([]byte, 0, 8) }, nil},
		{"named string", nil, func(k *Kinds) { k.Email = "" }, []string{"email"}},
		{"scanner int", nil, func(k *Kinds) { k.Level = 0 }, []string{"level"}},
		{"uuid byte", nil, func(k *Kinds) { k.UUID[15]++ }, []string{"uuid"}},
		{"time", nil, func(k *Kinds) { k.T = k.T.Add(time.Nanosecond) }, []string{"t"}},
		{"time to zero", nil, func(k *Kinds) { k.T = time.Time{} }, []string{"t"}},
		{"time same instant elsewhere", nil, func(k *Kinds) { k.T = k.T.In(time.FixedZone("X", 7*3600)) }, nil},
		{"time monotonic reading dropped", func(k *Kinds) { k.T = now }, func(k *Kinds) { k.T = k.T.Round(0) }, nil},
		{"pointee changed", nil, func(k *Kinds) { *k.PI = 8 }, []string{"pi"}},
		{"pointer to an equal value", nil, func(k *Kinds) { k.PI = ptr[int64](7) }, nil},
		{"pointer non-nil to nil", nil, func(k *Kinds) { k.PI = nil }, []string{"pi"}},
		{"pointer nil to non-nil", func(k *Kinds) { k.PS = nil }, func(k *Kinds) { k.PS = ptr("") }, []string{"ps"}},
		{"pointer nil stays nil", func(k *Kinds) { k.PS = nil }, func(*Kinds) {}, nil},
		{"pointer to zero", nil, func(k *Kinds) { *k.PF = 0 }, []string{"pf"}},
		{"pointer to bool", nil, func(k *Kinds) { *k.PB = true }, []string{"pb"}},
		{"pointer to time, same instant", nil, func(k *Kinds) { *k.PT = k.PT.UTC() }, nil},
		{"pointer to time", nil, func(k *Kinds) { *k.PT = k.PT.Add(time.Second) }, []string{"pt"}},
		{"pointer to bytes, edited in place", nil, func(k *Kinds) { (*k.PBytes)[0] = 'X' }, []string{"pbytes"}},
		{"pointer to uuid", nil, func(k *Kinds) { k.PUUID[3] = 1 }, []string{"puuid"}},
		{"pointer to named string", nil, func(k *Kinds) { *k.PEmail = "c@example.com" }, []string{"pemail"}},
		{"NullString value", nil, func(k *Kinds) { k.NS.String = "x" }, []string{"ns"}},
		{"NullString to NULL", nil, func(k *Kinds) { k.NS.Valid = false }, []string{"ns"}},
		{"NullInt64", nil, func(k *Kinds) { k.NI.Int64 = 0 }, []string{"ni"}},
		{"NullFloat64", nil, func(k *Kinds) { k.NF.Float64 = 1 }, []string{"nf"}},
		{"NullBool", nil, func(k *Kinds) { k.NB.Bool = false }, []string{"nb"}},
		{"NullTime same instant elsewhere", nil, func(k *Kinds) { k.NT.Time = k.NT.Time.In(time.FixedZone("X", 3600)) }, nil},
		{"NullTime", nil, func(k *Kinds) { k.NT.Time = k.NT.Time.Add(1) }, []string{"nt"}},
		{"Null[int64]", nil, func(k *Kinds) { k.NG.V = 12 }, []string{"ng"}},
		{"several, in column order", nil, func(k *Kinds) { k.NG.Valid, k.B, k.S = false, false, "" }, []string{"b", "s", "ng"}},
	}
	// Each case runs on a snapshot from Snapshot and on one from the middle
	// of a SnapshotBatch, whose neighbours have NULL pointers and pointees
	// of their own: the batch copies pointees into shared slabs.
	snapshots := map[string]func(t *testing.T, obj *Kinds) any{
		"single": func(_ *testing.T, obj *Kinds) any { return tab.Acc.Snapshot(obj) },
		"batch": func(t *testing.T, obj *Kinds) any {
			nulls := fullKinds()
			nulls.PI, nulls.PS, nulls.PF, nulls.PB, nulls.PT = nil, nil, nil, nil, nil
			objs := []any{nulls, obj, fullKinds()}
			snaps := make([]any, len(objs))
			tab.Acc.(BatchSnapshotter).SnapshotBatch(len(objs), func(i int) any { return objs[i] }, func(i int, s any) { snaps[i] = s })
			if d := cmp.Diff(nulls, snaps[0]); d != "" {
				t.Errorf("batch neighbour with NULLs (-want +got):\n%s", d)
			}
			return snaps[1]
		},
	}
	for _, tt := range tests {
		for mode, snapshot := range snapshots {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				obj, orig := fullKinds(), fullKinds()
				if tt.start != nil {
					tt.start(obj)
					tt.start(orig)
				}
				snap := snapshot(t, obj)
				if _, ok := snap.(*Kinds); !ok {
					t.Fatalf("Snapshot = %T, want *Kinds", snap)
				}
				tt.change(obj)
				if got := colNames(tab.Acc.Changed(obj, snap, nil)); !slices.Equal(got, tt.want) {
					t.Errorf("Changed = %v, want %v", got, tt.want)
				}
				// The change did not reach the snapshot: it still holds what
				// obj held when it was taken.
				if d := cmp.Diff(orig, snap, cmp.Comparer(func(a, b float64) bool {
					return math.Float64bits(a) == math.Float64bits(b)
				}), cmp.Comparer(func(a, b float32) bool {
					return math.Float32bits(a) == math.Float32bits(b)
				})); d != "" {
					t.Errorf("snapshot changed with the object (-want +got):\n%s", d)
				}
			})
		}
	}
}

func TestChangedAppends(t *testing.T) {
	tab := mustTable[Kinds](t)
	obj := fullKinds()
	snap := tab.Acc.Snapshot(obj)
	obj.S = "changed"
	prev := tab.Column("id")
	got := tab.Acc.Changed(obj, snap, []*Column{prev})
	if len(got) != 2 || got[0] != prev || got[1] != tab.Column("s") {
		t.Errorf("Changed(dst=[id]) = %v, want [id s]", colNames(got))
	}
}

func TestSnapshotDropsRelations(t *testing.T) {
	reg := NewRegistry()
	accT := mustTableIn[Account](t, reg)
	entT := mustTableIn[Entry](t, reg)

	note := "n"
	acc := &Account{ID: 1, Owner: "ann", Note: &note, Created: time.Unix(5, 0)}
	e := &Entry{ID: 2, AccountID: 1, Account: acc, Amount: 10}
	acc.Entries = []*Entry{e}

	as := accT.Acc.Snapshot(acc).(*Account)
	if as.Entries != nil {
		t.Errorf("account snapshot keeps Entries = %v", as.Entries)
	}
	if as.ID != 1 || as.Owner != "ann" || as.Note == nil || *as.Note != "n" || as.Note == acc.Note {
		t.Errorf("account snapshot = %+v, want its columns, Note copied", as)
	}
	es := entT.Acc.Snapshot(e).(*Entry)
	if es.Account != nil {
		t.Errorf("entry snapshot keeps Account = %p", es.Account)
	}
	if acc.Entries == nil || e.Account != acc {
		t.Error("Snapshot cleared the relation fields of the object itself")
	}
	// Relations are not columns: changing them is not a change.
	acc.Entries = nil
	e.Account = nil
	if ch := accT.Acc.Changed(acc, as, nil); len(ch) != 0 {
		t.Errorf("Changed(account) = %v", colNames(ch))
	}
	if ch := entT.Acc.Changed(e, es, nil); len(ch) != 0 {
		t.Errorf("Changed(entry) = %v", colNames(ch))
	}
}

func TestRestore(t *testing.T) {
	tab := mustTable[Kinds](t)
	obj := fullKinds()
	snap := tab.Acc.Snapshot(obj)
	obj.S, obj.Bytes[0], *obj.PI, obj.PS, obj.NS.Valid = "x", 'X', 99, nil, false
	tab.Acc.Restore(obj, snap)
	if d := cmp.Diff(fullKinds(), obj); d != "" {
		t.Errorf("Restore (-want +got):\n%s", d)
	}
	// obj and snap share nothing mutable afterwards.
	obj.Bytes[0], *obj.PI, *obj.PBytes = 'Y', 100, nil
	if ch := tab.Acc.Changed(fullKinds(), snap, nil); len(ch) != 0 {
		t.Errorf("snapshot changed through the restored object: %v", colNames(ch))
	}
	// A nil pointer in the snapshot is restored as nil.
	obj = nullKinds()
	snap = tab.Acc.Snapshot(obj)
	obj.PI, obj.Bytes = ptr[int64](1), []byte{1}
	tab.Acc.Restore(obj, snap)
	if d := cmp.Diff(nullKinds(), obj); d != "" {
		t.Errorf("Restore of NULLs (-want +got):\n%s", d)
	}
}

func TestSet(t *testing.T) {
	tab := mustTable[Kinds](t)
	col := tab.Column
	tests := []struct {
		name   string
		col    string
		v      any
		want   func(*Kinds) // what the field holds after; nil: unchanged
		errMsg string
	}{
		{"int into int64", "i64", 5, func(k *Kinds) { k.I64 = 5 }, ""},
		{"int8 into int64", "i64", int8(-5), func(k *Kinds) { k.I64 = -5 }, ""},
		{"uint64 into int64", "i64", uint64(5), func(k *Kinds) { k.I64 = 5 }, ""},
		{"int64 into int32", "i32", int64(-7), func(k *Kinds) { k.I32 = -7 }, ""},
		{"int64 into int32, overflow", "i32", int64(1) << 40, nil, "mapper: 1099511627776 overflows int32"},
		{"int into int8, overflow", "i8", 128, nil, "mapper: 128 overflows int8"},
		{"negative into uint", "u", -1, nil, "mapper: -1 overflows uint"},
		{"uint64 into int64, overflow", "i64", uint64(math.MaxUint64), nil, "mapper: 18446744073709551615 overflows int64"},
		{"uint64 into uint8, overflow", "u8", uint64(256), nil, "mapper: 256 overflows uint8"},
		{"int into uint64", "u64", 9, func(k *Kinds) { k.U64 = 9 }, ""},
		{"int into named int", "level", 4, func(k *Kinds) { k.Level = 4 }, ""},
		{"float64 into float32", "f32", 0.25, func(k *Kinds) { k.F32 = 0.25 }, ""},
		{"float64 into float32, overflow", "f32", 1e300, nil, "mapper: 1e+300 overflows float32"},
		{"float32 into float64", "f64", float32(0.5), func(k *Kinds) { k.F64 = 0.5 }, ""},
		{"int into float64", "f64", 1, nil, "mapper: cannot set a int into a float64 field"},
		{"string into named string", "email", "z@example.com", func(k *Kinds) { k.Email = "z@example.com" }, ""},
		{"named string into string", "s", Email("e"), func(k *Kinds) { k.S = "e" }, ""},
		{"string into int", "i", "12", nil, "mapper: cannot set a string into a int field"},
		{"bytes", "bytes", []byte("new"), func(k *Kinds) { k.Bytes = []byte("new") }, ""},
		{"nil into bytes", "bytes", nil, func(k *Kinds) { k.Bytes = nil }, ""},
		{"array into uuid", "uuid", [16]byte{1}, func(k *Kinds) { k.UUID = UUID{1} }, ""},
		{"time", "t", time.Unix(1, 0), func(k *Kinds) { k.T = time.Unix(1, 0) }, ""},
		{"int64 into *int64", "pi", int64(70), func(k *Kinds) { k.PI = ptr[int64](70) }, ""},
		{"int into *int64", "pi", 71, func(k *Kinds) { k.PI = ptr[int64](71) }, ""},
		{"*int64 into *int64", "pi", ptr[int64](72), func(k *Kinds) { k.PI = ptr[int64](72) }, ""},
		{"*int32 into *int64", "pi", ptr[int32](73), func(k *Kinds) { k.PI = ptr[int64](73) }, ""},
		{"nil into *int64", "pi", nil, func(k *Kinds) { k.PI = nil }, ""},
		{"typed nil into *int64", "pi", (*int32)(nil), func(k *Kinds) { k.PI = nil }, ""},
		{"string into *int64", "pi", "x", nil, "mapper: cannot set a string into a int64 field"},
		{"uint64 overflow into *int64", "pi", uint64(math.MaxUint64), nil, "mapper: 18446744073709551615 overflows int64"},
		{"*string into string", "s", ptr("deref"), func(k *Kinds) { k.S = "deref" }, ""},
		{"string into *string", "ps", "q", func(k *Kinds) { k.PS = ptr("q") }, ""},
		{"string into *Email", "pemail", "q@example.com", func(k *Kinds) { k.PEmail = ptr(Email("q@example.com")) }, ""},
		{"nil into int64", "i64", nil, nil, "mapper: cannot set NULL into a int64 field"},
		{"nil pointer into int64", "i64", (*int64)(nil), nil, "mapper: cannot set NULL into a int64 field"},
		{"NullString", "ns", sql.NullString{String: "v", Valid: true}, func(k *Kinds) { k.NS = sql.NullString{String: "v", Valid: true} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := fullKinds()
			err := tab.Acc.Set(obj, col(tt.col), tt.v)
			want := fullKinds()
			if tt.want != nil {
				tt.want(want)
			}
			if tt.errMsg == "" && err != nil {
				t.Fatalf("Set(%s, %#v): %v", tt.col, tt.v, err)
			}
			if tt.errMsg != "" && (err == nil || err.Error() != tt.errMsg) {
				t.Errorf("Set(%s, %#v) error = %v, want %q", tt.col, tt.v, err, tt.errMsg)
			}
			if d := cmp.Diff(want, obj); d != "" {
				t.Errorf("after Set(%s, %#v) (-want +got):\n%s", tt.col, tt.v, d)
			}
		})
	}
}

// TestSetPointerFieldIsFresh checks that setting a pointer field allocates a
// new pointee rather than writing through the old one, which a snapshot or
// another object may share.
func TestSetPointerFieldIsFresh(t *testing.T) {
	tab := mustTable[Kinds](t)
	obj := nullKinds()
	if err := tab.Acc.Set(obj, tab.Column("pi"), 5); err != nil {
		t.Fatal(err)
	}
	first := obj.PI
	if err := tab.Acc.Set(obj, tab.Column("pi"), 6); err != nil {
		t.Fatal(err)
	}
	if *first != 5 || *obj.PI != 6 {
		t.Errorf("Set wrote through the old pointer: first = %d, now = %d", *first, *obj.PI)
	}
}

// TestAddrTargets checks the pointer each column hands to Scan: the field's
// own address, typed so that database/sql needs no reflection for the
// common kinds.
func TestAddrTargets(t *testing.T) {
	tab := mustTable[Kinds](t)
	obj := fullKinds()
	v := reflect.ValueOf(obj).Elem()
	for _, c := range tab.Columns {
		a := reflect.ValueOf(tab.Acc.Addr(obj, c))
		if a.Kind() != reflect.Pointer || a.UnsafePointer() != v.FieldByIndex(c.Index).Addr().UnsafePointer() {
			t.Errorf("Addr(%s) = %v, not the field's address", c.Name, a)
		}
	}
	for name, want := range map[string]any{
		"i64": (*int64)(nil), "s": (*string)(nil), "email": (*string)(nil), "bytes": (*nullBytes)(nil),
		"t": (*utcTime)(nil), "pt": (*utcTimePtr)(nil), "level": (*Level)(nil), "uuid": (*bytes16)(nil),
		"ns": (*sql.NullString)(nil), "pi": (**int64)(nil),
	} {
		if got := reflect.TypeOf(tab.Acc.Addr(obj, tab.Column(name))); got != reflect.TypeOf(want) {
			t.Errorf("Addr(%s) is a %v, want %T", name, got, want)
		}
	}
}

// TestSnapshotBatchAcrossChunks snapshots more objects than one 32 KiB
// chunk holds, alternating NULL and set pointer columns: every snapshot,
// on both sides of each chunk boundary, holds its own object's values and
// none of its neighbours', and no two share a pointee.
func TestSnapshotBatchAcrossChunks(t *testing.T) {
	tab := mustTable[Kinds](t)
	n := 2*chunkLen(tab.Type.Size(), 1<<30) + 3
	objs := make([]*Kinds, n)
	for i := range objs {
		o := fullKinds()
		o.I = i
		if i%2 == 0 {
			o.PS = nil
		} else {
			s := fmt.Sprint("row ", i)
			o.PS = &s
		}
		objs[i] = o
	}
	snaps := make([]any, n)
	tab.Acc.(BatchSnapshotter).SnapshotBatch(n, func(i int) any { return objs[i] }, func(i int, s any) { snaps[i] = s })
	for i, s := range snaps {
		if got := tab.Acc.Changed(objs[i], s, nil); len(got) != 0 {
			t.Fatalf("snapshot %d of %d differs from its object in %v", i, n, colNames(got))
		}
		if objs[i].PS != nil && s.(*Kinds).PS == objs[i].PS {
			t.Fatalf("snapshot %d shares its *string with the object", i)
		}
	}
	for i := 1; i < n; i += 2 {
		*objs[i].PS = "changed"
		if got := colNames(tab.Acc.Changed(objs[i], snaps[i], nil)); !slices.Equal(got, []string{"ps"}) {
			t.Fatalf("object %d: Changed = %v after its *string changed, want [ps]", i, got)
		}
	}
}

// TestBoxPtrIsTheObjectPointer checks the boxing that batch snapshots use
// instead of reflection: the value is a *T of the table's type, pointing
// at the very struct.
func TestBoxPtrIsTheObjectPointer(t *testing.T) {
	tab := mustTable[Kinds](t)
	k := fullKinds()
	got, ok := tab.boxPtr(unsafe.Pointer(k)).(*Kinds)
	if !ok || got != k {
		t.Fatalf("boxPtr = %T %p, want *Kinds %p", got, got, k)
	}
}
