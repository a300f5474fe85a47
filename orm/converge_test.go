package orm_test

import (
	"context"
	"math/rand/v2"
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
