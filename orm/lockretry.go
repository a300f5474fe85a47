package orm

import (
	"cmp"
	"context"
	"errors"
	"reflect"
	"slices"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the locking retry of Engine.Do: an attempt that follows
// a stale-data or retryable (deadlock, lock wait) failure reads with row
// locks, so that it cannot lose the same race again.
//
// Optimistic locking lets every attempt read freely and fail at commit when
// another transaction changed a row first. Under heavy contention a
// retried attempt meets the same crowd and loses again, and a fifth of
// the work can fail after every attempt. The locking attempt instead
// begins a transaction, locks (SELECT ... FOR UPDATE) the rows the failed
// attempt read, in table and key order, and tracks them in its session;
// fn's Gets of those rows then return the locked objects with no SQL, and
// its Gets of other rows lock them as they read. Two locking attempts take
// their common rows in the same order, so they queue instead of
// deadlocking, and a row a locking attempt holds cannot change before it
// commits. SQLite has no row locks: there the transaction begins
// IMMEDIATE, holding the database's write lock, and the rows are read in
// it, which serializes the retries.

// lockPlan lists the rows an attempt read, by table, each in key order.
type lockPlan []lockTable

type lockTable struct {
	t    *mapper.Table
	keys [][]any
}

// withLockPlan makes a session's reads lock their rows, beginning with
// the rows of plan (see this file's comment).
func withLockPlan(plan lockPlan) SessionOption {
	return func(s *Session) {
		if s.readOnly {
			return // it cannot lock (FOR UPDATE is a write's); a retry just reads afresh
		}
		s.lockReads = true
		s.lockPlan = plan
	}
}

// readSet returns the rows the session tracks as read from the database,
// tables by name and keys in order (the order of mapper.Key, the one
// orderUpdatesByKey writes in): what a locking retry locks first.
func (s *Session) readSet() lockPlan {
	type row struct {
		k   mapper.Key
		obj any
	}
	rows := map[*mapper.Table][]row{}
	s.idmap.Each(func(e *identity.Entry) bool {
		if e.State() == identity.Persistent || e.State() == identity.Deleted {
			rows[e.Table()] = append(rows[e.Table()], row{e.Table().Acc.Key(e.Obj()), e.Obj()})
		}
		return true
	})
	plan := make(lockPlan, 0, len(rows))
	for t, rs := range rows {
		slices.SortFunc(rs, func(a, b row) int { return cmpKey(a.k, b.k) })
		lt := lockTable{t: t, keys: make([][]any, len(rs))}
		for i, r := range rs {
			lt.keys[i] = keyValues(t, r.obj)
		}
		plan = append(plan, lt)
	}
	slices.SortFunc(plan, func(a, b lockTable) int { return cmp.Compare(a.t.Name, b.t.Name) })
	return plan
}

// cmpKey orders primary keys. Any total order serves, as long as locking
// attempts and commits all use the same one; mapper.Key's is numeric for
// integer keys and by value for string keys.
func cmpKey(a, b mapper.Key) int {
	if c := cmp.Compare(a.I, b.I); c != 0 {
		return c
	}
	return cmp.Compare(a.S, b.S)
}

// lockPlanned begins the session's transaction and reads the plan's rows
// with FOR UPDATE, one at a time in the plan's order, tracking them. A
// row gone since the failed attempt is skipped: fn's own Get reports it.
func (s *Session) lockPlanned(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.begin(ctx, true); err != nil {
		return err
	}
	for _, lt := range s.lockPlan {
		t := lt.t
		q := s.lockedGetSQL(t)
		for _, key := range lt.keys {
			obj := reflect.New(t.Type).Interface()
			if err := s.scanOne(ctx, t, q, key, obj, t.Columns); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if err := s.loaded(ctx, t, obj, s.resolve(t, obj)); err != nil {
				return err
			}
		}
	}
	s.lockPlan = nil
	return nil
}

// lockedGetSQL is Get's statement with FOR UPDATE. SQLite has no row
// locks: there the statement is Get's own, run in the transaction that
// holds the database's write lock.
func (s *Session) lockedGetSQL(t *mapper.Table) string {
	return s.e.stmts.get(stmtKey{t, "getlock", 0}, func() string { return selectForUpdateSQL(s.e.dialect, t) })
}

// orderUpdatesByKey makes the commit Do sends update each table's rows in
// key order instead of the order fn read them: two transactions writing
// the same rows then take their row locks in one order and queue, where
// in read order (a transfer from x to y against one from y to x) they
// would deadlock, which PostgreSQL detects only after deadlock_timeout
// (1 s by default). It permutes the tracked rows' sequence numbers, which
// order only the flush's updates.
func (s *Session) orderUpdatesByKey() {
	if s.idmap.Len() < 2 {
		return
	}
	type row struct {
		k mapper.Key
		e *identity.Entry
	}
	byTable := map[*mapper.Table][]row{}
	s.idmap.Each(func(e *identity.Entry) bool {
		if e.State() == identity.Persistent {
			byTable[e.Table()] = append(byTable[e.Table()], row{e.Table().Acc.Key(e.Obj()), e})
		}
		return true
	})
	for _, rs := range byTable {
		if len(rs) < 2 {
			continue
		}
		seqs := make([]uint64, len(rs))
		for i, r := range rs {
			seqs[i] = r.e.Seq()
		}
		slices.Sort(seqs)
		slices.SortFunc(rs, func(a, b row) int { return cmpKey(a.k, b.k) })
		for i, r := range rs {
			r.e.SetSeq(seqs[i])
		}
	}
}
