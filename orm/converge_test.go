package orm_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Contention that converges: many goroutines moving money between a few
// accounts with eng.Do(..., RetryOnStale()), each transfer a plain Get,
// change, return nil. The retries Do makes after a stale-data or deadlock
// failure lock the rows they read, so nearly every transfer commits within
// the default attempts, and no money appears or disappears.

// convergeRun moves money with workers×perWorker transfers between
// accounts and returns how many failed after Do's retries, the elapsed
// time, and each account's expected balance change from the transfers
// that committed.
func convergeRun(t *testing.T, eng *orm.Engine, ids []int64, workers, perWorker int) (failed int, elapsed time.Duration, want map[int64]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	want = map[int64]int64{}
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range perWorker {
				from := ids[rng.IntN(len(ids))]
				to := ids[rng.IntN(len(ids)-1)]
				if to == from {
					to = ids[len(ids)-1]
				}
				amount := int64(1 + rng.IntN(10))
				err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					a, err := orm.Get[Account](ctx, s, from)
					if err != nil {
						return err
					}
					b, err := orm.Get[Account](ctx, s, to)
					if err != nil {
						return err
					}
					a.Balance -= amount
					b.Balance += amount
					return nil
				}, orm.RetryOnStale())
				mu.Lock()
				if err != nil {
					failed++
					if first == nil {
						first = err
					}
				} else {
					want[from] -= amount
					want[to] += amount
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed = time.Since(start)
	if first != nil {
		t.Logf("first failure: %v", first)
	}
	return failed, elapsed, want
}

func TestDoRetriesConvergeUnderContention(t *testing.T) {
	if testing.Short() {
		t.Skip("contention run: not in -short")
	}
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		const accounts, initial = 6, 100000
		const workers, perWorker = 24, 40
		var ids []int64
		for i := range accounts {
			a := newAccount(string(rune('a'+i))+"-converge", initial)
			seedObjects(t, eng, a)
			ids = append(ids, a.ID)
		}
		failed, elapsed, want := convergeRun(t, eng, ids, workers, perWorker)
		total := workers * perWorker
		t.Logf("%s: %d/%d transfers failed after retries (%.2f%%), %v, %.0f transfers/s",
			tg.Name, failed, total, 100*float64(failed)/float64(total), elapsed.Round(time.Millisecond),
			float64(total-failed)/elapsed.Seconds())
		if failed*100 >= total {
			t.Errorf("failed transfers: got %d of %d, want under 1%%", failed, total)
		}
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Query[Account](s).Where("id IN (?)", ids).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, a := range got {
			sum += a.Balance
			if a.Balance != initial+want[a.ID] {
				t.Errorf("account %d: balance %d, want %d (initial plus the committed transfers)", a.ID, a.Balance, initial+want[a.ID])
			}
		}
		if sum != accounts*initial {
			t.Errorf("total money: got %d, want %d", sum, accounts*initial)
		}
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Errorf("connections in use after the run: got %d, want 0", n)
		}
	})
}

// The attempt after a stale-data failure locks, in key order and before
// fn runs, the rows the failed attempt read; fn's Gets of them then send
// no SQL, and the attempt commits.
func TestDoRetryAfterStaleLocksTheRowsTheFailedAttemptRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log queryLog
		eng := openEngine(t, tg, nil, orm.WithQueryHook(log.hook))
		ctx := context.Background()
		x, y := newAccount("lock-x", 100), newAccount("lock-y", 100)
		seedObjects(t, eng, x, y)
		attempts := 0
		var second []orm.QueryEvent
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			attempts++
			if attempts == 2 {
				second = log.Take() // what the attempt sent before fn
			}
			// Read y first: the lock order must be the key order anyway.
			b, err := orm.Get[Account](ctx, s, y.ID)
			if err != nil {
				return err
			}
			a, err := orm.Get[Account](ctx, s, x.ID)
			if err != nil {
				return err
			}
			if attempts == 1 {
				// Another transaction changes x after this attempt read it
				// (a ctx without the session: not a savepoint of this one).
				if err := eng.Do(context.Background(), func(ctx context.Context, o *orm.Session) error {
					other, err := orm.Get[Account](ctx, o, x.ID)
					if err != nil {
						return err
					}
					other.Balance += 1
					return nil
				}); err != nil {
					return err
				}
				log.Take()
			}
			if attempts == 2 {
				if evs := log.Take(); len(evs) != 0 {
					t.Errorf("Gets of rows the attempt locked sent %d statements, want none: %v", len(evs), evs)
				}
			}
			a.Balance -= 10
			b.Balance += 10
			return nil
		}, orm.RetryOnStale())
		if err != nil {
			t.Fatalf("Do: got %v, want success on the second attempt", err)
		}
		if attempts != 2 {
			t.Errorf("attempts: got %d, want 2", attempts)
		}
		var selects []string
		for _, ev := range second {
			if strings.HasPrefix(ev.SQL, "SELECT") {
				selects = append(selects, ev.SQL)
				if tg.Name != dbtest.SQLite && !strings.HasSuffix(ev.SQL, "FOR UPDATE") {
					t.Errorf("locking read: got %q, want SELECT ... FOR UPDATE", ev.SQL)
				}
			}
		}
		if len(selects) != 2 {
			t.Errorf("the retry read %d rows before fn, want 2 (the rows the failed attempt read): %v", len(selects), second)
		}
		var keys []int64
		for _, ev := range second {
			if strings.HasPrefix(ev.SQL, "SELECT") && len(ev.Args) == 1 {
				if id, ok := ev.Args[0].(int64); ok {
					keys = append(keys, id)
				}
			}
		}
		if !slices.Equal(keys, []int64{x.ID, y.ID}) {
			t.Errorf("lock order: got keys %v, want %v (key order)", keys, []int64{x.ID, y.ID})
		}
		s := eng.NewSession()
		defer s.Close()
		gx, err := orm.Get[Account](ctx, s, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		gy, err := orm.Get[Account](ctx, s, y.ID)
		if err != nil {
			t.Fatal(err)
		}
		if gx.Balance != 91 || gy.Balance != 110 {
			t.Errorf("balances: got x=%d y=%d, want x=91 y=110", gx.Balance, gy.Balance)
		}
	})
}

// BenchmarkDoGetChangeCommitTwo is one uncontended transfer through Do:
// two Gets, two changes, the commit (which Do orders by key), for the
// cost of that ordering next to the round trips.
func BenchmarkDoGetChangeCommitTwo(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		ids := env.seed(b, 10)
		id1, id2 := ids[6], ids[5] // read in reverse key order
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			err := env.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				x, err := orm.Get[BenchAccount](ctx, s, id1)
				if err != nil {
					return err
				}
				y, err := orm.Get[BenchAccount](ctx, s, id2)
				if err != nil {
					return err
				}
				x.Balance++
				y.Balance--
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
