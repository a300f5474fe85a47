package mapper

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unsafe"
)

// Key is a primary key in comparable form, for the identity map. A single
// integer key lives in I and a single string key in S, so the common cases
// build a Key without allocating; any other or composite key is encoded
// into S.
type Key struct {
	I int64
	S string
}

type keyKind uint8

const (
	keyInt keyKind = iota
	keyString
	keyEncoded
)

func keyKindOf(pk []*Column) keyKind {
	if len(pk) == 1 && pk[0].ops.getInt != nil && !pk[0].Type.Implements(valuerType) {
		return keyInt
	}
	if len(pk) == 1 && pk[0].Type.Kind() == reflect.String && !pk[0].Type.Implements(valuerType) {
		return keyString
	}
	return keyEncoded
}

// KeyError reports primary-key values that do not fit the table's key.
type KeyError struct {
	Table  string
	Reason string
}

// Error says which table's key was wrong and why.
func (e *KeyError) Error() string { return "mapper: key for " + e.Table + ": " + e.Reason }

// KeyOf builds the Key of the row whose primary-key columns hold vals, one
// value per PK column in field order. Values are converted as an INSERT
// would convert them (an int into an int64 column), so KeyOf(5) finds the
// object whose ID field is int64(5).
func (t *Table) KeyOf(vals ...any) (Key, error) {
	if len(vals) != len(t.PK) {
		return Key{}, &KeyError{t.Name, "got " + strconv.Itoa(len(vals)) + " values, the primary key has " + strconv.Itoa(len(t.PK)) + " column(s)"}
	}
	switch t.keyKind {
	case keyInt:
		if n, ok := toInt64(vals[0]); ok && fitsKind(t.PK[0].Type.Kind(), vals[0], n) {
			return Key{I: n}, nil
		}
	case keyString:
		if s, ok := vals[0].(string); ok {
			return Key{S: s}, nil
		}
	}
	// The general path: convert each value into a field of the column's
	// type, then encode it exactly as Key does for an object.
	var b []byte
	var k Key
	for i, c := range t.PK {
		fv := reflect.New(c.Type)
		v, ok := Detach(vals[i])
		if !ok {
			return Key{}, &KeyError{t.Name, "column " + c.Name + ": unsupported key value of type " + reflect.TypeOf(vals[i]).String()}
		}
		if err := assign(fv.Elem(), v); err != nil {
			return Key{}, &KeyError{t.Name, fmt.Sprintf("column %s: %v", c.Name, err)}
		}
		switch t.keyKind {
		case keyInt:
			k.I = c.ops.getInt(fv.UnsafePointer())
			return k, nil
		case keyString:
			k.S = fv.Elem().String()
			return k, nil
		}
		b = appendKeyPart(b, c, fv.UnsafePointer())
	}
	return Key{S: string(b)}, nil
}

// toInt64 converts the integer types without reflection or allocation.
func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint:
		return int64(n), true
	case int16:
		return int64(n), true
	case int8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint8:
		return int64(n), true
	}
	return 0, false
}

// fitsKind reports whether the integer v, which toInt64 turned into n, keeps
// its value in a field of kind k. When it does not, KeyOf takes the
// converting path, which reports the overflow: without this, -1 would find
// the uint64 key MaxUint64 (the same bits) and 300 a uint8 key that cannot be.
func fitsKind(k reflect.Kind, v any, n int64) bool {
	switch v.(type) {
	case uint, uint64:
		if n < 0 { // above MaxInt64
			return k == reflect.Uint64 || k == reflect.Uint && uint64(uint(n)) == uint64(n)
		}
	}
	switch k {
	case reflect.Int:
		return n == int64(int(n))
	case reflect.Int8:
		return n == int64(int8(n))
	case reflect.Int16:
		return n == int64(int16(n))
	case reflect.Int32:
		return n == int64(int32(n))
	case reflect.Uint:
		return n >= 0 && uint64(uint(n)) == uint64(n)
	case reflect.Uint8:
		return n == int64(uint8(n))
	case reflect.Uint16:
		return n == int64(uint16(n))
	case reflect.Uint32:
		return n == int64(uint32(n))
	case reflect.Uint64:
		return n >= 0
	}
	return true // Int64
}

// ToInt64 converts an integer of any Go integer type to int64; ok is false
// for anything else.
func ToInt64(v any) (n int64, ok bool) { return toInt64(v) }

// appendKeyPart encodes one key column's value. Each part is
// self-delimiting, so composite keys never collide.
func appendKeyPart(b []byte, c *Column, p unsafe.Pointer) []byte {
	// The AppendKey functions are shared with generated code, so that a
	// generated Key and KeyOf always agree.
	if c.ops.getInt != nil {
		return AppendKeyInt(b, c.ops.getInt(p))
	}
	v := reflect.NewAt(c.Type, p).Elem()
	switch {
	case v.Kind() == reflect.String:
		return AppendKeyString(b, v.String())
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		return AppendKeyBytes(b, v.Bytes())
	case v.Type() == timeType:
		return AppendKeyTime(b, v.Interface().(time.Time))
	case v.Kind() == reflect.Bool:
		return AppendKeyBool(b, v.Bool())
	case v.CanFloat():
		return AppendKeyFloat(b, v.Float())
	case !hasRefs(v.Type()):
		// Fixed-size plain data such as a [16]byte UUID: its bytes are its value.
		b = append(b, 'r')
		return append(b, unsafe.Slice((*byte)(p), v.Type().Size())...)
	}
	s := fmt.Sprint(v.Interface())
	b = append(b, 'x')
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Detach returns a copy of v that shares no memory with v's box (strings
// and byte slices may share their immutable bytes), so that code which
// keeps the copy does not make the caller's boxed value escape. ok is
// false for kinds it cannot copy without reflection that escapes (structs
// other than time.Time, maps, slices of non-bytes).
func Detach(v any) (any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case int64:
		return x, true
	case int:
		return x, true
	case int32:
		return x, true
	case int16:
		return x, true
	case int8:
		return x, true
	case uint64:
		return x, true
	case uint:
		return x, true
	case uint32:
		return x, true
	case uint16:
		return x, true
	case uint8:
		return x, true
	case string:
		return x, true
	case []byte:
		return x, true
	case bool:
		return x, true
	case float64:
		return x, true
	case float32:
		return x, true
	case time.Time:
		return x, true
	case *time.Time:
		if x == nil {
			return nil, true
		}
		return *x, true
	}
	return detachValue(reflect.ValueOf(v))
}

func detachValue(rv reflect.Value) (any, bool) {
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, true
		}
		return detachValue(rv.Elem())
	}
	n := reflect.New(rv.Type()).Elem()
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.SetInt(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n.SetUint(rv.Uint())
	case reflect.String:
		n.SetString(rv.String())
	case reflect.Bool:
		n.SetBool(rv.Bool())
	case reflect.Float32, reflect.Float64:
		n.SetFloat(rv.Float())
	case reflect.Slice:
		if rv.Type().Elem().Kind() != reflect.Uint8 {
			return nil, false
		}
		n.SetBytes(bytes.Clone(rv.Bytes()))
	case reflect.Array:
		if rv.Type().Elem().Kind() != reflect.Uint8 {
			return nil, false
		}
		for i := range rv.Len() {
			n.Index(i).SetUint(rv.Index(i).Uint())
		}
	default:
		return nil, false
	}
	return n.Interface(), true
}
