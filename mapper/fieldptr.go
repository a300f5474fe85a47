package mapper

import (
	"reflect"
	"unsafe"
)

// Ptr returns the address of c's field in obj, a non-nil *T of c's table:
// the struct's address plus the field's offset, which unsafe.Pointer's
// rules allow (arithmetic within one allocated object). It spares a hot
// loop reflect's FieldByIndex; the caller converts it to a pointer to the
// field's type (c.Type) and to nothing else.
func (c *Column) Ptr(obj any) unsafe.Pointer { return unsafe.Add(base(obj), c.offset) }

// Ptr returns the address of r's field in obj, a non-nil *T of r's table,
// as [Column.Ptr] does: a *Target field is then a *unsafe.Pointer, and a
// []*Target field, laid out as a slice of pointers, a *[]unsafe.Pointer.
func (r *Relation) Ptr(obj any) unsafe.Pointer { return unsafe.Add(base(obj), r.offset) }

// SnapshotType is the dynamic type of the values Acc's Snapshot returns:
// *T for the reflective accessor, the generated snapshot struct's pointer
// for a generated one. The identity map keeps snapshots compactly by
// relying on it being one type per table, and refuses a snapshot of
// another type. It is recorded when the registry installs the accessor:
// an Acc replaced by hand afterwards keeps the old type (and its
// snapshots are refused), and a Table the registry did not build has none.
func (t *Table) SnapshotType() reflect.Type { return t.snapType }

// setAcc installs acc and records its snapshot type.
func (t *Table) setAcc(acc Accessor) {
	t.Acc = acc
	t.snapType = snapshotType(acc, t.Type)
}

func snapshotType(acc Accessor, st reflect.Type) reflect.Type {
	return reflect.TypeOf(acc.Snapshot(reflect.New(st).Interface()))
}

// Differ returns the accessor whose Changed Acc's is: the generated one
// itself when Acc wraps it for this package's value rules, which change
// reading and binding but not diffs. A flush diffs every tracked object;
// calling it directly saves an indirect call per object.
func (t *Table) Differ() Accessor { return Unwrap(t.Acc) }
