package orm_test

import (
	"context"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Adversarial tests of object identity across and within sessions
// (DESIGN.md "Session: states and identity", "Objects from outside the
// session: Merge"): an object that comes back to a session after the
// work that touched it was rolled back, expunged or failed must never
// become a second row, or land on another object's row.

// Rollback (and Close) discard a transaction whose flushes inserted and
// updated rows: the objects must not keep the generated keys and bumped
// versions of rows that do not exist. SQLite hands a rolled-back key out
// again, so an object that kept it would be Merged onto the next row
// that takes it, silently overwriting someone else's data; everywhere, it
// would be refused by Add as detached though it has no row.
func TestRollbackUndoesWhatFlushesWroteIntoObjects(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		old := newAccount("old", 1)
		seedObjects(t, eng, old)

		s := eng.NewSession()
		a := newAccount("ann", 10)
		a.Entries = []*Entry{{Amount: 3}}
		uowMust(t, s.Add(a))
		o, err := orm.Get[Account](ctx, s, old.ID) // flushes a's INSERT
		uowMust(t, err)
		o.Balance = 2
		uowMust(t, s.Flush(ctx))
		if a.ID == 0 || a.Entries[0].AccountID != a.ID || o.Version != 2 {
			t.Fatalf("flush wrote key %d, entry's account %d, version %d", a.ID, a.Entries[0].AccountID, o.Version)
		}
		uowMust(t, s.Rollback(ctx))
		if a.ID != 0 || a.Version != 0 || a.Entries[0].ID != 0 || a.Entries[0].AccountID != 0 {
			t.Errorf("after Rollback: key %d, version %d, entry key %d, entry's account %d; want all 0 (no row)",
				a.ID, a.Version, a.Entries[0].ID, a.Entries[0].AccountID)
		}
		if o.Version != 1 || o.Balance != 2 {
			t.Errorf("updated object after Rollback: version %d, balance %d; want the row's version 1, the caller's balance 2",
				o.Version, o.Balance)
		}
		uowMust(t, s.Close())

		// Another request inserts meanwhile, and may take the rolled-back key.
		bob := newAccount("bob", 20)
		seedObjects(t, eng, bob)

		// The object comes back: Added, it is a new row; the updated one
		// merges at the row's version.
		s2 := eng.NewSession()
		defer s2.Close()
		if err := s2.Add(a); err != nil {
			t.Fatalf("Add of the rolled-back object: %v, want nil (it has no row)", err)
		}
		if _, err := orm.Merge(ctx, s2, o); err != nil {
			t.Fatalf("Merge of the rolled-back update: %v, want nil", err)
		}
		uowMust(t, s2.Commit(ctx))
		if n := countAccounts(t, eng, "id = ? AND owner = 'bob' AND balance = 20", bob.ID); n != 1 {
			t.Errorf("bob's row intact = %d, want 1", n)
		}
		if n := countAccounts(t, eng, "owner = 'ann' AND balance = 10"); n != 1 || a.ID == bob.ID {
			t.Errorf("ann rows = %d (key %d, bob's %d), want 1 row of its own", n, a.ID, bob.ID)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", a.ID); n != 1 {
			t.Errorf("ann's entries = %d, want 1", n)
		}
		if n := countAccounts(t, eng, "id = ? AND balance = 2 AND version = 2", old.ID); n != 1 {
			t.Errorf("merged update rows = %d, want 1", n)
		}
		if n := countAccounts(t, eng, ""); n != 3 {
			t.Errorf("accounts = %d, want 3", n)
		}
	})
}

// Do runs fn again after a retryable failure in a new session; an object
// fn captured from outside and added in the failed attempt, after a flush
// gave it a key, must be addable again in the next.
func TestDoRetryAddsCapturedObjectAgain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		a := newAccount("ann", 10)
		attempts := 0
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			attempts++
			if err := s.Add(a); err != nil {
				return err
			}
			if _, err := orm.Query[Account](s).Count(ctx); err != nil { // autoflush: a gets its key
				return err
			}
			if attempts == 1 {
				return orm.ErrRetryable
			}
			return nil
		}, orm.RetryBackoff(0, 0))
		if err != nil || attempts != 2 {
			t.Fatalf("Do = %v after %d attempts, want nil after 2", err, attempts)
		}
		if n := countAccounts(t, eng, "id = ? AND owner = 'ann'", a.ID); n != 1 {
			t.Errorf("rows of the object's key %d = %d, want 1", a.ID, n)
		}
		if n := countAccounts(t, eng, ""); n != 1 {
			t.Errorf("accounts = %d, want 1", n)
		}
	})
}
