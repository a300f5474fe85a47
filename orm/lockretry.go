package orm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
// commits. SQLite has no row locks: its retries begin IMMEDIATE instead,
// which serializes them.

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
		s.lockReads = true
		s.lockPlan = plan
	}
}

// readSet returns the rows the session tracks as read from the database,
// tables by name and keys in order: what a locking retry locks first.
func (s *Session) readSet() lockPlan {
	var plan lockPlan
	s.idmap.Each(func(e *identity.Entry) bool {
		if e.State != identity.Persistent && e.State != identity.Deleted {
			return true
		}
		i := slices.IndexFunc(plan, func(lt lockTable) bool { return lt.t == e.Table })
		if i < 0 {
			plan = append(plan, lockTable{t: e.Table})
			i = len(plan) - 1
		}
		plan[i].keys = append(plan[i].keys, keyValues(e.Table, e.Obj))
		return true
	})
	slices.SortFunc(plan, func(a, b lockTable) int { return cmp.Compare(a.t.Name, b.t.Name) })
	for _, lt := range plan {
		slices.SortFunc(lt.keys, cmpKeys)
	}
	return plan
}

// cmpKeys orders primary keys column by column: numbers as numbers,
// anything else by its printed form. Any total order serves, as long as
// every locking attempt uses the same one.
func cmpKeys(a, b []any) int {
	for i := range min(len(a), len(b)) {
		x, xok := mapper.ToInt64(a[i])
		y, yok := mapper.ToInt64(b[i])
		var c int
		if xok && yok {
			c = cmp.Compare(x, y)
		} else {
			c = cmp.Compare(fmt.Sprint(a[i]), fmt.Sprint(b[i]))
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
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
			s.resolve(t, obj)
		}
	}
	s.lockPlan = nil
	return nil
}

// lockedGetSQL is Get's statement with FOR UPDATE.
func (s *Session) lockedGetSQL(t *mapper.Table) string {
	return s.e.stmts.get(stmtKey{t, "getlock", 0}, func() string {
		return selectSQL(s.e.dialect, t, t.Columns) + " WHERE " + keyWhere(s.e.dialect, t, 1) + " FOR UPDATE"
	})
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
	byTable := map[*mapper.Table][]*identity.Entry{}
	s.idmap.Each(func(e *identity.Entry) bool {
		if e.State == identity.Persistent {
			byTable[e.Table] = append(byTable[e.Table], e)
		}
		return true
	})
	for t, ents := range byTable {
		if len(ents) < 2 {
			continue
		}
		seqs := make([]uint64, len(ents))
		for i, e := range ents {
			seqs[i] = e.Seq
		}
		slices.Sort(seqs)
		slices.SortFunc(ents, func(a, b *identity.Entry) int {
			return cmpKeys(keyValues(t, a.Obj), keyValues(t, b.Obj))
		})
		for i, e := range ents {
			e.Seq = seqs[i]
		}
	}
}
