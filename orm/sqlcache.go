package orm

import (
	"encoding/binary"
	"reflect"
	"sync"

	"github.com/tallyorm/tally/mapper"
)

// This file keeps what UpdateAll derives from a table, the columns a Set
// names and the query's conditions, so that a call whose shape was seen
// before builds no SQL and checks no column names again: the same
// statement text goes out every time, as from the flush's stmtCache.

// updateAllPlan is UpdateAll's statement for one table, set of column
// names and list of conditions.
type updateAllPlan struct {
	cols []*mapper.Column // the columns set, sorted by name: the order of the statement's SET
	// asIs marks the columns whose field is a plain bool, number or string
	// type: a value of exactly that type is what converting it gives.
	asIs []bool
	sql  string
}

// maxUpdateAllPlans bounds the plans kept per table. Conditions are
// programmer-written text, but a program that splices values into them
// would otherwise grow the cache without end; past the bound, statements
// are built per call, as they were before the cache.
const maxUpdateAllPlans = 256

// planCache holds the UpdateAll plans of an engine's tables. It is safe
// for concurrent use.
type planCache struct {
	tables sync.Map // *mapper.Table → *tablePlans
}

type tablePlans struct {
	mu sync.RWMutex
	m  map[string]*updateAllPlan // guarded by mu; keyed by planKey
}

// lookup returns the plan stored for key on t, or nil.
func (c *planCache) lookup(t *mapper.Table, key []byte) *updateAllPlan {
	v, ok := c.tables.Load(t)
	if !ok {
		return nil
	}
	tp := v.(*tablePlans)
	tp.mu.RLock()
	p := tp.m[string(key)] // no allocation: the conversion is only for the lookup
	tp.mu.RUnlock()
	return p
}

// store keeps p for key on t, unless t has maxUpdateAllPlans already.
func (c *planCache) store(t *mapper.Table, key []byte, p *updateAllPlan) {
	v, ok := c.tables.Load(t)
	if !ok {
		v, _ = c.tables.LoadOrStore(t, &tablePlans{m: make(map[string]*updateAllPlan)})
	}
	tp := v.(*tablePlans)
	tp.mu.Lock()
	if len(tp.m) < maxUpdateAllPlans {
		tp.m[string(key)] = p
	}
	tp.mu.Unlock()
}

// planKey appends the key of an UpdateAll shape to b: the number of names,
// then each name and each condition preceded by its length, so that two
// different shapes never make the same key (conditions are free text and
// may hold any byte).
func planKey(b []byte, names, where []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	for _, w := range where {
		b = binary.AppendUvarint(b, uint64(len(w)))
		b = append(b, w...)
	}
	return b
}

// plainKind reports whether a field of type t holds a bool, number or
// string that assigning and reading back through the accessor leaves as
// it is: an unnamed type (a named one may have methods, Valuer or Scanner,
// that the conversion uses), stored without a value rule.
func plainKind(c *mapper.Column) bool {
	if c.JSON || c.Precision > 0 || c.Type.PkgPath() != "" || c.Type.Name() == "" {
		return false
	}
	switch c.Type.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Float32, reflect.Float64, reflect.String:
		return true
	}
	return false
}
