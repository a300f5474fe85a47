package orm

import (
	"database/sql"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the timestamp columns: db:"...,created" and
// db:"...,updated", which the flush sets (see "Timestamps" in the package
// documentation).

// stampNow is the time Tally writes into created, updated and softdelete
// columns: UTC, truncated to what every database keeps, so that the
// object holds after the flush exactly what a later read returns.
func stampNow() time.Time { return time.Now().UTC().Truncate(mapper.TimePrecision) }

// timeValue is now as a value of c's field type: time.Time, *time.Time or
// sql.NullTime (the types the mapper accepts for these columns).
func timeValue(c *mapper.Column, now time.Time) any {
	switch c.Type {
	case reflect.TypeFor[sql.NullTime]():
		return sql.NullTime{Time: now, Valid: true}
	case reflect.TypeFor[*time.Time]():
		return &now
	}
	return now
}

// timeIsZero reports whether a created or updated field holds no time:
// the zero time.Time, a nil pointer, an invalid sql.NullTime.
func timeIsZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case time.Time:
		return x.IsZero()
	case *time.Time:
		return x == nil || x.IsZero()
	case sql.NullTime:
		return !x.Valid
	}
	return false
}

// stampInsert sets the created and updated columns of new objects that
// hold no time yet: a time the caller set (importing old rows, say) is
// kept. The writes are logged, so a failed flush clears them again.
func (s *Session) stampInsert(t *mapper.Table, ents []*identity.Entry) error {
	now := stampNow()
	for _, e := range ents {
		for _, c := range t.Stamps {
			if timeIsZero(t.Acc.Value(e.Obj(), c)) {
				if err := s.setCol(e, c, timeValue(c, now)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stampSet returns UpdateAll's set with the model's updated columns set
// to now, unless set names them itself: a bulk UPDATE writes something, as
// the flush's do. The caller's map is not changed.
func stampSet(t *mapper.Table, set Set) Set {
	var out Set
	var now time.Time
	for _, c := range t.Stamps {
		if _, named := set[c.Name]; !c.Updated || named {
			continue
		}
		if out == nil {
			out, now = maps.Clone(set), stampNow()
		}
		out[c.Name] = timeValue(c, now)
	}
	if out == nil {
		return set
	}
	return out
}

// upsertStampCols adjusts the columns an Upsert's DoUpdate sets: a
// conflict is an UPDATE that writes, so the updated columns are set too;
// and DoUpdate() of every column keeps the row's created columns, which
// say when the row was first inserted. Columns named in DoUpdate stay.
func upsertStampCols(t *mapper.Table, set []*mapper.Column, all bool) []*mapper.Column {
	if len(set) == 0 || len(t.Stamps) == 0 {
		return set
	}
	if all {
		set = slices.DeleteFunc(set, func(c *mapper.Column) bool { return c.Created })
	}
	for _, c := range t.Stamps {
		if c.Updated && !slices.Contains(set, c) {
			set = append(set, c)
		}
	}
	return set
}

// stampUpdate sets the updated columns of an object whose UPDATE writes
// something, unless the caller changed that column itself, and returns
// cols with them added, in column order. An object whose changes are all
// to columns an UPDATE does not write keeps its time.
func (s *Session) stampUpdate(e *identity.Entry, cols []*mapper.Column) ([]*mapper.Column, error) {
	t := e.Table()
	if len(t.Stamps) == 0 || !slices.ContainsFunc(cols, updateSet) {
		return cols, nil
	}
	var now time.Time
	for _, c := range t.Stamps {
		if !c.Updated || slices.Contains(cols, c) {
			continue
		}
		if now.IsZero() {
			now = stampNow()
		}
		if err := s.setCol(e, c, timeValue(c, now)); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	slices.SortFunc(cols, func(a, b *mapper.Column) int { return a.Pos - b.Pos })
	return cols, nil
}
