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

// Rolling back to a savepoint returns the session, not only the database,
// to where it was when the savepoint began.

// An object added, flushed and deleted inside a savepoint that is rolled
// back is gone: it is not pending afterwards and the outer Commit does not
// insert it.
func TestSavepointRollbackForgetsObjectAddedFlushedAndDeleted(t *testing.T) {
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
			t.Fatalf("Savepoint: got %v, want %v", err, boom)
		}
		if p := s.Pending(); len(p) != 0 {
			t.Errorf("after the rolled-back savepoint, Pending() = %d objects, want 0", len(p))
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countAccounts(t, eng, "owner = ?", "ghost"); n != 0 {
			t.Fatalf("rows of the object added and deleted inside the rolled-back savepoint: got %d, want 0", n)
		}
	})
}

// UpdateAll inside a savepoint that is rolled back: the tracked object gets
// back its value, version and snapshot, so it agrees with the database and
// its next update commits.
func TestSavepointRollbackRestoresObjectsChangedByUpdateAll(t *testing.T) {
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
			t.Fatalf("Savepoint: got %v, want %v", err, boom)
		}
		if a.Balance != 100 || a.Version != 1 {
			t.Errorf("after rollback to savepoint: got balance %d version %d, want 100 and 1 (the database's)", a.Balance, a.Version)
		}
		a.Balance = 50
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("commit after the rolled-back savepoint: %v", err)
		}
	})
}

// DeleteAll inside a savepoint that is rolled back: the row is back, and so
// is the tracked object, which Get returns without loading another.
func TestSavepointRollbackRetracksObjectsDetachedByDeleteAll(t *testing.T) {
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
			t.Fatalf("Savepoint: got %v, want %v", err, boom)
		}
		got, err := orm.Get[Account](ctx, s, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != a {
			t.Errorf("after rollback to savepoint, Get: got %p, want the tracked object %p", got, a)
		}
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

// BoomRow is a model whose column can panic when bound.
type BoomRow struct {
	ID int64     `db:"id,pk,auto"`
	V  boomValue `db:"v,type=VARCHAR(16)"`
}

func (BoomRow) TableName() string { return "boom_rows" }

// A panic inside Savepoint, also in the flush that runs before fn, leaves
// the session closable: Close rolls back and returns the connection, also
// through Engine.Do, whose cleanup calls Close.
func TestSavepointPanicLeavesSessionClosable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		if err := eng.CreateTables(ctx, BoomRow{}, testmodels.Blob{}); err != nil {
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
				if err := s.Add(&BoomRow{V: "boom"}); err != nil {
					return err
				}
				return s.Savepoint(ctx, func() error { return nil })
			}, orm.MaxAttempts(1))
		}()
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Errorf("connections in use after Do recovered from a panic: got %d, want 0", n)
		}

		s := eng.NewSession()
		if err := s.Add(&BoomRow{V: "boom"}); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() { _ = recover() }()
			_ = s.Savepoint(ctx, func() error { return nil })
		}()
		if err := s.Close(); err != nil {
			t.Fatalf("Close after a panic inside Savepoint: got %v, want nil", err)
		}
	})
}

// A change flushed inside a savepoint and then Refreshed, rolled back: the
// object, its snapshot and the row are the savepoint's again. (Refresh's
// undo must run before the undo of the flush that came first, or the
// snapshot keeps the rolled-back values and the object looks clean.)
// Found by FuzzSession.
func TestSavepointRollbackUndoesRefreshAfterFlushInOrder(t *testing.T) {
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
			a.Balance = 7
			if _, err := orm.Query[Account](s).All(ctx); err != nil { // autoflush: the UPDATE runs
				return err
			}
			if err := s.Refresh(ctx, a); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Savepoint: got %v, want %v", err, boom)
		}
		if a.Balance != 100 || s.IsDirty(a) {
			t.Fatalf("after the rolled-back savepoint: balance %d, dirty %v; want 100 and clean, as the row", a.Balance, s.IsDirty(a))
		}
		a.Balance = 50
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countAccounts(t, eng, "balance = ?", 50); n != 1 {
			t.Fatalf("rows with the committed balance: %d, want 1", n)
		}
	})
}
