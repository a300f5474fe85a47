package reliability

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/orm"
)

// The bank every fault test runs: accounts whose balances only transfers
// change, and a journal row per applied transfer, written in the same
// transaction. After any fault the database must hold whole transfers
// only: the sum of the balances is what it was, and each account's
// balance is its opening balance plus what the journal says it received
// minus what it sent.

// Acct is an account of the bank.
type Acct struct {
	ID      int64 `db:"id,pk,auto"`
	Balance int64 `db:"balance"`
	Version int64 `db:"version,version"`
}

// Journal is one applied transfer.
type Journal struct {
	ID     int64 `db:"id,pk,auto"`
	From   int64 `db:"from_id"`
	To     int64 `db:"to_id"`
	Amount int64 `db:"amount"`
}

const (
	nAccounts = 8
	opening   = 1000
)

// longTest skips t unless TALLY_RELIABILITY=1: these tests start their
// own servers and run load for seconds.
func longTest(t *testing.T) {
	t.Helper()
	if os.Getenv("TALLY_RELIABILITY") != "1" {
		t.Skip("reliability: a long fault test; run make reliability (or set TALLY_RELIABILITY=1)")
	}
}

// bank is the bank on one engine.
type bank struct {
	eng *orm.Engine
	ids []int64
}

// newBank creates the tables and the accounts.
func newBank(t *testing.T, eng *orm.Engine) *bank {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.CreateTables(ctx, Acct{}, Journal{}); err != nil {
		t.Fatalf("create tables: %v", err)
	}
	b := &bank{eng: eng}
	err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		accts := make([]*Acct, nAccounts)
		for i := range accts {
			accts[i] = &Acct{Balance: opening}
			if err := s.Add(accts[i]); err != nil {
				return err
			}
		}
		if err := s.Flush(ctx); err != nil {
			return err
		}
		for _, a := range accts {
			b.ids = append(b.ids, a.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("open the accounts: %v", err)
	}
	return b
}

// transfer moves amount from account from to account to in one Do, with
// its journal row: a whole transaction or nothing.
func (b *bank) transfer(ctx context.Context, from, to, amount int64, opts ...orm.DoOption) error {
	return b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		return b.transferIn(ctx, s, from, to, amount)
	}, opts...)
}

// transferIn is transfer's work in session s.
func (b *bank) transferIn(ctx context.Context, s *orm.Session, from, to, amount int64) error {
	f, err := orm.Get[Acct](ctx, s, from)
	if err != nil {
		return err
	}
	g, err := orm.Get[Acct](ctx, s, to)
	if err != nil {
		return err
	}
	f.Balance -= amount
	g.Balance += amount
	return s.Add(&Journal{From: from, To: to, Amount: amount})
}

// audit checks the bank's invariant on a fresh session and returns the
// number of journal rows (applied transfers).
func (b *bank) audit(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var accts []*Acct
	var journal []*Journal
	err := b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		var err error
		if accts, err = orm.Query[Acct](s).All(ctx); err != nil {
			return err
		}
		journal, err = orm.Query[Journal](s).All(ctx)
		return err
	}, orm.Snapshot())
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	want := map[int64]int64{}
	for _, id := range b.ids {
		want[id] = opening
	}
	for _, j := range journal {
		want[j.From] -= j.Amount
		want[j.To] += j.Amount
	}
	var sum int64
	for _, a := range accts {
		sum += a.Balance
		if a.Balance != want[a.ID] {
			t.Errorf("account %d: balance %d, but its opening balance and the journal say %d: a half-applied transfer", a.ID, a.Balance, want[a.ID])
		}
	}
	if len(accts) != nAccounts || sum != nAccounts*opening {
		t.Errorf("bank: %d accounts holding %d, want %d holding %d", len(accts), sum, nAccounts, nAccounts*opening)
	}
	return len(journal)
}

// checkIdle checks that the engine has every connection back: InUse
// returns to 0 (it may take a moment after the last request returns only
// for connections a driver is still closing).
func checkIdle(t *testing.T, eng *orm.Engine) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for eng.DB().Stats().InUse != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := eng.DB().Stats().InUse; n != 0 {
		t.Errorf("connections in use after the fault: got %d, want 0", n)
	}
}

// checkServes checks that a new transfer succeeds promptly.
func (b *bank) checkServes(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.transfer(ctx, b.ids[0], b.ids[1], 1, orm.RetryOnStale()); err != nil {
		t.Errorf("the next request after the fault: got %v, want success", err)
	}
}

// goroutineBaseline returns a check that the goroutines running now are
// all that run once the test's work is done, given time to settle: no
// leaked request, timer or driver goroutine. (goleak.VerifyNone would
// also flag the servers package's process waiters, which end at cleanup.)
func goroutineBaseline(t *testing.T) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		n := runtime.NumGoroutine()
		for n > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		if n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d running, %d before the test: a leak\n%s", n, before, buf)
		}
	}
}

// load runs transfers from workers goroutines until stop is closed,
// counting outcomes.
type load struct {
	b       *bank
	opts    []orm.DoOption
	timeout time.Duration // each request's deadline

	ok, failed, unknown atomic.Int64
	mu                  sync.Mutex
	errs                map[string]int // failures by message shape, for the report
	untyped             []error        // failures matching no Tally class
	slowest             time.Duration  // the longest a failing request took
	wg                  sync.WaitGroup
}

func newLoad(b *bank, timeout time.Duration, opts ...orm.DoOption) *load {
	return &load{b: b, timeout: timeout, opts: opts, errs: map[string]int{}}
}

// run starts workers goroutines that transfer until stop closes.
func (l *load) run(workers int, stop <-chan struct{}) {
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from := l.b.ids[(w+i)%nAccounts]
				to := l.b.ids[(w+i*3+1)%nAccounts]
				if from == to {
					to = l.b.ids[(w+i+1)%nAccounts]
				}
				ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
				start := time.Now()
				err := l.b.transfer(ctx, from, to, int64(1+i%7), l.opts...)
				took := time.Since(start)
				cancel()
				l.record(err, took)
				if err != nil {
					time.Sleep(2 * time.Millisecond) // a client pausing before its next try
				}
			}
		}()
	}
}

func (l *load) record(err error, took time.Duration) {
	if err == nil {
		l.ok.Add(1)
		return
	}
	l.failed.Add(1)
	if errors.Is(err, orm.ErrCommitUnknown) {
		l.unknown.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slowest = max(l.slowest, took)
	l.errs[shape(err)]++
	if !typed(err) && len(l.untyped) < 5 {
		l.untyped = append(l.untyped, err)
	}
}

// typed reports whether err carries a class a caller can act on.
func typed(err error) bool {
	return errors.Is(err, orm.ErrConnection) || errors.Is(err, orm.ErrCommitUnknown) ||
		errors.Is(err, orm.ErrRetryable) || errors.Is(err, orm.ErrStaleData) ||
		errors.Is(err, context.DeadlineExceeded)
}

// shape is err's class and the start of its message, for counting.
func shape(err error) string {
	class := "untyped"
	switch {
	case errors.Is(err, orm.ErrCommitUnknown):
		class = "ErrCommitUnknown"
	case errors.Is(err, orm.ErrConnection):
		class = "ErrConnection"
	case errors.Is(err, orm.ErrRetryable):
		class = "ErrRetryable"
	case errors.Is(err, orm.ErrStaleData):
		class = "ErrStaleData"
	case errors.Is(err, context.DeadlineExceeded):
		class = "deadline"
	}
	msg := err.Error()
	if len(msg) > 90 {
		msg = msg[:90]
	}
	return class + ": " + strings.TrimSpace(msg)
}

func (l *load) wait() { l.wg.Wait() }

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "ok %d, failed %d (commit unknown %d), slowest failure %v", l.ok.Load(), l.failed.Load(), l.unknown.Load(), l.slowest.Round(time.Millisecond))
	for k, n := range l.errs {
		fmt.Fprintf(&b, "\n  %5d × %s", n, k)
	}
	return b.String()
}
