// Package kinds holds a model for every field kind tallygen supports.
package kinds

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/tallyorm/tally/testdata/tallygen/kinds/ext"
)

// Named types over each basic kind.
type (
	Money int64
	Name  string
	Flag  bool
	Ratio float64
	Small uint8
	Data  []byte
)

// Point scans and values itself; its fields are exported.
type Point struct {
	X, Y float64
}

// Scan reads "x,y".
func (p *Point) Scan(src any) error {
	s, ok := src.(string)
	if !ok {
		if b, isBytes := src.([]byte); isBytes {
			s, ok = string(b), true
		}
	}
	if !ok {
		return fmt.Errorf("kinds: bad point %v", src)
	}
	_, err := fmt.Sscanf(s, "%g,%g", &p.X, &p.Y)
	return err
}

// Value writes "x,y".
func (p Point) Value() (driver.Value, error) { return fmt.Sprintf("%g,%g", p.X, p.Y), nil }

// Base is embedded by value and flattened.
type Base struct {
	ID      int64     `db:"id,pk,auto"`
	Created time.Time `db:"created_at"`
}

// Everything has a column of every kind.
//
//tally:model
type Everything struct {
	Base
	I     int
	I8    int8
	I16   int16
	I32   int32
	I64   int64
	U     uint
	U8    uint8
	U16   uint16
	U32   uint32
	U64   uint64
	F32   float32
	F64   float64
	B     bool
	S     string
	Bytes []byte
	T     time.Time

	Money Money
	Name  Name
	Flag  Flag
	Ratio Ratio
	Small Small
	Data  Data
	Code  ext.Code

	PI64   *int64
	PS     *string
	PB     *bool
	PF     *float64
	PT     *time.Time
	PMoney *Money
	PBytes *[]byte

	NS   sql.NullString
	NI   sql.NullInt64
	NF   sql.NullFloat64
	NT   sql.NullTime
	NB   sql.NullBool
	GI   sql.Null[int64]
	GB   sql.Null[[]byte]
	GT   sql.Null[time.Time]
	PNS  *sql.NullString
	Loc  Point
	UUID ext.UUID
	Lbl  ext.Labels

	Version  int32  `db:"version,version"`
	ReadOnly string `db:"ro,readonly"`
	Skipped  string `db:"-"`
	private  string // unexported fields are not columns
	Rel      *Other `rel:"other_id"`
	OtherID  int64  `db:"other_id"`
}

// TableName overrides the default table name.
func (Everything) TableName() string { return "everything" }

// Other is the target of Everything's belongs-to relation and has many of
// them.
//
//tally:model
type Other struct {
	ID    int64         `db:"id,pk,auto"`
	Items []*Everything `rel:"other_id,cascade"`
}

// Pair has a composite key of a string and an integer.
//
//tally:model
type Pair struct {
	Kind Name  `db:"kind,pk"`
	N    Small `db:"n,pk"`
	Note *string
}

// Keyed has a string key of a named type.
//
//tally:model
type Keyed struct {
	Code ext.Code `db:"code,pk"`
}

// Odd has a composite key of the kinds that are encoded specially.
//
//tally:model
type Odd struct {
	T    time.Time `db:"t,pk"`
	B    bool      `db:"b,pk"`
	F    float64   `db:"f,pk"`
	UUID ext.UUID  `db:"uuid,pk"`
}

// Unsigned has an unsigned key.
//
//tally:model
type Unsigned struct {
	ID uint64 `db:"id,pk"`
}

// Stamped has the time columns Tally sets itself: at insert, at each
// UPDATE that writes, and at a soft delete.
//
//tally:model
type Stamped struct {
	ID      int64        `db:"id,pk,auto"`
	Title   string       `db:"title,size=32"`
	Created time.Time    `db:"created_at,created"`
	Updated *time.Time   `db:"updated_at,updated"`
	Deleted sql.NullTime `db:"deleted_at,softdelete"`
}

// Node is a json column's struct: a map, and a pointer to another Node,
// whose copy nests inside the copy of the pointer that holds it.
type Node struct {
	Attrs map[string]string
	Next  *Node
}

// Doc has json columns, which tallygen generates for whatever their type:
// a map, and a pointer to a struct holding a pointer.
//
//tally:model
type Doc struct {
	ID    int64             `db:"id,pk,auto"`
	Attrs map[string]string `db:"attrs,json"`
	Tree  *Node             `db:"tree,json"`
}
