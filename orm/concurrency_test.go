package orm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Concurrency tests: a Session shared by mistake between goroutines, and
// many sessions at once on one engine (SQLite's single writer above all).
// Run them under the race detector too:
//
//	go test -race -run Concurrent ./orm/
//
// Helpers are in session_test.go and helpers_test.go.

// uowWithin runs fn and fails the test if it has not returned after d. fn
// keeps running in the background then; the test's cleanup waits for it
// through the engine.
func uowWithin(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

// Overlapping calls on one session get ErrConcurrentUse and change
// nothing; the calls that got in leave the session consistent.
func TestConcurrentMisuseIsDetected(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		seeded := make([]*testmodels.Blob, 20)
		for i := range seeded {
			seeded[i] = &testmodels.Blob{Data: fmt.Appendf(nil, "seed %d", i)}
		}
		seedObjects(t, eng, anys(seeded)...)

		s := eng.NewSession()
		defer s.Close()
		const workers, calls = 8, 200
		var (
			conflicts  atomic.Int64
			gotIn      [workers]int // calls that did not get ErrConcurrentUse, per goroutine
			mu         sync.Mutex
			added      []*testmodels.Blob // Add succeeded
			refused    []*testmodels.Blob // Add returned ErrConcurrentUse
			unexpected []error
		)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				<-start
				var mine *testmodels.Blob
				for i := range calls {
					// A refused call returns at once: without a pause one
					// goroutine's first statement outlasts all the other
					// goroutines' calls, and nothing interleaves after it.
					time.Sleep(time.Duration(i%4) * 25 * time.Microsecond)
					var err error
					switch (w + i) % 4 {
					case 0:
						b := &testmodels.Blob{Data: fmt.Appendf(nil, "w%d call %d", w, i)}
						err = s.Add(b)
						mu.Lock()
						if err == nil {
							added = append(added, b)
							mine = b
						} else if errors.Is(err, orm.ErrConcurrentUse) {
							refused = append(refused, b)
						}
						mu.Unlock()
					case 1:
						var got *testmodels.Blob
						id := seeded[(w*calls+i)%len(seeded)].ID
						got, err = orm.Get[testmodels.Blob](ctx, s, id)
						if err == nil && got.ID != id {
							err = fmt.Errorf("Get(%d) returned blob %d", id, got.ID)
						}
					case 2:
						if mine != nil {
							s.IsDirty(mine) // true or false: both are right while others run
						}
					case 3:
						err = s.Flush(ctx)
					}
					if errors.Is(err, orm.ErrConcurrentUse) {
						conflicts.Add(1)
						continue
					}
					gotIn[w]++
					if err != nil {
						mu.Lock()
						unexpected = append(unexpected, err)
						mu.Unlock()
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range unexpected {
			t.Errorf("a call failed with neither success nor ErrConcurrentUse: %v", err)
		}
		t.Logf("%d calls refused with ErrConcurrentUse; %d Adds got in, %d refused", conflicts.Load(), len(added), len(refused))
		if conflicts.Load() == 0 {
			t.Fatal("no call saw ErrConcurrentUse: the goroutines never overlapped, or the guard is missing")
		}
		t.Logf("calls that got in, per goroutine: %v", gotIn)
		if n := len(slices.DeleteFunc(gotIn[:], func(n int) bool { return n == 0 })); n < 2 {
			t.Fatalf("calls got in from %d goroutine(s): the session was not shared in earnest", n)
		}

		// Consistent afterwards: every Add that got in commits, none other.
		uowMust(t, s.Commit(ctx))
		if st := s.Stats(); st.Pending != 0 {
			t.Fatalf("Stats() = %+v after Commit", st)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != int64(len(seeded)+len(added)) {
			t.Fatalf("%d rows, want %d seeded + %d added", n, len(seeded), len(added))
		}
		for _, b := range added {
			if b.ID == 0 || countRows(t, eng, "SELECT COUNT(*) FROM blobs WHERE id = ?", b.ID) != 1 {
				t.Fatalf("an added blob (%s) was not inserted under its key %d", b.Data, b.ID)
			}
		}
		for _, b := range refused {
			if b.ID != 0 || s.IsDirty(b) {
				t.Fatalf("a refused Add (%s) left a trace: id %d dirty %v", b.Data, b.ID, s.IsDirty(b))
			}
		}
	})
}

// Eight sessions hold read transactions open; none waits for another, and
// a writer commits while they are open. On SQLite this needs readers that
// begin deferred transactions (an IMMEDIATE BEGIN takes the write lock, and
// every other session would queue behind it for the busy timeout).
func TestConcurrentReadersDoNotBlockWriter(t *testing.T) {
	const bound = 2 * time.Second // generous for a loaded CI machine; the work takes milliseconds
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		const readers = 8
		rs := make([]*orm.Session, readers)
		for i := range rs {
			// Snapshot sessions: their reads hold transactions open (a
			// plain session's reads run in autocommit and hold nothing).
			rs[i] = eng.NewSession(orm.WithSnapshot())
			defer rs[i].Close()
		}
		// All readers at once; each keeps its transaction open afterwards.
		uowWithin(t, bound, "8 concurrent readers", func() error {
			var wg sync.WaitGroup
			errs := make([]error, readers)
			for i, r := range rs {
				wg.Go(func() { _, errs[i] = orm.Get[Account](ctx, r, ann.ID) })
			}
			wg.Wait()
			return errors.Join(errs...)
		})

		// A writer that reads first, then writes the row the readers read.
		w := eng.NewSession()
		defer w.Close()
		uowWithin(t, bound, "writer reading and committing while 8 read transactions are open", func() error {
			a, err := orm.Get[Account](ctx, w, ann.ID)
			if err != nil {
				return err
			}
			a.Balance = 1
			return w.Commit(ctx)
		})
		// A writer whose first statement writes.
		w2 := eng.NewSession()
		defer w2.Close()
		uowWithin(t, bound, "inserting writer committing while 8 read transactions are open", func() error {
			if err := w2.Add(&testmodels.Blob{Data: []byte("w2")}); err != nil {
				return err
			}
			return w2.Commit(ctx)
		})
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance = 1 AND version = 2"); n != 1 {
			t.Fatal("the writer's change is not committed")
		}
		for _, r := range rs {
			uowMust(t, r.Commit(ctx))
		}
	})
}

// A session that reads, then writes, while other sessions commit writes:
// on SQLite its lock upgrade can find the database changed under it
// (SQLITE_BUSY_SNAPSHOT) or locked; that must surface as ErrRetryable, and
// nothing else. Each worker writes its own account, so optimistic locking
// has nothing to report.
func TestConcurrentReadThenWrite(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		const workers, rounds = 8, 10
		accts := make([]*Account, workers)
		for i := range accts {
			accts[i] = newAccount(fmt.Sprintf("worker%d", i), 0)
		}
		seedObjects(t, eng, anys(accts)...)

		var (
			mu         sync.Mutex
			unexpected []error
			retryable  atomic.Int64
			successes  [workers]int64
		)
		fail := func(err error) {
			mu.Lock()
			unexpected = append(unexpected, err)
			mu.Unlock()
		}
		stop := make(chan struct{})
		var writers sync.WaitGroup
		for w := range 2 { // other writers, committing inserts as fast as they can
			writers.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					s := eng.NewSession()
					err := s.Add(&testmodels.Blob{Data: fmt.Appendf(nil, "writer %d #%d", w, i)})
					if err == nil {
						err = s.Commit(ctx)
					}
					s.Close()
					if err != nil && !errors.Is(err, orm.ErrRetryable) {
						fail(fmt.Errorf("inserting writer: %w", err))
						return
					}
				}
			})
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range rounds {
					// A snapshot session: its read opens the transaction
					// whose lock the write upgrades (a plain session's read
					// runs in autocommit, and its write begins afresh).
					s := eng.NewSession(orm.WithSnapshot())
					a, err := orm.Get[Account](ctx, s, accts[w].ID)
					if err != nil {
						s.Close()
						fail(fmt.Errorf("worker %d: Get: %w", w, err))
						return
					}
					time.Sleep(time.Millisecond) // let the other writers commit
					a.Balance++
					err = s.Commit(ctx)
					s.Close()
					switch {
					case err == nil:
						successes[w]++
					case errors.Is(err, orm.ErrRetryable):
						retryable.Add(1)
					default:
						fail(fmt.Errorf("worker %d: Commit: %w", w, err))
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		writers.Wait()
		for _, err := range unexpected {
			t.Errorf("neither success nor ErrRetryable: %v", err)
		}
		var total int64
		for w, n := range successes {
			total += n
			if got := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE id = ? AND balance = ? AND version = ?", accts[w].ID, n, n+1); got != 1 {
				t.Errorf("worker %d: %d commits succeeded, but its row does not show exactly that many", w, n)
			}
		}
		// Under a steady stream of commits a read-then-write session on
		// SQLite may never get through (every upgrade finds a newer
		// snapshot), so success is not required above. Once the others
		// stop, it must.
		t.Logf("%d commits succeeded, %d failed with ErrRetryable", total, retryable.Load())
		for w, a := range accts {
			s := eng.NewSession()
			got, err := orm.Get[Account](ctx, s, a.ID)
			uowMust(t, err)
			got.Balance = -1
			if err := s.Commit(ctx); err != nil {
				t.Fatalf("worker %d, alone: Commit: %v", w, err)
			}
			s.Close()
		}
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Fatalf("%d connections in use at the end", n)
		}
	})
}

// TestConcurrentReadThenWriteThroughDo is the same contention with the work
// run through eng.Do, as a server should, in plain sessions: every transfer
// must commit. Their reads run in autocommit and each commit is one UPDATE
// sent alone, so no lock is upgraded and retries are rare; the attempts are
// logged. (Snapshot sessions that fail busy and are retried IMMEDIATE are
// tested in scope_test.go.)
func TestConcurrentReadThenWriteThroughDo(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		const workers, rounds = 8, 10
		accts := make([]*Account, workers)
		for i := range accts {
			accts[i] = newAccount(fmt.Sprintf("doworker%d", i), 0)
		}
		seedObjects(t, eng, anys(accts)...)

		stop := make(chan struct{})
		var writers sync.WaitGroup
		for w := range 2 {
			writers.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_ = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
						return s.Add(&testmodels.Blob{Data: fmt.Appendf(nil, "writer %d #%d", w, i)})
					})
				}
			})
		}
		var attempts atomic.Int64
		errs := make(chan error, workers*rounds)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range rounds {
					errs <- eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
						attempts.Add(1)
						a, err := orm.Get[Account](ctx, s, accts[w].ID)
						if err != nil {
							return err
						}
						time.Sleep(time.Millisecond) // let the other writers commit
						a.Balance++
						return nil
					}, orm.MaxAttempts(20))
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		close(stop)
		writers.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Do: %v", err)
			}
		}
		for w := range accts {
			if got := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE id = ? AND balance = ?", accts[w].ID, rounds); got != 1 {
				t.Errorf("worker %d: balance is not %d", w, rounds)
			}
		}
		t.Logf("%d read-then-write units of work committed through Do in %v with %d attempts (%.2f per unit), 2 writers committing meanwhile",
			workers*rounds, took.Round(time.Millisecond), attempts.Load(), float64(attempts.Load())/float64(workers*rounds))
	})
}
