package orm_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// The bank under load: many goroutines move money between a few accounts
// through eng.Do, each transfer locking both accounts (in id order, so
// there is no deadlock to wait for) and journaling the debit. Afterwards
// the money is all there, no balance went negative, every committed
// transfer is in the journal exactly once, and nothing leaked: not a
// connection, not a goroutine.

var errStressInsufficient = errors.New("stress test: insufficient funds")

type stressTransfer struct {
	from, to int // indexes into the accounts
	amount   int64
}

// stressTally is one goroutine's account of what it did.
type stressTally struct {
	committed, rejected, attempts int
	delta                         []int64 // per account, from committed transfers
	debits                        []int64 // per account, the journal's sum
	errs                          []error // unexpected
}

func TestStressTransfers(t *testing.T) {
	workers, transfers := 64, 200
	if testing.Short() {
		workers, transfers = 16, 50
		t.Logf("-short: %d goroutines × %d transfers instead of 64 × 200", workers, transfers)
	}
	const (
		nAccounts = 10
		opening   = int64(1000)
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		// Every goroutine that exists now is the test harness's or an
		// earlier test's; the engine's must all be gone when it is closed.
		leaks := goleak.IgnoreCurrent()
		eng := openEngine(t, tg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()

		accts := make([]*Account, nAccounts)
		objs := make([]any, nAccounts)
		for i := range accts {
			accts[i] = newAccount(fmt.Sprintf("acct%02d", i), opening)
			objs[i] = accts[i]
		}
		seedObjects(t, eng, objs...)
		ids := make([]int64, nAccounts)
		for i, a := range accts {
			ids[i] = a.ID
		}

		// transfer is one Do's fn: lock both rows in id order, check funds,
		// move the money and journal the debit.
		transfer := func(tr stressTransfer, attempts *int, businessAt *int) func(context.Context, *orm.Session) error {
			return func(ctx context.Context, s *orm.Session) error {
				*attempts++
				lo, hi := ids[tr.from], ids[tr.to]
				if lo > hi {
					lo, hi = hi, lo
				}
				first, err := orm.Query[Account](s).Where("id = ?", lo).ForUpdate().One(ctx)
				if err != nil {
					return err
				}
				second, err := orm.Query[Account](s).Where("id = ?", hi).ForUpdate().One(ctx)
				if err != nil {
					return err
				}
				src, dst := first, second
				if src.ID != ids[tr.from] {
					src, dst = second, first
				}
				if src.Balance < tr.amount {
					*businessAt = *attempts
					return fmt.Errorf("%w: %s has %d, needs %d", errStressInsufficient, src.Owner, src.Balance, tr.amount)
				}
				src.Balance -= tr.amount
				dst.Balance += tr.amount
				return s.Add(&testmodels.Entry{AccountID: src.ID, Amount: -tr.amount})
			}
		}

		tallies := make([]stressTally, workers)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Go(func() {
				tl := &tallies[w]
				tl.delta = make([]int64, nAccounts)
				tl.debits = make([]int64, nAccounts)
				rng := rand.New(rand.NewPCG(seed, uint64(w)))
				for range transfers {
					tr := stressTransfer{from: rng.IntN(nAccounts), amount: 1 + rng.Int64N(300)}
					tr.to = (tr.from + 1 + rng.IntN(nAccounts-1)) % nAccounts
					attempts, businessAt := 0, 0
					err := eng.Do(ctx, transfer(tr, &attempts, &businessAt), orm.RetryOnStale(), orm.MaxAttempts(20))
					tl.attempts += attempts
					switch {
					case err == nil:
						tl.committed++
						tl.delta[tr.from] -= tr.amount
						tl.delta[tr.to] += tr.amount
						tl.debits[tr.from] -= tr.amount
					case errors.Is(err, errStressInsufficient):
						tl.rejected++
						if businessAt != attempts {
							tl.errs = append(tl.errs, fmt.Errorf("a business error was retried: attempt %d of %d", businessAt, attempts))
						}
					default:
						tl.errs = append(tl.errs, fmt.Errorf("transfer %+v after %d attempts: %w", tr, attempts, err))
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)

		var committed, rejected, attempts int
		delta := make([]int64, nAccounts)
		debits := make([]int64, nAccounts)
		nerrs := 0
		for _, tl := range tallies {
			committed += tl.committed
			rejected += tl.rejected
			attempts += tl.attempts
			for i := range delta {
				delta[i] += tl.delta[i]
				debits[i] += tl.debits[i]
			}
			for _, err := range tl.errs {
				if nerrs++; nerrs <= 10 {
					t.Error(err)
				}
			}
		}
		total := workers * transfers
		t.Logf("%s: %d×%d transfers in %v (%.0f/s): %d committed, %d rejected (insufficient funds), %d failed; %d attempts (%d retries)",
			tg.Name, workers, transfers, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(),
			committed, rejected, nerrs, attempts, attempts-total)
		if nerrs > 10 {
			t.Errorf("... and %d more unexpected errors", nerrs-10)
		}
		if elapsed > 60*time.Second {
			t.Logf("NOTE: %s took %v, over the 60 s budget", tg.Name, elapsed.Round(time.Second))
		}

		// The money is all there, and nowhere negative.
		var sum, minBal, n int64
		if err := eng.DB().QueryRowContext(ctx, "SELECT SUM(balance), MIN(balance), COUNT(*) FROM accounts").Scan(&sum, &minBal, &n); err != nil {
			t.Fatal(err)
		}
		if n != nAccounts || sum != nAccounts*opening {
			t.Errorf("%d accounts hold %d in all, want %d holding %d", n, sum, nAccounts, nAccounts*opening)
		}
		if minBal < 0 {
			t.Errorf("a balance went negative: %d", minBal)
		}
		// Each account holds exactly what the committed transfers say.
		for i, id := range ids {
			bal, _ := scopeAccount(t, eng, id)
			if want := opening + delta[i]; bal != want {
				t.Errorf("account %d: balance %d, want %d from the committed transfers", i, bal, want)
			}
		}
		// The journal has one debit per committed transfer, on the right
		// account, and nothing from rejected or retried attempts.
		var entries int64
		if err := eng.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM entries").Scan(&entries); err != nil {
			t.Fatal(err)
		}
		if entries != int64(committed) {
			t.Errorf("%d journal entries, %d committed transfers", entries, committed)
		}
		rows, err := eng.DB().QueryContext(ctx, "SELECT account_id, SUM(amount) FROM entries GROUP BY account_id")
		if err != nil {
			t.Fatal(err)
		}
		journal := map[int64]int64{}
		for rows.Next() {
			var id, amount int64
			if err := rows.Scan(&id, &amount); err != nil {
				t.Fatal(err)
			}
			journal[id] = amount
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		for i, id := range ids {
			if journal[id] != debits[i] {
				t.Errorf("account %d: journal debits %d, committed debits %d", i, journal[id], debits[i])
			}
		}
		if committed == 0 || committed+rejected+nerrs != total {
			t.Errorf("%d committed + %d rejected + %d failed != %d transfers", committed, rejected, nerrs, total)
		}

		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Errorf("%d connections in use after the run (open %d)", st.InUse, st.OpenConnections)
		}
		// Closing the engine must stop everything it started: the pool's
		// opener, the drivers' per-connection goroutines.
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		goleak.VerifyNone(t, leaks)
	})
}
