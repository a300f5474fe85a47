package orm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// acOps returns the Op of each recorded event.
func acOps(evs []orm.QueryEvent) []string {
	ops := make([]string, len(evs))
	for i, ev := range evs {
		ops[i] = ev.Op
	}
	return ops
}

// acInUse fails the test when the pool has a connection in use.
func acInUse(t *testing.T, eng *orm.Engine, when string, want int) {
	t.Helper()
	if n := eng.DB().Stats().InUse; n != want {
		t.Fatalf("%s: %d connections in use, want %d", when, n, want)
	}
}

// Reads before a session's first write run in autocommit on pooled
// connections given back at once: no BEGIN, no ROLLBACK at Close, and no
// connection held between statements.
func TestReadsBeforeFirstWriteHoldNoConnection(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann, bob := newAccount("ann", 1), newAccount("bob", 2)
		seedObjects(t, eng, ann, bob)
		log.Reset()

		s := eng.NewSession()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		acInUse(t, eng, "after Get", 0)
		all, err := orm.Query[Account](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		if len(all) != 2 || all[0] != a {
			t.Fatalf("query returned %v, want both accounts, ann being the tracked object", all)
		}
		acInUse(t, eng, "after All", 0)
		n, err := orm.Query[Account](s).Count(ctx)
		uowMust(t, err)
		if n != 2 {
			t.Fatalf("Count = %d, want 2", n)
		}
		acInUse(t, eng, "after Count", 0)
		uowMust(t, s.Commit(ctx)) // nothing to write
		uowMust(t, s.Close())
		if ops, want := acOps(log.Events()), []string{"query", "query", "query"}; !slices.Equal(ops, want) {
			t.Fatalf("statements %q (ops %v), want the three SELECTs alone", log.SQL(), ops)
		}
	})
}

// The statements each everyday operation sends, counted by the query hook
// (BEGIN and COMMIT included): one for a read by key, an insert, a batched
// insert or a delete; two for Get, change, Commit; a transaction only for
// a commit with several statements. UpdateAll by key on a session with
// nothing else to do is one statement too, sent alone (bulkalone.go).
func TestStatementsPerOperation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		seq := 0
		owner := func() string { seq++; return fmt.Sprintf("owner-%d", seq) }
		cases := []struct {
			name string
			// run gets a seeded account, committed before recording starts.
			run  func(s *orm.Session, seeded *Account) error
			want []string // ops
		}{
			{"read by key", func(s *orm.Session, seeded *Account) error {
				_, err := orm.Get[Account](ctx, s, seeded.ID)
				return err
			}, []string{"query"}},
			{"insert one", func(s *orm.Session, _ *Account) error {
				uowMust(t, s.Add(newAccount(owner(), 1)))
				return s.Commit(ctx)
			}, []string{"query"}}, // INSERT ... RETURNING
			{"insert three, one batch", func(s *orm.Session, _ *Account) error {
				uowMust(t, s.Add(newAccount(owner(), 1), newAccount(owner(), 2), newAccount(owner(), 3)))
				return s.Commit(ctx)
			}, []string{"query"}},
			{"get, change, commit", func(s *orm.Session, seeded *Account) error {
				a, err := orm.Get[Account](ctx, s, seeded.ID)
				if err != nil {
					return err
				}
				a.Balance++
				return s.Commit(ctx)
			}, []string{"query", "exec"}},
			{"get, delete, commit", func(s *orm.Session, seeded *Account) error {
				a, err := orm.Get[Account](ctx, s, seeded.ID)
				if err != nil {
					return err
				}
				uowMust(t, s.Delete(a))
				return s.Commit(ctx)
			}, []string{"query", "exec"}},
			{"update and insert", func(s *orm.Session, seeded *Account) error {
				a, err := orm.Get[Account](ctx, s, seeded.ID)
				if err != nil {
					return err
				}
				a.Balance++
				uowMust(t, s.Add(newAccount(owner(), 1)))
				return s.Commit(ctx)
			}, []string{"query", "begin", "query", "exec", "commit"}},
			{"UpdateAll by key", func(s *orm.Session, seeded *Account) error {
				if _, err := orm.Query[Account](s).Where("id = ?", seeded.ID).UpdateAll(ctx, orm.Set{"balance": 7}); err != nil {
					return err
				}
				return s.Commit(ctx)
			}, []string{"exec"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				seeded := newAccount(owner(), 10)
				seedObjects(t, eng, seeded)
				log.Reset()
				s := eng.NewSession()
				uowMust(t, c.run(s, seeded))
				uowMust(t, s.Close())
				if got := acOps(log.Take()); !slices.Equal(got, c.want) {
					t.Fatalf("ops %v, want %v", got, c.want)
				}
				acInUse(t, eng, "after Close", 0)
			})
		}
	})
}

// A single statement sent alone keeps the failure semantics of a
// transaction: a version mismatch is ErrStaleData and a duplicate key
// ErrUniqueViolation, nothing is written, the session is restored exactly
// (still dirty, still pending with no key), and no BEGIN, COMMIT or
// ROLLBACK is sent.
func TestSingleStatementCommitFailureRestores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		t.Run("stale", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			other := eng.NewSession()
			b, err := orm.Get[Account](ctx, other, ann.ID)
			uowMust(t, err)
			b.Balance = 150
			uowMust(t, other.Commit(ctx))
			uowMust(t, other.Close())

			a.Balance = 90
			log.Reset()
			err = s.Commit(ctx)
			var se *orm.StaleDataError
			if !errors.Is(err, orm.ErrStaleData) || !errors.As(err, &se) || se.Table != "accounts" {
				t.Fatalf("Commit: %v, want a *StaleDataError of accounts", err)
			}
			if ops := acOps(log.Take()); !slices.Equal(ops, []string{"exec"}) {
				t.Fatalf("ops %v, want the UPDATE alone", ops)
			}
			if !s.IsDirty(a) || a.Balance != 90 || a.Version != 1 {
				t.Fatalf("after the stale commit: dirty %v, %+v; want still dirty, balance 90, version 1", s.IsDirty(a), a)
			}
			if bal, ver := scopeAccount(t, eng, ann.ID); bal != 150 || ver != 2 {
				t.Fatalf("row: balance %d version %d, want the other session's 150 and 2", bal, ver)
			}
			acInUse(t, eng, "after the failed commit", 0)
		})

		t.Run("unique", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			dup := newAccount("ann", 1)
			uowMust(t, s.Add(dup))
			log.Reset()
			err := s.Commit(ctx)
			if !errors.Is(err, orm.ErrUniqueViolation) || errors.Is(err, orm.ErrCommitUnknown) {
				t.Fatalf("Commit: %v, want ErrUniqueViolation (and not unknown)", err)
			}
			if ops := log.Take(); len(ops) != 1 {
				t.Fatalf("events %v, want the INSERT alone", acOps(ops))
			}
			if p := s.Pending(); len(p) != 1 || p[0] != dup || dup.ID != 0 || dup.Version != 0 {
				t.Fatalf("after the failed commit: pending %v, %+v; want it pending with no key and version 0", p, dup)
			}
			dup.Owner = "ann-2"
			uowMust(t, s.Commit(ctx))
			if n := countAccounts(t, eng, "owner = ?", "ann-2"); n != 1 || dup.ID == 0 {
				t.Fatalf("after fixing the owner: %d rows, ID %d; want 1 row and a key", n, dup.ID)
			}
			acInUse(t, eng, "after the commits", 0)
		})
	})
}

// WithSnapshot (Snapshot for Do) begins the transaction at the first read,
// and every later read sees the data as of that one: a row another session
// commits meanwhile is not seen, as it is by a session without it.
func TestSnapshotBeginsAtFirstRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, newAccount("ann", 1))
		count := func(s *orm.Session) int64 {
			t.Helper()
			n, err := orm.Query[Account](s).Count(ctx)
			uowMust(t, err)
			return n
		}
		snap := eng.NewSession(orm.WithSnapshot())
		defer snap.Close()
		plain := eng.NewSession()
		defer plain.Close()
		log.Reset()
		if n := count(snap); n != 1 {
			t.Fatalf("snapshot count %d, want 1", n)
		}
		if ops := acOps(log.Take()); !slices.Equal(ops, []string{"begin", "query"}) {
			t.Fatalf("snapshot session's first read: ops %v, want begin, query", ops)
		}
		acInUse(t, eng, "snapshot session open", 1)
		if n := count(plain); n != 1 {
			t.Fatalf("plain count %d, want 1", n)
		}
		seedObjects(t, eng, newAccount("bob", 2))
		if n := count(snap); n != 1 {
			t.Fatalf("snapshot session counted %d after another session's insert, want 1 (its snapshot)", n)
		}
		if n := count(plain); n != 2 {
			t.Fatalf("plain session counted %d after another session's insert, want 2 (each read its own)", n)
		}
		uowMust(t, snap.Commit(ctx))
		acInUse(t, eng, "after the snapshot session's commit", 0)

		log.Reset()
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			_, err := orm.Query[Account](s).Count(ctx)
			return err
		}, orm.Snapshot())
		uowMust(t, err)
		if ops := acOps(log.Take()); len(ops) < 2 || ops[0] != "begin" || ops[1] != "query" {
			t.Fatalf("Do with Snapshot: ops %v, want begin, then the read", ops)
		}
	})
}

// ForUpdate, Savepoint and Exec need a transaction: each begins it, and
// what Exec wrote is rolled back with the session.
func TestLockSavepointExecBeginTransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		t.Run("ForUpdate", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			log.Reset()
			_, err := orm.Query[Account](s).Where("id = ?", ann.ID).ForUpdate().One(ctx)
			uowMust(t, err)
			if ops := acOps(log.Take()); len(ops) == 0 || ops[0] != "begin" {
				t.Fatalf("ForUpdate: ops %v, want begin first", ops)
			}
			acInUse(t, eng, "holding the lock", 1)
			uowMust(t, s.Commit(ctx))
			acInUse(t, eng, "after Commit", 0)
		})
		t.Run("Savepoint", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			log.Reset()
			uowMust(t, s.Savepoint(ctx, func() error { return nil }))
			if ops := acOps(log.Take()); len(ops) < 2 || ops[0] != "begin" || ops[1] != "savepoint" {
				t.Fatalf("Savepoint: ops %v, want begin, savepoint", ops)
			}
			uowMust(t, s.Rollback(ctx))
		})
		t.Run("Exec", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			log.Reset()
			_, err := s.Exec(ctx, "UPDATE accounts SET balance = ? WHERE id = ?", 5, ann.ID)
			uowMust(t, err)
			if ops := acOps(log.Take()); !slices.Equal(ops, []string{"begin", "exec"}) {
				t.Fatalf("Exec: ops %v, want begin, exec", ops)
			}
			uowMust(t, s.Rollback(ctx))
			if bal, _ := scopeAccount(t, eng, ann.ID); bal != 100 {
				t.Fatalf("balance %d after Rollback, want 100: Exec ran outside the transaction", bal)
			}
		})
	})
}

// Relations can add statements at flush (a new object reached through a
// relation; a foreign key copied from a parent, which makes a tracked
// child dirty): the count that decides on a single-statement commit sees
// them, so one statement goes alone and two go in a transaction.
func TestSingleStatementCommitCountsRelationWork(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann, bob := newAccount("ann", 1), newAccount("bob", 2)
		ann.Entries = []*Entry{{Amount: 5}}
		seedObjects(t, eng, ann, bob)

		t.Run("moved child", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			e, err := orm.Get[Entry](ctx, s, ann.Entries[0].ID)
			uowMust(t, err)
			b, err := orm.Get[Account](ctx, s, bob.ID)
			uowMust(t, err)
			e.Account = b // only the relation field: the flush copies the key
			log.Reset()
			uowMust(t, s.Commit(ctx))
			if ops := acOps(log.Take()); !slices.Equal(ops, []string{"exec"}) {
				t.Fatalf("ops %v, want the entry's UPDATE alone", ops)
			}
			if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", bob.ID); n != 1 {
				t.Fatalf("%d entries of bob, want 1", n)
			}
		})
		t.Run("cascaded child and changed parent", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			a.Balance++
			a.Entries = append(a.Entries, &Entry{Amount: 7}) // not Added: the flush finds it
			log.Reset()
			uowMust(t, s.Commit(ctx))
			if ops := acOps(log.Take()); len(ops) != 4 || ops[0] != "begin" || ops[3] != "commit" {
				t.Fatalf("ops %v, want begin, the INSERT and the UPDATE, commit", ops)
			}
			if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ? AND amount = ?", ann.ID, 7); n != 1 {
				t.Fatalf("%d new entries of ann, want 1", n)
			}
		})
	})
}

// A commit of several statements is atomic however it is sent (on
// PostgreSQL, one batch): a stale version or a duplicate key in any of
// them writes nothing, names the failing row, and restores the session.
func TestMultiStatementCommitFailureWritesNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		ann, bob, cat := newAccount("ann", 1), newAccount("bob", 2), newAccount("cat", 3)
		seedObjects(t, eng, ann, bob, cat)

		t.Run("stale", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			b, err := orm.Get[Account](ctx, s, bob.ID)
			uowMust(t, err)
			other := eng.NewSession()
			ob, err := orm.Get[Account](ctx, other, bob.ID)
			uowMust(t, err)
			ob.Balance = 200
			uowMust(t, other.Commit(ctx))
			uowMust(t, other.Close())

			a.Balance, b.Balance = 10, 20
			err = s.Commit(ctx)
			var se *orm.StaleDataError
			if !errors.As(err, &se) || fmt.Sprint(se.Key) != fmt.Sprint([]any{bob.ID}) {
				t.Fatalf("Commit: %v, want a *StaleDataError naming bob's key %d", err, bob.ID)
			}
			if !s.IsDirty(a) || !s.IsDirty(b) || a.Version != 1 || b.Version != 1 {
				t.Fatalf("after the failed commit: dirty %v %v, versions %d %d; want both dirty, version 1", s.IsDirty(a), s.IsDirty(b), a.Version, b.Version)
			}
			if bal, ver := scopeAccount(t, eng, ann.ID); bal != 1 || ver != 1 {
				t.Fatalf("ann's row: balance %d version %d, want untouched 1 and 1", bal, ver)
			}
			acInUse(t, eng, "after the failed commit", 0)
		})
		t.Run("unique", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			c, err := orm.Get[Account](ctx, s, cat.ID)
			uowMust(t, err)
			a.Balance = 11
			c.Owner = "bob" // taken
			err = s.Commit(ctx)
			if !errors.Is(err, orm.ErrUniqueViolation) {
				t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
			}
			if !s.IsDirty(a) || !s.IsDirty(c) || c.Owner != "bob" {
				t.Fatalf("after the failed commit: dirty %v %v, owner %q; want both dirty, the change kept", s.IsDirty(a), s.IsDirty(c), c.Owner)
			}
			if bal, ver := scopeAccount(t, eng, ann.ID); bal != 1 || ver != 1 {
				t.Fatalf("ann's row: balance %d version %d, want untouched 1 and 1", bal, ver)
			}
			c.Owner = "cat-2"
			uowMust(t, s.Commit(ctx))
			if bal, ver := scopeAccount(t, eng, ann.ID); bal != 11 || ver != 2 {
				t.Fatalf("ann's row after the fixed commit: balance %d version %d, want 11 and 2", bal, ver)
			}
		})
	})
}

// Should flushSize ever count one statement where the flush sends more,
// the first goes alone, in autocommit, and commits by itself: the guard
// stops the second and the error must say so — ErrCommitUnknown, which
// Do never reruns, naming what committed — not that a reply was lost.
func TestMiscountedSingleStatementCommitSaysItsFirstStatementCommitted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		orm.MiscountFlushes(t)
		s := eng.NewSession()
		defer s.Close()
		uowMust(t, s.Add(newAccount("ann", 1), &testmodels.Blob{Data: []byte("b")}))
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrCommitUnknown) || !strings.Contains(err.Error(), "has committed") {
			t.Fatalf("Commit of two INSERTs counted as one: %v; want ErrCommitUnknown saying the first has committed", err)
		}
		rows := countRows(t, eng, "SELECT COUNT(*) FROM accounts") + countRows(t, eng, "SELECT COUNT(*) FROM blobs")
		if rows != 1 {
			t.Fatalf("%d rows written, want the first INSERT's one", rows)
		}
	})
}
