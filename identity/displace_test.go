package identity_test

import (
	"testing"

	"github.com/tallyorm/tally/identity"
)

// TestDisplaceTakesOnlyAFlushedDeleteOutOfTheMap checks that Displace
// refuses a live or unflushed deleted entry, takes a flushed deleted one
// out of the map with its state and flag kept (so a new entry can take
// the key), and that Reinstate puts it back once the key is free.
func TestDisplaceTakesOnlyAFlushedDeleteOutOfTheMap(t *testing.T) {
	for _, tab := range tables(t)[:2] {
		var m identity.Map
		var old any
		if tab.IntKey() {
			old = &intModel{ID: 7}
		} else {
			old = &strModel{Code: "fr"}
		}
		k := tab.Acc.Key(old)
		oe := new(identity.Entry)
		m.Track(oe, tab, old, tab.Acc.Snapshot(old), 1, k)
		if err := m.Displace(oe); err == nil {
			t.Fatal("Displace of a persistent entry was accepted")
		}
		if err := oe.MarkDeleted(); err != nil {
			t.Fatal(err)
		}
		if err := m.Displace(oe); err == nil {
			t.Fatal("Displace of a deleted entry whose DELETE has not run was accepted")
		}
		if err := oe.MarkFlushed(); err != nil {
			t.Fatal(err)
		}
		if err := m.Displace(oe); err != nil || m.Get(tab, k) != nil || m.Len() != 0 {
			t.Fatalf("Displace: %v, Get %p, Len %d; want the key free", err, m.Get(tab, k), m.Len())
		}
		if oe.State() != identity.Deleted || !oe.Flushed() {
			t.Fatalf("displaced entry is %v, flushed %v; want deleted and flushed", oe.State(), oe.Flushed())
		}
		if err := m.Displace(oe); err == nil {
			t.Fatal("a second Displace was accepted")
		}
		ne := new(identity.Entry)
		if !m.Track(ne, tab, old, tab.Acc.Snapshot(old), 2, k) {
			t.Fatal("Track of a new entry under the displaced key was refused")
		}
		if err := m.Reinstate(oe); err == nil {
			t.Fatal("Reinstate over the new entry was accepted")
		}
		m.Detach(ne)
		if err := m.Reinstate(oe); err != nil || m.Get(tab, k) != oe {
			t.Fatalf("Reinstate: %v; want the deleted entry back under its key", err)
		}
	}
}
