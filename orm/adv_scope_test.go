package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Adversarial tests of the scoped-session API (Engine.Do, Engine.Middleware):
// ways a handler or fn can reach the client, or finish, other than the
// ones middleware_test.go and scope_test.go cover, each checked against
// what the database holds.

// A handler that takes over the connection through ResponseController
// (what websocket libraries do) answers the client itself, bypassing
// WriteHeader: the middleware must commit before the connection is handed
// over, and when that commit fails the handler gets no connection and the
// client a 409, never the handler's own answer.
func TestMiddlewareHijackCommitsFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		seedObjects(t, eng, newAccount("ann", 100))
		for _, tc := range []struct {
			owner     string // "ann" exists: the commit fails on a unique violation
			wantCode  int
			wantRows  int64 // rows of owner committed when Hijack returned, and at the end
			wantHijak bool
		}{
			{"bob", http.StatusOK, 1, true},
			{"ann", http.StatusConflict, 1, false},
		} {
			t.Run(tc.owner, func(t *testing.T) {
				atHijack := make(chan int64, 1)
				hijacked := make(chan error, 1)
				srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
					mwSession(w, r).Add(newAccount(tc.owner, 1))
					conn, brw, err := http.NewResponseController(w).Hijack()
					hijacked <- err
					if err != nil {
						return
					}
					defer conn.Close()
					n, err := countRowsErr(eng, "SELECT COUNT(*) FROM accounts WHERE owner = ?", tc.owner)
					if err != nil {
						n = -1
					}
					atHijack <- n
					io.WriteString(brw, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
					brw.Flush()
				})
				code, body, _ := mwGet(t, srv, "/")
				if code != tc.wantCode {
					t.Fatalf("status %d (body %q), want %d", code, body, tc.wantCode)
				}
				if err := <-hijacked; (err == nil) != tc.wantHijak {
					t.Fatalf("Hijack: %v; want a connection: %v", err, tc.wantHijak)
				}
				if tc.wantHijak {
					if n := <-atHijack; n != tc.wantRows {
						t.Fatalf("when Hijack returned, %d rows were committed, want %d", n, tc.wantRows)
					}
				}
				if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE owner = ?", tc.owner); n != tc.wantRows {
					t.Fatalf("%d rows of %s committed, want %d", n, tc.owner, tc.wantRows)
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}

// 101 Switching Protocols is a final status in net/http, not an
// informational one: the client takes it as the answer to its request.
// The middleware must commit before sending it, as for any success.
func TestMiddlewareSwitchingProtocolsCommitsFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		atHeader := make(chan int64, 1)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			mwSession(w, r).Add(newAccount("upgraded", 1))
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "tally-test")
			w.WriteHeader(http.StatusSwitchingProtocols)
			n, err := countRowsErr(eng, "SELECT COUNT(*) FROM accounts WHERE owner = ?", "upgraded")
			if err != nil {
				n = -1
			}
			atHeader <- n
		})
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "tally-test")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		if n := <-atHeader; n != 1 {
			t.Fatalf("when WriteHeader(101) returned, %d rows were committed, want 1", n)
		}
		scopeNoneInUse(t, eng)
	})
}

// An fn that adds an object captured from outside, flushes it (the
// database assigns its key) and then fails retryably: the retry adds the
// same object again. The rollback must have put the object back as it
// was (no key), so the second attempt inserts it once, and the caller,
// told success, finds exactly one row.
func TestDoRetryReaddsCapturedObjectOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		acct := newAccount("captured", 7)
		attempts := 0
		err := eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
			attempts++
			if err := s.Add(acct); err != nil {
				return err
			}
			if err := s.Flush(ctx); err != nil {
				return err
			}
			if attempts == 1 {
				return scopeRetryable(attempts)
			}
			return nil
		}, orm.RetryBackoff(0, 0))
		if err != nil || attempts != 2 {
			t.Fatalf("Do: %v after %d attempts, want success after 2", err, attempts)
		}
		if got := scopeOwners(t, eng); !slices.Equal(got, []string{"captured"}) {
			t.Fatalf("accounts %v, want exactly one captured", got)
		}
		if bal, _ := scopeAccount(t, eng, acct.ID); bal != 7 {
			t.Fatalf("the object's key %d does not name its row (balance %d)", acct.ID, bal)
		}
	})
}

// A request served by one engine's middleware calls Do on another engine
// (a second database: an audit log, another tenant). The ctx carries the
// first engine's session, but that session is of another database: Do
// must run fn in a session of its own engine and commit it, not write the
// second engine's work into the first database, nor leave it to the
// request's commit.
func TestDoIgnoresOtherEnginesSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		req := openEngine(t, tg, nil)
		other := openEngine(t, dbtest.Target{Name: dbtest.SQLite, Driver: "sqlite", DSN: "file:" + filepath.Join(t.TempDir(), "other.db")}, nil)
		doErr := make(chan error, 1)
		srv := mwServer(t, req, func(w http.ResponseWriter, r *http.Request) {
			doErr <- other.Do(r.Context(), func(ctx context.Context, s *orm.Session) error {
				return s.Add(newAccount("audit", 1))
			})
			http.Error(w, "the request's own work failed", http.StatusBadRequest) // rolls back the request's session
		})
		if code, _, _ := mwGet(t, srv, "/"); code != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", code)
		}
		if err := <-doErr; err != nil {
			t.Fatalf("Do on the other engine: %v", err)
		}
		if got := scopeOwners(t, other); !slices.Equal(got, []string{"audit"}) {
			t.Fatalf("the other engine's database holds %v, want the row Do reported committed", got)
		}
		if got := scopeOwners(t, req); len(got) != 0 {
			t.Fatalf("the request engine's database holds %v, want nothing", got)
		}
		scopeNoneInUse(t, req)
		scopeNoneInUse(t, other)
	})
}

// A handler that leaves the request's session busy in a goroutine when it
// returns (a flush still running; http.TimeoutHandler inside the
// middleware does this on a timeout). The middleware cannot close a
// session in use, but it must not leave it open for ever: the session
// closes when the goroutine's call returns, rolling back and returning
// the connection (an open transaction would hold its row locks), and
// nothing of it is committed; the client is not told success.
func TestMiddlewareClosesSessionLeftBusy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var block atomic.Bool
		entered, release := make(chan struct{}), make(chan struct{})
		eng := openEngine(t, tg, nil, orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
			if block.Load() && strings.HasPrefix(ev.SQL, "INSERT") {
				block.Store(false)
				close(entered)
				<-release // the session stays busy in the goroutine's Flush
			}
		}))
		flushed := make(chan error, 1)
		block.Store(true)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			s := mwSession(w, r)
			s.Add(newAccount("left-busy", 1))
			go func() { flushed <- s.Flush(context.WithoutCancel(r.Context())) }()
			<-entered
		})
		if code, _, _ := mwGet(t, srv, "/"); code < 400 {
			t.Fatalf("status %d: the client was told success about work still in flight", code)
		}
		close(release)
		if err := <-flushed; err != nil {
			t.Logf("the goroutine's flush: %v", err)
		}
		scopeNoneInUse(t, eng)
		if n := countAccounts(t, eng, "owner = ?", "left-busy"); n != 0 {
			t.Fatalf("%d rows committed, want none", n)
		}
	})
}

// http.TimeoutHandler outside the middleware answers 503 when the handler
// is too slow, and the handler goes on: its success status then reaches
// only the timeout writer. The work must not commit behind the client's
// 503 (a client may retry, and would create it twice): the timeout
// cancels the request's ctx, and the commit, run with it, fails.
func TestMiddlewareNoCommitBehindTimeout(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		done := make(chan error, 1)
		h := eng.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mwSession(w, r).Add(newAccount("late", 1))
			<-r.Context().Done() // the timeout has answered the client
			w.WriteHeader(http.StatusCreated)
			_, err := io.WriteString(w, "created\n")
			done <- err
		}))
		srv := httptest.NewServer(http.TimeoutHandler(h, 50*time.Millisecond, "timeout"))
		t.Cleanup(srv.Close)
		code, _, _ := mwGet(t, srv, "/")
		if code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want the timeout's 503", code)
		}
		if err := <-done; err == nil {
			t.Fatal("the late handler's write reported no error")
		}
		if n := countAccounts(t, eng, "owner = ?", "late"); n != 0 {
			t.Fatalf("%d rows committed behind the client's 503, want none", n)
		}
		scopeNoneInUse(t, eng)
	})
}

// Do with session options (a snapshot, an isolation level) under
// contention: goroutines each move one unit into a shared account and
// record it in a row of their own, retrying conflicts. Every Do that
// reported success must be in the database exactly once, and no failed
// one at all: the shared balance and the record rows both count the
// successes.
func TestDoWithSessionOptionsExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []orm.SessionOption
	}{
		{"snapshot", []orm.SessionOption{orm.WithSnapshot()}},
		{"serializable", []orm.SessionOption{orm.WithIsolation(sql.LevelSerializable)}},
		{"repeatable-read", []orm.SessionOption{orm.WithIsolation(sql.LevelRepeatableRead), orm.WithoutAutoflush()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
				eng := openEngine(t, tg, nil)
				pot := newAccount("pot", 0)
				seedObjects(t, eng, pot)
				const workers, each = 6, 4
				var ok, runs atomic.Int64
				var wg sync.WaitGroup
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range each {
							err := eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
								runs.Add(1)
								p, err := orm.Get[Account](ctx, s, pot.ID)
								if err != nil {
									return err
								}
								p.Balance++
								return s.Add(newAccount(fmt.Sprintf("rec-%d-%d", w, i), 1))
							}, orm.RetryOnStale(), orm.MaxAttempts(20), orm.RetryBackoff(time.Millisecond, 20*time.Millisecond),
								orm.WithSessionOptions(tc.opts...))
							if err == nil {
								ok.Add(1)
							} else if errors.Is(err, orm.ErrCommitUnknown) {
								t.Errorf("commit unknown: %v", err)
							}
						}
					}()
				}
				wg.Wait()
				n := ok.Load()
				if n == 0 {
					t.Fatal("no Do succeeded")
				}
				t.Logf("%d of %d succeeded in %d runs of fn", n, workers*each, runs.Load())
				if bal, _ := scopeAccount(t, eng, pot.ID); bal != n {
					t.Fatalf("pot balance %d, but %d Do calls reported success", bal, n)
				}
				if recs := countAccounts(t, eng, "owner LIKE ?", "rec-%"); recs != n {
					t.Fatalf("%d record rows, but %d Do calls reported success", recs, n)
				}
				scopeNoneInUse(t, eng)
			})
		})
	}
}

// advsPanicky is a model whose BeforeInsert hook panics when its name is
// "panic": a bug in user code met in the middle of a commit.
type advsPanicky struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,size=32"`
}

func (advsPanicky) TableName() string { return "advs_panicky" }

// BeforeInsert panics for the name "panic".
func (p *advsPanicky) BeforeInsert(context.Context, *orm.Session) error {
	if p.Name == "panic" {
		panic("hook panic")
	}
	return nil
}

// A hook that panics while Do or the middleware commits: the panic goes
// on to the caller (the server), and nothing of the work is committed,
// whether the panic comes before any statement or after some ran in the
// transaction; the connection is returned.
func TestScopeHookPanicDuringCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		if err := eng.CreateTables(context.Background(), advsPanicky{}); err != nil {
			t.Fatal(err)
		}
		work := func(s *orm.Session, alone bool) {
			if !alone {
				s.Add(newAccount("before-panic", 1), &advsPanicky{Name: "fine"})
			}
			s.Add(&advsPanicky{Name: "panic"})
		}
		for _, alone := range []bool{true, false} {
			var p any
			func() {
				defer func() { p = recover() }()
				eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
					work(s, alone)
					return nil
				})
			}()
			if p != "hook panic" {
				t.Fatalf("Do: recovered %v, want the hook's panic", p)
			}
			srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
				work(mwSession(w, r), alone)
				w.WriteHeader(http.StatusCreated)
			})
			resp, err := srv.Client().Get(srv.URL)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 400 {
					t.Fatalf("the client got %d from a handler whose commit panicked", resp.StatusCode)
				}
			}
			if n := countRows(t, eng, "SELECT COUNT(*) FROM advs_panicky"); n != 0 {
				t.Fatalf("%d hooked rows committed, want none", n)
			}
			if n := countAccounts(t, eng, ""); n != 0 {
				t.Fatalf("%d accounts committed, want none", n)
			}
			scopeNoneInUse(t, eng)
		}
	})
}

// Over HTTP/2 a connection cannot be hijacked: Hijack reports
// http.ErrNotSupported and decides nothing, so the handler can still
// answer an error status that rolls its work back.
func TestMiddlewareHijackNotSupportedDecidesNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		hijackErr := make(chan error, 1)
		srv := httptest.NewUnstartedServer(eng.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mwSession(w, r).Add(newAccount("h2", 1))
			_, _, err := http.NewResponseController(w).Hijack()
			hijackErr <- err
			http.Error(w, "cannot upgrade", http.StatusBadRequest)
		})))
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
		}
		if err := <-hijackErr; !errors.Is(err, http.ErrNotSupported) {
			t.Fatalf("Hijack: %v, want http.ErrNotSupported", err)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want the handler's 400", resp.StatusCode)
		}
		if n := countAccounts(t, eng, "owner = ?", "h2"); n != 0 {
			t.Fatalf("%d rows committed, want none", n)
		}
		scopeNoneInUse(t, eng)
	})
}
