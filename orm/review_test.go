package orm_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// An object added, flushed and deleted inside a savepoint that is rolled
// back must not survive: the savepoint's work is gone. Instead the undo of
// the flush makes it pending again and the undo of the delete mark then makes
// it "persistent" while it stays in the pending list, so undoAdd no longer
// drops it and the outer Commit inserts it.
func TestReviewSavepointAddFlushDeleteResurrects(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := &Account{Owner: "ghost", Balance: 1, Created: time.Now()}
		boom := errors.New("boom")
		err := s.Savepoint(ctx, func() error {
			if err := s.Add(a); err != nil {
				return err
			}
			if err := s.Flush(ctx); err != nil {
				return err
			}
			if err := s.Delete(a); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Savepoint: %v", err)
		}
		if p := s.Pending(); len(p) != 0 {
			t.Errorf("after the rolled-back savepoint, Pending() = %d objects, want 0", len(p))
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countAccounts(t, eng, "owner = ?", "ghost"); n != 0 {
			t.Fatalf("an object added and deleted inside a rolled-back savepoint was committed (%d rows)", n)
		}
	})
}

// UpdateAll inside a savepoint that is rolled back: the database undoes the
// UPDATE, but the tracked object keeps the new value and version, and its
// snapshot too (UpdateAll logs no undo), so the session no longer agrees
// with the database and the object's next update fails as stale.
func TestReviewSavepointUpdateAllNotUndone(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := &Account{Owner: "ann", Balance: 100, Created: time.Now()}
		if err := s.Add(a); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := s.Savepoint(ctx, func() error {
			if _, err := orm.Query[Account](s).Where("id = ?", a.ID).UpdateAll(ctx, orm.Set{"balance": 0}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Savepoint: %v", err)
		}
		if a.Balance != 100 || a.Version != 1 {
			t.Errorf("after rollback to savepoint: balance %d version %d, want 100 and 1 (the database's)", a.Balance, a.Version)
		}
		a.Balance = 50
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("commit after the rolled-back savepoint: %v", err)
		}
	})
}

// UpdateAll, then a Commit that fails: the transaction (with the UPDATE)
// is rolled back, but the object and its snapshot keep the UpdateAll's
// values, so the object is not dirty and the retried Commit silently loses
// the update (and the object's version no longer matches the row).
func TestReviewFailedCommitLosesUpdateAll(t *testing.T) {
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
			t.Fatalf("commit: %v, want a unique violation", err)
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
			t.Fatalf("session says balance %d version %d; database has %d, %d", a.Balance, a.Version, got.Balance, got.Version)
		}
	})
}

// Flush an insert, Delete the object, then a Commit that fails: the undo of
// the insert puts the entry back in pending while it is still in s.deletes
// (with a nil snapshot). Expunging it then leaves it in s.deletes only, and
// the next flush dereferences the nil snapshot: a panic in a request path.
func TestReviewFailedCommitInsertThenDeletePanics(t *testing.T) {
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
			t.Fatalf("commit: %v, want a unique violation", err)
		}
		for _, p := range s.Pending() {
			if p == a {
				t.Errorf("a, marked deleted before the failed commit, is pending after it")
			}
		}
		if err := s.Expunge(dup, a); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("Commit panicked: %v", p)
				}
			}()
			if err := s.Commit(ctx); err != nil {
				t.Errorf("commit: %v", err)
			}
		}()
	})
}

// boomValue is a column type whose driver.Valuer panics for "boom", standing
// for any bug in user Valuer code.
type boomValue string

func (b boomValue) Value() (driver.Value, error) {
	if b == "boom" {
		panic("boomValue: Value panicked")
	}
	return string(b), nil
}

type ReviewBoom struct {
	ID int64     `db:"id,pk,auto"`
	V  boomValue `db:"v,type=VARCHAR(16)"`
}

func (ReviewBoom) TableName() string { return "review_booms" }

// A panic during the flush Savepoint runs before fn leaves the session's
// busy flag set (Savepoint has no deferred leave for that part): every
// later call, Close included, fails with ErrConcurrentUse, so the
// transaction is never rolled back and its connection never returned —
// even through Engine.Do, whose cleanup calls Close.
func TestReviewSavepointPanicLeavesSessionBusy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		if err := eng.CreateTables(ctx, ReviewBoom{}, testmodels.Blob{}); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() { _ = recover() }()
			_ = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				// Open the transaction first, so the leak holds a connection.
				if err := s.Add(&testmodels.Blob{Data: []byte("x")}); err != nil {
					return err
				}
				if err := s.Flush(ctx); err != nil {
					return err
				}
				if err := s.Add(&ReviewBoom{V: "boom"}); err != nil {
					return err
				}
				return s.Savepoint(ctx, func() error { return nil })
			}, orm.MaxAttempts(1))
		}()
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Errorf("after Do recovered from a panic, %d connection(s) still in use", n)
		}

		s := eng.NewSession()
		if err := s.Add(&ReviewBoom{V: "boom"}); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() { _ = recover() }()
			_ = s.Savepoint(ctx, func() error { return nil })
		}()
		if err := s.Close(); err != nil {
			t.Fatalf("Close after a panic inside Savepoint: %v", err)
		}
	})
}

// DeleteAll inside a savepoint that is rolled back: the row is back in the
// database, but the tracked object stays detached (the detach is not
// logged), so its later changes are silently not saved.
func TestReviewSavepointDeleteAllNotUndone(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := &Account{Owner: "ann", Balance: 100, Created: time.Now()}
		if err := s.Add(a); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := s.Savepoint(ctx, func() error {
			if _, err := orm.Query[Account](s).Where("id = ?", a.ID).DeleteAll(ctx); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Savepoint: %v", err)
		}
		got, err := orm.Get[Account](ctx, s, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != a {
			t.Errorf("after rollback to savepoint, Get returns another object than the tracked one: a is no longer tracked")
		}
	})
}

// Composite keys: update and a batched delete of several rows.
func TestReviewCompositeKeyUpdateDelete(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		tags := []*testmodels.Tag{{Kind: "a", Name: "x"}, {Kind: "a", Name: "y"}, {Kind: "b", Name: "x"}}
		for _, tag := range tags {
			if err := s.Add(tag); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		tags[2].Uses = 9
		if err := s.Delete(tags[0], tags[1]); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		all, err := orm.Query[testmodels.Tag](s2).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0].Kind != "b" || all[0].Uses != 9 {
			t.Fatalf("rows: %+v", all)
		}
		if _, err := orm.Get[testmodels.Tag](ctx, s2, "b", nil); err == nil {
			t.Fatal("Get with a nil key part succeeded")
		}
		if _, err := orm.Get[Account](ctx, s2, struct{}{}); err == nil {
			t.Fatal("Get with a struct key succeeded")
		}
		if _, err := orm.Get[testmodels.Tag](ctx, s2, "b"); err == nil {
			t.Fatal("Get with too few key parts succeeded")
		}
	})
}
