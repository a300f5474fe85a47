// Package identity is the session's identity map: at most one tracked
// object per (table, primary key), with its state and its snapshot.
//
// A [Map] belongs to one session and, like it, is not safe for concurrent
// use. Lookups by key allocate nothing: integer keys (the common case) live
// in a map of int64 per table, every other key in a map of strings.
package identity

import "github.com/tallyorm/tally/mapper"

// State is where an object stands in a session.
type State uint8

// The states of SQLAlchemy's Session, which Tally's follows.
const (
	Transient  State = iota // unknown to the session
	Pending                 // added, not yet inserted
	Persistent              // has a row, tracked for changes
	Deleted                 // marked for deletion, or deleted in the open transaction
	Detached                // was tracked; the session let it go
)

var stateNames = [...]string{"transient", "pending", "persistent", "deleted", "detached"}

// String names the state.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "invalid"
}

// Entry is one tracked object.
//
// An entry holds no key of its own: while it is in the map, its key is the
// one its snapshot holds (a tracked object's primary key cannot change), so
// every tracked object costs one key less. The fields are ordered to pack.
type Entry struct {
	Table *mapper.Table
	Obj   any    // the *T the user holds
	Snap  any    // column values as last loaded or flushed; nil while pending
	Seq   uint64 // the order objects entered the session: flush order within a table
	State State
	// Flushed marks a Deleted entry whose DELETE has run in the open
	// transaction; it leaves the map at commit.
	Flushed bool
	// Owned marks an object that entered the session through Add and is
	// registered as belonging to it, so that another session refuses it;
	// the session releases it when it lets the object go.
	Owned bool
}

// key is the map key of an entry in the map: its snapshot's. An entry
// without a snapshot is not in the map (Put's contract), and Remove then
// finds nothing under its object's key either, rather than failing.
func (e *Entry) key() mapper.Key {
	if e.Snap == nil {
		return e.Table.Acc.Key(e.Obj)
	}
	return e.Table.Acc.Key(e.Snap)
}

// Map maps (table, primary key) to the tracked entry.
type Map struct {
	// Most sessions touch one or two tables: the first lives inline, so a
	// short session's first Put allocates only its inner map.
	first   *mapper.Table
	firstTM tableMap
	tables  map[*mapper.Table]*tableMap // the other tables
	n       int
}

type tableMap struct {
	ints map[int64]*Entry  // single integer keys
	strs map[string]*Entry // every other key, encoded
}

// New returns an empty map. The zero Map is empty and ready to use too.
func New() *Map { return &Map{} }

// Len is the number of entries.
func (m *Map) Len() int { return m.n }

// Get returns the entry of t with key k, or nil.
func (m *Map) Get(t *mapper.Table, k mapper.Key) *Entry {
	tm := m.lookup(t)
	if tm == nil {
		return nil
	}
	if t.IntKey() {
		return tm.ints[k.I]
	}
	return tm.strs[k.S]
}

// Put adds e under e.Table and k, replacing nothing: the caller checks Get
// first. It reports false if the key is taken. k must be the key of e.Snap
// (set now or before the next call into the map), which Remove relies on.
func (m *Map) Put(e *Entry, k mapper.Key) bool {
	tm := m.lookup(e.Table)
	if tm == nil {
		if m.first == nil {
			m.first = e.Table
			tm = &m.firstTM
		} else {
			if m.tables == nil {
				m.tables = map[*mapper.Table]*tableMap{}
			}
			tm = &tableMap{}
			m.tables[e.Table] = tm
		}
	}
	if e.Table.IntKey() {
		if tm.ints == nil {
			tm.ints = map[int64]*Entry{}
		}
		if tm.ints[k.I] != nil {
			return false
		}
		tm.ints[k.I] = e
	} else {
		if tm.strs == nil {
			tm.strs = map[string]*Entry{}
		}
		if tm.strs[k.S] != nil {
			return false
		}
		tm.strs[k.S] = e
	}
	m.n++
	return true
}

// Reserve makes room for n more entries of table t, so that loading a
// result of n rows grows the map once instead of by doubling.
func (m *Map) Reserve(t *mapper.Table, n int) {
	if n <= 8 {
		return
	}
	tm := m.lookup(t)
	if tm == nil {
		if m.first == nil {
			m.first = t
			tm = &m.firstTM
		} else {
			if m.tables == nil {
				m.tables = map[*mapper.Table]*tableMap{}
			}
			tm = &tableMap{}
			m.tables[t] = tm
		}
	}
	if t.IntKey() {
		if len(tm.ints) == 0 {
			tm.ints = make(map[int64]*Entry, n)
		}
	} else if len(tm.strs) == 0 {
		tm.strs = make(map[string]*Entry, n)
	}
}

// Remove deletes e from the map if it is the entry stored under its key.
func (m *Map) Remove(e *Entry) {
	tm := m.lookup(e.Table)
	if tm == nil {
		return
	}
	k := e.key()
	if e.Table.IntKey() {
		if tm.ints[k.I] == e {
			delete(tm.ints, k.I)
			m.n--
		}
	} else if tm.strs[k.S] == e {
		delete(tm.strs, k.S)
		m.n--
	}
}

// Each calls fn for every entry, in no particular order, until fn
// returns false. fn must not add or remove entries.
func (m *Map) Each(fn func(*Entry) bool) {
	for _, tm := range m.all() {
		if !tm.each(fn) {
			return
		}
	}
}

// EachIn calls fn for every entry of table t, in no particular order, until
// fn returns false. fn must not add or remove entries.
func (m *Map) EachIn(t *mapper.Table, fn func(*Entry) bool) {
	if tm := m.lookup(t); tm != nil {
		tm.each(fn)
	}
}

// each calls fn for every entry until fn returns false; it reports
// whether it went through them all.
func (tm *tableMap) each(fn func(*Entry) bool) bool {
	for _, e := range tm.ints {
		if !fn(e) {
			return false
		}
	}
	for _, e := range tm.strs {
		if !fn(e) {
			return false
		}
	}
	return true
}

// Tables lists the tables that have entries.
func (m *Map) Tables() []*mapper.Table {
	out := make([]*mapper.Table, 0, len(m.tables)+1)
	if m.first != nil && len(m.firstTM.ints)+len(m.firstTM.strs) > 0 {
		out = append(out, m.first)
	}
	for t, tm := range m.tables {
		if len(tm.ints)+len(tm.strs) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// Clear empties the map.
func (m *Map) Clear() {
	clear(m.tables)
	m.first, m.firstTM = nil, tableMap{}
	m.n = 0
}

func (m *Map) lookup(t *mapper.Table) *tableMap {
	if t == m.first && t != nil {
		return &m.firstTM
	}
	return m.tables[t]
}

// all lists the inner maps, the inline one first.
func (m *Map) all() []*tableMap {
	out := make([]*tableMap, 0, len(m.tables)+1)
	if m.first != nil {
		out = append(out, &m.firstTM)
	}
	for _, tm := range m.tables {
		out = append(out, tm)
	}
	return out
}
