package identity

import "math/bits"

// intIndex maps single integer keys to entries: the identity map's common
// case, and most of what it costs per tracked object. A Go map sizes its
// tables in powers of two, so a session of 1,000 rows pays for 2,048
// slots; this open-addressing table, filled up to 4/5, grows by a quarter,
// and maps a key's hash onto its slots by multiplication rather
// than a mask, so any size works. Collisions probe linearly, and a removal
// shifts the run after it back (no tombstones), so lookups stay short
// however many removals a long session makes.
type intIndex struct {
	slots []intSlot
	n     int
}

type intSlot struct {
	key int64
	e   *Entry // nil: empty
}

// home is the slot where k's probe starts: its hash (Fibonacci hashing
// spreads sequential keys) scaled onto the table.
func (x *intIndex) home(k int64) int {
	hi, _ := bits.Mul64(uint64(k)*0x9E3779B97F4A7C15, uint64(len(x.slots)))
	return int(hi)
}

func (x *intIndex) get(k int64) *Entry {
	if len(x.slots) == 0 {
		return nil
	}
	for i := x.home(k); ; {
		s := &x.slots[i]
		if s.e == nil {
			return nil
		}
		if s.key == k {
			return s.e
		}
		if i++; i == len(x.slots) {
			i = 0
		}
	}
}

// put stores e under k unless the key is taken, and returns the holder then.
func (x *intIndex) put(k int64, e *Entry) *Entry {
	if x.full(x.n + 1) {
		x.grow(x.n + 1)
	}
	for i := x.home(k); ; {
		s := &x.slots[i]
		if s.e == nil {
			*s = intSlot{k, e}
			x.n++
			return nil
		}
		if s.key == k {
			return s.e
		}
		if i++; i == len(x.slots) {
			i = 0
		}
	}
}

// remove deletes k if e holds it, and reports whether it did.
func (x *intIndex) remove(k int64, e *Entry) bool {
	if len(x.slots) == 0 {
		return false
	}
	i := x.home(k)
	for {
		s := &x.slots[i]
		if s.e == nil {
			return false
		}
		if s.key == k {
			if s.e != e {
				return false
			}
			break
		}
		if i++; i == len(x.slots) {
			i = 0
		}
	}
	// Shift back every slot of the run after i that may move into the
	// hole: one whose home is not cyclically in (hole, j].
	hole, j := i, i
	for {
		if j++; j == len(x.slots) {
			j = 0
		}
		s := x.slots[j]
		if s.e == nil {
			break
		}
		h := x.home(s.key)
		if hole <= j && (h <= hole || h > j) || hole > j && h <= hole && h > j {
			x.slots[hole] = s
			hole = j
		}
	}
	x.slots[hole] = intSlot{}
	x.n--
	return true
}

// maxLoad bounds the share of slots in use, as n*5 <= slots*4: past 4/5
// linear probing's misses get long; a grown table is at 16/25.
func (x *intIndex) full(n int) bool { return n*5 > len(x.slots)*4 }

// grow makes room for want keys, at a load of 16/25.
func (x *intIndex) grow(want int) { x.resize(want*25/16 + 8) }

// reserve makes room for n more keys at once, at a load of 4/5, so that a
// result of n rows is indexed without growing twice.
func (x *intIndex) reserve(n int) {
	if want := x.n + n; x.full(want) {
		x.resize(want*5/4 + 8)
	}
}

func (x *intIndex) resize(size int) {
	old := x.slots
	x.slots = newSlots(size)
	x.n = 0
	for _, s := range old {
		if s.e != nil {
			x.put(s.key, s.e)
		}
	}
}
