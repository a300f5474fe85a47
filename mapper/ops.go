package mapper

import (
	"bytes"
	"math"
	"reflect"
	"time"
	"unsafe"
)

// colOps are the operations on one column's field, given its address. They
// are chosen once per column from its type, so that per-object work at flush
// time is a few direct loads and compares instead of reflection.
type colOps struct {
	addr   func(p unsafe.Pointer) any     // scan target
	value  func(p unsafe.Pointer) any     // bind value
	equal  func(a, b unsafe.Pointer) bool // value equality, for change detection
	clone  func(dst, src unsafe.Pointer)  // deep copy for snapshots; nil when a plain copy suffices
	copy   func(dst, src unsafe.Pointer)  // the snapshot copy: clone, else a typed plain copy
	getInt func(p unsafe.Pointer) int64   // integer kinds only
	// pointee is set for a *T field whose T copies plainly: a batch of
	// snapshots then copies the pointees into one []T (see SnapshotBatch).
	pointee     reflect.Type
	pointeeCopy func(dst, src unsafe.Pointer)
	// rule: addr or value apply a rule of values.go (UTC times, empty
	// bytes, 16-byte arrays, JSON), which generated accessors leave to
	// these operations (see valueRules).
	rule bool
}

// opsFor returns the operations for a field of type t, with copy always set.
func opsFor(t reflect.Type) colOps {
	o := kindOps(t)
	if o.copy == nil {
		o.copy = o.clone
	}
	if o.copy == nil {
		// Rare types only (the common kinds set copy themselves): a typed
		// copy through reflection keeps the garbage collector's write
		// barriers right for whatever pointers the type holds.
		o.copy = func(dst, src unsafe.Pointer) {
			reflect.NewAt(t, dst).Elem().Set(reflect.NewAt(t, src).Elem())
		}
	}
	return o
}

func kindOps(t reflect.Type) colOps {
	if isByteArray16(t) {
		return withRule(uuidOps(t))
	}
	if isNullTime(t) {
		return withRule(nullTimeOps(t))
	}
	scans := reflect.PointerTo(t).Implements(scannerType)
	values := t.Implements(valuerType)
	if scans || values || t.Kind() == reflect.Struct && t != timeType {
		return reflectOps(t, scans, values)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return ptrOps(t)
	case reflect.Bool:
		return basicOps[bool](t)
	case reflect.Int:
		return intOps[int](t)
	case reflect.Int8:
		return intOps[int8](t)
	case reflect.Int16:
		return intOps[int16](t)
	case reflect.Int32:
		return intOps[int32](t)
	case reflect.Int64:
		return intOps[int64](t)
	case reflect.Uint:
		return intOps[uint](t)
	case reflect.Uint8:
		return intOps[uint8](t)
	case reflect.Uint16:
		return intOps[uint16](t)
	case reflect.Uint32:
		return intOps[uint32](t)
	case reflect.Uint64:
		return intOps[uint64](t)
	case reflect.Float32:
		o := basicOps[float32](t)
		// Compare bits so that NaN equals itself and is not an eternal change.
		o.equal = func(a, b unsafe.Pointer) bool {
			return math.Float32bits(*(*float32)(a)) == math.Float32bits(*(*float32)(b))
		}
		return o
	case reflect.Float64:
		o := basicOps[float64](t)
		o.equal = func(a, b unsafe.Pointer) bool {
			return math.Float64bits(*(*float64)(a)) == math.Float64bits(*(*float64)(b))
		}
		return o
	case reflect.String:
		return basicOps[string](t)
	case reflect.Slice: // []byte and named byte slices (checked by unsupported)
		o := colOps{
			addr:  func(p unsafe.Pointer) any { return (*nullBytes)(p) },
			value: func(p unsafe.Pointer) any { return *(*[]byte)(p) },
			equal: func(a, b unsafe.Pointer) bool {
				x, y := *(*[]byte)(a), *(*[]byte)(b)
				// nil is NULL and empty is a zero-length value: not the same.
				return (x == nil) == (y == nil) && bytes.Equal(x, y)
			},
			clone: func(dst, src unsafe.Pointer) { *(*[]byte)(dst) = bytes.Clone(*(*[]byte)(src)) },
		}
		if t == rawMessageType {
			return withRule(rawMessageOps(o))
		}
		return withRule(o)
	}
	if t == timeType {
		return withRule(timeOps())
	}
	return reflectOps(t, false, false)
}

// basicOps serves kinds whose named types scan and bind as their underlying
// type; a named type's field is addressed through the underlying type,
// which the driver handles without reflection.
func basicOps[T comparable](reflect.Type) colOps {
	return colOps{
		addr:  func(p unsafe.Pointer) any { return (*T)(p) },
		value: func(p unsafe.Pointer) any { return *(*T)(p) },
		equal: func(a, b unsafe.Pointer) bool { return *(*T)(a) == *(*T)(b) },
		copy:  copyPlain[T],
	}
}

// copyPlain copies a field whose value shares nothing mutable.
func copyPlain[T any](dst, src unsafe.Pointer) { *(*T)(dst) = *(*T)(src) }

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

func intOps[T integer](t reflect.Type) colOps {
	o := basicOps[T](t)
	o.getInt = func(p unsafe.Pointer) int64 { return int64(*(*T)(p)) }
	return o
}

// ptrOps serves *T fields: NULL is nil, and the snapshot copies the pointee
// so that a change made through the pointer is seen.
func ptrOps(t reflect.Type) colOps {
	et := t.Elem()
	eo := opsFor(et)
	o := colOps{
		addr: ptrAddr(t),
		value: func(p unsafe.Pointer) any {
			q := *(*unsafe.Pointer)(p)
			if q == nil {
				return nil
			}
			return eo.value(q)
		},
		equal: func(a, b unsafe.Pointer) bool {
			qa, qb := *(*unsafe.Pointer)(a), *(*unsafe.Pointer)(b)
			if qa == nil || qb == nil {
				return qa == qb
			}
			return qa == qb || eo.equal(qa, qb)
		},
		clone: ptrClone(et, eo),
	}
	if eo.clone == nil {
		o.pointee, o.pointeeCopy = et, eo.copy
	}
	o.rule = eo.rule && et == timeType // *time.Time scans through utcTimePtr
	return o
}

func withRule(o colOps) colOps {
	o.rule = true
	return o
}

// ptrAddr returns the scan target of a *T field. For the common unnamed
// pointee types the target is typed directly, which is what reflect.NewAt
// would build, without its cost per row.
func ptrAddr(t reflect.Type) func(p unsafe.Pointer) any {
	switch t {
	case reflect.TypeFor[*string]():
		return func(p unsafe.Pointer) any { return (**string)(p) }
	case reflect.TypeFor[*int64]():
		return func(p unsafe.Pointer) any { return (**int64)(p) }
	case reflect.TypeFor[*int]():
		return func(p unsafe.Pointer) any { return (**int)(p) }
	case reflect.TypeFor[*int32]():
		return func(p unsafe.Pointer) any { return (**int32)(p) }
	case reflect.TypeFor[*float64]():
		return func(p unsafe.Pointer) any { return (**float64)(p) }
	case reflect.TypeFor[*bool]():
		return func(p unsafe.Pointer) any { return (**bool)(p) }
	case reflect.TypeFor[*time.Time]():
		return func(p unsafe.Pointer) any { return (*utcTimePtr)(p) }
	}
	return func(p unsafe.Pointer) any { return reflect.NewAt(t, p).Interface() }
}

// ptrClone returns the snapshot copy of a *T field: a new T holding the
// pointee's value. For the plain kinds it allocates the copy directly,
// without reflection (a named type shares its kind's layout).
func ptrClone(et reflect.Type, eo colOps) func(dst, src unsafe.Pointer) {
	if eo.clone == nil && !reflect.PointerTo(et).Implements(scannerType) && !et.Implements(valuerType) {
		switch et.Kind() {
		case reflect.String:
			return clonePlain[string]
		case reflect.Int64, reflect.Int, reflect.Uint64, reflect.Uint:
			if et.Size() == 8 {
				return clonePlain[int64]
			}
		case reflect.Int32, reflect.Uint32:
			return clonePlain[int32]
		case reflect.Float64:
			return clonePlain[float64]
		case reflect.Bool:
			return clonePlain[bool]
		}
		if et == timeType {
			return clonePlain[time.Time]
		}
	}
	return func(dst, src unsafe.Pointer) {
		q := *(*unsafe.Pointer)(src)
		if q == nil {
			*(*unsafe.Pointer)(dst) = nil
			return
		}
		n := reflect.New(et)
		n.Elem().Set(reflect.NewAt(et, q).Elem())
		if eo.clone != nil {
			eo.clone(n.UnsafePointer(), q)
		}
		*(*unsafe.Pointer)(dst) = n.UnsafePointer()
	}
}

// clonePlain copies the T a pointer field points to into a new T.
func clonePlain[T any](dst, src unsafe.Pointer) {
	q := *(**T)(src)
	if q == nil {
		*(**T)(dst) = nil
		return
	}
	n := new(T)
	*n = *q
	*(**T)(dst) = n
}

// reflectOps serves the rare types — sql.Null*, Scanner/Valuer types,
// anything unusual — through reflection: slower, always correct.
func reflectOps(t reflect.Type, scans, values bool) colOps {
	o := colOps{
		addr:  func(p unsafe.Pointer) any { return reflect.NewAt(t, p).Interface() },
		value: func(p unsafe.Pointer) any { return reflect.NewAt(t, p).Elem().Interface() },
		equal: func(a, b unsafe.Pointer) bool {
			return valueEqual(reflect.NewAt(t, a).Elem(), reflect.NewAt(t, b).Elem())
		},
	}
	if hasRefs(t) {
		o.clone = func(dst, src unsafe.Pointer) {
			reflect.NewAt(t, dst).Elem().Set(deepCopy(reflect.NewAt(t, src).Elem()))
		}
	}
	if isInteger(t) {
		o.getInt = func(p unsafe.Pointer) int64 {
			v := reflect.NewAt(t, p).Elem()
			if v.CanInt() {
				return v.Int()
			}
			return int64(v.Uint())
		}
	}
	return o
}

// valueEqual compares two values of the same type by value: time.Time by
// instant, pointers by pointee, slices by elements, structs field by field.
func valueEqual(a, b reflect.Value) bool {
	if a.Type() == timeType {
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return valueEqual(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !valueEqual(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range a.Len() {
			if !valueEqual(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !valueEqual(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	}
	if a.CanInterface() {
		return a.Equal(b)
	}
	// Unexported fields of a foreign struct: compare what reflection allows.
	return reflect.DeepEqual(valueOf(a), valueOf(b))
}

func valueOf(v reflect.Value) any {
	switch {
	case v.CanInt():
		return v.Int()
	case v.CanUint():
		return v.Uint()
	case v.Kind() == reflect.String:
		return v.String()
	case v.Kind() == reflect.Bool:
		return v.Bool()
	case v.CanFloat():
		return v.Float()
	}
	return nil
}

// hasRefs reports whether a value of type t can share memory with a copy of
// it (through a pointer, slice or map) and so needs a deep copy.
func hasRefs(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	case reflect.Array:
		return hasRefs(t.Elem())
	case reflect.Struct:
		if t == timeType {
			return false // its *Location is immutable
		}
		for i := range t.NumField() {
			if hasRefs(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// deepCopy copies v with everything it references that could be changed in
// place. Unexported fields are copied shallowly with the struct.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Type().Elem())
		n.Elem().Set(deepCopy(v.Elem()))
		return n
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			n.Index(i).Set(deepCopy(v.Index(i)))
		}
		return n
	case reflect.Interface:
		// A json column of type any holds what json.Unmarshal made:
		// maps and slices, which a change in place must not reach.
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Type()).Elem()
		n.Set(deepCopy(v.Elem()))
		return n
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			n.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return n
	case reflect.Struct:
		n := reflect.New(v.Type()).Elem()
		n.Set(v)
		for i := range v.NumField() {
			if n.Field(i).CanSet() {
				n.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return n
	}
	return v
}
