package identity

import (
	"math/rand/v2"
	"testing"
)

// TestIntIndexAgreesWithAMap runs random puts, removals and lookups on an
// intIndex and on a Go map side by side: every answer must agree, through
// growth, reservations and the back-shifting of removals, for sequential
// keys (the common case) and for keys that collide on purpose.
func TestIntIndexAgreesWithAMap(t *testing.T) {
	for _, spread := range []int64{1, 1 << 40, 3} {
		rng := rand.New(rand.NewPCG(1, uint64(spread)))
		var x intIndex
		ref := map[int64]*Entry{}
		for step := range 20000 {
			k := rng.Int64N(3000) * spread
			switch op := rng.IntN(10); {
			case op < 5:
				e := new(Entry)
				old := x.put(k, e)
				if want := ref[k]; old != want {
					t.Fatalf("spread %d step %d: put(%d) found %p, want %p", spread, step, k, old, want)
				}
				if old == nil {
					ref[k] = e
				}
			case op < 8:
				e := ref[k]
				if rng.IntN(4) == 0 {
					e = new(Entry) // not the holder: nothing is removed
				}
				got := x.remove(k, e)
				want := e != nil && ref[k] == e
				if got != want {
					t.Fatalf("spread %d step %d: remove(%d) = %v, want %v", spread, step, k, got, want)
				}
				if want {
					delete(ref, k)
				}
			case op < 9:
				x.reserve(rng.IntN(500))
			default:
				if got, want := x.get(k), ref[k]; got != want {
					t.Fatalf("spread %d step %d: get(%d) = %p, want %p", spread, step, k, got, want)
				}
			}
			if x.n != len(ref) {
				t.Fatalf("spread %d step %d: %d keys, want %d", spread, step, x.n, len(ref))
			}
		}
		for k, e := range ref {
			if got := x.get(k); got != e {
				t.Fatalf("spread %d: get(%d) = %p at the end, want %p", spread, k, got, e)
			}
		}
	}
}
