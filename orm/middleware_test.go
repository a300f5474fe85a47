package orm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Tests of eng.Middleware through a real HTTP server (httptest): what the
// client sees, and what the database holds when it sees it.

// mwServer serves h through eng.Middleware. The server recovers handler
// panics as net/http does in production; its log is discarded.
func mwServer(t *testing.T, eng *orm.Engine, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(eng.Middleware(h))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// mwGet requests path and returns the status, body and headers.
func mwGet(t *testing.T, srv *httptest.Server, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// mwLog is a log buffer safe for the server's goroutines.
type mwLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *mwLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *mwLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// mwOpenLogged is openEngine with the engine's error log (the middleware
// logs why a commit failed) kept in the returned buffer.
func mwOpenLogged(t *testing.T, tg dbtest.Target) (*orm.Engine, *mwLog) {
	t.Helper()
	l := &mwLog{}
	eng := openEngine(t, tg, nil, orm.WithLogger(slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	return eng, l
}

// mwSession is the request's session; a handler without one is a bug of
// the middleware.
func mwSession(w http.ResponseWriter, r *http.Request) *orm.Session {
	s := orm.SessionFrom(r.Context())
	if s == nil {
		panic("no session in the request's context")
	}
	return s
}

// A handler that adds and answers 201: the client gets 201 and its body,
// and the row was committed before the status was sent.
func TestMiddlewareCommitsBeforeSuccess(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		atHeader := make(chan int64, 1) // rows committed when WriteHeader returned
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			s := mwSession(w, r)
			if err := s.Add(newAccount("created", 10)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Location", "/accounts/created")
			w.WriteHeader(http.StatusCreated)
			n, err := countRowsErr(eng, "SELECT COUNT(*) FROM accounts WHERE owner = ?", "created") // from another connection
			if err != nil {
				n = -1
			}
			atHeader <- n
			io.WriteString(w, "created\n")
		})
		code, body, h := mwGet(t, srv, "/")
		if code != http.StatusCreated || body != "created\n" || h.Get("Location") != "/accounts/created" {
			t.Fatalf("got %d %q %v, want 201 with the handler's body and headers", code, body, h)
		}
		if n := <-atHeader; n != 1 {
			t.Fatalf("when WriteHeader(201) returned, %d rows were committed, want 1", n)
		}
		scopeNoneInUse(t, eng)
	})
}

// A commit that fails on a unique violation, after the handler decided on
// success: the client gets 409, none of the handler's body or headers, and
// nothing the handler did is committed.
func TestMiddlewareUniqueViolationIs409(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)
		for _, tc := range []struct {
			name  string
			write func(w http.ResponseWriter) error
		}{
			{"WriteHeader-201", func(w http.ResponseWriter) error {
				w.WriteHeader(http.StatusCreated)
				_, err := io.WriteString(w, "created ann\n")
				return err
			}},
			{"implicit-200-by-Write", func(w http.ResponseWriter) error {
				_, err := io.WriteString(w, "created ann\n")
				return err
			}},
			{"Flush", func(w http.ResponseWriter) error {
				if err := http.NewResponseController(w).Flush(); err != nil {
					return err
				}
				_, err := io.WriteString(w, "created ann\n")
				return err
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				writeErr := make(chan error, 1)
				srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
					s := mwSession(w, r)
					s.Add(newAccount("zed", 1)) // fine alone; must not be committed either
					s.Add(newAccount("ann", 5)) // the owner exists: unique violation at commit
					w.Header().Set("Location", "/accounts/ann")
					w.Header().Set("X-Handler", "yes")
					writeErr <- tc.write(w)
				})
				code, body, h := mwGet(t, srv, "/")
				if code != http.StatusConflict {
					t.Fatalf("status %d, want 409 (body %q)", code, body)
				}
				if strings.Contains(body, "created") || h.Get("X-Handler") != "" || h.Get("Location") != "" {
					t.Fatalf("the client saw the handler's success: body %q, headers %v", body, h)
				}
				if <-writeErr == nil {
					t.Error("the handler's write after the failed commit reported no error")
				}
				if got := scopeOwners(t, eng); !slices.Equal(got, []string{"ann"}) {
					t.Fatalf("accounts %v, want the table unchanged (only ann)", got)
				}
				if bal, ver := scopeAccount(t, eng, ann.ID); bal != 100 || ver != 1 {
					t.Fatalf("ann: balance %d version %d, want 100 and 1", bal, ver)
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}

// A commit that fails because another request changed the row between the
// handler's read and its commit (optimistic locking) is a conflict: 409.
func TestMiddlewareStaleIs409(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, elog := mwOpenLogged(t, tg)
		acct := newAccount("contended", 100)
		seedObjects(t, eng, acct)
		// endRead: end the handler's read transaction before the other
		// writer commits, so that on SQLite too the conflict reaches the
		// version check (see TestDoRetryOnStale). The open-read variant is
		// what a handler naturally does.
		for _, endRead := range []bool{true, false} {
			t.Run(fmt.Sprintf("endRead=%v", endRead), func(t *testing.T) {
				before, _ := scopeAccount(t, eng, acct.ID)
				srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
					s := mwSession(w, r)
					a, err := orm.Get[Account](r.Context(), s, acct.ID)
					if err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					if endRead {
						if err := s.Commit(r.Context()); err != nil {
							http.Error(w, err.Error(), http.StatusInternalServerError)
							return
						}
					}
					// Another request's work, in its own session. (Not
					// eng.Do(r.Context(), ...): that would run in a
					// savepoint of this request's session.)
					if err := eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
						b, err := orm.Get[Account](ctx, s, acct.ID)
						if err != nil {
							return err
						}
						b.Balance++
						return nil
					}); err != nil {
						http.Error(w, "concurrent change: "+err.Error(), http.StatusTeapot)
						return
					}
					a.Balance += 10
					w.WriteHeader(http.StatusOK)
					io.WriteString(w, "updated\n")
				})
				code, body, _ := mwGet(t, srv, "/")
				if code != http.StatusConflict || strings.Contains(body, "updated") {
					t.Errorf("got %d %q, want 409 without the handler's body; the engine logged:\n%s", code, body, elog)
				}
				if bal, _ := scopeAccount(t, eng, acct.ID); bal != before+1 {
					t.Errorf("balance %d, want %d: only the concurrent change", bal, before+1)
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}

// A handler answering 400 (or 500) has its work rolled back; the client
// gets the handler's own response.
func TestMiddlewareErrorStatusRollsBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		for _, code := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusInternalServerError} {
			t.Run(fmt.Sprint(code), func(t *testing.T) {
				srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
					s := mwSession(w, r)
					s.Add(newAccount("rejected", 1))
					if err := s.Flush(r.Context()); err != nil { // the INSERT reaches the database
						http.Error(w, err.Error(), http.StatusTeapot)
						return
					}
					http.Error(w, "handler says no", code)
				})
				got, body, _ := mwGet(t, srv, "/")
				if got != code || body != "handler says no\n" {
					t.Fatalf("got %d %q, want the handler's %d", got, body, code)
				}
				if n := countAccounts(t, eng, ""); n != 0 {
					t.Fatalf("%d accounts, want 0: the work must be rolled back", n)
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}

// A handler that writes nothing gets its work committed before the
// implicit 200.
func TestMiddlewareImplicit200Commits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			mwSession(w, r).Add(newAccount("silent", 1))
		})
		code, body, _ := mwGet(t, srv, "/")
		if code != http.StatusOK || body != "" {
			t.Fatalf("got %d %q, want an empty 200", code, body)
		}
		if n := countAccounts(t, eng, "owner = ?", "silent"); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
		scopeNoneInUse(t, eng)
	})
}

// A handler that flushes the response (http.ResponseController) gets its
// work committed first: the client has the status while the handler still
// runs, and the row is there already.
func TestMiddlewareFlushCommitsFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		release := make(chan struct{})
		flushed := make(chan error, 1)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			mwSession(w, r).Add(newAccount("streamed", 1))
			err := http.NewResponseController(w).Flush()
			flushed <- err
			if err != nil {
				return
			}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			io.WriteString(w, "rest of the stream\n")
		})
		resp, err := srv.Client().Get(srv.URL) // returns once the headers arrive
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := <-flushed; err != nil {
			t.Fatalf("ResponseController.Flush: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		if n := countAccounts(t, eng, "owner = ?", "streamed"); n != 1 {
			t.Fatalf("the client has the status, the handler is still running, and %d rows are committed; want 1", n)
		}
		close(release)
		if body, _ := io.ReadAll(resp.Body); string(body) != "rest of the stream\n" {
			t.Fatalf("body %q", body)
		}
		scopeNoneInUse(t, eng)
	})
}

// A panicking handler: the work is rolled back, the connection returned,
// and the panic goes on to the server (which here drops the connection).
func TestMiddlewarePanicRollsBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		for _, tc := range []struct {
			name  string
			value any
		}{{"value", "handler panic"}, {"ErrAbortHandler", http.ErrAbortHandler}} {
			t.Run(tc.name, func(t *testing.T) {
				srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
					s := mwSession(w, r)
					s.Add(newAccount("panicked", 1))
					s.Flush(r.Context()) // holds a connection and an open transaction
					panic(tc.value)
				})
				resp, err := srv.Client().Get(srv.URL)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("the client got %d; a panicking handler's connection should be dropped", resp.StatusCode)
				}
				scopeNoneInUse(t, eng)
				if n := countAccounts(t, eng, ""); n != 0 {
					t.Fatalf("%d accounts, want 0", n)
				}
			})
		}
		// Calling the handler directly, the panic value comes through.
		h := eng.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := mwSession(w, r)
			s.Add(newAccount("panicked", 1))
			s.Flush(r.Context())
			panic("direct")
		}))
		func() {
			defer func() {
				if p := recover(); p != "direct" {
					t.Fatalf("recovered %v, want the handler's panic", p)
				}
			}()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil))
		}()
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatalf("%d connections in use after the panic", st.InUse)
		}
		if n := countAccounts(t, eng, ""); n != 0 {
			t.Fatalf("%d accounts, want 0", n)
		}
	})
}

// Work a handler does after its response was sent is committed after the
// response, and the client's answer stands.
func TestMiddlewareWorkAfterResponse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			s := mwSession(w, r)
			s.Add(newAccount("before", 1))
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "ok\n")
			s.Add(newAccount("after", 1))
		})
		code, body, _ := mwGet(t, srv, "/")
		if code != http.StatusCreated || body != "ok\n" {
			t.Fatalf("got %d %q", code, body)
		}
		if got, want := scopeOwners(t, eng), []string{"after", "before"}; !slices.Equal(got, want) {
			t.Fatalf("accounts %v, want %v", got, want)
		}
		scopeNoneInUse(t, eng)
	})
}

// Many requests at once, each with its own session (run with -race).
func TestMiddlewareConcurrentRequests(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			s := mwSession(w, r)
			s.Add(newAccount(r.URL.Query().Get("owner"), 1))
			w.WriteHeader(http.StatusCreated)
		})
		const n = 32
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				resp, err := srv.Client().Get(fmt.Sprintf("%s/?owner=c%02d", srv.URL, i))
				if err != nil {
					errs[i] = err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs[i] = fmt.Errorf("request %d: status %d", i, resp.StatusCode)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if got := countAccounts(t, eng, ""); got != n {
			t.Fatalf("%d accounts, want %d", got, n)
		}
		scopeNoneInUse(t, eng)
	})
}
