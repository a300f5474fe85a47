package identity_test

import (
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

// TestMap puts, finds and removes entries of several tables — the first
// lives inline, the others in the map — and keeps Len, Each, EachIn and
// Tables in agreement.
func TestMap(t *testing.T) {
	reg := mapper.NewRegistry()
	tabs := make([]*mapper.Table, 0, 3)
	for _, m := range []any{intModel{}, strModel{}, pairModel{}} {
		tab, err := reg.TableOf(m)
		if err != nil {
			t.Fatal(err)
		}
		tabs = append(tabs, tab)
	}
	objs := []any{&intModel{ID: 7}, &strModel{Code: "x"}, &pairModel{A: "a", B: 1}}
	var m identity.Map // the zero Map is ready
	var ents []*identity.Entry
	var keys []mapper.Key
	for i, o := range objs {
		tab := tabs[i]
		// The snapshot is the object itself here: Remove finds the key in it.
		e := &identity.Entry{Table: tab, Obj: o, Snap: o, State: identity.Persistent}
		k := tab.Acc.Key(o)
		if !m.Put(e, k) {
			t.Fatalf("Put %T refused", o)
		}
		if m.Put(&identity.Entry{Table: tab, Obj: o, Snap: o}, k) {
			t.Fatalf("second Put of the same key of %T accepted", o)
		}
		ents = append(ents, e)
		keys = append(keys, k)
	}
	if m.Len() != 3 || len(m.Tables()) != 3 {
		t.Fatalf("Len %d, Tables %d", m.Len(), len(m.Tables()))
	}
	k, _ := tabs[0].KeyOf(7)
	if m.Get(tabs[0], k) != ents[0] {
		t.Fatal("Get of the int key")
	}
	k, _ = tabs[2].KeyOf("a", 1)
	if m.Get(tabs[2], k) != ents[2] {
		t.Fatal("Get of the composite key")
	}
	k, _ = tabs[1].KeyOf("y")
	if m.Get(tabs[1], k) != nil {
		t.Fatal("Get of a missing key")
	}
	n := 0
	m.Each(func(*identity.Entry) bool { n++; return true })
	if n != 3 {
		t.Fatalf("Each saw %d", n)
	}
	n = 0
	m.EachIn(tabs[1], func(*identity.Entry) bool { n++; return true })
	if n != 1 {
		t.Fatalf("EachIn saw %d", n)
	}
	m.Remove(ents[0])
	if m.Len() != 2 || len(m.Tables()) != 2 || m.Get(tabs[0], keys[0]) != nil {
		t.Fatal("Remove of the inline table's entry")
	}
	m.Clear()
	if m.Len() != 0 || len(m.Tables()) != 0 {
		t.Fatal("Clear")
	}
	if !m.Put(ents[1], keys[1]) || m.Get(tabs[1], keys[1]) != ents[1] {
		t.Fatal("Put after Clear")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[identity.State]string{identity.Pending: "pending", identity.Detached: "detached", 9: "invalid"} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", s, got, want)
		}
	}
}
