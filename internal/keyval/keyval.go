// Package keyval holds conversions of boxed key values that mapper and orm
// share. It is internal: they are plumbing of the identity map's keys, not
// API for users or for generated code.
package keyval

import (
	"bytes"
	"reflect"
	"time"
)

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

// Int64 converts an integer of any Go integer type to int64, without
// reflection or allocation; ok is false for anything else (a named integer
// type included). A uint64 above MaxInt64 keeps its bits.
func Int64(v any) (n int64, ok bool) {
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
