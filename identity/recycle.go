package identity

import "sync"

// A session per request clears its map at Close and the next request's
// session builds the same index and entry list again: a Load of 1,000 rows
// allocates 30 KB of them per request. Clear gives them back here, emptied,
// and the next map of a similar size takes them, so the garbage collector
// sees them once. The pools hold no entry: everything is cleared first.
var (
	slotPool  sync.Pool // *[]intSlot, all empty
	orderPool sync.Pool // *[]*Entry, length 0, all nil
)

// recycleMax bounds what the pools keep: a huge session's buffers are left
// to the garbage collector rather than kept for the next one.
const recycleMax = 1 << 16

// newSlots returns an empty slot array of at least size slots and at most
// twice that, from the pool if one fits.
func newSlots(size int) []intSlot {
	if p, _ := slotPool.Get().(*[]intSlot); p != nil {
		if s := *p; cap(s) >= size && cap(s) <= 2*size {
			return s[:cap(s)]
		}
		slotPool.Put(p)
	}
	return make([]intSlot, size)
}

// newOrder returns an empty entry list with room for n, from the pool if
// one fits.
func newOrder(n int) []*Entry {
	if p, _ := orderPool.Get().(*[]*Entry); p != nil {
		if s := *p; cap(s) >= n && cap(s) <= 2*n+16 {
			return s
		}
		orderPool.Put(p)
	}
	return make([]*Entry, 0, n)
}

// recycle gives tm's index and list to the pools, emptied. tm must not be
// used afterwards, and no walk may be under way over its list.
func (tm *tableMap) recycle() {
	if s := tm.ints.slots; len(s) > 0 && len(s) <= recycleMax {
		clear(s)
		slotPool.Put(&s)
	}
	if o := tm.order; cap(o) > 0 && cap(o) <= recycleMax {
		clear(o)
		o = o[:0]
		orderPool.Put(&o)
	}
	tm.ints, tm.order = intIndex{}, nil
}
