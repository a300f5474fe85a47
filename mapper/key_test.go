package mapper

import (
	"errors"
	"math"
	"testing"
)

// intPK is a model whose primary key is of integer type T.
type intPK[T integer] struct {
	ID   T `db:"id,pk"`
	Name string
}

// ID is a named integer key type without methods.
type ID int64

func checkIntKey[T integer](t *testing.T) {
	t.Helper()
	tab := mustTable[intPK[T]](t)
	if !tab.IntKey() {
		t.Errorf("%v: IntKey() = false", tab.Type)
	}
	obj := &intPK[T]{ID: 5}
	want := tab.Acc.Key(obj)
	if want != (Key{I: 5}) {
		t.Errorf("%v: Key = %+v, want {I:5}", tab.Type, want)
	}
	for _, v := range []any{5, int8(5), int16(5), int32(5), int64(5), uint(5), uint8(5), uint16(5), uint32(5), uint64(5), T(5), ID(5), ptr(5)} {
		got, err := tab.KeyOf(v)
		if err != nil || got != want {
			t.Errorf("%v: KeyOf(%T 5) = %+v, %v; want %+v", tab.Type, v, got, err, want)
		}
	}
	if k, _ := tab.KeyOf(6); k == want {
		t.Errorf("%v: KeyOf(6) == KeyOf(5)", tab.Type)
	}
}

func TestKeyIntegerTypes(t *testing.T) {
	checkIntKey[int](t)
	checkIntKey[int8](t)
	checkIntKey[int16](t)
	checkIntKey[int32](t)
	checkIntKey[int64](t)
	checkIntKey[uint](t)
	checkIntKey[uint8](t)
	checkIntKey[uint16](t)
	checkIntKey[uint32](t)
	checkIntKey[uint64](t)
	checkIntKey[ID](t)
}

func TestKeyDesignModel(t *testing.T) {
	tab := mustTable[Account](t)
	k, err := tab.KeyOf(5)
	if err != nil || k != tab.Acc.Key(&Account{ID: 5}) {
		t.Errorf("KeyOf(5) = %+v, %v; want Key(&Account{ID: 5}) = %+v", k, err, tab.Acc.Key(&Account{ID: 5}))
	}
}

func TestKeyUint64HighBit(t *testing.T) {
	tab := mustTable[intPK[uint64]](t)
	const big = uint64(1)<<63 + 5
	obj := &intPK[uint64]{ID: big}
	k := tab.Acc.Key(obj)
	got, err := tab.KeyOf(big)
	if err != nil || got != k {
		t.Fatalf("KeyOf(%d) = %+v, %v; want %+v", big, got, err, k)
	}
	if uint64(k.I) != big {
		t.Errorf("Key.I = %d does not convert back to %d", k.I, big)
	}
	if got, _ := tab.KeyOf(uint64(math.MaxUint64)); got == k || uint64(got.I) != math.MaxUint64 {
		t.Errorf("KeyOf(MaxUint64) = %+v", got)
	}
	// A negative number is no uint64: it must not find the object whose
	// key has the same bits.
	if got, err := tab.KeyOf(int64(-1)); err == nil {
		t.Errorf("KeyOf(int64(-1)) = %+v, want an error (it would alias MaxUint64)", got)
	}
}

func TestKeyString(t *testing.T) {
	type strPK struct {
		Code Email `db:"code,pk"`
	}
	tab := mustTable[strPK](t)
	if tab.IntKey() {
		t.Error("IntKey() = true for a string key")
	}
	want := tab.Acc.Key(&strPK{Code: "abc"})
	if want != (Key{S: "abc"}) {
		t.Errorf("Key = %+v, want {S:abc}", want)
	}
	for _, v := range []any{"abc", Email("abc"), ptr("abc")} {
		if got, err := tab.KeyOf(v); err != nil || got != want {
			t.Errorf("KeyOf(%T abc) = %+v, %v; want %+v", v, got, err, want)
		}
	}
	if got, _ := tab.KeyOf(""); got == want || got != tab.Acc.Key(&strPK{}) {
		t.Errorf("KeyOf(\"\") = %+v", got)
	}
}

type intStrPK struct {
	Tenant int64  `db:"tenant,pk"`
	Code   string `db:"code,pk"`
}

type strStrPK struct {
	A string `db:"a,pk"`
	B string `db:"b,pk"`
}

type uuidPK struct {
	ID   UUID `db:"id,pk"`
	Name string
}

func TestKeyComposite(t *testing.T) {
	is := mustTable[intStrPK](t)
	k := is.Acc.Key(&intStrPK{Tenant: 7, Code: "x"})
	if got, err := is.KeyOf(7, "x"); err != nil || got != k {
		t.Errorf("KeyOf(7, x) = %+v, %v; want %+v", got, err, k)
	}
	if got, err := is.KeyOf(uint8(7), Email("x")); err != nil || got != k {
		t.Errorf("KeyOf(uint8 7, Email x) = %+v, %v; want %+v", got, err, k)
	}
	for _, other := range [][2]any{{8, "x"}, {7, "y"}, {7, ""}, {0, "x"}} {
		if got, _ := is.KeyOf(other[0], other[1]); got == k {
			t.Errorf("KeyOf(%v, %v) == KeyOf(7, x)", other[0], other[1])
		}
	}
	if is.IntKey() {
		t.Error("IntKey() = true for a composite key")
	}

	ss := mustTable[strStrPK](t)
	abc := ss.Acc.Key(&strStrPK{A: "a", B: "bc"})
	abC := ss.Acc.Key(&strStrPK{A: "ab", B: "c"})
	if abc == abC {
		t.Errorf(`Key("a","bc") == Key("ab","c") = %q`, abc.S)
	}
	if got, err := ss.KeyOf("a", "bc"); err != nil || got != abc {
		t.Errorf(`KeyOf("a","bc") = %+v, %v; want %+v`, got, err, abc)
	}
	if got, err := ss.KeyOf("ab", "c"); err != nil || got != abC {
		t.Errorf(`KeyOf("ab","c") = %+v, %v; want %+v`, got, err, abC)
	}
	// Order matters: the key follows the pk columns' field order.
	if got, _ := ss.KeyOf("bc", "a"); got == abc {
		t.Error(`KeyOf("bc","a") == KeyOf("a","bc")`)
	}
	// Separators inside the values cannot forge another split.
	if a, b := ss.Acc.Key(&strStrPK{A: "a\x00", B: ""}), ss.Acc.Key(&strStrPK{A: "a", B: "\x00"}); a == b {
		t.Error("keys with a NUL moved across the boundary collide")
	}
}

func TestKeyUUID(t *testing.T) {
	tab := mustTable[uuidPK](t)
	id := UUID{0: 0xab, 15: 0xcd}
	k := tab.Acc.Key(&uuidPK{ID: id})
	for _, v := range []any{id, [16]byte(id), &id} {
		if got, err := tab.KeyOf(v); err != nil || got != k {
			t.Errorf("KeyOf(%T) = %+v, %v; want %+v", v, got, err, k)
		}
	}
	if got, _ := tab.KeyOf(UUID{0: 0xab}); got == k {
		t.Error("different UUIDs share a key")
	}
}

func TestKeyComposedOfScannerInt(t *testing.T) {
	// A Valuer integer key is encoded, not carried in Key.I, but KeyOf and
	// Key still agree.
	type levelPK struct {
		L Level `db:"l,pk"`
	}
	tab := mustTable[levelPK](t)
	k := tab.Acc.Key(&levelPK{L: 3})
	for _, v := range []any{3, int64(3), Level(3)} {
		if got, err := tab.KeyOf(v); err != nil || got != k {
			t.Errorf("KeyOf(%T 3) = %+v, %v; want %+v", v, got, err, k)
		}
	}
}

func TestKeyOfErrors(t *testing.T) {
	tests := []struct {
		tab  *Table
		vals []any
		msg  string
	}{
		{mustTable[Account](t), nil, "mapper: key for accounts: got 0 values, the primary key has 1 column(s)"},
		{mustTable[Account](t), []any{1, 2}, "mapper: key for accounts: got 2 values, the primary key has 1 column(s)"},
		{mustTable[intStrPK](t), []any{1}, "mapper: key for int_str_pks: got 1 values, the primary key has 2 column(s)"},
		{mustTable[intStrPK](t), []any{1, "a", "b"}, "mapper: key for int_str_pks: got 3 values, the primary key has 2 column(s)"},
		{mustTable[Account](t), []any{"5"}, "mapper: key for accounts: column id: mapper: cannot set a string into a int64 field"},
		{mustTable[Account](t), []any{nil}, "mapper: key for accounts: column id: mapper: cannot set NULL into a int64 field"},
		{mustTable[Account](t), []any{1.0}, "mapper: key for accounts: column id: mapper: cannot set a float64 into a int64 field"},
		{mustTable[Account](t), []any{uint64(math.MaxUint64)}, "mapper: key for accounts: column id: mapper: 18446744073709551615 overflows int64"},
		{mustTable[intPK[uint8]](t), []any{300}, "mapper: key for int_pk[uint8]s: column id: mapper: 300 overflows uint8"},
		{mustTable[intPK[int8]](t), []any{-129}, "mapper: key for int_pk[int8]s: column id: mapper: -129 overflows int8"},
		{mustTable[intPK[uint32]](t), []any{int64(-1)}, "mapper: key for int_pk[uint32]s: column id: mapper: -1 overflows uint32"},
		{mustTable[intPK[uint64]](t), []any{-1}, "mapper: key for int_pk[uint64]s: column id: mapper: -1 overflows uint64"},
		{mustTable[intStrPK](t), []any{1, 2}, "mapper: key for int_str_pks: column code: mapper: cannot set a int into a string field"},
		{mustTable[intStrPK](t), []any{"x", "y"}, "mapper: key for int_str_pks: column tenant: mapper: cannot set a string into a int64 field"},
		{mustTable[uuidPK](t), []any{"not a uuid"}, "mapper: key for uuid_pks: column id: mapper: cannot set a string into a mapper.UUID field"},
	}
	for _, tt := range tests {
		k, err := tt.tab.KeyOf(tt.vals...)
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Table != tt.tab.Name {
			t.Errorf("%s.KeyOf(%v) = %+v, %v; want a *KeyError", tt.tab.Name, tt.vals, k, err)
			continue
		}
		if err.Error() != tt.msg {
			t.Errorf("%s.KeyOf(%v) error:\n got  %s\n want %s", tt.tab.Name, tt.vals, err, tt.msg)
		}
		if k != (Key{}) {
			t.Errorf("%s.KeyOf(%v) returned %+v with its error", tt.tab.Name, tt.vals, k)
		}
	}
}
