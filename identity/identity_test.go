package identity_test

import (
	"errors"
	"testing"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

type intModel struct {
	ID int64 `db:"id,pk"`
}

type strModel struct {
	Code string `db:"code,pk"`
}

type pairModel struct {
	A string `db:"a,pk"`
	B int    `db:"b,pk"`
}

// tables registers the test models: an integer key, a string key and a
// composite key, so that entries land in the map's inline table and in its
// other tables, under int and string keys.
func tables(t *testing.T) []*mapper.Table {
	t.Helper()
	reg := mapper.NewRegistry()
	var tabs []*mapper.Table
	for _, m := range []any{intModel{}, strModel{}, pairModel{}} {
		tab, err := reg.TableOf(m)
		if err != nil {
			t.Fatal(err)
		}
		tabs = append(tabs, tab)
	}
	return tabs
}

// TestMap tracks, finds and detaches entries of several tables — the first
// lives inline, the others in the map — and keeps Len, Each, EachIn and
// Tables in agreement.
func TestMap(t *testing.T) {
	tabs := tables(t)
	objs := []any{&intModel{ID: 7}, &strModel{Code: "x"}, &pairModel{A: "a", B: 1}}
	var m identity.Map // the zero Map is ready
	var ents []*identity.Entry
	var keys []mapper.Key
	for i, o := range objs {
		tab := tabs[i]
		e := new(identity.Entry)
		k := tab.Acc.Key(o)
		if !m.Track(e, tab, o, tab.Acc.Snapshot(o), uint64(i), k) {
			t.Fatalf("Track %T refused", o)
		}
		if m.Track(new(identity.Entry), tab, o, tab.Acc.Snapshot(o), 9, k) {
			t.Fatalf("second Track of the same key of %T accepted", o)
		}
		if e.State() != identity.Persistent {
			t.Fatalf("tracked %T is %v, want persistent", o, e.State())
		}
		ents = append(ents, e)
		keys = append(keys, k)
	}
	if m.Len() != 3 || len(m.Tables()) != 3 {
		t.Fatalf("Len %d, Tables %d; want 3, 3", m.Len(), len(m.Tables()))
	}
	k, _ := tabs[0].KeyOf(7)
	if m.Get(tabs[0], k) != ents[0] {
		t.Fatal("Get of the int key did not find its entry")
	}
	k, _ = tabs[2].KeyOf("a", 1)
	if m.Get(tabs[2], k) != ents[2] {
		t.Fatal("Get of the composite key did not find its entry")
	}
	k, _ = tabs[1].KeyOf("y")
	if got := m.Get(tabs[1], k); got != nil {
		t.Fatalf("Get of a missing key: %v, want nil", got)
	}
	n := 0
	m.Each(func(*identity.Entry) bool { n++; return true })
	if n != 3 {
		t.Fatalf("Each saw %d, want 3", n)
	}
	n = 0
	m.EachIn(tabs[1], func(*identity.Entry) bool { n++; return true })
	if n != 1 {
		t.Fatalf("EachIn saw %d, want 1", n)
	}
	m.Detach(ents[0])
	if m.Len() != 2 || len(m.Tables()) != 2 || m.Get(tabs[0], keys[0]) != nil {
		t.Fatalf("after Detach of the inline table's entry: Len %d, Tables %d, want 2, 2 and no entry", m.Len(), len(m.Tables()))
	}
	m.DetachAll()
	if m.Len() != 0 || len(m.Tables()) != 0 {
		t.Fatalf("after DetachAll: Len %d, Tables %d, want 0, 0", m.Len(), len(m.Tables()))
	}
	for _, e := range ents {
		if e.State() != identity.Detached {
			t.Fatalf("after DetachAll an entry is %v, want detached", e.State())
		}
	}
	if !m.Track(ents[1], tabs[1], objs[1], tabs[1].Acc.Snapshot(objs[1]), 1, keys[1]) || m.Get(tabs[1], keys[1]) != ents[1] {
		t.Fatal("Track after DetachAll did not put the entry back")
	}
}

// start builds an entry of an intModel in a given state, as a session's
// transitions would have left it, in a map of its own.
type start struct {
	name  string
	build func(m *identity.Map, tab *mapper.Table, o *intModel) (*identity.Entry, error)
}

func starts() []start {
	pending := func(m *identity.Map, tab *mapper.Table, o *intModel) (*identity.Entry, error) {
		e := new(identity.Entry)
		e.InitPending(tab, o, 1)
		return e, nil
	}
	persistent := func(m *identity.Map, tab *mapper.Table, o *intModel) (*identity.Entry, error) {
		e := new(identity.Entry)
		m.Track(e, tab, o, tab.Acc.Snapshot(o), 1, tab.Acc.Key(o))
		return e, nil
	}
	deleted := func(m *identity.Map, tab *mapper.Table, o *intModel) (*identity.Entry, error) {
		e, _ := persistent(m, tab, o)
		return e, e.MarkDeleted()
	}
	return []start{
		{"transient", func(m *identity.Map, tab *mapper.Table, o *intModel) (*identity.Entry, error) {
			e, _ := pending(m, tab, o)
			return e, e.Drop()
		}},
		{"pending", pending},
		{"persistent", persistent},
		{"deleted", deleted},
		{"flushed", func(m *identity.Map, tab *mapper.Table, o *intModel) (*identity.Entry, error) {
			e, err := deleted(m, tab, o)
			if err != nil {
				return nil, err
			}
			return e, e.MarkFlushed()
		}},
		{"detached", func(m *identity.Map, tab *mapper.Table, o *intModel) (*identity.Entry, error) {
			e, _ := persistent(m, tab, o)
			m.Detach(e)
			return e, nil
		}},
	}
}

// TestTransitions applies every transition to an entry in every state and
// checks the outcome: the state it leads to, whether the entry is then in
// the map, or that the transition is refused with a *TransitionError that
// leaves the entry as it was.
func TestTransitions(t *testing.T) {
	type outcome struct {
		state identity.State
		ok    bool // false: the transition is refused with a *TransitionError
		inMap bool
	}
	ok := func(s identity.State, inMap bool) outcome { return outcome{s, true, inMap} }
	refused := outcome{}
	transitions := []struct {
		name string
		do   func(m *identity.Map, e *identity.Entry) error
		want map[string]outcome // by start; a start not listed is refused
	}{
		{"Drop", func(m *identity.Map, e *identity.Entry) error { return e.Drop() },
			map[string]outcome{"pending": ok(identity.Transient, false)}},
		{"Repend", func(m *identity.Map, e *identity.Entry) error { return e.Repend() },
			map[string]outcome{"transient": ok(identity.Pending, false)}},
		{"Insert", func(m *identity.Map, e *identity.Entry) error { _, err := m.Insert(e); return err },
			map[string]outcome{"pending": ok(identity.Persistent, true)}},
		{"MarkDeleted", func(m *identity.Map, e *identity.Entry) error { return e.MarkDeleted() },
			map[string]outcome{"persistent": ok(identity.Deleted, true)}},
		{"MarkFlushed", func(m *identity.Map, e *identity.Entry) error { return e.MarkFlushed() },
			map[string]outcome{"deleted": ok(identity.Deleted, true)}},
		{"Unflush", func(m *identity.Map, e *identity.Entry) error { return e.Unflush() },
			map[string]outcome{
				"deleted": ok(identity.Deleted, true), "flushed": ok(identity.Deleted, true),
				"detached": ok(identity.Detached, false),
			}},
		{"Undelete", func(m *identity.Map, e *identity.Entry) error { return e.Undelete() },
			map[string]outcome{"deleted": ok(identity.Persistent, true)}},
		{"Detach", func(m *identity.Map, e *identity.Entry) error { m.Detach(e); return nil },
			map[string]outcome{
				"transient": ok(identity.Detached, false), "pending": ok(identity.Detached, false),
				"persistent": ok(identity.Detached, false), "deleted": ok(identity.Detached, false),
				"flushed": ok(identity.Detached, false), "detached": ok(identity.Detached, false),
			}},
		{"Reattach", func(m *identity.Map, e *identity.Entry) error { return m.Reattach(e, identity.Deleted) },
			map[string]outcome{"detached": ok(identity.Deleted, true)}},
		{"Uninsert", func(m *identity.Map, e *identity.Entry) error { _, err := m.Uninsert(e); return err },
			map[string]outcome{
				"persistent": ok(identity.Pending, false), "deleted": ok(identity.Transient, false),
				"flushed": ok(identity.Transient, false), "detached": ok(identity.Detached, false),
			}},
		{"RestoreSnapshot(nil)", func(m *identity.Map, e *identity.Entry) error { return e.RestoreSnapshot(nil) },
			map[string]outcome{
				"transient": ok(identity.Transient, false), "pending": ok(identity.Pending, false),
				"detached": ok(identity.Detached, false),
			}},
		{"SetSnapshot", func(m *identity.Map, e *identity.Entry) error { return e.SetSnapshot(&intModel{ID: 5}) },
			map[string]outcome{
				"pending": ok(identity.Pending, false), "persistent": ok(identity.Persistent, true),
				"deleted": ok(identity.Deleted, true), "flushed": ok(identity.Deleted, true),
			}},
	}
	tab := tables(t)[0]
	for _, tr := range transitions {
		for _, st := range starts() {
			t.Run(tr.name+"/"+st.name, func(t *testing.T) {
				var m identity.Map
				o := &intModel{ID: 5}
				e, err := st.build(&m, tab, o)
				if err != nil {
					t.Fatalf("building a %s entry: %v", st.name, err)
				}
				before, beforeFlushed, beforeLen := e.State(), e.Flushed(), m.Len()
				err = tr.do(&m, e)
				want := tr.want[st.name]
				if want == refused {
					var te *identity.TransitionError
					if !errors.As(err, &te) {
						t.Fatalf("error %v, want a *TransitionError", err)
					}
					if te.From != before || te.Table != tab.Name {
						t.Errorf("TransitionError From %v Table %q, want %v %q", te.From, te.Table, before, tab.Name)
					}
					if e.State() != before || e.Flushed() != beforeFlushed || m.Len() != beforeLen {
						t.Errorf("refused transition changed the entry: state %v flushed %v len %d, want %v %v %d",
							e.State(), e.Flushed(), m.Len(), before, beforeFlushed, beforeLen)
					}
					return
				}
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				if e.State() != want.state {
					t.Errorf("state %v, want %v", e.State(), want.state)
				}
				if got := m.Get(tab, tab.Acc.Key(o)) == e; got != want.inMap {
					t.Errorf("in the map: %v, want %v", got, want.inMap)
				}
			})
		}
	}
}

// TestFlushedDelete follows a delete through its flush and the rollback
// that undoes it: MarkFlushed sets Flushed, which Undelete refuses until
// Unflush clears it, and Detach clears it too.
func TestFlushedDelete(t *testing.T) {
	tab := tables(t)[0]
	var m identity.Map
	o := &intModel{ID: 1}
	e := new(identity.Entry)
	m.Track(e, tab, o, tab.Acc.Snapshot(o), 1, tab.Acc.Key(o))
	if err := e.MarkDeleted(); err != nil {
		t.Fatal(err)
	}
	if err := e.MarkFlushed(); err != nil || !e.Flushed() {
		t.Fatalf("MarkFlushed: %v, Flushed %v; want nil, true", err, e.Flushed())
	}
	if err := e.MarkFlushed(); err == nil {
		t.Fatal("a second MarkFlushed was accepted")
	}
	if err := e.Undelete(); err == nil {
		t.Fatal("Undelete of a flushed delete was accepted: its row is gone")
	}
	if err := e.Unflush(); err != nil || e.Flushed() {
		t.Fatalf("Unflush: %v, Flushed %v; want nil, false", err, e.Flushed())
	}
	if err := e.Undelete(); err != nil || e.State() != identity.Persistent {
		t.Fatalf("Undelete: %v, state %v; want nil, persistent", err, e.State())
	}
}

// TestInsertDisplacesDeleted checks that an insert reusing the key of an
// entry deleted in the transaction takes its place in the map, that
// Reinstate puts the deleted entry back once the insert is undone, and
// that an insert over a live entry's key is refused.
func TestInsertDisplacesDeleted(t *testing.T) {
	tab := tables(t)[0]
	var m identity.Map
	old := &intModel{ID: 3}
	oe := new(identity.Entry)
	m.Track(oe, tab, old, tab.Acc.Snapshot(old), 1, tab.Acc.Key(old))

	live := new(identity.Entry)
	live.InitPending(tab, &intModel{ID: 3}, 2)
	if _, err := m.Insert(live); err == nil {
		t.Fatal("Insert over a persistent entry's key was accepted")
	}
	if live.State() != identity.Pending || m.Get(tab, tab.Acc.Key(old)) != oe {
		t.Fatalf("refused Insert changed things: state %v", live.State())
	}

	if err := oe.MarkDeleted(); err != nil {
		t.Fatal(err)
	}
	if err := oe.MarkFlushed(); err != nil {
		t.Fatal(err)
	}
	ne := new(identity.Entry)
	ne.InitPending(tab, &intModel{ID: 3}, 3)
	displaced, err := m.Insert(ne)
	if err != nil || displaced != oe {
		t.Fatalf("Insert: displaced %p, %v; want %p, nil", displaced, err, oe)
	}
	if m.Get(tab, tab.Acc.Key(old)) != ne || ne.Snap() == nil {
		t.Fatal("the inserted entry is not in the map under its key with a snapshot")
	}
	if err := m.Reinstate(oe); err == nil {
		t.Fatal("Reinstate over the inserted entry was accepted")
	}
	st, err := m.Uninsert(ne)
	if err != nil || st != identity.Pending || ne.Snap() != nil {
		t.Fatalf("Uninsert: %v, %v, snapshot %v; want pending, nil, nil", st, err, ne.Snap())
	}
	if err := m.Reinstate(oe); err != nil || m.Get(tab, tab.Acc.Key(old)) != oe {
		t.Fatalf("Reinstate: %v; want the deleted entry back in the map", err)
	}
}

// TestOwnedIsIndependentOfState checks that ownership survives the state
// transitions: it is the session's bookkeeping, not a state.
func TestOwnedIsIndependentOfState(t *testing.T) {
	tab := tables(t)[0]
	var m identity.Map
	e := new(identity.Entry)
	e.InitPending(tab, &intModel{ID: 4}, 1)
	e.SetOwned(true)
	if _, err := m.Insert(e); err != nil {
		t.Fatal(err)
	}
	if !e.Owned() {
		t.Fatal("Insert cleared Owned")
	}
	e.SetOwned(false)
	if e.Owned() {
		t.Fatal("SetOwned(false) left Owned set")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[identity.State]string{identity.Pending: "pending", identity.Detached: "detached", 9: "invalid"} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", s, got, want)
		}
	}
}

// TestEachInKeepsEntryOrder walks a table's entries in the order they
// entered the map, skipping the detached ones — before and after enough
// detaches to compact the order, and for entries detached and reattached
// (which go to the end) or detached during the walk.
func TestEachInKeepsEntryOrder(t *testing.T) {
	for _, tab := range tables(t)[:2] {
		var m identity.Map
		var ents []*identity.Entry
		for i := range 100 {
			var o any = &intModel{ID: int64(1000 - i)} // keys descending: not hash or key order
			if tab.Name != tables(t)[0].Name {
				o = &strModel{Code: string(rune('A' + i))}
			}
			e := new(identity.Entry)
			if !m.Track(e, tab, o, tab.Acc.Snapshot(o), uint64(i), tab.Acc.Key(o)) {
				t.Fatalf("%s: Track %d refused", tab.Name, i)
			}
			ents = append(ents, e)
		}
		check := func(when string, want []*identity.Entry) {
			t.Helper()
			var got []*identity.Entry
			m.EachIn(tab, func(e *identity.Entry) bool { got = append(got, e); return true })
			if len(got) != len(want) {
				t.Fatalf("%s %s: EachIn met %d entries, want %d", tab.Name, when, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s %s: entry %d is seq %d, want seq %d", tab.Name, when, i, got[i].Seq(), want[i].Seq())
				}
			}
			if m.Len() != len(want) {
				t.Fatalf("%s %s: Len %d, want %d", tab.Name, when, m.Len(), len(want))
			}
		}
		check("after tracking", ents)
		// Detach 60 of 100, past the point where the order is compacted:
		// every fifth of the first 75 and the last 25 stay, in order.
		var kept []*identity.Entry
		for i, e := range ents {
			if i%5 != 0 && i < 75 {
				m.Detach(e)
			} else {
				kept = append(kept, e)
			}
		}
		check("after detaching", kept)
		// Reattach one: it goes to the end.
		if err := m.Reattach(ents[1], identity.Persistent); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, ents[1])
		check("after reattaching", kept)
		// Detach during the walk: the detached entries are not met.
		var got []*identity.Entry
		m.EachIn(tab, func(e *identity.Entry) bool {
			if e == kept[0] {
				m.Detach(kept[1])
				m.Detach(kept[2])
			}
			got = append(got, e)
			return true
		})
		want := append([]*identity.Entry{kept[0]}, kept[3:]...)
		if len(got) != len(want) {
			t.Fatalf("%s: a walk detaching two met %d entries, want %d", tab.Name, len(got), len(want))
		}
		check("after detaching during a walk", want)
	}
}

// TestClearedMapsBuffersStartEmpty clears maps whose index and entry list
// go back for reuse, and checks that a map built after them finds only its
// own entries, in its own order: a recycled buffer must carry nothing over.
func TestClearedMapsBuffersStartEmpty(t *testing.T) {
	tab := tables(t)[0]
	fill := func(m *identity.Map, from, n int) []*identity.Entry {
		m.Reserve(tab, n)
		ents := make([]*identity.Entry, n)
		for i := range ents {
			o := &intModel{ID: int64(from + i)}
			ents[i] = new(identity.Entry)
			if !m.Track(ents[i], tab, o, tab.Acc.Snapshot(o), uint64(i), tab.Acc.Key(o)) {
				t.Fatalf("Track %d refused", from+i)
			}
		}
		return ents
	}
	for round := range 5 {
		var old identity.Map
		fill(&old, 0, 100)
		old.DetachAll()
		var m identity.Map
		from := 1000 * (round + 1)
		want := fill(&m, from, 100)
		if got := m.Get(tab, mapper.Key{I: 5}); got != nil {
			t.Fatalf("round %d: key 5 of a cleared map found in a new one", round)
		}
		var got []*identity.Entry
		m.EachIn(tab, func(e *identity.Entry) bool { got = append(got, e); return true })
		if len(got) != len(want) {
			t.Fatalf("round %d: EachIn met %d entries, want %d", round, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] || m.Get(tab, mapper.Key{I: int64(from + i)}) != want[i] {
				t.Fatalf("round %d: entry %d is not the one tracked", round, i)
			}
		}
	}
}
