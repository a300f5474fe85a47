package orm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// A failed Commit returns the session to where it was before it, so that
// the caller can fix the cause and commit again.

// UpdateAll, then a Commit that fails: the rollback undoes the UPDATE, and
// the tracked object gets its values and snapshot back, so the retried
// Commit leaves the session and the database in agreement.
func TestFailedCommitRestoresObjectsChangedByUpdateAll(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := &Account{Owner: "ann", Balance: 100, Created: time.Now()}
		other := &Account{Owner: "bob", Created: time.Now()}
		if err := s.Add(a, other); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := orm.Query[Account](s).Where("id = ?", a.ID).UpdateAll(ctx, orm.Set{"balance": 7}); err != nil {
			t.Fatal(err)
		}
		dup := &Account{Owner: "bob", Created: time.Now()}
		if err := s.Add(dup); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("commit: got %v, want a unique violation", err)
		}
		// Fix the cause and commit again, as the contract invites.
		if err := s.Expunge(dup); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("second commit: %v", err)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		got, err := orm.Get[Account](ctx, s2, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Balance != a.Balance || got.Version != a.Version {
			t.Fatalf("database has balance %d version %d, want the session's %d, %d", got.Balance, got.Version, a.Balance, a.Version)
		}
	})
}

// Flush an insert, Delete the object, then a Commit that fails: the object
// is still marked deleted (not pending), and expunging it lets the next
// Commit succeed.
func TestFailedCommitKeepsFlushedThenDeletedObjectDeleted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		seed := &Account{Owner: "bob", Created: time.Now()}
		if err := s.Add(seed); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		a := &Account{Owner: "temp", Created: time.Now()}
		if err := s.Add(a); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(a); err != nil {
			t.Fatal(err)
		}
		dup := &Account{Owner: "bob", Created: time.Now()}
		if err := s.Add(dup); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("commit: got %v, want a unique violation", err)
		}
		for _, p := range s.Pending() {
			if p == a {
				t.Errorf("Pending() after the failed commit: got the object marked deleted before it, want it still marked deleted")
			}
		}
		if err := s.Expunge(dup, a); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("Commit: got a panic %v, want none", p)
				}
			}()
			if err := s.Commit(ctx); err != nil {
				t.Errorf("commit: got %v, want nil", err)
			}
		}()
	})
}
