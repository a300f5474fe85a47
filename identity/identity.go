// Package identity is the session's identity map: at most one tracked
// object per (table, primary key), with its state and its snapshot.
//
// The package owns its entries' life: an [Entry]'s state, snapshot and
// flags change only through its transition methods. Each checks that the
// entry's state allows it and otherwise returns a [*TransitionError],
// leaving the entry and the map as they were; one that would put two
// entries under one key is refused too. The transitions follow
// SQLAlchemy's object states:
//
//   - [Entry.InitPending]: a new entry is Pending, outside the map (Add).
//   - [Entry.Drop]: Pending to Transient (Delete or Expunge of an added
//     object); [Entry.Repend] back.
//   - [Map.Insert]: Pending to Persistent, snapshotted and in the map.
//   - [Map.Track]: a new entry is Persistent and in the map (a loaded object).
//   - [Entry.MarkDeleted]: Persistent to Deleted; [Entry.Undelete] back,
//     while the DELETE has not run.
//   - [Entry.MarkFlushed]: the DELETE of a Deleted entry ran.
//   - [Map.Detach]: any state to Detached, out of the map
//     (Expunge, commit of a delete, bulk DELETE); [Map.DetachAll] for all.
//
// The restores that a failed commit or savepoint makes from its undo log
// are [Map.Uninsert] (Persistent back to Pending, without its snapshot and out
// of the map; an entry deleted since becomes Transient), [Entry.Unflush],
// [Entry.Undelete], [Map.Reinstate] (a Deleted entry an insert displaced),
// [Map.Reattach] (a Detached entry back to Persistent or Deleted) and
// [Entry.RestoreSnapshot]. Field values a flush wrote, such as generated
// keys, are the caller's to restore: identity does not know them.
//
// The invariant the transitions keep: an entry is in the map only while it
// is Persistent or Deleted, under the key its snapshot holds, which never
// changes while it is there.
//
// A [Map] belongs to one session and, like it, is not safe for concurrent
// use. Lookups by key allocate nothing: integer keys (the common case) live
// in a map of int64 per table, every other key in a map of strings.
package identity

import (
	"fmt"
	"slices"

	"github.com/tallyorm/tally/mapper"
)

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
// Table, Obj and Seq are set when the entry is made ([Entry.InitPending],
// [Map.Track]) and never change. Its state, snapshot and flags change only
// through the transition methods, which refuse a transition its state does
// not allow with a [*TransitionError]; see the package doc for the graph.
//
// An entry holds no key of its own: while it is in the map, its key is the
// one its snapshot holds (a tracked object's primary key cannot change), so
// every tracked object costs one key less. The fields are ordered to pack.
type Entry struct {
	Table *mapper.Table
	Obj   any    // the *T the user holds
	snap  any    // column values as last loaded or flushed; nil while pending
	Seq   uint64 // the order objects entered the session: flush order within a table
	state State
	// flushed marks a Deleted entry whose DELETE has run in the open
	// transaction; it leaves the map at commit.
	flushed bool
	// owned marks an object that entered the session through Add and is
	// registered as belonging to it, so that another session refuses it;
	// the session releases it when it lets the object go.
	owned bool
	// pos is the entry's index in its table's order while it is in the
	// map. It fits in the padding after the flags: entries stay 56 bytes.
	pos uint32
}

// TransitionError is a state transition an entry's state does not allow.
// Inside orm it means a bug, not bad input: orm reports it as an internal
// error (wrapped in its FlushError when a flush meets it).
type TransitionError struct {
	Op    string // the transition: "insert", "delete", ...
	Table string
	From  State
}

// Error names the transition, the state that refused it and the table.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("identity: internal error: cannot %s a %s %s entry", e.Op, e.From, e.Table)
}

func (e *Entry) refuse(op string) error {
	name := ""
	if e.Table != nil {
		name = e.Table.Name
	}
	return &TransitionError{Op: op, Table: name, From: e.state}
}

// State is where the entry stands.
func (e *Entry) State() State { return e.state }

// Snap is the entry's snapshot: the column values as last loaded or
// flushed, nil while the entry is pending. Callers read it, never change it.
func (e *Entry) Snap() any { return e.snap }

// Flushed reports whether the entry is Deleted and its DELETE has run in
// the open transaction.
func (e *Entry) Flushed() bool { return e.flushed }

// Owned reports whether the entry's object is registered as belonging to
// the session (see [Entry.SetOwned]).
func (e *Entry) Owned() bool { return e.owned }

// SetOwned records whether the entry's object is registered as belonging
// to the session. Ownership is the session's bookkeeping, orthogonal to
// the state: any state may own or not.
func (e *Entry) SetOwned(owned bool) { e.owned = owned }

// InitPending makes e a new Pending entry of obj (Add): it has no snapshot
// and is not in the map until it is inserted. e is overwritten, so that
// sessions can hand out entries from a slab.
func (e *Entry) InitPending(t *mapper.Table, obj any, seq uint64) {
	*e = Entry{Table: t, Obj: obj, Seq: seq, state: Pending}
}

// Drop takes a Pending entry out of the session (Delete or Expunge of an
// added object, a failed Add, Rollback): it becomes Transient.
func (e *Entry) Drop() error {
	if e.state != Pending {
		return e.refuse("drop")
	}
	e.state = Transient
	return nil
}

// Repend makes a dropped entry Pending again (a savepoint's rollback
// undoing a Delete of an added object).
func (e *Entry) Repend() error {
	if e.state != Transient || e.snap != nil {
		return e.refuse("re-add")
	}
	e.state = Pending
	return nil
}

// SetSnapshot replaces the snapshot of a Pending (about to be inserted),
// Persistent or Deleted entry: after an UPDATE, a Refresh, a bulk UPDATE, or
// as the second step of [Map.Track] for a batch of loaded objects. snap must
// not be nil and must hold the entry's key: the map finds entries by it.
func (e *Entry) SetSnapshot(snap any) error {
	if snap == nil || e.state == Transient || e.state == Detached {
		return e.refuse("snapshot")
	}
	e.snap = snap
	return nil
}

// RestoreSnapshot puts back a snapshot the entry had before (a failed
// commit or savepoint undoing an UPDATE or Refresh). Unlike SetSnapshot it
// accepts any state, since it restores what was; it refuses only to leave
// an entry in the map without a snapshot.
func (e *Entry) RestoreSnapshot(old any) error {
	if old == nil && (e.state == Persistent || e.state == Deleted) {
		return e.refuse("restore no snapshot to")
	}
	e.snap = old
	return nil
}

// MarkDeleted marks a Persistent entry for deletion (Delete, a cascade,
// delete-orphan, or undoing an Add that had cancelled the mark).
func (e *Entry) MarkDeleted() error {
	if e.state != Persistent {
		return e.refuse("delete")
	}
	e.state, e.flushed = Deleted, false
	return nil
}

// MarkFlushed records that a Deleted entry's DELETE has run in the open
// transaction: the row is gone, and the entry leaves the map at commit.
func (e *Entry) MarkFlushed() error {
	if e.state != Deleted || e.flushed {
		return e.refuse("flush the delete of")
	}
	e.flushed = true
	return nil
}

// Unflush undoes MarkFlushed: the transaction whose DELETE ran was rolled
// back, and the row is there again. The entry stays marked deleted. An
// entry detached since (Expunge) stays detached: there is nothing to undo.
func (e *Entry) Unflush() error {
	switch e.state {
	case Deleted:
		e.flushed = false
	case Detached:
	default:
		return e.refuse("unflush")
	}
	return nil
}

// Undelete cancels the deletion mark of a Deleted entry whose DELETE has
// not run (Add of an object marked deleted, or a failed commit or savepoint
// undoing the mark): it is Persistent again.
func (e *Entry) Undelete() error {
	if e.state != Deleted || e.flushed {
		return e.refuse("undelete")
	}
	e.state = Persistent
	return nil
}

// key is the map key of an entry in the map: its snapshot's. An entry
// without a snapshot is not in the map (put's contract), and remove then
// finds nothing under its object's key either, rather than failing.
func (e *Entry) key() mapper.Key {
	if e.snap == nil {
		return e.Table.Acc.Key(e.Obj)
	}
	return e.Table.Acc.Key(e.snap)
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
	// order holds the table's entries in the order they entered the map,
	// which is the order sessions take them from their slabs: walking it
	// touches entries, objects and snapshots in allocation order, where
	// walking a Go map jumps around the heap and a flush of thousands of
	// unchanged objects spends most of its time on cache misses. A
	// removed entry leaves a nil, compacted away once nils are half the
	// slice and nobody is iterating.
	order     []*Entry
	dead      int
	iterating int
}

// push appends e to the table's order.
func (tm *tableMap) push(e *Entry) {
	e.pos = uint32(len(tm.order))
	tm.order = append(tm.order, e)
}

// holds reports whether e is in the table's order (and so in the map).
func (tm *tableMap) holds(e *Entry) bool {
	return int(e.pos) < len(tm.order) && tm.order[e.pos] == e
}

// drop clears e's place in the table's order.
func (tm *tableMap) drop(e *Entry) {
	if tm.holds(e) {
		tm.order[e.pos] = nil
		tm.dead++
		tm.compact()
	}
}

// compact squeezes the nils out of order once they are half of it, unless
// an iteration is under way (it would skip or repeat entries).
func (tm *tableMap) compact() {
	if tm.iterating > 0 || tm.dead < 16 || tm.dead*2 < len(tm.order) {
		return
	}
	live := tm.order[:0]
	for _, e := range tm.order {
		if e != nil {
			e.pos = uint32(len(live))
			live = append(live, e)
		}
	}
	clear(tm.order[len(live):])
	tm.order, tm.dead = live, 0
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

// Track makes e a Persistent entry of obj, a loaded or attached object
// whose snapshot is snap, and puts it in the map under k, obj's key. It
// reports false if the key is taken (the caller checks Get first): the
// map is left as it was, and e is not to be used. snap may be nil only if the caller sets it with
// [Entry.SetSnapshot] before its next call into the map (a batch of loaded
// objects is snapshotted in one step after they are all tracked).
func (m *Map) Track(e *Entry, t *mapper.Table, obj, snap any, seq uint64, k mapper.Key) bool {
	*e = Entry{Table: t, Obj: obj, snap: snap, Seq: seq, state: Persistent}
	return m.put(e, k)
}

// Insert makes a Pending entry whose INSERT has run Persistent: its
// snapshot is taken unless [Entry.SetSnapshot] gave it one, and it enters
// the map under its key. If a Deleted entry held that key (its row was
// deleted in this transaction and the new object reuses the key), it
// leaves the map and is returned, so that an undo can put it back with
// [Map.Reinstate]. Any other holder of the key is an error: two tracked
// objects would share a row.
func (m *Map) Insert(e *Entry) (displaced *Entry, err error) {
	if e.state != Pending {
		return nil, e.refuse("insert")
	}
	if e.snap == nil {
		e.snap = e.Table.Acc.Snapshot(e.Obj)
	}
	k := e.Table.Acc.Key(e.Obj)
	if old := m.Get(e.Table, k); old != nil {
		if old.state != Deleted {
			return nil, fmt.Errorf("identity: internal error: an inserted %s has the key of a tracked %s object", e.Table.Name, old.state)
		}
		m.remove(old)
		displaced = old
	}
	m.put(e, k)
	e.state = Persistent
	return displaced, nil
}

// Uninsert undoes Insert after the transaction that ran the INSERT was
// rolled back: the entry leaves the map and loses its snapshot. It is
// Pending again, to be inserted by the next flush — unless it was deleted
// since (the two cancel out: it is Transient) or detached (it stays so).
// It returns the state the entry is left in. Field values the flush wrote
// (generated keys, versions) are the caller's to restore.
func (m *Map) Uninsert(e *Entry) (State, error) {
	switch e.state {
	case Persistent:
		e.state = Pending
	case Deleted:
		e.state, e.flushed = Transient, false
	case Detached:
	default:
		return e.state, e.refuse("uninsert")
	}
	m.remove(e)
	e.snap = nil
	return e.state, nil
}

// Reinstate puts back a Deleted entry that [Map.Insert] displaced, once the
// insert is undone.
func (m *Map) Reinstate(e *Entry) error {
	if e.state != Deleted || e.snap == nil {
		return e.refuse("reinstate")
	}
	if !m.put(e, e.key()) {
		return fmt.Errorf("identity: internal error: cannot reinstate a deleted %s entry: its key is taken", e.Table.Name)
	}
	return nil
}

// Detach makes an entry Detached: the session lets it go (Expunge, commit
// of a delete, a bulk DELETE, Rollback) and it leaves the map. A Pending
// entry is dropped, a Transient one (dropped already) just marked, and a
// Detached one left as it is: an undo may meet an entry that Expunge let
// go since. Every state may be detached: Detach cannot fail.
func (m *Map) Detach(e *Entry) {
	m.remove(e)
	e.state, e.flushed = Detached, false
}

// Reattach undoes a Detach of an entry that was in the map (a failed
// commit or savepoint undoing a bulk DELETE or a Delete by key): it is back
// in the map, in state st, which must be Persistent or Deleted.
func (m *Map) Reattach(e *Entry, st State) error {
	if e.state != Detached || (st != Persistent && st != Deleted) || e.snap == nil {
		return e.refuse("reattach")
	}
	if !m.put(e, e.key()) {
		return fmt.Errorf("identity: internal error: cannot reattach a %s entry: its key is taken", e.Table.Name)
	}
	e.state = st
	return nil
}

// DetachAll detaches every entry in the map and empties it (Rollback,
// Close).
func (m *Map) DetachAll() {
	m.Each(func(e *Entry) bool { e.state, e.flushed = Detached, false; return true })
	m.Clear()
}

// put adds e under e.Table and k, replacing nothing. It reports false if
// the key is taken. k must be the key of e's snapshot (set now or before the
// next call into the map), which remove relies on.
func (m *Map) put(e *Entry, k mapper.Key) bool {
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
	tm.push(e)
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
	tm.order = slices.Grow(tm.order, n)
}

// remove deletes e from the map if it is the entry stored under its key.
func (m *Map) remove(e *Entry) {
	tm := m.lookup(e.Table)
	if tm == nil {
		return
	}
	k := e.key()
	if e.Table.IntKey() {
		if tm.ints[k.I] == e {
			delete(tm.ints, k.I)
			tm.drop(e)
			m.n--
		}
	} else if tm.strs[k.S] == e {
		delete(tm.strs, k.S)
		tm.drop(e)
		m.n--
	}
}

// Each calls fn for every entry, table by table in no particular order and
// within a table in the order the entries entered the map, until fn
// returns false. fn must not add or remove entries.
func (m *Map) Each(fn func(*Entry) bool) {
	for _, tm := range m.all() {
		if !tm.each(fn) {
			return
		}
	}
}

// EachIn calls fn for every entry of table t, in the order they entered
// the map, until fn returns false. fn must not add or remove entries.
func (m *Map) EachIn(t *mapper.Table, fn func(*Entry) bool) {
	if tm := m.lookup(t); tm != nil {
		tm.each(fn)
	}
}

// each calls fn for every entry until fn returns false; it reports
// whether it went through them all.
// Entries removed during the walk are skipped; entries added are not met.
func (tm *tableMap) each(fn func(*Entry) bool) bool {
	tm.iterating++
	// A Clear during the walk zeroes the count: keep it from going below
	// zero, which would let a later walk compact under its own feet.
	defer func() { tm.iterating = max(tm.iterating-1, 0); tm.compact() }()
	for _, e := range tm.order[:len(tm.order):len(tm.order)] {
		if e != nil && tm.holds(e) && !fn(e) {
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
