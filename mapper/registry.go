package mapper

import (
	"fmt"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
)

// Registry caches the [Table] of each model type. Each Engine owns one, so
// metadata is never global mutable state. A Registry is safe for concurrent
// use; a type's metadata is built once, on first use.
type Registry struct {
	// done is an immutable map of the complete tables, replaced as a whole
	// when tables are added: the hot path (every Get, Add, query) is one
	// atomic load and one map lookup, with no lock and no shared write.
	done   atomic.Pointer[map[reflect.Type]*Table]
	mu     sync.Mutex              // serialises building
	tables map[reflect.Type]*Table // guarded by mu; what done holds
	errs   map[reflect.Type]error  // guarded by mu; definitions that failed

	// m2m and hasOne say whether any table built has a relation of that
	// kind, so that sessions of engines without one skip its flush work.
	m2m, hasOne atomic.Bool
	// reflective makes every table use the reflective accessor, even when
	// generated code registered one (see [Reflective]).
	reflective bool
}

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// Reflective makes the registry ignore the accessors that generated code
// registered and build every table's accessor by reflection. Generated and
// reflective accessors behave identically; the option is there to show it
// (Tally's equivalence tests) and to rule generated code out when
// hunting a bug.
func Reflective() RegistryOption { return func(r *Registry) { r.reflective = true } }

// NewRegistry returns an empty registry.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{tables: map[reflect.Type]*Table{}, errs: map[reflect.Type]error{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// TableOf returns the metadata of v's type; v is a struct, a pointer to one,
// or a reflect.Type of either.
func (r *Registry) TableOf(v any) (*Table, error) {
	t, ok := v.(reflect.Type)
	if !ok {
		t = reflect.TypeOf(v)
	}
	if t == nil {
		return nil, fmt.Errorf("mapper: nil is not a model")
	}
	return r.Table(t)
}

// Table returns the metadata of struct type t (or *t). Relations are
// resolved: their target types are built too, and their columns checked.
func (r *Registry) Table(t reflect.Type) (*Table, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if m := r.done.Load(); m != nil {
		if tab := (*m)[t]; tab != nil {
			return tab, nil
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	building := map[reflect.Type]*Table{}
	tab, err := r.buildLocked(t, building)
	if err != nil {
		r.errs[t] = err
		return nil, err
	}
	if len(building) > 0 {
		for typ, bt := range building {
			r.tables[typ] = bt
		}
		next := maps.Clone(r.tables)
		r.done.Store(&next)
	}
	return tab, nil
}

// HasM2M reports whether any model built so far has a many-to-many relation.
func (r *Registry) HasM2M() bool { return r.m2m.Load() }

// HasHasOne reports whether any model built so far has a has-one relation.
func (r *Registry) HasHasOne() bool { return r.hasOne.Load() }

// buildLocked builds t and, transitively, the targets of its relations.
// building holds the tables of this call, so relation cycles
// (Account ↔ Entry) terminate. r.mu must be held.
func (r *Registry) buildLocked(t reflect.Type, building map[reflect.Type]*Table) (*Table, error) {
	if tab := r.tables[t]; tab != nil {
		return tab, nil
	}
	if err := r.errs[t]; err != nil {
		return nil, err
	}
	if tab := building[t]; tab != nil {
		return tab, nil
	}
	tab, err := build(t)
	if err != nil {
		return nil, err
	}
	if g := lookupGenerated(t); g != nil && !r.reflective {
		acc, err := g(tab)
		if err != nil {
			return nil, &DefinitionError{Type: t, Reason: err.Error(), Err: err}
		}
		tab.setAcc(valueRules(tab, acc))
	}
	building[t] = tab
	for _, rel := range tab.Relations {
		target, err := r.buildLocked(rel.Target, building)
		if err != nil {
			return nil, &DefinitionError{Type: t, Field: rel.Field, Reason: "related model: " + err.Error(), Err: err}
		}
		if err := checkRelation(tab, rel, target); err != nil {
			return nil, err
		}
	}
	for _, rel := range tab.Relations {
		if rel.Join != nil {
			r.m2m.Store(true)
		}
		if rel.HasOne {
			r.hasOne.Store(true)
		}
	}
	return tab, nil
}

// checkRelation checks relation rel of tab against its target table: the
// foreign-key column exists where the relation's kind puts it, and the key
// it refers to is a single column.
func checkRelation(tab *Table, rel *Relation, target *Table) error {
	fail := func(format string, args ...any) error {
		return &DefinitionError{Type: tab.Type, Field: rel.Field, Reason: fmt.Sprintf(format, args...)}
	}
	if j := rel.Join; j != nil {
		for _, side := range []*Table{tab, target} {
			if len(side.PK) != 1 {
				return fail("an m2m relation needs a single-column primary key on both sides; %s has %d", side.Name, len(side.PK))
			}
			if side.Name == j.Name {
				return fail("the m2m join table %q is the table of model %v; give the join table a name of its own", j.Name, side.Type)
			}
		}
		return nil
	}
	owner, other := tab, target // belongs-to: the column is on this table
	if !rel.BelongsTo() {
		owner, other = target, tab
	}
	if owner.Column(rel.Column) == nil {
		hint := ""
		if rel.BelongsTo() && target.Column(rel.Column) != nil {
			hint = ` (it is on the other table: tag a has-one relation rel:"` + rel.Column + `,hasone")`
		}
		return fail("rel column %q does not exist in table %s%s", rel.Column, owner.Name, hint)
	}
	if len(other.PK) != 1 {
		return fail("a relation must point at a single-column primary key; %s has %d", other.Name, len(other.PK))
	}
	return nil
}

// Generated builds the accessor for a table from the code tallygen wrote.
// It returns an error when the struct no longer matches the generated code
// (generated code returns [CheckGenerated]'s *StaleError); the registry
// then refuses the model with a [*DefinitionError] wrapping it.
type Generated func(t *Table) (Accessor, error)

var (
	genMu  sync.RWMutex
	genAcc = map[reflect.Type]Generated{} // guarded by genMu
)

// RegisterGenerated installs the generated accessor of struct type t. It is
// called from the init functions of generated code, like database/sql's
// driver registry: written at start-up, read-only afterwards.
func RegisterGenerated(t reflect.Type, g Generated) {
	genMu.Lock()
	defer genMu.Unlock()
	genAcc[t] = g
}

func lookupGenerated(t reflect.Type) Generated {
	genMu.RLock()
	defer genMu.RUnlock()
	return genAcc[t]
}

// ForeignKey is a foreign-key constraint derived from rel tags: Child's
// Column references Parent's primary key.
type ForeignKey struct {
	Child   *Table
	Column  *Column
	Parent  *Table
	Cascade bool
}

// ForeignKeys gathers the foreign keys among tables, from belongs-to
// relations on the child and has-many and has-one relations on the parent alike, once
// each. Relations to tables outside the list are included when their parent
// is in the registry, because the constraint lives on the child.
func (r *Registry) ForeignKeys(tables []*Table) ([]ForeignKey, error) {
	var out []ForeignKey
	seen := map[[2]string]int{}
	add := func(child *Table, col string, parent *Table, cascade bool) {
		k := [2]string{child.Name, col}
		if i, ok := seen[k]; ok {
			out[i].Cascade = out[i].Cascade || cascade
			return
		}
		seen[k] = len(out)
		out = append(out, ForeignKey{Child: child, Column: child.Column(col), Parent: parent, Cascade: cascade})
	}
	for _, t := range tables {
		for _, rel := range t.Relations {
			other, err := r.Table(rel.Target)
			if err != nil {
				return nil, err
			}
			switch {
			case rel.Join != nil:
				// Join tables are not models: see JoinTables.
			case rel.BelongsTo():
				add(t, rel.Column, other, rel.Cascade)
			default:
				add(other, rel.Column, t, rel.Cascade)
			}
		}
	}
	return out, nil
}

// Join is a many-to-many join table with the two tables it pairs.
type Join struct {
	*JoinTable
	Left  *Table // the table whose key Left holds (the relation's owner)
	Right *Table // the table whose key Right holds (the relation's target)
}

// JoinTables gathers the join tables of the many-to-many relations among
// tables whose two sides are both in tables, once per join table name
// (both sides may declare the same join table), in the order met.
func (r *Registry) JoinTables(tables []*Table) []Join {
	in := make(map[reflect.Type]*Table, len(tables))
	for _, t := range tables {
		in[t.Type] = t
	}
	var out []Join
	seen := map[string]bool{}
	for _, t := range tables {
		for _, rel := range t.Relations {
			if rel.Join == nil || seen[rel.Join.Name] || in[rel.Target] == nil {
				continue
			}
			seen[rel.Join.Name] = true
			out = append(out, Join{JoinTable: rel.Join, Left: t, Right: in[rel.Target]})
		}
	}
	return out
}
