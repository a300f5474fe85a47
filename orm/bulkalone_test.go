package orm_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// A bulk statement on a session with nothing else to do runs alone in
// autocommit and is committed when it returns: one statement, no BEGIN,
// and a later Rollback, or a later Commit that fails, leaves it written
// while the session is restored to just after it.
func TestBulkStatementAloneCommitsAtOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann, bob := newAccount("ann", 10), newAccount("bob", 20)
		seedObjects(t, eng, ann, bob)

		t.Run("rollback keeps it", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			log.Reset()
			n, err := orm.Query[Account](s).Where("id = ?", ann.ID).UpdateAll(ctx, orm.Set{"balance": 7})
			if err != nil || n != 1 {
				t.Fatalf("UpdateAll = %d, %v; want 1 row", n, err)
			}
			if ops := acOps(log.Take()); !slices.Equal(ops, []string{"exec"}) {
				t.Fatalf("ops %v, want the UPDATE alone", ops)
			}
			acInUse(t, eng, "after UpdateAll", 0)
			uowMust(t, s.Rollback(ctx))
			if bal, _ := scopeAccount(t, eng, ann.ID); bal != 7 {
				t.Fatalf("balance %d after Rollback, want 7: the UPDATE committed when it ran", bal)
			}
		})

		t.Run("failed commit after it", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			n, err := orm.Query[Account](s).Where("id = ?", bob.ID).DeleteAll(ctx)
			if err != nil || n != 1 {
				t.Fatalf("DeleteAll = %d, %v; want 1 row", n, err)
			}
			dup := newAccount("ann", 1) // unique owner: the commit fails
			uowMust(t, s.Add(dup))
			if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
				t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
			}
			if p := s.Pending(); len(p) != 1 || p[0] != dup || dup.ID != 0 {
				t.Fatalf("pending %v (id %d), want the duplicate pending again with no key", p, dup.ID)
			}
			if n := countAccounts(t, eng, "id = ?", bob.ID); n != 0 {
				t.Fatalf("bob's row: %d, want 0: the DELETE committed when it ran", n)
			}
		})
	})
}

// A bulk statement waits for the commit, in the session's transaction,
// whenever running it alone could split work the caller means as one:
// pending changes, an open transaction, a tracked object of the table
// (its values must change with the row's), a snapshot session, and every
// session of Engine.Do, whose fn commits whole or not at all.
func TestBulkStatementJoinsTheTransactionWhenNotAlone(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann := newAccount("ann", 10)
		seedObjects(t, eng, ann)
		set := func(s *orm.Session, bal int64) {
			t.Helper()
			if _, err := orm.Query[Account](s).Where("id = ?", ann.ID).UpdateAll(ctx, orm.Set{"balance": bal}); err != nil {
				t.Fatalf("UpdateAll: %v", err)
			}
		}
		rolledBack := func(what string) {
			t.Helper()
			if bal, _ := scopeAccount(t, eng, ann.ID); bal != 10 {
				t.Fatalf("%s: balance %d, want 10: the UPDATE must roll back with the session", what, bal)
			}
		}

		s := eng.NewSession()
		uowMust(t, s.Add(newAccount("cy", 1)))
		set(s, 1)
		uowMust(t, s.Rollback(ctx))
		uowMust(t, s.Close())
		rolledBack("pending work")

		s = eng.NewSession()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		log.Reset()
		set(s, 2)
		if a.Balance != 2 {
			t.Fatalf("tracked balance %d, want 2", a.Balance)
		}
		if ops := acOps(log.Take()); len(ops) == 0 || ops[0] != "begin" {
			t.Fatalf("ops %v, want a transaction for a table with tracked objects", ops)
		}
		uowMust(t, s.Rollback(ctx))
		uowMust(t, s.Close())
		rolledBack("tracked object")

		s = eng.NewSession(orm.WithSnapshot())
		set(s, 3)
		uowMust(t, s.Close())
		rolledBack("snapshot session")

		boom := errors.New("boom")
		err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			set(s, 4)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Do: %v, want boom", err)
		}
		rolledBack("Do")
	})
}

// A handler's bulk statement commits with the handler's response like the
// rest of its work: an error status rolls it back.
func TestMiddlewareBulkStatementRollsBackWithErrorStatus(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ann := newAccount("ann", 10)
		seedObjects(t, eng, ann)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			s := mwSession(w, r)
			if _, err := orm.Query[Account](s).Where("id = ?", ann.ID).UpdateAll(r.Context(), orm.Set{"balance": 0}); err != nil {
				http.Error(w, err.Error(), http.StatusTeapot)
				return
			}
			http.Error(w, "handler says no", http.StatusConflict)
		})
		if got, body, _ := mwGet(t, srv, "/"); got != http.StatusConflict {
			t.Fatalf("got %d %q, want the handler's 409", got, body)
		}
		if bal, _ := scopeAccount(t, eng, ann.ID); bal != 10 {
			t.Fatalf("balance %d, want 10: the UPDATE must roll back with the handler's work", bal)
		}
		scopeNoneInUse(t, eng)
	})
}
