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
// in an open-addressing index per table of 8-byte slots that point into the
// table's entry list (sized more tightly than a Go map), every other key in
// a map of strings.
package identity

import (
	"fmt"
	"reflect"
	"slices"
	"unsafe"

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
// Its table, object and sequence number are set when the entry is made
// ([Entry.InitPending], [Map.Track]) and read through [Entry.Table],
// [Entry.Obj] and [Entry.Seq]. Its state, snapshot and flags change only
// through the transition methods, which refuse a transition its state does
// not allow with a [*TransitionError]; see the package doc for the graph.
//
// An entry holds no key of its own: while it is in the map, its key is the
// one its snapshot holds (a tracked object's primary key cannot change), so
// every tracked object costs one key less. It is 32 bytes, because a
// session holds one per tracked object: the object and the snapshot are
// kept as bare pointers (their types are the table's: the interface
// values are rebuilt from them), and the sequence number shares a word
// with the state and the flags. The sequence keeps its low 48 bits.
type Entry struct {
	table *mapper.Table
	obj   unsafe.Pointer // the *T the user holds
	snap  unsafe.Pointer // column values as last loaded or flushed; nil while pending
	// meta packs the sequence number (the order objects entered the
	// session: flush order within a table) in its low 48 bits, and the
	// state and the flags above them.
	meta uint64
}

const (
	seqBits    = 48
	seqMask    = 1<<seqBits - 1
	stateShift = seqBits
	stateMask  = 0xff << stateShift
	// flushed marks a Deleted entry whose DELETE has run in the open
	// transaction; it leaves the map at commit.
	flagFlushed = 1 << 56
	// owned marks an object that entered the session through Add and is
	// registered as belonging to it, so that another session refuses it;
	// the session releases it when it lets the object go.
	flagOwned = 1 << 57
)

// eface is the layout of an interface value: a type word and a data word,
// which for a pointer type is the pointer itself. An entry keeps only the
// data words of its object and snapshot: every object of a table is a *T
// (the table's PtrType) and every snapshot is of the table's
// SnapshotType, so the type words are the table's, and the interface
// values are rebuilt from the two words, without allocating. mapper's
// accessor reads the data word the same way.
type eface struct{ typ, ptr unsafe.Pointer }

func wordsOf(v any) eface { return *(*eface)(unsafe.Pointer(&v)) }

// typeWord is the type word of interface values holding an rt: a
// reflect.Type's data word is the runtime's type descriptor, which is what
// an interface's type word points to.
func typeWord(rt reflect.Type) unsafe.Pointer { return wordsOf(rt).ptr }

func box(typ, ptr unsafe.Pointer) any {
	if ptr == nil {
		return nil
	}
	return *(*any)(unsafe.Pointer(&eface{typ, ptr}))
}

func (e *Entry) state() State { return State(e.meta >> stateShift) }

func (e *Entry) setState(s State) { e.meta = e.meta&^stateMask | uint64(s)<<stateShift }

func (e *Entry) flag(f uint64) bool { return e.meta&f != 0 }

func (e *Entry) setFlag(f uint64, on bool) {
	if on {
		e.meta |= f
	} else {
		e.meta &^= f
	}
}

// Table is the entry's table.
func (e *Entry) Table() *mapper.Table { return e.table }

// Obj is the object: the *T the user holds.
func (e *Entry) Obj() any {
	if e.table == nil {
		return nil
	}
	return box(typeWord(e.table.PtrType()), e.obj)
}

// Seq is the order the object entered the session: flush order within a
// table.
func (e *Entry) Seq() uint64 { return e.meta & seqMask }

// SetSeq gives the entry another place in its table's flush order (lock
// ordering sorts a table's rows by key before a retry).
func (e *Entry) SetSeq(seq uint64) { e.meta = e.meta&^seqMask | seq&seqMask }

// setSnap stores snap's data word, refusing a snapshot whose type is not
// the table's snapshot type (the entry could not rebuild it).
func (e *Entry) setSnap(snap any) bool {
	if snap == nil {
		e.snap = nil
		return true
	}
	w := wordsOf(snap)
	if w.typ != typeWord(e.table.SnapshotType()) {
		return false
	}
	e.snap = w.ptr
	return true
}

// init makes e a new entry of obj in state st, refusing an object that is
// not a *T of t.
func (e *Entry) init(t *mapper.Table, obj any, seq uint64, st State) bool {
	w := wordsOf(obj)
	if t == nil || w.typ != typeWord(t.PtrType()) || w.ptr == nil {
		return false
	}
	*e = Entry{table: t, obj: w.ptr, meta: seq&seqMask | uint64(st)<<stateShift}
	return true
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
	if e.table != nil {
		name = e.table.Name
	}
	return &TransitionError{Op: op, Table: name, From: e.state()}
}

// State is where the entry stands.
func (e *Entry) State() State { return e.state() }

// Snap is the entry's snapshot: the column values as last loaded or
// flushed, nil while the entry is pending. Callers read it, never change it.
func (e *Entry) Snap() any {
	if e.snap == nil {
		return nil // and e.table may be nil
	}
	return box(typeWord(e.table.SnapshotType()), e.snap)
}

// Flushed reports whether the entry is Deleted and its DELETE has run in
// the open transaction.
func (e *Entry) Flushed() bool { return e.flag(flagFlushed) }

// Owned reports whether the entry's object is registered as belonging to
// the session (see [Entry.SetOwned]).
func (e *Entry) Owned() bool { return e.flag(flagOwned) }

// SetOwned records whether the entry's object is registered as belonging
// to the session. Ownership is the session's bookkeeping, orthogonal to
// the state: any state may own or not.
func (e *Entry) SetOwned(owned bool) { e.setFlag(flagOwned, owned) }

// InitPending makes e a new Pending entry of obj (Add): it has no snapshot
// and is not in the map until it is inserted. e is overwritten, so that
// sessions can hand out entries from a slab; it must be one no map holds.
// obj must be a non-nil *T of t: anything else is refused with a
// [*TransitionError], and e is not to be used.
func (e *Entry) InitPending(t *mapper.Table, obj any, seq uint64) error {
	if !e.init(t, obj, seq, Pending) {
		return &TransitionError{Op: "add a " + fmt.Sprintf("%T", obj) + " as", Table: tableName(t), From: Transient}
	}
	return nil
}

func tableName(t *mapper.Table) string {
	if t == nil {
		return ""
	}
	return t.Name
}

// Drop takes a Pending entry out of the session (Delete or Expunge of an
// added object, a failed Add, Rollback): it becomes Transient.
func (e *Entry) Drop() error {
	if e.state() != Pending {
		return e.refuse("drop")
	}
	e.setState(Transient)
	return nil
}

// Repend makes a dropped entry Pending again (a savepoint's rollback
// undoing a Delete of an added object).
func (e *Entry) Repend() error {
	if e.state() != Transient || e.snap != nil {
		return e.refuse("re-add")
	}
	e.setState(Pending)
	return nil
}

// SetSnapshot replaces the snapshot of a Pending (about to be inserted),
// Persistent or Deleted entry: after an UPDATE, a Refresh, a bulk UPDATE, or
// as the second step of [Map.Track] for a batch of loaded objects. snap must
// not be nil and must hold the entry's key: the map finds entries by it.
// It must be a value the table's accessor's Snapshot returned.
func (e *Entry) SetSnapshot(snap any) error {
	if st := e.state(); snap == nil || st == Transient || st == Detached || !e.setSnap(snap) {
		return e.refuse("snapshot")
	}
	return nil
}

// RestoreSnapshot puts back a snapshot the entry had before (a failed
// commit or savepoint undoing an UPDATE or Refresh). Unlike SetSnapshot it
// accepts any state, since it restores what was; it refuses only to leave
// an entry in the map without a snapshot.
func (e *Entry) RestoreSnapshot(old any) error {
	if st := e.state(); old == nil && (st == Persistent || st == Deleted) || !e.setSnap(old) {
		return e.refuse("restore no snapshot to")
	}
	return nil
}

// MarkDeleted marks a Persistent entry for deletion (Delete, a cascade,
// delete-orphan, or undoing an Add that had cancelled the mark).
func (e *Entry) MarkDeleted() error {
	if e.state() != Persistent {
		return e.refuse("delete")
	}
	e.setState(Deleted)
	e.setFlag(flagFlushed, false)
	return nil
}

// MarkFlushed records that a Deleted entry's DELETE has run in the open
// transaction: the row is gone, and the entry leaves the map at commit.
func (e *Entry) MarkFlushed() error {
	if e.state() != Deleted || e.Flushed() {
		return e.refuse("flush the delete of")
	}
	e.setFlag(flagFlushed, true)
	return nil
}

// Unflush undoes MarkFlushed: the transaction whose DELETE ran was rolled
// back, and the row is there again. The entry stays marked deleted. An
// entry detached since (Expunge) stays detached: there is nothing to undo.
func (e *Entry) Unflush() error {
	switch e.state() {
	case Deleted:
		e.setFlag(flagFlushed, false)
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
	if e.state() != Deleted || e.Flushed() {
		return e.refuse("undelete")
	}
	e.setState(Persistent)
	return nil
}

// key is the map key of an entry in the map: its snapshot's. An entry
// without a snapshot is not in the map (put's contract), and remove then
// finds nothing under its object's key either, rather than failing.
func (e *Entry) key() mapper.Key {
	if e.snap == nil {
		return e.table.Acc.Key(e.Obj())
	}
	return e.table.Acc.Key(e.Snap())
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
	ints intIndex          // single integer keys
	strs map[string]uint32 // every other key, encoded, to its place in order
	// order holds the table's entries in the order they entered the map,
	// which is the order sessions take them from their slabs: walking it
	// touches entries, objects and snapshots in allocation order, where
	// walking a Go map jumps around the heap and a flush of thousands of
	// unchanged objects spends most of its time on cache misses. The
	// indexes map keys to places in it. An entry that leaves the map
	// leaves a nil behind, until the nils are half the slice and nobody is
	// iterating; one that comes back goes to the end.
	order     []*Entry
	dead      int
	iterating int
}

// flagInMap marks an entry in the map. A walk checks it as well as the
// nil of a removed entry's place: a walk that outlives a growth of the
// order reads the old array, which the removal did not clear.
const flagInMap = 1 << 59

// keyAt is the integer key of the entry at place pos of the order (1-based).
func (tm *tableMap) keyAt(pos uint32) int64 { return tm.order[pos-1].key().I }

// at is the entry at place pos, or nil for 0.
func (tm *tableMap) at(pos uint32) *Entry {
	if pos == 0 {
		return nil
	}
	return tm.order[pos-1]
}

// next is the place the next entry pushed takes.
func (tm *tableMap) next() uint32 { return uint32(len(tm.order) + 1) }

// push adds e at the end of the table's order.
func (tm *tableMap) push(e *Entry) {
	tm.order = append(tm.order, e)
	e.setFlag(flagInMap, true)
}

// drop empties e's place pos in the table's order.
func (tm *tableMap) drop(e *Entry, pos uint32) {
	e.setFlag(flagInMap, false)
	tm.order[pos-1] = nil
	tm.dead++
	tm.compact()
}

// compact squeezes the dead places out of order once they are half of it,
// unless an iteration is under way (it would skip or repeat entries), and
// moves the indexes' places with them.
func (tm *tableMap) compact() {
	if tm.iterating > 0 || tm.dead < 16 || tm.dead*2 < len(tm.order) {
		return
	}
	moved := make([]uint32, len(tm.order))
	live := tm.order[:0]
	for i, e := range tm.order {
		if e != nil {
			live = append(live, e)
			moved[i] = uint32(len(live))
		}
	}
	clear(tm.order[len(live):])
	tm.order, tm.dead = live, 0
	tm.ints.renumber(moved)
	for k, p := range tm.strs {
		tm.strs[k] = moved[p-1]
	}
}

// release forgets every entry's place in the order (Clear).
func (tm *tableMap) release() {
	for _, e := range tm.order {
		if e != nil {
			e.setFlag(flagInMap, false)
		}
	}
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
		return tm.at(tm.ints.get(k.I, tm.keyAt))
	}
	return tm.at(tm.strs[k.S])
}

// Track makes e a Persistent entry of obj, a loaded or attached object
// whose snapshot is snap, and puts it in the map under k, obj's key. It
// reports false if the key is taken (the caller checks Get first): the
// map is left as it was, and e is not to be used. snap may be nil only if the caller sets it with
// [Entry.SetSnapshot] before its next call into the map (a batch of loaded
// objects is snapshotted in one step after they are all tracked).
// obj must be a *T of t and snap a value its accessor's Snapshot returned;
// anything else is refused the same way.
func (m *Map) Track(e *Entry, t *mapper.Table, obj, snap any, seq uint64, k mapper.Key) bool {
	_, ok := m.TrackOrGet(e, t, obj, snap, seq, k)
	return ok
}

// TrackOrGet is Track that returns the entry holding k when the key is
// taken, in one lookup: loading many rows asks both for each.
func (m *Map) TrackOrGet(e *Entry, t *mapper.Table, obj, snap any, seq uint64, k mapper.Key) (*Entry, bool) {
	if !e.init(t, obj, seq, Persistent) || !e.setSnap(snap) {
		return nil, false
	}
	if old := m.put(e, k); old != nil {
		return old, false
	}
	return e, true
}

// Insert makes a Pending entry whose INSERT has run Persistent: its
// snapshot is taken unless [Entry.SetSnapshot] gave it one, and it enters
// the map under its key. If a Deleted entry held that key (its row was
// deleted in this transaction and the new object reuses the key), it
// leaves the map and is returned, so that an undo can put it back with
// [Map.Reinstate]. Any other holder of the key is an error: two tracked
// objects would share a row.
func (m *Map) Insert(e *Entry) (displaced *Entry, err error) {
	if e.state() != Pending {
		return nil, e.refuse("insert")
	}
	obj := e.Obj()
	if e.snap == nil && !e.setSnap(e.table.Acc.Snapshot(obj)) {
		return nil, e.refuse("snapshot")
	}
	k := e.table.Acc.Key(obj)
	if old := m.Get(e.table, k); old != nil {
		if old.state() != Deleted {
			return nil, fmt.Errorf("identity: internal error: an inserted %s has the key of a tracked %s object", e.table.Name, old.state())
		}
		m.remove(old)
		displaced = old
	}
	m.put(e, k)
	e.setState(Persistent)
	return displaced, nil
}

// Uninsert undoes Insert after the transaction that ran the INSERT was
// rolled back: the entry leaves the map and loses its snapshot. It is
// Pending again, to be inserted by the next flush — unless it was deleted
// since (the two cancel out: it is Transient) or detached (it stays so).
// It returns the state the entry is left in. Field values the flush wrote
// (generated keys, versions) are the caller's to restore.
func (m *Map) Uninsert(e *Entry) (State, error) {
	switch e.state() {
	case Persistent:
		e.setState(Pending)
	case Deleted:
		e.setState(Transient)
		e.setFlag(flagFlushed, false)
	case Detached:
	default:
		return e.state(), e.refuse("uninsert")
	}
	m.remove(e)
	e.snap = nil
	return e.state(), nil
}

// Reinstate puts back a Deleted entry that [Map.Insert] displaced, once the
// insert is undone.
func (m *Map) Reinstate(e *Entry) error {
	if e.state() != Deleted || e.snap == nil {
		return e.refuse("reinstate")
	}
	if m.put(e, e.key()) != nil {
		return fmt.Errorf("identity: internal error: cannot reinstate a deleted %s entry: its key is taken", e.table.Name)
	}
	return nil
}

// Displace takes a Deleted entry whose DELETE has run out of the map, its
// state and flags kept, as [Map.Insert] does when a new object takes its
// key: for a caller that tracks the new object another way (Upsert, whose
// row is known only after its statement). [Map.Reinstate] puts it back.
func (m *Map) Displace(e *Entry) error {
	if e.state() != Deleted || !e.flag(flagFlushed) || m.Get(e.table, e.key()) != e {
		return e.refuse("displace")
	}
	m.remove(e)
	return nil
}

// Detach makes an entry Detached: the session lets it go (Expunge, commit
// of a delete, a bulk DELETE, Rollback) and it leaves the map. A Pending
// entry is dropped, a Transient one (dropped already) just marked, and a
// Detached one left as it is: an undo may meet an entry that Expunge let
// go since. Every state may be detached: Detach cannot fail.
func (m *Map) Detach(e *Entry) {
	m.remove(e)
	e.setState(Detached)
	e.setFlag(flagFlushed, false)
}

// Reattach undoes a Detach of an entry that was in the map (a failed
// commit or savepoint undoing a bulk DELETE or a Delete by key): it is back
// in the map, in state st, which must be Persistent or Deleted.
func (m *Map) Reattach(e *Entry, st State) error {
	if e.state() != Detached || (st != Persistent && st != Deleted) || e.snap == nil {
		return e.refuse("reattach")
	}
	if m.put(e, e.key()) != nil {
		return fmt.Errorf("identity: internal error: cannot reattach a %s entry: its key is taken", e.table.Name)
	}
	e.setState(st)
	return nil
}

// DetachAll detaches every entry in the map and empties it (Rollback,
// Close).
func (m *Map) DetachAll() {
	m.Each(func(e *Entry) bool { e.setState(Detached); e.setFlag(flagFlushed, false); return true })
	m.Clear()
}

// put adds e under e's table and k, replacing nothing. It returns the
// entry that holds the key if it is taken. k must be the key of e's
// snapshot (set now or before the next call into the map), which remove
// relies on.
func (m *Map) put(e *Entry, k mapper.Key) *Entry {
	tm := m.lookup(e.table)
	if tm == nil {
		if m.first == nil {
			m.first = e.table
			tm = &m.firstTM
		} else {
			if m.tables == nil {
				m.tables = map[*mapper.Table]*tableMap{}
			}
			tm = &tableMap{}
			m.tables[e.table] = tm
		}
	}
	if e.table.IntKey() {
		if old := tm.ints.put(k.I, tm.next(), tm.keyAt); old != 0 {
			return tm.order[old-1]
		}
	} else {
		if tm.strs == nil {
			tm.strs = map[string]uint32{}
		}
		if old := tm.strs[k.S]; old != 0 {
			return tm.order[old-1]
		}
		tm.strs[k.S] = tm.next()
	}
	tm.push(e)
	m.n++
	return nil
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
		tm.ints.reserve(n)
	} else if len(tm.strs) == 0 {
		tm.strs = make(map[string]uint32, n)
	}
	if tm.order == nil {
		tm.order = newOrder(n)
	} else {
		tm.order = slices.Grow(tm.order, n)
	}
}

// remove deletes e from the map if it is the entry stored under its key.
func (m *Map) remove(e *Entry) {
	tm := m.lookup(e.table)
	if tm == nil {
		return
	}
	k := e.key()
	if e.table.IntKey() {
		if pos := tm.ints.get(k.I, tm.keyAt); pos != 0 && tm.order[pos-1] == e {
			tm.ints.remove(k.I, pos)
			tm.drop(e, pos)
			m.n--
		}
	} else if pos := tm.strs[k.S]; pos != 0 && tm.order[pos-1] == e {
		delete(tm.strs, k.S)
		tm.drop(e, pos)
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

// EachPersistentIn calls fn for every Persistent entry of table t, with
// its object and snapshot, in the order they entered the map, until fn
// returns false: what a flush diffs. The interface values are rebuilt with
// the table's type words looked up once, not per entry (see
// [Entry.Obj]). fn must not add or remove entries.
func (m *Map) EachPersistentIn(t *mapper.Table, fn func(e *Entry, obj, snap any) bool) {
	tm := m.lookup(t)
	if tm == nil {
		return
	}
	objType, snapType := typeWord(t.PtrType()), typeWord(t.SnapshotType())
	tm.each(func(e *Entry) bool {
		if e.state() != Persistent {
			return true
		}
		return fn(e, box(objType, e.obj), box(snapType, e.snap))
	})
}

// EachChangedIn calls fn, as [Map.EachPersistentIn] does, for every
// Persistent entry of table t for which cc.Unchanged(obj, snap) is false:
// what a flush updates. The walk is one loop over the table's entries
// that calls cc directly, with no callback per entry in between: a flush
// of thousands of unchanged objects is this loop and the comparisons.
// fn must not add or remove entries.
func (m *Map) EachChangedIn(t *mapper.Table, cc mapper.ChangeChecker, fn func(e *Entry, obj, snap any) bool) {
	tm := m.lookup(t)
	if tm == nil {
		return
	}
	objType, snapType := typeWord(t.PtrType()), typeWord(t.SnapshotType())
	tm.iterating++
	defer func() { tm.iterating = max(tm.iterating-1, 0); tm.compact() }()
	const live = uint64(Persistent)<<stateShift | flagInMap
	for _, e := range tm.order[:len(tm.order):len(tm.order)] {
		if e == nil || e.meta&(stateMask|flagInMap) != live {
			continue
		}
		obj, snap := box(objType, e.obj), box(snapType, e.snap)
		if !cc.Unchanged(obj, snap) && !fn(e, obj, snap) {
			return
		}
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
		if e != nil && e.flag(flagInMap) && !fn(e) {
			return false
		}
	}
	return true
}

// Tables lists the tables that have entries.
func (m *Map) Tables() []*mapper.Table {
	out := make([]*mapper.Table, 0, len(m.tables)+1)
	if m.first != nil && m.firstTM.ints.n+len(m.firstTM.strs) > 0 {
		out = append(out, m.first)
	}
	for t, tm := range m.tables {
		if tm.ints.n+len(tm.strs) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// Clear empties the map.
func (m *Map) Clear() {
	for _, tm := range m.all() {
		tm.release()
		if tm.iterating == 0 {
			tm.recycle()
		}
	}
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
