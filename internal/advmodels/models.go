// Package advmodels holds models whose shapes are hard for generated
// mappers — json columns, nullable and named kinds, in-place-mutable
// values, embedded structs and the time columns Tally sets — so that the
// orm tests can run each with its generated mapper and reflectively and
// compare.
package advmodels

//go:generate go run github.com/tallyorm/tally/cmd/tallygen

import (
	"context"
	"database/sql"
	"time"

	"github.com/tallyorm/tally/orm"
)

// Cents is a named integer column.
type Cents int64

// Meta is a json column's struct: it holds a slice, a map and a pointer
// to another Meta, which a snapshot must copy and a change made in place
// must show.
type Meta struct {
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
	Score float64           `json:"score"`
	Next  *Meta             `json:"next,omitempty"`
}

// Stamps is embedded by value and flattened.
type Stamps struct {
	Created time.Time  `db:"created_at,created"`
	Updated *time.Time `db:"updated_at,updated"`
}

// Doc has json columns of a map, a slice, a struct, a pointer to one and
// an interface, which holds what json.Unmarshal makes of the text.
//
//tally:model
type Doc struct {
	ID      int64             `db:"id,pk,auto"`
	Version int64             `db:"version,version"`
	Attrs   map[string]string `db:"attrs,json"`
	List    []int64           `db:"list,json"`
	Meta    Meta              `db:"meta,json"`
	Opt     *Meta             `db:"opt,json"`
	Text    string            `db:"text,json,size=64"`
	Any     any               `db:"any,json"`
}

// Mixed has a column of most kinds whose copy or comparison is special.
//
//tally:model
type Mixed struct {
	ID  int64 `db:"id,pk,auto"`
	Rev Cents `db:"rev,version"`
	Stamps
	Data    []byte           `db:"data"`
	PData   *[]byte          `db:"pdata"`
	At      time.Time        `db:"at"`
	PAt     *time.Time       `db:"pat"`
	PI      *int64           `db:"pi"`
	PS      *string          `db:"ps,size=32"`
	Amount  Cents            `db:"amount"`
	PAmount *Cents           `db:"pamount"`
	NS      sql.NullString   `db:"ns,size=32"`
	NT      sql.NullTime     `db:"nt"`
	GS      sql.Null[string] `db:"gs,size=32"`
	GB      sql.Null[[]byte] `db:"gb"`
	Deleted sql.NullTime     `db:"deleted_at,softdelete"`
	//lint:ignore U1000 it is here to be skipped: an unexported field without a db tag is no column
	private string
}

// BeforeUpdate changes json columns when Text asks it to, in place and by
// assignment, so that tests can check that a failed Commit puts back what
// the hook replaced.
func (d *Doc) BeforeUpdate(context.Context, *orm.Session) error {
	if d.Text == "hook" {
		d.Attrs["hook"] = "in place"
		d.List = append(d.List, -1)
		d.Meta = Meta{Tags: []string{"hook"}}
	}
	return nil
}

// BeforeUpdate sets At when PS asks it to: a time of nanoseconds in a
// zone other than UTC, which Tally would write as UTC microseconds.
func (m *Mixed) BeforeUpdate(context.Context, *orm.Session) error {
	if m.PS != nil && *m.PS == "hook" {
		m.At = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("hook", 5*3600))
	}
	return nil
}
