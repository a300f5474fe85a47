// Package errors holds one model per definition error tallygen reports.
package errors

// NoKey has no primary key.
//
//tally:model
type NoKey struct {
	Name string
}

// BadOption has an unknown tag option.
//
//tally:model
type BadOption struct {
	ID int64 `db:"id,pk,primary"`
}

// BadType has a column of a type no database column holds.
//
//tally:model
type BadType struct {
	ID    int64 `db:"id,pk"`
	Attrs map[string]string
}

// Inner is embedded by the models below.
type Inner struct {
	X int64
}

// EmbeddedPointer embeds a struct through a pointer.
//
//tally:model
type EmbeddedPointer struct {
	*Inner
	ID int64 `db:"id,pk"`
}

// EmbeddedOptions gives an embedded struct column options.
//
//tally:model
type EmbeddedOptions struct {
	Inner `db:"inner,unique"`
	ID    int64 `db:"id,pk"`
}

// Duplicate maps one column twice.
//
//tally:model
type Duplicate struct {
	ID int64 `db:"id,pk"`
	A  int64 `db:"same"`
	B  int64 `db:"same"`
}

// TwoVersions has two version columns.
//
//tally:model
type TwoVersions struct {
	ID int64 `db:"id,pk"`
	V1 int64 `db:"v1,version"`
	V2 int64 `db:"v2,version"`
}

// StringVersion has a version column that is not an integer.
//
//tally:model
type StringVersion struct {
	ID int64  `db:"id,pk"`
	V  string `db:"v,version"`
}

// AutoString has an auto key that is not an integer.
//
//tally:model
type AutoString struct {
	ID string `db:"id,pk,auto"`
}

// NullableKey has a nullable primary key.
//
//tally:model
type NullableKey struct {
	ID *int64 `db:"id,pk"`
}

// RelWithDB tags a relation as a column too.
//
//tally:model
type RelWithDB struct {
	ID    int64        `db:"id,pk"`
	Other *NullableKey `db:"other" rel:"other_id"`
}

// RelBadType has a relation that is neither *Struct nor []*Struct.
//
//tally:model
type RelBadType struct {
	ID    int64 `db:"id,pk"`
	Other int64 `rel:"other_id"`
}

// RelBadTag has a relation tag without a column.
//
//tally:model
type RelBadTag struct {
	ID    int64        `db:"id,pk"`
	Other *NullableKey `rel:""`
}

// NotStruct is marked but is not a struct.
//
//tally:model
type NotStruct int

// Generic cannot be a model.
//
//tally:model
type Generic[T any] struct {
	ID T `db:"id,pk"`
}

// Unexported has a db tag on an unexported field, which the mapper
// refuses.
//
//tally:model
type Unexported struct {
	ID   int64  `db:"id,pk"`
	note string `db:"note"`
}

// Clash is a model whose generated names are taken.
//
//tally:model
type Clash struct {
	ID int64 `db:"id,pk"`
}

// ClashCols is declared by hand, so tallygen cannot declare it.
var ClashCols = 1
