package mapper

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unsafe"

	"github.com/tallyorm/tally/internal/keyval"
)

// Key is a primary key in comparable form, for the identity map. A single
// integer key lives in I and a single string key in S, so the common cases
// build a Key without allocating; any other or composite key is encoded
// into S (with the AppendKey functions). It is public for generated code,
// whose Key method builds it, and for [Table.KeyOf]'s callers; its
// encoding is not a stable format.
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
		if n, ok := keyval.Int64(vals[0]); ok && fitsKind(t.PK[0].Type.Kind(), vals[0], n) {
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
		v, ok := keyval.Detach(vals[i])
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

// fitsKind reports whether the integer v, which keyval.Int64 turned into
// n, keeps its value in a field of kind k. When it does not, KeyOf takes the
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
