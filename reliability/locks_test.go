package reliability

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/servers"
	"github.com/tallyorm/tally/orm"
)

// lockServer starts a server whose sessions give up a lock wait after
// 1 s and a statement after 2 s, as an application would configure
// them per DSN, and on PostgreSQL detects deadlocks after 100 ms (1 s by
// default).
func lockServer(t *testing.T, kind string) *bank {
	t.Helper()
	if kind == servers.KindMySQL {
		srv := startServer(t, kind)
		return openBankWith(t, srv, "bank_locks", "innodb_lock_wait_timeout=1&max_statement_time=2")
	}
	srv := startServer(t, kind, "deadlock_timeout=100ms")
	return openBankWith(t, srv, "bank_locks", "lock_timeout=1000&statement_timeout=2000")
}

// lockRow locks account id in s until s ends.
func lockRow(t *testing.T, s *orm.Session, id int64) {
	t.Helper()
	if _, err := orm.Query[Acct](s).Where("id = ?", id).ForUpdate().One(context.Background()); err != nil {
		t.Fatalf("lock account %d: %v", id, err)
	}
}

// Lock wait timeout, deadlock and statement timeout on each server: the
// first two are ErrRetryable and Do's retries get the work done; a
// statement timeout is ErrStatementTimeout, not retried, its transaction
// rolled back. After each the bank holds whole transfers, the next
// request succeeds, and every connection and goroutine is returned.
func TestLockAndStatementTimeoutsAreTypedAndDoConverges(t *testing.T) {
	longTest(t)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			b := lockServer(t, kind)
			leaks := goroutineBaseline(t)
			ctx := context.Background()
			applied := 0

			t.Run("lock_wait_timeout", func(t *testing.T) {
				holder := b.eng.NewSession()
				lockRow(t, holder, b.ids[0])
				start := time.Now()
				err := b.transfer(ctx, b.ids[0], b.ids[1], 1, orm.MaxAttempts(1))
				took := time.Since(start)
				t.Logf("lock wait timeout after %v: %v", took.Round(time.Millisecond), err)
				if !errors.Is(err, orm.ErrRetryable) {
					t.Errorf("a lock wait past the timeout: got %v, want ErrRetryable", err)
				}
				if took > 3*time.Second {
					t.Errorf("a 1 s lock wait timeout took %v", took)
				}
				holder.Close()

				// The holder lets go after 1.2 s: the first attempt times
				// out, a retry gets the lock.
				holder = b.eng.NewSession()
				lockRow(t, holder, b.ids[0])
				time.AfterFunc(1200*time.Millisecond, func() { holder.Close() })
				attempts := 0
				start = time.Now()
				err = b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					attempts++
					return b.transferIn(ctx, s, b.ids[0], b.ids[1], 1)
				})
				t.Logf("Do against a lock held 1.2 s: %v after %d attempts in %v", err, attempts, time.Since(start).Round(time.Millisecond))
				if err != nil {
					t.Errorf("Do against a lock held for 1.2 s: got %v after %d attempts, want success", err, attempts)
				} else {
					applied++
				}
			})

			t.Run("deadlock", func(t *testing.T) {
				for _, attempts := range []int{1, 5} {
					var barrier sync.WaitGroup
					barrier.Add(2)
					var wg sync.WaitGroup
					var failed, deadlocks atomic.Int32
					for g := range 2 {
						first, second := b.ids[2], b.ids[3]
						if g == 1 {
							first, second = second, first
						}
						wg.Add(1)
						go func() {
							defer wg.Done()
							tries := 0
							err := b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
								tries++
								if _, err := orm.Query[Acct](s).Where("id = ?", first).ForUpdate().One(ctx); err != nil {
									return err
								}
								if tries == 1 {
									barrier.Done() // both hold one row: each now waits for the other's
									barrier.Wait()
								}
								if _, err := orm.Query[Acct](s).Where("id = ?", second).ForUpdate().One(ctx); err != nil {
									return err
								}
								return b.transferIn(ctx, s, first, second, 2)
							}, orm.MaxAttempts(attempts))
							if err != nil {
								failed.Add(1)
								if errors.Is(err, orm.ErrRetryable) {
									deadlocks.Add(1)
								} else {
									t.Errorf("deadlock victim: got %v, want ErrRetryable", err)
								}
								t.Logf("deadlock, %d attempt(s) allowed: %v", attempts, err)
							}
						}()
					}
					wg.Wait()
					applied += 2 - int(failed.Load())
					if attempts == 1 && deadlocks.Load() != 1 {
						t.Errorf("two transfers locking in opposite orders, one attempt each: %d failed as deadlocked, want 1", deadlocks.Load())
					}
					if attempts > 1 && failed.Load() != 0 {
						t.Errorf("two transfers locking in opposite orders, %d attempts each: %d failed, want 0 (Do retries the victim)", attempts, failed.Load())
					}
				}
			})

			t.Run("statement_timeout", func(t *testing.T) {
				sleep := "SELECT SLEEP(5)"
				if kind == servers.KindPostgres {
					sleep = "SELECT pg_sleep(5)"
				}
				attempts := 0
				start := time.Now()
				err := b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					attempts++
					if err := b.transferIn(ctx, s, b.ids[4], b.ids[5], 3); err != nil {
						return err
					}
					if err := s.Flush(ctx); err != nil {
						return err
					}
					_, err := s.Exec(ctx, sleep) // a report that runs too long
					return err
				})
				took := time.Since(start)
				t.Logf("statement timeout after %v, %d attempt(s): %v", took.Round(time.Millisecond), attempts, err)
				if !errors.Is(err, orm.ErrStatementTimeout) || errors.Is(err, orm.ErrRetryable) {
					t.Errorf("a statement past the statement timeout: got %v, want ErrStatementTimeout, not ErrRetryable", err)
				}
				if attempts != 1 {
					t.Errorf("a statement timeout was tried %d times, want 1 (not retried)", attempts)
				}
				if took > 3*time.Second {
					t.Errorf("a 2 s statement timeout took %v", took)
				}
			})

			if got := b.audit(t); got != applied {
				t.Errorf("journal holds %d transfers, want the %d that succeeded", got, applied)
			}
			b.checkServes(t)
			checkIdle(t, b.eng)
			b.eng.Close()
			leaks()
		})
	}
}
