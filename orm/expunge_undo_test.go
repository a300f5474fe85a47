package orm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// An object expunged inside a savepoint that then rolls back stays
// detached: the rollback undoes what the savepoint did to the session's
// entries (a Delete by key, a flushed DELETE, an Add that cancelled a
// delete mark) without bringing the expunged object back, and the session
// goes on as usual — its identity map was never left inconsistent, so no
// call afterwards asks for a Rollback. The row is untouched.
func TestSavepointRollbackLeavesExpungedDetached(t *testing.T) {
	steps := []struct {
		name   string
		inside func(ctx context.Context, s *orm.Session, a *Account) error
	}{
		{"delete by key", func(_ context.Context, s *orm.Session, a *Account) error {
			k := &Account{ID: a.ID, Version: a.Version}
			if err := s.Delete(k); err != nil {
				return err
			}
			return s.Expunge(k)
		}},
		{"flushed delete", func(ctx context.Context, s *orm.Session, a *Account) error {
			if err := s.Delete(a); err != nil {
				return err
			}
			return s.Flush(ctx)
		}},
		{"add cancelling a delete", func(_ context.Context, s *orm.Session, a *Account) error {
			if err := s.Delete(a); err != nil {
				return err
			}
			return s.Add(a)
		}},
	}
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				seed := newAccount("x-"+st.name, 5)
				seedObjects(t, eng, seed)
				s := eng.NewSession()
				defer s.Close()
				// The object the steps act on: tracked, or (delete by key)
				// the row's key only.
				a, err := orm.Get[Account](ctx, s, seed.ID)
				if err != nil {
					t.Fatal(err)
				}
				if st.name == "delete by key" {
					if err := s.Expunge(a); err != nil {
						t.Fatal(err)
					}
				}
				err = s.Savepoint(ctx, func() error {
					if err := st.inside(ctx, s, a); err != nil {
						return err
					}
					tracked, err := orm.Query[Account](s).Where("id = ?", seed.ID).All(ctx)
					if err != nil {
						return err
					}
					for _, o := range tracked {
						if err := s.Expunge(o); err != nil {
							return err
						}
					}
					if err := s.Expunge(a); err != nil {
						return err
					}
					return errBoom
				})
				if !errors.Is(err, errBoom) {
					t.Fatalf("Savepoint: %v, want %v", err, errBoom)
				}
				if s.IsDirty(a) {
					t.Error("the expunged object is tracked and dirty again after the rollback")
				}
				if _, err := orm.Query[Account](s).Count(ctx); err != nil {
					t.Fatalf("Count after the rollback: %v, want no error", err)
				}
				if err := s.Commit(ctx); err != nil {
					t.Fatalf("Commit after the rollback: %v, want no error", err)
				}
				if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE id = ?", seed.ID); n != 1 {
					t.Fatalf("rows with the key after Commit: %d, want 1", n)
				}
			})
		}
	})
}
