package identity

import (
	"math/rand/v2"
	"testing"
)

// TestIntIndexAgreesWithAMap runs random puts, removals and lookups on an
// intIndex and on a Go map side by side: every answer must agree, through
// growth, reservations, renumbering and the back-shifting of removals, for
// sequential keys (the common case), keys that collide on purpose, and
// keys whose tags collide (equal high halves of their hashes), which only
// the key read back tells apart.
// fibInverse is the inverse of tagOf's multiplier modulo 2^64: the keys
// i*fibInverse hash to i, so all of them share the tag 0.
const fibInverse = -1018231460777725123

func TestIntIndexAgreesWithAMap(t *testing.T) {
	for _, spread := range []int64{1, 1 << 40, 3, fibInverse} {
		rng := rand.New(rand.NewPCG(1, uint64(spread)))
		var x intIndex
		var keys []int64 // the key at each place, as the order would hold it
		ref := map[int64]uint32{}
		key := func(pos uint32) int64 { return keys[pos-1] }
		for step := range 20000 {
			k := rng.Int64N(3000) * spread
			switch op := rng.IntN(20); {
			case op < 10:
				keys = append(keys, k)
				pos := uint32(len(keys))
				old := x.put(k, pos, key)
				if want := ref[k]; old != want {
					t.Fatalf("spread %d step %d: put(%d) found %d, want %d", spread, step, k, old, want)
				}
				if old == 0 {
					ref[k] = pos
				}
			case op < 16:
				pos := ref[k]
				if rng.IntN(4) == 0 {
					pos = uint32(len(keys) + 1) // not the holder: nothing is removed
				}
				got := x.remove(k, pos)
				want := pos != 0 && ref[k] == pos
				if got != want {
					t.Fatalf("spread %d step %d: remove(%d) = %v, want %v", spread, step, k, got, want)
				}
				if want {
					delete(ref, k)
				}
			case op < 17:
				x.reserve(rng.IntN(500))
			case op < 18:
				// Compact: the live places move to the front, in order.
				moved := make([]uint32, len(keys))
				var live []int64
				for i, kk := range keys {
					if ref[kk] == uint32(i+1) {
						live = append(live, kk)
						moved[i] = uint32(len(live))
						ref[kk] = moved[i]
					}
				}
				keys = live
				x.renumber(moved)
			default:
				if got, want := x.get(k, key), ref[k]; got != want {
					t.Fatalf("spread %d step %d: get(%d) = %d, want %d", spread, step, k, got, want)
				}
			}
			if x.n != len(ref) {
				t.Fatalf("spread %d step %d: %d keys, want %d", spread, step, x.n, len(ref))
			}
		}
		for k, pos := range ref {
			if got := x.get(k, key); got != pos {
				t.Fatalf("spread %d: get(%d) = %d at the end, want %d", spread, k, got, pos)
			}
		}
	}
}
