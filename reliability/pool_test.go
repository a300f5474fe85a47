package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/tallyorm/tally/dialect/sqlite"
	"github.com/tallyorm/tally/orm"
)

// eachDatabase runs fn on a throwaway MariaDB, a throwaway PostgreSQL and
// a SQLite file, each with a bank opened with opts.
func eachDatabase(t *testing.T, db string, fn func(t *testing.T, b *bank), opts ...orm.Option) {
	for _, kind := range append(kinds, "sqlite") {
		t.Run(kind, func(t *testing.T) {
			if kind == "sqlite" {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				eng, err := orm.Open(ctx, "sqlite", filepath.Join(t.TempDir(), db+".db"), opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { eng.Close() })
				fn(t, newBank(t, eng))
				return
			}
			fn(t, openBank(t, startServer(t, kind), db, opts...))
		})
	}
}

// A panic inside Do and inside a Middleware handler, among transfers
// running concurrently: each panicking transfer is rolled back whole, the
// others commit, and every connection and goroutine is returned. (The
// single-request cases are TestDoRepanics and TestMiddlewarePanicRollsBack
// in orm.)
func TestPanicsUnderLoadRollBackAndReturnTheirConnections(t *testing.T) {
	longTest(t)
	eachDatabase(t, "bank_panic", func(t *testing.T, b *bank) {
		leaks := goroutineBaseline(t)
		var ok atomic.Int64
		var wg sync.WaitGroup
		const workers, each = 6, 30
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					from, to := b.ids[(w+i)%nAccounts], b.ids[(w+i+1)%nAccounts]
					panics := i%5 == 4
					err := func() (err error) {
						defer func() {
							if p := recover(); p != nil {
								err = fmt.Errorf("panic: %v", p)
							}
						}()
						return b.eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
							if err := b.transferIn(ctx, s, from, to, 1); err != nil {
								return err
							}
							if err := s.Flush(ctx); err != nil { // the transfer's rows are written, uncommitted
								return err
							}
							if panics {
								panic("a bug in the handler")
							}
							return nil
						}, orm.RetryOnStale(), orm.MaxAttempts(20))
					}()
					switch {
					case err == nil && !panics:
						ok.Add(1)
					case panics && err != nil && err.Error() == "panic: a bug in the handler":
					default:
						t.Errorf("transfer %d/%d (panics: %v): %v", w, i, panics, err)
					}
				}
			}()
		}

		// The same through the Middleware, over HTTP.
		srv := httptest.NewUnstartedServer(b.eng.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := orm.SessionFrom(r.Context())
			if err := b.transferIn(r.Context(), s, b.ids[6], b.ids[7], 1); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			if err := s.Flush(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			if r.URL.Query().Get("panic") != "" {
				panic("a bug in the handler")
			}
			io.WriteString(w, "ok")
		})))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // net/http logs each panic with its stack
		srv.Start()
		var httpOK atomic.Int64
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				url := srv.URL
				if i%4 == 3 {
					url += "?panic=1"
				}
				resp, err := srv.Client().Get(url)
				if err != nil {
					return // a panicking handler's connection is dropped
				}
				defer resp.Body.Close()
				if resp.StatusCode == http.StatusOK && i%4 != 3 {
					httpOK.Add(1)
				}
			}()
		}
		wg.Wait()
		srv.Close()
		srv.Client().CloseIdleConnections()
		applied := b.audit(t)
		if want := ok.Load() + httpOK.Load(); int64(applied) != want {
			t.Errorf("journal holds %d transfers, want the %d that succeeded (no panicking one)", applied, want)
		}
		t.Logf("%d transfers committed, %d panicked and rolled back", applied, workers*each/5+10)
		b.checkServes(t)
		checkIdle(t, b.eng)
		b.eng.Close()
		leaks()
	})
}

// A pool exhausted by slow requests: callers wait for a connection, and
// those whose context ends first fail with its error, promptly; a request
// that nests Do (a savepoint) or reads before it writes never needs a
// second connection, so a pool of one does not deadlock.
func TestExhaustedPoolMakesCallersWaitOrFailWithTheirContext(t *testing.T) {
	longTest(t)
	eachDatabase(t, "bank_pool", func(t *testing.T, b *bank) {
		leaks := goroutineBaseline(t)
		const hold = time.Second
		var wg sync.WaitGroup
		// Two slow requests take both connections and hold them: reports
		// reading in one snapshot (a transaction; on SQLite two writers
		// could not both hold one).
		held := make(chan struct{}, 2)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := b.eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
					if _, err := orm.Query[Acct](s).Count(ctx); err != nil {
						return err
					}
					held <- struct{}{}
					time.Sleep(hold)
					return nil
				}, orm.Snapshot())
				if err != nil {
					t.Errorf("slow request: %v", err)
				}
			}()
		}
		<-held
		<-held
		if b.eng.DB().Stats().InUse != 2 {
			t.Fatalf("the slow requests hold %d connections, want 2", b.eng.DB().Stats().InUse)
		}
		// Impatient callers fail with their deadline, at their deadline.
		var impatient sync.WaitGroup
		for range 4 {
			impatient.Add(1)
			go func() {
				defer impatient.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				start := time.Now()
				err := b.transfer(ctx, b.ids[4], b.ids[5], 1)
				took := time.Since(start)
				if !errors.Is(err, context.DeadlineExceeded) || took > 700*time.Millisecond {
					t.Errorf("a caller waiting for a connection with a 200 ms deadline: %v after %v, want the deadline's error, promptly", err, took)
				}
			}()
		}
		// Patient callers wait and succeed.
		var patientOK atomic.Int64
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := b.transfer(ctx, b.ids[6], b.ids[7], 1, orm.RetryOnStale(), orm.MaxAttempts(20)); err != nil {
					t.Errorf("a caller waiting for a connection with a 10 s deadline: %v, want success", err)
					return
				}
				patientOK.Add(1)
			}()
		}
		impatient.Wait()
		wg.Wait()
		checkIdle(t, b.eng)

		// A pool of one: reads before the first write, a nested Do and
		// the commit all run on the one connection.
		b.eng.DB().SetMaxOpenConns(1)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				if _, err := orm.Query[Acct](s).Count(ctx); err != nil {
					return err
				}
				if err := b.transferIn(ctx, s, b.ids[0], b.ids[1], 1); err != nil {
					return err
				}
				return b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					return b.transferIn(ctx, s, b.ids[1], b.ids[2], 1)
				})
			})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("a nested Do on a pool of one: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a nested Do on a pool of one did not finish: a deadlock")
		}
		b.eng.DB().SetMaxOpenConns(2)
		if got, want := b.audit(t), int(patientOK.Load())+2; got != want {
			t.Errorf("journal holds %d transfers, want %d", got, want)
		}
		b.checkServes(t)
		checkIdle(t, b.eng)
		b.eng.Close()
		leaks()
	}, orm.WithMaxOpenConns(2))
}
