package identity

// intIndex maps single integer keys to places in a table's entry list
// (tableMap.order): the identity map's common case, and most of what it
// costs per tracked object. A slot is 8 bytes, a 32-bit tag of the key's
// hash and the place, and holds neither the key nor the entry: the key is
// the entry's own (its snapshot's), read back only when a tag matches,
// which for a miss is about once in four billion probes. Filled up to
// 4/5, the index costs 10 bytes a key where a slot holding the key and
// the entry pointer cost 20; a Go map, which also sizes its tables in
// powers of two, costs more still.
//
// The tag also places the key: its probe starts at the tag scaled onto
// the table (the tag is the high half of a Fibonacci hash, which spreads
// sequential keys), so a resize and the back-shifting of a removal work
// from the slots alone, without reading a key. Collisions probe linearly,
// and a removal shifts the run after it back (no tombstones), so lookups
// stay short however many removals a long session makes.
type intIndex struct {
	slots []intSlot
	n     int
}

type intSlot struct {
	tag uint32 // the high half of the key's hash
	pos uint32 // 1 + the entry's place in the order; 0: empty
}

// keyAt returns the key of the entry at place pos (1-based) of the
// order: how the index checks a slot whose tag matches.
type keyAt func(pos uint32) int64

func tagOf(k int64) uint32 { return uint32(uint64(k) * 0x9E3779B97F4A7C15 >> 32) }

// home is the slot where a tag's probe starts: the tag scaled onto the
// table, by multiplication, so any table size works.
func (x *intIndex) home(tag uint32) int {
	return int(uint64(tag) * uint64(len(x.slots)) >> 32)
}

// get returns the place of k, or 0.
func (x *intIndex) get(k int64, key keyAt) uint32 {
	if len(x.slots) == 0 {
		return 0
	}
	tag := tagOf(k)
	for i := x.home(tag); ; {
		s := x.slots[i]
		if s.pos == 0 {
			return 0
		}
		if s.tag == tag && key(s.pos) == k {
			return s.pos
		}
		if i++; i == len(x.slots) {
			i = 0
		}
	}
}

// put stores place pos under k unless the key is taken, and returns the
// holder's place then (0 if it stored pos).
func (x *intIndex) put(k int64, pos uint32, key keyAt) uint32 {
	if x.full(x.n + 1) {
		x.grow(x.n + 1)
	}
	tag := tagOf(k)
	for i := x.home(tag); ; {
		s := &x.slots[i]
		if s.pos == 0 {
			*s = intSlot{tag, pos}
			x.n++
			return 0
		}
		if s.tag == tag && key(s.pos) == k {
			return s.pos
		}
		if i++; i == len(x.slots) {
			i = 0
		}
	}
}

// remove deletes the slot of k that holds place pos, and reports whether
// there was one.
func (x *intIndex) remove(k int64, pos uint32) bool {
	if len(x.slots) == 0 {
		return false
	}
	tag := tagOf(k)
	i := x.home(tag)
	for {
		s := x.slots[i]
		if s.pos == 0 {
			return false
		}
		if s.pos == pos && s.tag == tag {
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
		if s.pos == 0 {
			break
		}
		h := x.home(s.tag)
		if hole <= j && (h <= hole || h > j) || hole > j && h <= hole && h > j {
			x.slots[hole] = s
			hole = j
		}
	}
	x.slots[hole] = intSlot{}
	x.n--
	return true
}

// renumber moves every place p to moved[p-1] (the order was compacted).
func (x *intIndex) renumber(moved []uint32) {
	for i := range x.slots {
		if p := x.slots[i].pos; p != 0 {
			x.slots[i].pos = moved[p-1]
		}
	}
}

// full bounds the share of slots in use, as n*5 <= slots*4: past 4/5
// linear probing's misses get long; a grown table is at 3/4.
func (x *intIndex) full(n int) bool { return n*5 > len(x.slots)*4 }

// grow makes room for want keys, at a load of 3/4: a resize reads no key,
// so growing by a third at a time costs little, and keeps the index of
// objects tracked one by one (Get) at 10 to 11 bytes a key.
func (x *intIndex) grow(want int) { x.resize(want*4/3 + 8) }

// reserve makes room for n more keys at once, at a load of 4/5, so that a
// result of n rows is indexed without growing twice.
func (x *intIndex) reserve(n int) {
	if want := x.n + n; x.full(want) {
		x.resize(want*5/4 + 8)
	}
}

// resize moves the slots to a table of size slots; the keys are distinct,
// so each goes to the first free slot from its home, no key read.
func (x *intIndex) resize(size int) {
	old := x.slots
	x.slots = newSlots(size)
	for _, s := range old {
		if s.pos == 0 {
			continue
		}
		i := x.home(s.tag)
		for x.slots[i].pos != 0 {
			if i++; i == len(x.slots) {
				i = 0
			}
		}
		x.slots[i] = s
	}
}
