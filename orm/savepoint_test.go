package orm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of Session.Savepoint: an error inside rolls back to the
// savepoint only, in the database and in memory. Helpers are in
// session_test.go and helpers_test.go.

// An error inside a savepoint rolls back what was done inside, in the
// database and in the session, whether or not it was flushed inside; what
// was done before the savepoint commits.
func TestSavepointErrorRollsBackToSavepoint(t *testing.T) {
	for _, flushInside := range []bool{false, true} {
		name := "unflushed"
		if flushInside {
			name = "flushed inside"
		}
		t.Run(name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
				eng, log := openLogged(t, tg)
				ctx := context.Background()
				ann, bob := newAccount("ann", 100), newAccount("bob", 100)
				seedObjects(t, eng, ann, bob)

				s := eng.NewSession()
				defer s.Close()
				a, err := orm.Get[Account](ctx, s, ann.ID)
				uowMust(t, err)
				b, err := orm.Get[Account](ctx, s, bob.ID)
				uowMust(t, err)
				// Before the savepoint: flushed when it begins, kept.
				a.Balance = 90
				carl := newAccount("carl", 1)
				uowMust(t, s.Add(carl))

				dave := newAccount("dave", 1)
				note := "inside"
				log.Reset()
				err = s.Savepoint(ctx, func() error {
					if carl.ID == 0 || a.Version != 2 {
						t.Errorf("the work before the savepoint was not flushed when it began: carl %d, ann version %d", carl.ID, a.Version)
					}
					uowMust(t, s.Add(dave))
					a.Balance = 10
					a.Note = &note
					uowMust(t, s.Delete(b))
					if flushInside {
						uowMust(t, s.Flush(ctx))
						if dave.ID == 0 || a.Version != 3 {
							t.Errorf("Flush inside the savepoint: dave %d, ann version %d", dave.ID, a.Version)
						}
					}
					return errBoom
				})
				if !errors.Is(err, errBoom) {
					t.Fatalf("Savepoint: %v, want fn's error", err)
				}
				if uowIndex(log.SQL(), "ROLLBACK TO SAVEPOINT tally_sp1") < 0 {
					t.Fatalf("statements %q: no ROLLBACK TO SAVEPOINT", log.SQL())
				}

				// In memory: back to the savepoint's start.
				if p := s.Pending(); len(p) != 0 {
					t.Fatalf("Pending() = %v: the object added inside is still pending", p)
				}
				if s.IsDirty(dave) || dave.ID != 0 || dave.Version != 0 {
					t.Fatalf("dave, added inside: dirty %v id %d version %d; want false 0 0", s.IsDirty(dave), dave.ID, dave.Version)
				}
				if a.Balance != 90 || a.Note != nil || a.Version != 2 || s.IsDirty(a) {
					t.Fatalf("ann, changed inside: balance %d note %v version %d dirty %v; want 90 nil 2 false",
						a.Balance, a.Note, a.Version, s.IsDirty(a))
				}
				if s.IsDirty(b) {
					t.Fatal("bob, deleted inside, is still marked")
				}
				if got, err := orm.Get[Account](ctx, s, bob.ID); err != nil || got != b {
					t.Fatalf("Get of bob after the rollback: %p, %v; want the tracked object", got, err)
				}

				uowMust(t, s.Commit(ctx))
				ids := uowAccountIDs(t, eng)
				if diff := cmp.Diff(map[string]int64{"ann": ann.ID, "bob": bob.ID, "carl": carl.ID}, ids); diff != "" {
					t.Fatalf("committed rows (-want +got):\n%s", diff)
				}
				if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE id = ? AND balance = 90 AND note IS NULL AND version = 2", ann.ID); n != 1 {
					t.Fatal("ann's row does not hold the work from before the savepoint only")
				}
			})
		})
	}
}

func TestSavepointSuccessCommitsWithOuter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		ann := newAccount("ann", 1)
		uowMust(t, s.Add(ann))
		dave := newAccount("dave", 2)
		err := s.Savepoint(ctx, func() error { return s.Add(dave) })
		uowMust(t, err)
		if dave.ID == 0 || len(s.Pending()) != 0 {
			t.Fatalf("a successful savepoint did not flush: dave %d, pending %v", dave.ID, s.Pending())
		}
		if uowIndex(log.SQL(), "RELEASE SAVEPOINT") < 0 {
			t.Fatalf("statements %q: no RELEASE SAVEPOINT", log.SQL())
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts"); n != 0 {
			t.Fatalf("%d rows visible before Commit: a savepoint committed on its own", n)
		}
		uowMust(t, s.Commit(ctx))
		uowCheckKeys(t, eng, []*Account{ann, dave})

		// A successful savepoint of a transaction that is rolled back is
		// rolled back with it.
		erin := newAccount("erin", 3)
		uowMust(t, s.Savepoint(ctx, func() error { return s.Add(erin) }))
		uowMust(t, s.Rollback(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE owner = 'erin'"); n != 0 {
			t.Fatal("a released savepoint survived the outer Rollback")
		}
	})
}

func TestSavepointNested(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()

		// The inner one fails, the outer one goes on and succeeds.
		outer, inner, after := newAccount("outer", 1), newAccount("inner", 2), newAccount("after", 3)
		err := s.Savepoint(ctx, func() error {
			uowMust(t, s.Add(outer))
			err := s.Savepoint(ctx, func() error {
				uowMust(t, s.Add(inner))
				uowMust(t, s.Flush(ctx))
				return errBoom
			})
			if !errors.Is(err, errBoom) {
				t.Errorf("inner Savepoint: %v, want fn's error", err)
			}
			return s.Add(after)
		})
		uowMust(t, err)
		var sps []string
		for _, q := range log.SQL() {
			if len(q) > 0 && (q[0] == 'S' || q[0] == 'R') && q != "ROLLBACK" {
				sps = append(sps, q)
			}
		}
		want := []string{"SAVEPOINT tally_sp1", "SAVEPOINT tally_sp2", "ROLLBACK TO SAVEPOINT tally_sp2", "RELEASE SAVEPOINT tally_sp1"}
		if diff := cmp.Diff(want, sps); diff != "" {
			t.Fatalf("savepoint statements (-want +got):\n%s", diff)
		}
		if inner.ID != 0 || s.IsDirty(inner) {
			t.Fatalf("inner: id %d dirty %v, want 0 false", inner.ID, s.IsDirty(inner))
		}
		uowMust(t, s.Commit(ctx))
		ids := uowAccountIDs(t, eng)
		if diff := cmp.Diff(map[string]int64{"outer": outer.ID, "after": after.ID}, ids); diff != "" {
			t.Fatalf("committed rows (-want +got):\n%s", diff)
		}

		// The inner one succeeds, the outer one fails: both undone.
		x, y := newAccount("x", 1), newAccount("y", 2)
		err = s.Savepoint(ctx, func() error {
			uowMust(t, s.Add(x))
			uowMust(t, s.Savepoint(ctx, func() error { return s.Add(y) }))
			if y.ID == 0 {
				t.Error("the inner savepoint did not flush")
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("outer Savepoint: %v, want fn's error", err)
		}
		if x.ID != 0 || y.ID != 0 || len(s.Pending()) != 0 {
			t.Fatalf("after the outer failure: x %d y %d pending %v; want nothing", x.ID, y.ID, s.Pending())
		}
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts"); n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
	})
}

// A unique violation inside a savepoint leaves the outer transaction
// usable and committable. PostgreSQL aborts the whole transaction on an
// error unless it is rolled back to a savepoint.
func TestSavepointUniqueViolationInside(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s *orm.Session, dup *Account) error
	}{
		{"flushed inside", func(t *testing.T, s *orm.Session, dup *Account) error {
			uowMust(t, s.Add(dup))
			err := s.Flush(context.Background())
			if !errors.Is(err, orm.ErrUniqueViolation) {
				t.Errorf("Flush inside: %v, want ErrUniqueViolation", err)
			}
			return err
		}},
		{"flushed at release", func(t *testing.T, s *orm.Session, dup *Account) error {
			return s.Add(dup)
		}},
		{"flush error swallowed", func(t *testing.T, s *orm.Session, dup *Account) error {
			uowMust(t, s.Add(dup))
			_ = s.Flush(context.Background())
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
				eng := openEngine(t, tg, nil)
				ctx := context.Background()
				seedObjects(t, eng, newAccount("taken", 0))
				s := eng.NewSession()
				defer s.Close()
				x := newAccount("x", 1)
				uowMust(t, s.Add(x))
				dup := newAccount("taken", 2)
				err := s.Savepoint(ctx, func() error { return c.fn(t, s, dup) })
				if !errors.Is(err, orm.ErrUniqueViolation) {
					t.Fatalf("Savepoint: %v, want ErrUniqueViolation", err)
				}
				if p := s.Pending(); len(p) != 0 || dup.ID != 0 {
					t.Fatalf("after the savepoint: pending %v, dup id %d; want the duplicate dropped", p, dup.ID)
				}
				if x.ID == 0 {
					t.Fatal("the work before the savepoint lost its key")
				}
				// The outer transaction goes on.
				y := newAccount("y", 3)
				uowMust(t, s.Add(y))
				if _, err := orm.Get[Account](ctx, s, x.ID); err != nil {
					t.Fatalf("Get in the outer transaction: %v", err)
				}
				uowMust(t, s.Commit(ctx))
				uowCheckKeys(t, eng, []*Account{x, y})
				if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts"); n != 3 {
					t.Fatalf("%d rows, want taken, x and y", n)
				}
			})
		})
	}
}

// A panic inside rolls back to the savepoint and goes on up.
func TestSavepointPanic(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)
		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		blob := &testmodels.Blob{Data: []byte("x")}
		func() {
			defer func() {
				if r := recover(); r != errBoom {
					t.Fatalf("recovered %v, want the panic passed on", r)
				}
			}()
			_ = s.Savepoint(ctx, func() error {
				uowMust(t, s.Add(blob))
				uowMust(t, s.Flush(ctx))
				a.Balance = 1
				panic(errBoom)
			})
		}()
		if blob.ID != 0 || s.IsDirty(blob) || a.Balance != 100 || s.IsDirty(a) {
			t.Fatalf("after the panic: blob id %d dirty %v, ann balance %d dirty %v", blob.ID, s.IsDirty(blob), a.Balance, s.IsDirty(a))
		}
		a.Balance = 5
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != 0 {
			t.Fatalf("%d blobs, want the one added inside rolled back", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance = 5 AND version = 2"); n != 1 {
			t.Fatal("the work after the panic was not committed")
		}
	})
}

// QueryEvent.Op documents "savepoint" for savepoint statements.
func TestSavepointStatementsReportOpSavepoint(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		uowMust(t, s.Savepoint(ctx, func() error { return nil }))
		if err := s.Savepoint(ctx, func() error { return errBoom }); !errors.Is(err, errBoom) {
			t.Fatalf("Savepoint: %v, want fn's error", err)
		}
		seen := 0
		for _, ev := range log.Events() {
			switch ev.SQL {
			case "SAVEPOINT tally_sp1", "RELEASE SAVEPOINT tally_sp1", "ROLLBACK TO SAVEPOINT tally_sp1":
				seen++
				if ev.Op != "savepoint" {
					t.Errorf("%s: Op %q, want \"savepoint\"", ev.SQL, ev.Op)
				}
			}
		}
		if seen != 4 {
			t.Fatalf("statements %q: want two SAVEPOINTs, a RELEASE and a ROLLBACK TO", log.SQL())
		}
	})
}
