package orm_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
		u := newAccount("upserted", 5) // Upsert tracks its objects as an insert does
		upsert := orm.OnConflict("owner").DoUpdate("balance")
		uowMust(t, orm.Upsert(ctx, s, []*Account{u}, upsert))
		if a.ID == 0 || a.Entries[0].AccountID != a.ID || o.Version != 2 {
			t.Fatalf("flush wrote key %d, entry's account %d, version %d", a.ID, a.Entries[0].AccountID, o.Version)
		}
		uowMust(t, s.Rollback(ctx))
		if a.ID != 0 || a.Version != 0 || a.Entries[0].ID != 0 || a.Entries[0].AccountID != 0 {
			t.Errorf("after Rollback: key %d, version %d, entry key %d, entry's account %d; want all 0 (no row)",
				a.ID, a.Version, a.Entries[0].ID, a.Entries[0].AccountID)
		}
		if u.ID != 0 || u.Version != 0 {
			t.Errorf("upserted object after Rollback: key %d, version %d; want 0, 0", u.ID, u.Version)
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
		if err := orm.Upsert(ctx, s2, []*Account{u}, upsert); err != nil {
			t.Fatalf("Upsert of the rolled-back upserted object: %v, want nil", err)
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
		if n := countAccounts(t, eng, "owner = 'upserted'"); n != 1 || u.ID == 0 {
			t.Errorf("upserted rows = %d (key %d), want 1", n, u.ID)
		}
		if n := countAccounts(t, eng, ""); n != 4 {
			t.Errorf("accounts = %d, want 4", n)
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

// An object whose commit failed is pending again in its session, which
// still holds it: another session's Add is refused until the first lets
// it go, and then the object is stored once.
func TestObjectStaysWithItsSessionAfterFailedCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		seedObjects(t, eng, newAccount("taken", 1))
		a := newAccount("ann", 10)
		s1, s2 := eng.NewSession(), eng.NewSession()
		defer s1.Close()
		defer s2.Close()
		uowMust(t, s1.Add(a, newAccount("taken", 2)))
		if err := s1.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: err = %v, want ErrUniqueViolation", err)
		}
		if err := s2.Add(a); !errors.Is(err, orm.ErrOtherSession) {
			t.Fatalf("Add to a second session after the failed commit: err = %v, want ErrOtherSession", err)
		}
		uowMust(t, s1.Close())
		uowMust(t, s2.Add(a))
		uowMust(t, s2.Commit(ctx))
		uowMust(t, s2.Close())
		if n := countAccounts(t, eng, "owner = 'ann'"); n != 1 {
			t.Fatalf("ann rows = %d, want 1", n)
		}

		// Committed and let go: the object now stands for its row. Add
		// refuses it; Merge writes its change to that row.
		s3 := eng.NewSession()
		defer s3.Close()
		if err := s3.Add(a); !errors.Is(err, orm.ErrDetachedObject) {
			t.Fatalf("Add of the committed object in a third session: err = %v, want ErrDetachedObject", err)
		}
		a.Balance = 11
		m, err := orm.Merge(ctx, s3, a)
		uowMust(t, err)
		uowMust(t, s3.Commit(ctx))
		if m.ID != a.ID || countAccounts(t, eng, "owner = 'ann' AND balance = 11 AND version = 2") != 1 {
			t.Errorf("merged key %d (object's %d); want the change written to the one ann row", m.ID, a.ID)
		}
		if n := countAccounts(t, eng, ""); n != 2 {
			t.Errorf("accounts = %d, want 2", n)
		}
	})
}

// A deleted object comes back after its deletion committed: with a
// database-generated key Add refuses it (its row is gone and the key is
// the database's); with a client-set key it is a new row, stored once.
func TestDeletedObjectAddedBackAfterCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		a := newAccount("ann", 1)
		seedObjects(t, eng, a, &Tag{Kind: "k", Name: "n", Uses: 1})
		s := eng.NewSession()
		defer s.Close()
		la, err := orm.Get[Account](ctx, s, a.ID)
		uowMust(t, err)
		tag, err := orm.Get[Tag](ctx, s, "k", "n")
		uowMust(t, err)
		uowMust(t, s.Delete(la, tag))
		uowMust(t, s.Commit(ctx))
		if err := s.Add(la); !errors.Is(err, orm.ErrDetachedObject) {
			t.Errorf("Add of the deleted account: err = %v, want ErrDetachedObject", err)
		}
		tag.Uses = 2
		uowMust(t, s.Add(tag))
		uowMust(t, s.Commit(ctx))
		if n := countAccounts(t, eng, ""); n != 0 {
			t.Errorf("accounts = %d, want 0", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags WHERE kind = 'k' AND name = 'n' AND uses = 2"); n != 1 {
			t.Errorf("tag rows = %d, want 1 (the tag stored again, once)", n)
		}
		if got, err := orm.Get[Tag](ctx, s, "k", "n"); err != nil || got != tag {
			t.Errorf("Get of the tag = %p, %v; want the added object %p", got, err, tag)
		}
	})
}

// Objects handed from goroutine to goroutine, each with a session of its
// own (run with -race): Add refuses every handed-over object, Merge saves
// its change to its row, and no increment is lost or stored twice.
func TestObjectsHandedBetweenGoroutinesKeepEveryUpdate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		const objs, workers, commits = 4, 6, 40
		queue := make(chan *Account, objs)
		for i := range objs {
			a := newAccount(fmt.Sprintf("h%d", i), 0)
			seedObjects(t, eng, a)
			queue <- a
		}
		var budget atomic.Int64
		budget.Store(commits)
		var wg sync.WaitGroup
		errs := make(chan error, commits*2)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for budget.Add(-1) >= 0 {
					a := <-queue
					s := eng.NewSession()
					if err := s.Add(a); !errors.Is(err, orm.ErrDetachedObject) {
						errs <- fmt.Errorf("Add of a handed-over object: %v, want ErrDetachedObject", err)
					}
					m, err := orm.Merge(ctx, s, a)
					if err == nil {
						m.Balance++
						err = s.Commit(ctx)
					}
					if cerr := s.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						errs <- err
						m = a
					}
					queue <- m // the next holder gets the object as committed
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := countAccounts(t, eng, ""); n != objs {
			t.Errorf("accounts = %d, want %d", n, objs)
		}
		if n := countRows(t, eng, "SELECT SUM(balance) FROM accounts"); n != commits {
			t.Errorf("sum of balances = %d, want %d (one per commit)", n, commits)
		}
		if n := countRows(t, eng, "SELECT SUM(version) FROM accounts"); n != objs+commits {
			t.Errorf("sum of versions = %d, want %d", n, objs+commits)
		}
	})
}

// Sessions that merge the same version of one object and commit at once:
// exactly one commit wins, the others are ErrStaleData (no lost update).
func TestConcurrentMergesOfOneVersionCommitOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		a := newAccount("ann", 0)
		seedObjects(t, eng, a)
		const n = 6
		var merged, wg sync.WaitGroup
		merged.Add(n)
		start := make(chan struct{})
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := *a // as a client read it, at version 1
				in.Entries, in.Balance = nil, int64(i+1)
				s := eng.NewSession()
				defer s.Close()
				_, err := orm.Merge(ctx, s, &in)
				merged.Done()
				<-start
				if err == nil {
					err = s.Commit(ctx)
				}
				errs[i] = err
			}()
		}
		merged.Wait()
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, orm.ErrStaleData) && !errors.Is(err, orm.ErrRetryable):
				t.Errorf("Commit: %v, want nil, ErrStaleData or ErrRetryable", err)
			}
		}
		if won != 1 {
			t.Errorf("%d commits won, want 1", won)
		}
		if v := countRows(t, eng, "SELECT version FROM accounts"); v != 2 {
			t.Errorf("version = %d, want 2 (one update)", v)
		}
	})
}

// Delete of an object the session does not track attaches it by key,
// with the caller's values. Adding it back must not make those values
// the object's snapshot as if read from the row: Get would serve them
// and a change they carry would never be written, silently. Add refuses
// it; a loaded object's deletion is still cancelled by Add.
func TestAddOfAnObjectDeletedByKeyIsRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		row := newAccount("ann", 1)
		seedObjects(t, eng, row)

		s := eng.NewSession()
		defer s.Close()
		outside := newAccount("ann", 999) // decoded from a request, say
		outside.ID, outside.Version = row.ID, row.Version
		uowMust(t, s.Delete(outside))
		if err := s.Add(outside); !errors.Is(err, orm.ErrDetachedObject) {
			t.Fatalf("Add of an object deleted by key: %v, want ErrDetachedObject", err)
		}
		uowMust(t, s.Rollback(ctx))
		if n := countAccounts(t, eng, "id = ? AND balance = 1", row.ID); n != 1 {
			t.Fatalf("row with balance 1 = %d, want 1", n)
		}

		loaded, err := orm.Get[Account](ctx, s, row.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(loaded))
		uowMust(t, s.Add(loaded)) // cancels the mark: its snapshot is the row's
		loaded.Balance = 5
		uowMust(t, s.Commit(ctx))
		if n := countAccounts(t, eng, "id = ? AND balance = 5", row.ID); n != 1 {
			t.Fatalf("row with balance 5 = %d, want 1", n)
		}
	})
}

// An object with no key yet, pending in one session, will be that
// session's row: Merged into another it must not become a second one.
// Once the first session has committed it, Merge there updates its row.
func TestMergeOfAnObjectPendingInAnotherSessionIsRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		a := newAccount("ann", 10)
		s1, s2 := eng.NewSession(), eng.NewSession()
		defer s1.Close()
		defer s2.Close()
		uowMust(t, s1.Add(a))
		if _, err := orm.Merge(ctx, s2, a); !errors.Is(err, orm.ErrOtherSession) {
			t.Fatalf("Merge of an object pending in another session: %v, want ErrOtherSession", err)
		}
		uowMust(t, s2.Commit(ctx))
		uowMust(t, s1.Commit(ctx))
		a.Balance = 11
		m, err := orm.Merge(ctx, s2, a)
		uowMust(t, err)
		if m == a {
			t.Fatal("Merge returned the other session's object, want the tracked copy")
		}
		uowMust(t, s2.Commit(ctx))
		if n := countAccounts(t, eng, ""); n != 1 {
			t.Fatalf("accounts = %d, want 1", n)
		}
		if n := countAccounts(t, eng, "balance = 11"); n != 1 {
			t.Fatalf("accounts with the merged balance = %d, want 1", n)
		}
	})
}
