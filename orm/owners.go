package orm

import (
	"fmt"
	"sync"

	"github.com/tallyorm/tally/identity"
)

// owners records which session each added object belongs to, so that one
// object added to two sessions is refused instead of stored twice.
//
// Only Add registers objects: loaded objects are not in it, so reading
// costs nothing, and an object loaded by one session and added to another
// is refused by Add's own rule when its key is database-generated
// (ErrDetachedObject). sync.Map is a concurrent hash trie since Go 1.24:
// sessions registering different objects do not contend on one lock.
//
// A session releases an object when it lets it go: Expunge, Rollback,
// Close, the commit of its deletion, a Delete that drops it while pending;
// objects gone from the session otherwise (a failed commit's undo) are
// swept at the next Commit or at Close. Sessions that are never closed
// keep their objects registered, as they keep their connection.
type owners struct{ m sync.Map } // object pointer → *Session

// claim registers e's object as s's. It fails, registering nothing, when
// another session holds the object.
func (s *Session) claim(e *identity.Entry) error {
	if prev, loaded := s.e.owners.m.LoadOrStore(e.Obj, s); loaded && prev != s {
		return fmt.Errorf("%w: %s %p; Expunge it there (or let that session end) first, or Merge a copy",
			ErrOtherSession, e.Table.Name, e.Obj)
	}
	e.Owned = true
	s.owned = append(s.owned, e)
	return nil
}

// release unregisters e's object once the session has let it go, unless
// the session still tracks the object through another entry (it was
// dropped and added again).
func (s *Session) release(e *identity.Entry) {
	if !e.Owned {
		return
	}
	e.Owned = false
	if s.lookup(e.Table, e.Obj) == nil {
		s.e.owners.m.CompareAndDelete(e.Obj, s)
	}
}

// sweepOwned releases the registered objects the session no longer
// tracks and forgets them; all of them when all is set (Rollback and
// Close, which have just detached everything).
func (s *Session) sweepOwned(all bool) {
	if !all && len(s.sps) > 0 {
		return // a savepoint's undo can still bring dropped objects back
	}
	keep := s.owned[:0]
	for _, e := range s.owned {
		if !e.Owned {
			continue
		}
		switch {
		case all:
			e.Owned = false
			s.e.owners.m.CompareAndDelete(e.Obj, s)
		case e.State == identity.Pending || e.State == identity.Persistent || e.State == identity.Deleted:
			keep = append(keep, e)
		default:
			s.release(e)
		}
	}
	clear(s.owned[len(keep):])
	s.owned = keep
}
