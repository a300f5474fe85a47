package orm_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// A fault-injecting database/sql driver, in the manner of database/sql's
// own fakedb_test.go but wrapped around the real drivers: every call goes
// to the real connection, except the COMMIT that a test arms, which fails
// the way a connection lost during COMMIT fails. That is the one case
// eng.Do must never retry (the work may have been committed) and must
// report as ErrCommitUnknown.

// faultMode says how the next COMMIT fails.
type faultMode int32

const (
	faultNone faultMode = iota
	// faultBadConn closes the connection without committing and returns
	// driver.ErrBadConn, as a driver does that finds its connection dead
	// before it could send COMMIT.
	faultBadConn
	// faultLostAfterCommit commits, then closes the connection and
	// returns an unexpected-EOF error: the reply to COMMIT never arrived,
	// though the server committed.
	faultLostAfterCommit
	// faultSocketBeforeSend closes the TCP socket just before COMMIT is
	// written; the real driver reports what it sees. Servers only.
	faultSocketBeforeSend
	// faultSocketAfterSend lets COMMIT reach the server, then closes the
	// TCP socket before the reply is read; the real driver reports what it
	// sees. Servers only.
	faultSocketAfterSend
	// faultSocketResetAfterSend lets COMMIT reach the server, then fails
	// every read with "connection reset by peer", as when the server or
	// the network drops the connection. Servers only.
	faultSocketResetAfterSend
	// faultSocketStallAfterSend lets COMMIT reach the server, then drops
	// everything the server sends: the socket stays open and silent, as
	// with a stalled server or network, until a deadline or Close ends
	// the read. Servers only; not in faultModes (it needs a deadline).
	faultSocketStallAfterSend
)

func (m faultMode) String() string {
	switch m {
	case faultBadConn:
		return "bad-conn"
	case faultLostAfterCommit:
		return "lost-after-commit"
	case faultSocketBeforeSend:
		return "socket-cut-before-commit"
	case faultSocketAfterSend:
		return "socket-cut-after-commit"
	case faultSocketResetAfterSend:
		return "socket-reset-after-commit"
	case faultSocketStallAfterSend:
		return "socket-stall-after-commit"
	}
	return "none"
}

// faultConnector wraps the real driver's connector. It is safe for
// concurrent use; arm it when no other commit can race the one meant.
type faultConnector struct {
	inner driver.Connector

	armed atomic.Int32 // the faultMode of the next Commit; Commit disarms
	// stmtArmed is the faultMode of the next statement run outside a
	// transaction (a single-statement commit); running it disarms.
	stmtArmed atomic.Int32
	commits   atomic.Int64 // Commit calls seen
	fired     atomic.Int64 // faults injected

	mu      sync.Mutex
	lastErr error // what the faulty Commit returned to database/sql
}

func (c *faultConnector) arm(m faultMode) { c.armed.Store(int32(m)) }

// armStatement makes the next statement outside a transaction fail as mode
// says a COMMIT would: for such a statement, in autocommit, is its own
// commit.
func (c *faultConnector) armStatement(m faultMode) { c.stmtArmed.Store(int32(m)) }

func (c *faultConnector) faultErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *faultConnector) Connect(ctx context.Context) (driver.Conn, error) {
	// The dial hook finds the holder in ctx and leaves the socket there,
	// so that this connection can cut its own socket later.
	h := &faultSockHolder{}
	inner, err := c.inner.Connect(context.WithValue(ctx, faultSockKey{}, h))
	if err != nil {
		return nil, err
	}
	return &faultConn{c: c, inner: inner, sock: h.sock}, nil
}

func (c *faultConnector) Driver() driver.Driver { return faultDriver{c.inner.Driver()} }

// faultDriver is what db.Driver() reports; connections come from the
// connector only.
type faultDriver struct{ inner driver.Driver }

func (faultDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("faultdriver: open through the connector (sql.OpenDB)")
}

// The socket hooks: the servers' drivers dial through faultDial, which
// wraps the TCP connection so that a COMMIT can cut it.
type (
	faultSockKey    struct{}
	faultSockHolder struct{ sock *faultNetConn }
)

// faultDial dials addr and wraps the connection in a faultNetConn. It puts
// that socket in ctx's faultSockHolder, if any, so that
// faultConnector.Connect learns which socket its new connection uses.
func faultDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	fc := &faultNetConn{Conn: nc}
	if h, ok := ctx.Value(faultSockKey{}).(*faultSockHolder); ok {
		h.sock = fc
	}
	return fc, nil
}

// faultNetConn cuts the connection around the next write when told to.
type faultNetConn struct {
	net.Conn
	cut   atomic.Int32 // a faultSocket* mode; consumed by Write
	reset atomic.Bool  // every Read fails with ECONNRESET
	stall atomic.Bool  // every Read drops what arrives, until a deadline or Close
}

func (c *faultNetConn) Read(b []byte) (int, error) {
	if c.reset.Load() {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: syscall.ECONNRESET}
	}
	for c.stall.Load() {
		if _, err := c.Conn.Read(b); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

func (c *faultNetConn) Write(b []byte) (int, error) {
	switch faultMode(c.cut.Swap(int32(faultNone))) {
	case faultSocketBeforeSend:
		c.Conn.Close()
		return c.Conn.Write(b) // fails: use of closed network connection
	case faultSocketAfterSend:
		n, err := c.Conn.Write(b)
		c.Conn.Close() // the server has COMMIT; its reply is lost
		return n, err
	case faultSocketResetAfterSend:
		n, err := c.Conn.Write(b)
		c.reset.Store(true)
		c.Conn.Close()
		return n, err
	case faultSocketStallAfterSend:
		c.stall.Store(true)
		return c.Conn.Write(b)
	}
	return c.Conn.Write(b)
}

// faultConn passes everything to the real connection and wraps its
// transactions. It implements every optional interface database/sql uses,
// forwarding when the real connection does, so that the drivers behave as
// they do unwrapped.
type faultConn struct {
	c     *faultConnector
	inner driver.Conn
	sock  *faultNetConn // nil for SQLite

	closeOnce sync.Once
	closeErr  error
	dead      atomic.Bool // killed by a fault: never reused
	inTx      bool        // a transaction is open (database/sql serializes a conn's calls)
}

var (
	_ driver.ConnBeginTx          = (*faultConn)(nil)
	_ driver.ConnPrepareContext   = (*faultConn)(nil)
	_ driver.ExecerContext        = (*faultConn)(nil)
	_ driver.QueryerContext       = (*faultConn)(nil)
	_ driver.Pinger               = (*faultConn)(nil)
	_ driver.NamedValueChecker    = (*faultConn)(nil)
	_ driver.SessionResetter      = (*faultConn)(nil)
	_ driver.Validator            = (*faultConn)(nil)
	_ driver.Connector            = (*faultConnector)(nil)
	_ driver.Tx                   = (*faultTx)(nil)
	_ interface{ Unwrap() error } = (*faultError)(nil)
)

func (c *faultConn) kill() {
	c.dead.Store(true)
	c.Close()
}

func (c *faultConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.inner.Close() })
	return c.closeErr
}

func (c *faultConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *faultConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.inner.Prepare(query)
}

func (c *faultConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *faultConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var (
		tx  driver.Tx
		err error
	)
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		//lint:ignore SA1019 the fallback database/sql itself uses
		tx, err = c.inner.Begin()
	}
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return &faultTx{conn: c, inner: tx}, nil
}

func (c *faultConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	var res driver.Result
	err := c.statementFault(func() error {
		var err error
		res, err = e.ExecContext(ctx, query, args)
		return err
	})
	return res, err
}

func (c *faultConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	var rows driver.Rows
	err := c.statementFault(func() error {
		var err error
		rows, err = q.QueryContext(ctx, query, args)
		return err
	})
	return rows, err
}

// statementFault runs a statement, failing it as the armed statement fault
// says when it runs outside a transaction.
func (c *faultConn) statementFault(run func() error) error {
	if c.inTx || faultMode(c.c.stmtArmed.Load()) == faultNone {
		return run()
	}
	mode := faultMode(c.c.stmtArmed.Swap(int32(faultNone)))
	var err error
	switch mode {
	case faultNone:
		return run()
	case faultBadConn:
		c.kill() // nothing was sent
		err = driver.ErrBadConn
	case faultLostAfterCommit:
		if err := run(); err != nil {
			return err
		}
		c.kill()
		err = &faultError{op: "reading the reply to the statement", err: io.ErrUnexpectedEOF}
	case faultSocketBeforeSend, faultSocketAfterSend, faultSocketResetAfterSend:
		if c.sock == nil {
			err = fmt.Errorf("faultdriver: %v needs a TCP connection", mode)
			break
		}
		c.sock.cut.Store(int32(mode))
		err = run()
		c.dead.Store(true)
	}
	c.c.fired.Add(1)
	c.c.mu.Lock()
	c.c.lastErr = err
	c.c.mu.Unlock()
	return err
}

func (c *faultConn) Ping(ctx context.Context) error {
	if c.dead.Load() {
		return driver.ErrBadConn
	}
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *faultConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip // database/sql's default conversion
}

func (c *faultConn) ResetSession(ctx context.Context) error {
	if c.dead.Load() {
		return driver.ErrBadConn
	}
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *faultConn) IsValid() bool {
	if c.dead.Load() {
		return false
	}
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// faultTx fails its Commit when the connector is armed.
type faultTx struct {
	conn  *faultConn
	inner driver.Tx
}

func (t *faultTx) Rollback() error {
	t.conn.inTx = false
	return t.inner.Rollback()
}

func (t *faultTx) Commit() error {
	t.conn.inTx = false
	c := t.conn.c
	c.commits.Add(1)
	mode := faultMode(c.armed.Swap(int32(faultNone)))
	var err error
	switch mode {
	case faultNone:
		return t.inner.Commit()
	case faultBadConn:
		t.conn.kill() // the server rolls back the open transaction
		err = driver.ErrBadConn
	case faultLostAfterCommit:
		if err := t.inner.Commit(); err != nil {
			return err
		}
		t.conn.kill()
		err = &faultError{op: "reading the reply to COMMIT", err: io.ErrUnexpectedEOF}
	case faultSocketBeforeSend, faultSocketAfterSend, faultSocketResetAfterSend, faultSocketStallAfterSend:
		if t.conn.sock == nil {
			err = fmt.Errorf("faultdriver: %v needs a TCP connection", mode)
			break
		}
		t.conn.sock.cut.Store(int32(mode))
		err = t.inner.Commit()
		t.conn.dead.Store(true)
	}
	c.fired.Add(1)
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	return err
}

// faultError is the connection error faultLostAfterCommit reports, shaped
// like the drivers' own (an operation wrapping an I/O error).
type faultError struct {
	op  string
	err error
}

func (e *faultError) Error() string { return "faultdriver: " + e.op + ": " + e.err.Error() }
func (e *faultError) Unwrap() error { return e.err }

// faultOpen opens tg through a faultConnector, with the driver settings
// orm.Open would add, wraps it with orm.New and creates the test tables.
func faultOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *faultConnector) {
	t.Helper()
	// The registered driver's connector has the settings orm.Open adds
	// (MySQL's parseTime, clientFoundRows and interpolateParams; SQLite's
	// pragmas), and dials the servers through faultDial. No statement
	// cache on SQLite: the fault wraps the driver's own connection.
	drv, err := dialect.Lookup(tg.Driver)
	if err != nil {
		t.Fatal(err)
	}
	if drv.Connector == nil {
		t.Fatalf("the %s driver offers no Connector", tg.Driver)
	}
	inner, err := drv.Connector(tg.DSN, dialect.OpenOptions{Dial: faultDial, SQLiteStatementCache: 0})
	if err != nil {
		t.Fatalf("connector for %s: %v", tg.Name, err)
	}
	d := drv.Dialect
	if tg.Name == dbtest.MySQL {
		d = dialect.MariaDB // the CI server is MariaDB 10.11
	}
	fc := &faultConnector{inner: inner}
	eng := orm.New(sql.OpenDB(fc), d)
	t.Cleanup(func() { eng.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.DB().PingContext(ctx); err != nil {
		t.Fatalf("ping through the fault driver: %v", err)
	}
	if err := eng.CreateTables(ctx, testmodels.Models...); err != nil {
		t.Fatal(err)
	}
	return eng, fc
}

// faultModes returns the modes that apply to tg.
func faultModes(tg dbtest.Target) []faultMode {
	ms := []faultMode{faultBadConn, faultLostAfterCommit}
	if tg.Name != dbtest.SQLite {
		ms = append(ms, faultSocketBeforeSend, faultSocketAfterSend, faultSocketResetAfterSend)
	}
	return ms
}

// A connection lost during COMMIT: Do returns ErrCommitUnknown, ran fn
// once (never again: the work may be committed), and leaves no connection
// in use; the engine stays usable.
func TestDoCommitUnknown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, fc := faultOpen(t, tg)
		for _, mode := range faultModes(tg) {
			t.Run(mode.String(), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				owner := "cu-" + mode.String()
				calls := 0
				fired := fc.fired.Load()
				fc.arm(mode)
				err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					calls++
					// Two tables, two statements: a transaction and its COMMIT.
					return s.Add(newAccount(owner, 100), &testmodels.Tag{Kind: "cu", Name: owner})
				}, orm.MaxAttempts(5), orm.RetryOnStale(), orm.RetryBackoff(time.Millisecond, 5*time.Millisecond))
				if fc.fired.Load() != fired+1 {
					t.Fatalf("the fault did not fire (commits seen: %d)", fc.commits.Load())
				}
				t.Logf("the fault driver's Commit returned:%s", errorChain(fc.faultErr()))
				t.Logf("eng.Do returned:%s", errorChain(err))
				if !errors.Is(err, orm.ErrCommitUnknown) {
					t.Errorf("Do: want an error matching orm.ErrCommitUnknown, got %v", err)
				}
				if calls != 1 {
					t.Errorf("fn ran %d times; a commit of unknown outcome must never be retried", calls)
				}
				scopeNoneInUse(t, eng)

				// What the database ended up with. The server may still be
				// finishing the cut connection's COMMIT or rollback: wait.
				want := int64(-1) // either
				switch mode {
				case faultBadConn, faultSocketBeforeSend:
					want = 0
				case faultLostAfterCommit:
					want = 1
				}
				var n int64
				for deadline := time.Now().Add(3 * time.Second); ; {
					n = countAccounts(t, eng, "owner = ?", owner)
					if n == want || (want < 0 && n == 1) || time.Now().After(deadline) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if want >= 0 && n != want {
					t.Errorf("rows for %s: %d, want %d", owner, n, want)
				}
				t.Logf("the work was committed: %v", n == 1)

				// The broken connection left the pool; the engine works.
				if err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					return s.Add(newAccount(owner+"-after", 1))
				}); err != nil {
					t.Fatalf("Do after the fault: %v", err)
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}

// Session.Commit itself reports the lost connection as ErrCommitUnknown,
// and the session stays as it was before the Commit.
func TestSessionCommitUnknown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, fc := faultOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := newAccount("cu-session", 1)
		// Two tables, two statements: a transaction and its COMMIT.
		if err := s.Add(a, &testmodels.Tag{Kind: "cu", Name: "session"}); err != nil {
			t.Fatal(err)
		}
		fc.arm(faultBadConn)
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrCommitUnknown) {
			t.Fatalf("Commit: want ErrCommitUnknown, got%s", errorChain(err))
		}
		if !errors.Is(err, orm.ErrConnection) && !errors.Is(err, driver.ErrBadConn) {
			t.Errorf("Commit: the connection error is not reachable:%s", errorChain(err))
		}
		if p := s.Pending(); len(p) != 2 || p[0] != a {
			t.Errorf("after the failed commit the object should be pending again; pending: %v", p)
		}
		if err := s.Commit(ctx); err != nil { // the caller checked: it was not committed
			t.Fatalf("second Commit: %v", err)
		}
		if n := countAccounts(t, eng, "owner = ?", "cu-session"); n != 1 {
			t.Fatalf("rows: %d, want 1", n)
		}
	})
}

// Through the middleware a commit of unknown outcome is a 500, and the
// handler's success never reaches the client.
func TestMiddlewareCommitUnknown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, fc := faultOpen(t, tg)
		srv := mwServer(t, eng, func(w http.ResponseWriter, r *http.Request) {
			orm.SessionFrom(r.Context()).Add(newAccount("cu-http", 1), &testmodels.Tag{Kind: "cu", Name: "http"})
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "created\n")
		})
		fc.arm(faultBadConn)
		code, body, _ := mwGet(t, srv, "/")
		if code != http.StatusInternalServerError || strings.Contains(body, "created") {
			t.Fatalf("got %d %q, want 500 without the handler's body", code, body)
		}
		if n := countAccounts(t, eng, "owner = ?", "cu-http"); n != 0 {
			t.Fatalf("rows: %d, want 0", n)
		}
		scopeNoneInUse(t, eng)
	})
}

// A single-statement commit sends its statement alone, in autocommit: a
// connection lost while it is in flight makes Commit return
// ErrCommitUnknown (it may have committed), and the session is as it was
// before the Commit. A connection found dead before anything was sent
// (driver.ErrBadConn) is not unknown: nothing committed.
func TestSingleStatementCommitLostConnection(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, fc := faultOpen(t, tg)
		for _, mode := range faultModes(tg) {
			t.Run(mode.String(), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				owner := "alone-" + mode.String()
				s := eng.NewSession()
				defer s.Close()
				a := newAccount(owner, 1)
				if err := s.Add(a); err != nil {
					t.Fatal(err)
				}
				fired, commits := fc.fired.Load(), fc.commits.Load()
				fc.armStatement(mode)
				err := s.Commit(ctx)
				fc.armStatement(faultNone)
				if fc.fired.Load() != fired+1 {
					t.Fatalf("the fault did not fire on the INSERT; Commit returned %v", err)
				}
				if n := fc.commits.Load() - commits; n != 0 {
					t.Fatalf("%d COMMITs sent, want none: one statement goes alone", n)
				}
				t.Logf("Commit returned:%s", errorChain(err))
				// The drivers report a socket cut before the write as
				// driver.ErrBadConn too.
				notSent := mode == faultBadConn || mode == faultSocketBeforeSend
				if notSent {
					if err == nil || errors.Is(err, orm.ErrCommitUnknown) {
						t.Fatalf("Commit: %v, want a connection error that is not ErrCommitUnknown (nothing was sent)", err)
					}
				} else if !errors.Is(err, orm.ErrCommitUnknown) {
					t.Fatalf("Commit: want an error matching ErrCommitUnknown, got%s", errorChain(err))
				}
				if p := s.Pending(); len(p) != 1 || p[0] != a || a.ID != 0 {
					t.Fatalf("after the failed commit: pending %v, ID %d; want the account pending again with no key", p, a.ID)
				}
				if notSent {
					// Nothing was committed: committing again inserts it once.
					if err := s.Commit(ctx); err != nil {
						t.Fatalf("second Commit: %v", err)
					}
					if n := countAccounts(t, eng, "owner = ?", owner); n != 1 {
						t.Fatalf("rows for %s: %d, want 1", owner, n)
					}
				}
				scopeNoneInUse(t, eng)
			})
		}
	})
}
