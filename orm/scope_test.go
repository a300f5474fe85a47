package orm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Tests of eng.Do, the scope of one unit of work: commit on nil, rollback
// on error or panic, always close; retries of retryable errors (real
// deadlocks and SQLite busy included), RetryOnStale, MaxAttempts and ctx;
// savepoints when ctx already carries a session. ErrCommitUnknown is in
// faultdriver_test.go, the middleware in middleware_test.go, the
// many-goroutine invariants in stress_test.go.

// scopeOwners lists the committed accounts' owners, sorted.
func scopeOwners(t testing.TB, eng *orm.Engine) []string {
	t.Helper()
	var owners []string
	if err := eng.DB().SelectContext(context.Background(), &owners, "SELECT owner FROM accounts ORDER BY owner"); err != nil {
		t.Fatal(err)
	}
	return owners
}

// scopeAccount reads an account's committed balance and version.
func scopeAccount(t testing.TB, eng *orm.Engine, id int64) (balance, version int64) {
	t.Helper()
	q := eng.Dialect().Rebind("SELECT balance, version FROM accounts WHERE id = ?")
	if err := eng.DB().QueryRowContext(context.Background(), q, id).Scan(&balance, &version); err != nil {
		t.Fatalf("account %d: %v", id, err)
	}
	return balance, version
}

// scopeNoneInUse fails t unless every connection of eng's pool is back,
// allowing a moment for a server goroutine (the middleware's deferred
// Close after the client already has its answer) to finish.
func scopeNoneInUse(t testing.TB, eng *orm.Engine) {
	t.Helper()
	var st = eng.DB().Stats()
	for deadline := time.Now().Add(2 * time.Second); st.InUse != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		st = eng.DB().Stats()
	}
	if st.InUse != 0 {
		t.Fatalf("%d connections still in use (open %d, idle %d)", st.InUse, st.OpenConnections, st.Idle)
	}
}

// scopeRetryable is an error that Do must treat as retryable, without a
// database having to produce one.
func scopeRetryable(attempt int) error {
	return fmt.Errorf("scope test: attempt %d: %w", attempt, orm.ErrRetryable)
}

// Do commits when fn returns nil: the row is visible to a new session, fn
// got the session in its ctx, and the session is closed afterwards.
func TestDoCommitsOnNil(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		calls := 0
		var used *orm.Session
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			calls++
			used = s
			if got := orm.SessionFrom(ctx); got != s {
				t.Errorf("SessionFrom(fn's ctx) = %p, want fn's session %p", got, s)
			}
			return s.Add(ann)
		})
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if calls != 1 {
			t.Fatalf("fn ran %d times, want 1", calls)
		}
		if ann.ID == 0 || ann.Version != 1 {
			t.Fatalf("after Do the object should carry its key and version: %+v", ann)
		}
		scopeNoneInUse(t, eng)

		s := eng.NewSession()
		got, err := orm.Get[Account](ctx, s, ann.ID)
		s.Close()
		if err != nil || got.Owner != "ann" || got.Balance != 100 {
			t.Fatalf("a new session reads %+v, %v", got, err)
		}
		if err := used.Add(newAccount("late", 0)); !errors.Is(err, orm.ErrSessionClosed) {
			t.Fatalf("Do's session after Do: Add = %v, want ErrSessionClosed", err)
		}
		if orm.SessionFrom(ctx) != nil {
			t.Fatal("the caller's ctx must not carry a session")
		}
		scopeNoneInUse(t, eng)
	})
}

// Do rolls back when fn returns an error, even after the work was flushed,
// and returns that error as it is.
func TestDoRollsBackOnError(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		calls := 0
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			calls++
			if err := s.Add(newAccount("bob", 1)); err != nil {
				return err
			}
			if err := s.Flush(ctx); err != nil { // the INSERT reaches the database
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("Do returned %v (%T), want errBoom itself", err, err)
		}
		if calls != 1 {
			t.Fatalf("fn ran %d times; an ordinary error is not retried", calls)
		}
		if n := countAccounts(t, eng, ""); n != 0 {
			t.Fatalf("%d accounts after the rollback, want 0", n)
		}
		scopeNoneInUse(t, eng)
	})
}

// Do rolls back and re-raises when fn panics, with the panic's own value,
// and never retries a panic, whatever its value.
func TestDoRepanics(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		for _, tc := range []struct {
			name  string
			value any
		}{
			{"value", &struct{ msg string }{"boom"}},
			{"retryable-error", scopeRetryable(1)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				calls := 0
				var p any
				func() {
					defer func() { p = recover() }()
					eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
						calls++
						if err := s.Add(newAccount("panicker", 1)); err != nil {
							return err
						}
						if err := s.Flush(ctx); err != nil {
							return err
						}
						panic(tc.value)
					}, orm.MaxAttempts(5))
				}()
				if p != tc.value {
					t.Fatalf("recovered %v, want the panic's value %v", p, tc.value)
				}
				if calls != 1 {
					t.Fatalf("fn ran %d times; a panic is never retried", calls)
				}
				if n := countAccounts(t, eng, ""); n != 0 {
					t.Fatalf("%d accounts after the panic, want 0", n)
				}
				if st := eng.DB().Stats(); st.InUse != 0 {
					t.Fatalf("%d connections in use right after the panic", st.InUse)
				}
			})
		}
	})
}

// scopeBarrier lets n goroutines wait for each other once, and gives up
// after a while rather than hang a test.
type scopeBarrier struct {
	wg   sync.WaitGroup
	done chan struct{}
}

// newScopeBarrier returns a barrier for n goroutines.
func newScopeBarrier(n int) *scopeBarrier {
	b := &scopeBarrier{done: make(chan struct{})}
	b.wg.Add(n)
	go func() { b.wg.Wait(); close(b.done) }()
	return b
}

// arriveAndWait counts the caller in and waits for the other goroutines,
// failing after d.
func (b *scopeBarrier) arriveAndWait(d time.Duration) error {
	b.wg.Done()
	select {
	case <-b.done:
		return nil
	case <-time.After(d):
		return errors.New("scope test: barrier timed out")
	}
}

// Do retries a real deadlock until both transactions commit. On MariaDB and
// PostgreSQL two transfers lock two accounts in opposite order; the server
// kills one (1213, 40P01), Do runs it again. SQLite has no row locks and
// ForUpdate takes the write lock at BEGIN, so the collision there is two
// sessions that read and then both write: one lock upgrade fails busy.
func TestDoRetriesDeadlock(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		a, b := newAccount("a", 1000), newAccount("b", 1000)
		seedObjects(t, eng, a, b)

		var (
			mu       sync.Mutex
			seen     []error // the errors the failed attempts met
			attempts [2]atomic.Int32
		)
		record := func(err error) error {
			mu.Lock()
			seen = append(seen, err)
			mu.Unlock()
			return err
		}
		barrier := newScopeBarrier(2)
		var fns [2]func(context.Context, *orm.Session) error
		if tg.Name == dbtest.SQLite {
			// Each reads its own account in a snapshot session (a
			// deferred, read transaction), waits until the other has read
			// too, then writes.
			for g, acct := range []*Account{a, b} {
				fns[g] = func(ctx context.Context, s *orm.Session) error {
					n := attempts[g].Add(1)
					x, err := orm.Get[Account](ctx, s, acct.ID)
					if err != nil {
						return record(err)
					}
					if n == 1 {
						if err := barrier.arriveAndWait(10 * time.Second); err != nil {
							return err
						}
					}
					x.Balance += 10
					if err := s.Flush(ctx); err != nil {
						return record(err)
					}
					return nil
				}
			}
		} else {
			// g 0 moves 10 from a to b, g 1 moves 7 from b to a; each locks
			// its source first, so they wait for each other.
			transfer := func(g int, from, to *Account, amount int64) func(context.Context, *orm.Session) error {
				return func(ctx context.Context, s *orm.Session) error {
					n := attempts[g].Add(1)
					src, err := orm.Query[Account](s).Where("id = ?", from.ID).ForUpdate().One(ctx)
					if err != nil {
						return record(err)
					}
					if n == 1 { // both hold their first lock before either asks for the second
						if err := barrier.arriveAndWait(10 * time.Second); err != nil {
							return err
						}
					}
					dst, err := orm.Query[Account](s).Where("id = ?", to.ID).ForUpdate().One(ctx)
					if err != nil {
						return record(err)
					}
					src.Balance -= amount
					dst.Balance += amount
					return nil
				}
			}
			fns[0] = transfer(0, a, b, 10)
			fns[1] = transfer(1, b, a, 7)
		}

		var (
			wg   sync.WaitGroup
			errs [2]error
		)
		start := time.Now()
		for g := range fns {
			opts := []orm.DoOption{orm.MaxAttempts(10)}
			if tg.Name == dbtest.SQLite {
				opts = append(opts, orm.Snapshot())
			}
			wg.Go(func() { errs[g] = eng.Do(ctx, fns[g], opts...) })
		}
		wg.Wait()
		total := attempts[0].Load() + attempts[1].Load()
		t.Logf("%v; attempts %d + %d; errors met:", time.Since(start).Round(time.Millisecond), attempts[0].Load(), attempts[1].Load())
		for _, err := range seen {
			t.Logf("\t%v", err)
		}
		for g, err := range errs {
			if err != nil {
				t.Errorf("Do %d: %v", g, err)
			}
		}
		if len(seen) == 0 {
			t.Fatal("no attempt failed: the transactions did not collide")
		}
		for _, err := range seen {
			if !errors.Is(err, orm.ErrRetryable) {
				t.Errorf("a colliding attempt failed with %v, which does not match ErrRetryable", err)
			}
		}
		if total < 3 {
			t.Errorf("%d attempts in all, want at least 3 (two, and one retry)", total)
		}
		wantA, wantB := int64(1010), int64(1010)
		if tg.Name != dbtest.SQLite {
			wantA, wantB = 1000-10+7, 1000+10-7
		}
		if got, _ := scopeAccount(t, eng, a.ID); got != wantA {
			t.Errorf("a's balance %d, want %d: each transfer applied exactly once", got, wantA)
		}
		if got, _ := scopeAccount(t, eng, b.ID); got != wantB {
			t.Errorf("b's balance %d, want %d", got, wantB)
		}
		scopeNoneInUse(t, eng)
	})
}

// An error that running again cannot fix is returned after one run, even
// when retries are allowed: a unique violation at commit, at an explicit
// flush, and an error of the application's.
func TestDoNonRetryableRunsOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		seedObjects(t, eng, newAccount("ann", 100))
		for _, tc := range []struct {
			name string
			fn   func(ctx context.Context, s *orm.Session) error
			want error
		}{
			{"unique-at-commit", func(ctx context.Context, s *orm.Session) error {
				return s.Add(newAccount("ann", 5), newAccount("other", 5))
			}, orm.ErrUniqueViolation},
			{"unique-at-flush", func(ctx context.Context, s *orm.Session) error {
				if err := s.Add(newAccount("other", 5), newAccount("ann", 5)); err != nil {
					return err
				}
				return s.Flush(ctx)
			}, orm.ErrUniqueViolation},
			{"application", func(ctx context.Context, s *orm.Session) error {
				if err := s.Add(newAccount("other", 5)); err != nil {
					return err
				}
				return errBoom
			}, errBoom},
		} {
			t.Run(tc.name, func(t *testing.T) {
				calls := 0
				err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					calls++
					return tc.fn(ctx, s)
				}, orm.MaxAttempts(10), orm.RetryOnStale(), orm.RetryBackoff(time.Millisecond, 2*time.Millisecond))
				if !errors.Is(err, tc.want) {
					t.Fatalf("Do: %v, want an error matching %v", err, tc.want)
				}
				if calls != 1 {
					t.Fatalf("fn ran %d times, want exactly 1", calls)
				}
				if got := scopeOwners(t, eng); !slices.Equal(got, []string{"ann"}) {
					t.Fatalf("accounts %v, want only the seeded ann", got)
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}

// A concurrent committed change between fn's read and its commit makes the
// version-checked UPDATE stale. RetryOnStale runs fn again on fresh rows;
// without it Do returns ErrStaleData after one run.
func TestDoRetryOnStale(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		// run reads an account in fn; on the first attempt another session
		// changes it (balance +1) and commits before fn returns.
		run := func(t *testing.T, owner string, endRead bool, opts ...orm.DoOption) (calls int, id int64, err error) {
			acct := newAccount(owner, 100)
			seedObjects(t, eng, acct)
			err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				calls++
				a, err := orm.Get[Account](ctx, s, acct.ID)
				if err != nil {
					return err
				}
				if endRead {
					// End the read transaction, keeping a tracked. On SQLite
					// an open one would make the later write fail as busy
					// (its snapshot is old), a retryable error, before any
					// version check could run: see the sqlite-open-read case.
					if err := s.Commit(ctx); err != nil {
						return err
					}
				}
				if calls == 1 {
					other := eng.NewSession()
					defer other.Close()
					b, err := orm.Get[Account](context.Background(), other, acct.ID)
					if err != nil {
						return err
					}
					b.Balance++
					if err := other.Commit(context.Background()); err != nil {
						return fmt.Errorf("concurrent change: %w", err)
					}
				}
				a.Balance += 10
				return nil
			}, opts...)
			return calls, acct.ID, err
		}
		endRead := tg.Name == dbtest.SQLite

		t.Run("with-RetryOnStale", func(t *testing.T) {
			calls, id, err := run(t, "stale-retried", endRead, orm.RetryOnStale())
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if calls != 2 {
				t.Fatalf("fn ran %d times, want 2", calls)
			}
			if bal, ver := scopeAccount(t, eng, id); bal != 111 || ver != 3 {
				t.Fatalf("balance %d version %d, want 111 (100 +1 concurrent +10) and 3", bal, ver)
			}
		})
		t.Run("without", func(t *testing.T) {
			calls, id, err := run(t, "stale-returned", endRead)
			if !errors.Is(err, orm.ErrStaleData) {
				t.Fatalf("Do: %v, want an error matching ErrStaleData", err)
			}
			var se *orm.StaleDataError
			if !errors.As(err, &se) || se.Table != "accounts" {
				t.Fatalf("Do: %v, want a *StaleDataError naming accounts", err)
			}
			if calls != 1 {
				t.Fatalf("fn ran %d times, want 1", calls)
			}
			if bal, ver := scopeAccount(t, eng, id); bal != 101 || ver != 2 {
				t.Fatalf("balance %d version %d, want only the concurrent change: 101 and 2", bal, ver)
			}
		})
		if tg.Name == dbtest.SQLite {
			// The same conflict inside one read transaction (a snapshot
			// session): SQLite refuses the write as busy (a stale
			// snapshot), which is retryable, so Do runs fn again even
			// without RetryOnStale, and the lost update is still prevented.
			t.Run("sqlite-open-read", func(t *testing.T) {
				calls, id, err := run(t, "stale-snapshot", false, orm.Snapshot())
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				if calls != 2 {
					t.Fatalf("fn ran %d times, want 2", calls)
				}
				if bal, ver := scopeAccount(t, eng, id); bal != 111 || ver != 3 {
					t.Fatalf("balance %d version %d, want 111 and 3", bal, ver)
				}
			})
		}
		scopeNoneInUse(t, eng)
	})
}

// MaxAttempts bounds how many times fn runs; each attempt has a fresh
// session; Do returns the last attempt's error.
func TestDoMaxAttempts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		fast := orm.RetryBackoff(100*time.Microsecond, time.Millisecond)
		for _, tc := range []struct {
			name string
			opts []orm.DoOption
			want int
		}{
			{"default", []orm.DoOption{fast}, 5},
			{"3", []orm.DoOption{fast, orm.MaxAttempts(3)}, 3},
			{"1", []orm.DoOption{fast, orm.MaxAttempts(1)}, 1},
			{"0", []orm.DoOption{fast, orm.MaxAttempts(0)}, 1},
			{"negative", []orm.DoOption{fast, orm.MaxAttempts(-2)}, 1},
			{"stale-3", []orm.DoOption{fast, orm.MaxAttempts(3), orm.RetryOnStale()}, 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var sessions []*orm.Session
				err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					sessions = append(sessions, s)
					if err := s.Add(newAccount(fmt.Sprintf("try%d", len(sessions)), 1)); err != nil {
						return err
					}
					if err := s.Flush(ctx); err != nil {
						return err
					}
					if tc.name == "stale-3" {
						return &orm.StaleDataError{Op: "UPDATE", Table: "accounts", Key: []any{1}}
					}
					return scopeRetryable(len(sessions))
				}, tc.opts...)
				if len(sessions) != tc.want {
					t.Fatalf("fn ran %d times, want %d", len(sessions), tc.want)
				}
				want := fmt.Sprintf("attempt %d:", tc.want)
				if tc.name == "stale-3" {
					if !errors.Is(err, orm.ErrStaleData) {
						t.Fatalf("Do: %v, want ErrStaleData", err)
					}
				} else if !errors.Is(err, orm.ErrRetryable) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Do: %v, want the last attempt's error (%q)", err, want)
				}
				for i := range sessions {
					for j := range i {
						if sessions[i] == sessions[j] {
							t.Fatalf("attempts %d and %d shared a session", j+1, i+1)
						}
					}
				}
				if n := countAccounts(t, eng, ""); n != 0 {
					t.Fatalf("%d accounts: every attempt must have been rolled back", n)
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}

// ctx bounds the retrying: a ctx cancelled during an attempt, or during the
// pause between attempts, or running out, stops Do, which returns the last
// error together with the ctx's.
func TestDoStopsWhenContextEnds(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)

		t.Run("cancelled-during-attempt", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				calls++
				cancel()
				return scopeRetryable(calls)
			}, orm.MaxAttempts(10), orm.RetryBackoff(time.Hour, time.Hour))
			if calls != 1 {
				t.Fatalf("fn ran %d times after ctx was cancelled, want 1", calls)
			}
			if !errors.Is(err, context.Canceled) || !errors.Is(err, orm.ErrRetryable) {
				t.Fatalf("Do: %v, want the attempt's error joined with context.Canceled", err)
			}
		})

		t.Run("cancelled-during-backoff", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls atomic.Int32
			ran := make(chan struct{})
			go func() {
				<-ran
				time.Sleep(50 * time.Millisecond) // Do is in its hour-long pause now
				cancel()
			}()
			start := time.Now()
			err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				if calls.Add(1) == 1 {
					close(ran)
				}
				return scopeRetryable(int(calls.Load()))
			}, orm.MaxAttempts(10), orm.RetryBackoff(time.Hour, time.Hour))
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("Do returned %v after the cancel", d)
			}
			if calls.Load() != 1 {
				t.Fatalf("fn ran %d times, want 1", calls.Load())
			}
			if !errors.Is(err, context.Canceled) || !errors.Is(err, orm.ErrRetryable) {
				t.Fatalf("Do: %v, want the attempt's error joined with context.Canceled", err)
			}
		})

		t.Run("deadline", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			calls := 0
			start := time.Now()
			err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				calls++
				return scopeRetryable(calls) // fn ignores ctx: Do must not
			}, orm.MaxAttempts(1_000_000), orm.RetryBackoff(time.Millisecond, 5*time.Millisecond))
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("Do ran for %v with a 200ms deadline", d)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Do: %v, want context.DeadlineExceeded", err)
			}
			t.Logf("%d attempts within the deadline", calls)
		})

		t.Run("already-cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			calls := 0
			err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				calls++
				if err := s.Add(newAccount("too-late", 1)); err != nil {
					return err
				}
				return s.Flush(ctx)
			}, orm.MaxAttempts(5))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Do: %v, want context.Canceled", err)
			}
			if calls > 1 {
				t.Fatalf("fn ran %d times under a cancelled ctx", calls)
			}
			t.Logf("fn ran %d time(s) under an already cancelled ctx", calls)
			if n := countAccounts(t, eng, ""); n != 0 {
				t.Fatalf("%d accounts, want 0", n)
			}
		})
		scopeNoneInUse(t, eng)
	})
}

// Called with a ctx that already carries a session, Do runs fn in a
// savepoint of that session: fn's error (or panic, or failed flush) rolls
// back fn's work only, the outer work commits, and the inner Do never
// retries on its own.
func TestDoNestedSavepoint(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		var inner struct{ failed, retryable, panicked, unique, ok int }
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			if err := s.Add(newAccount("outer-1", 1)); err != nil {
				return err
			}
			// An error: the inner work, flushed, is rolled back.
			err := eng.Do(ctx, func(ctx context.Context, s2 *orm.Session) error {
				inner.failed++
				if s2 != s || orm.SessionFrom(ctx) != s {
					return errors.New("the inner fn did not get the outer session")
				}
				if err := s2.Add(newAccount("inner-failed", 1)); err != nil {
					return err
				}
				if err := s2.Flush(ctx); err != nil {
					return err
				}
				return errBoom
			})
			if err != errBoom {
				return fmt.Errorf("inner Do returned %v, want errBoom as is", err)
			}
			// A retryable error: the inner Do does not retry; the outer decides.
			err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				inner.retryable++
				return scopeRetryable(inner.retryable)
			}, orm.MaxAttempts(5))
			if !errors.Is(err, orm.ErrRetryable) {
				return fmt.Errorf("inner Do returned %v, want the retryable error", err)
			}
			err = nil
			// A panic: rolled back to the savepoint, then passed on.
			func() {
				defer func() {
					if p := recover(); p != "inner panic" {
						err = fmt.Errorf("recovered %v, want the inner panic", p)
					}
				}()
				eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					inner.panicked++
					s.Add(newAccount("inner-panicked", 1))
					s.Flush(ctx)
					panic("inner panic")
				})
			}()
			if err != nil {
				return err
			}
			// A unique violation in the inner flush: on PostgreSQL the
			// transaction is unusable until rolled back to the savepoint.
			err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				inner.unique++
				return s.Add(newAccount("outer-1", 2))
			})
			if !errors.Is(err, orm.ErrUniqueViolation) {
				return fmt.Errorf("inner Do returned %v, want ErrUniqueViolation", err)
			}
			// A success: kept, committed with the outer work.
			if err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				inner.ok++
				return s.Add(newAccount("inner-ok", 1))
			}); err != nil {
				return fmt.Errorf("inner Do: %w", err)
			}
			return s.Add(newAccount("outer-2", 1))
		})
		if err != nil {
			t.Fatalf("outer Do: %v", err)
		}
		if inner.failed != 1 || inner.retryable != 1 || inner.panicked != 1 || inner.unique != 1 || inner.ok != 1 {
			t.Fatalf("inner fns ran %+v times, want once each", inner)
		}
		if got, want := scopeOwners(t, eng), []string{"inner-ok", "outer-1", "outer-2"}; !slices.Equal(got, want) {
			t.Fatalf("accounts %v, want %v", got, want)
		}
		scopeNoneInUse(t, eng)
	})
}

// The same with a session the caller put in ctx with orm.NewContext: the
// caller commits; Do only used a savepoint.
func TestDoInNewContextSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		s := eng.NewSession()
		defer s.Close()
		ctx := orm.NewContext(context.Background(), s)
		if orm.SessionFrom(ctx) != s {
			t.Fatal("SessionFrom(NewContext(ctx, s)) != s")
		}
		if err := s.Add(newAccount("outer", 1)); err != nil {
			t.Fatal(err)
		}
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			if err := s.Add(newAccount("inner-failed", 1)); err != nil {
				return err
			}
			if err := s.Flush(ctx); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("inner Do: %v, want errBoom", err)
		}
		if err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			return s.Add(newAccount("inner-ok", 1))
		}); err != nil {
			t.Fatalf("inner Do: %v", err)
		}
		if n := countAccounts(t, eng, ""); n != 0 {
			t.Fatalf("%d accounts committed before the caller's Commit", n)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := scopeOwners(t, eng), []string{"inner-ok", "outer"}; !slices.Equal(got, want) {
			t.Fatalf("accounts %v, want %v", got, want)
		}
		s.Close()
		scopeNoneInUse(t, eng)
	})
}

// A retryable error inside a nested Do that the outer fn does not pass on.
// MariaDB answers a deadlock by rolling back the whole transaction, not
// just the statement or the savepoint, so the outer work flushed before
// the savepoint is gone too. Do must never commit half of the outer work;
// and since the cause is a deadlock, the design's promise is that Do runs
// the whole fn again, which then succeeds. (PostgreSQL rolls back to the
// savepoint only, so there the outer work simply commits.)
//
// Here the outer session is made the deadlock's victim: on MariaDB the
// other transaction is heavier (it inserted rows first, and InnoDB kills
// the lighter one); on PostgreSQL the outer session starts waiting first,
// so its deadlock_timeout expires first and it detects the cycle.
func TestDoNestedDeadlockVictim(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name == dbtest.SQLite {
			t.Skip("SQLite has no row locks, hence no deadlock inside a transaction")
		}
		eng := openEngine(t, tg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		a, b := newAccount("a", 100), newAccount("b", 100)
		seedObjects(t, eng, a, b)

		otherHoldsB := make(chan struct{})
		outerWaitsForB := make(chan struct{})
		otherDone := make(chan error, 1)
		go func() {
			err := func() error {
				s := eng.NewSession()
				defer s.Close()
				for i := range 200 { // weight, so that InnoDB picks the other side
					if err := s.Add(&testmodels.Blob{Data: fmt.Appendf(nil, "ballast %d", i)}); err != nil {
						return err
					}
				}
				if err := s.Flush(ctx); err != nil {
					return err
				}
				if _, err := orm.Query[Account](s).Where("id = ?", b.ID).ForUpdate().One(ctx); err != nil {
					return err
				}
				close(otherHoldsB)
				select {
				case <-outerWaitsForB:
				case <-ctx.Done():
					return ctx.Err()
				}
				time.Sleep(200 * time.Millisecond) // the outer session is waiting for b by now
				if _, err := orm.Query[Account](s).Where("id = ?", a.ID).ForUpdate().One(ctx); err != nil {
					return fmt.Errorf("other: lock a: %w", err)
				}
				return s.Commit(ctx)
			}()
			otherDone <- err
		}()

		calls := 0
		var innerErrs []error // per run of the outer fn
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			calls++
			if err := s.Add(newAccount("outer-1", 1)); err != nil {
				return err
			}
			innerErr := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				if _, err := orm.Query[Account](s).Where("id = ?", a.ID).ForUpdate().One(ctx); err != nil {
					return err
				}
				if calls == 1 {
					select {
					case <-otherHoldsB:
					case <-ctx.Done():
						return ctx.Err()
					}
					close(outerWaitsForB)
				}
				_, err := orm.Query[Account](s).Where("id = ?", b.ID).ForUpdate().One(ctx)
				return err
			})
			innerErrs = append(innerErrs, innerErr)
			// The outer fn carries on without the inner work, as the
			// savepoint contract says it may.
			return s.Add(newAccount("outer-2", 1))
		})
		otherErr := <-otherDone
		t.Logf("inner Do, per run: %v", innerErrs)
		t.Logf("other transaction: %v", otherErr)
		t.Logf("outer Do after %d run(s): %v", calls, err)
		if !errors.Is(innerErrs[0], orm.ErrRetryable) {
			t.Fatalf("the outer session was not the deadlock's victim (inner Do: %v); the test's setup failed", innerErrs[0])
		}
		owners := scopeOwners(t, eng)
		t.Logf("accounts: %v", owners)
		has := func(o string) bool { return slices.Contains(owners, o) }
		switch {
		case has("outer-1") != has("outer-2"):
			t.Errorf("half of the outer work was committed: Do returned %v, outer-1 committed %v, outer-2 committed %v",
				err, has("outer-1"), has("outer-2"))
		case err != nil:
			t.Errorf("Do gave up after a deadlock (committing nothing, rightly): %v\n"+
				"\tthe transaction was lost to a deadlock, so the error should match ErrRetryable and Do should run fn again", err)
		case !has("outer-1"):
			t.Errorf("Do returned nil but the outer work is not committed")
		}
		scopeNoneInUse(t, eng)
	})
}
