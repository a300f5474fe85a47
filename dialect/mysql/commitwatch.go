package mysql

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The MySQL driver's COMMIT waits for its reply with no deadline: its
// Tx.Commit takes no context and watches none, so a server or network
// that stalls during COMMIT holds the caller for good, whatever its
// deadline. pgx ends a COMMIT when the context its transaction began with
// ends, and Tally relies on that (orm's commitUntil). The connector here
// gives the MySQL driver the same behaviour: its connections remember
// their network connection, and a transaction's COMMIT closes it when the
// transaction's context ends first, which makes the driver return at once
// (ErrInvalidConn; the pool discards the connection).

// watchConnector wraps the driver's connector so that each connection
// knows its network connection.
type watchConnector struct {
	inner   driver.Connector
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout time.Duration // bounds the whole connect (the driver's bounds the dial only)
	// multi: the connections accept several statements in one query and
	// interpolate arguments, which the pipelined commit needs (pipeline.go).
	multi bool
	stmts int // statements each connection keeps prepared (stmtcache.go)
}

// netSlotKey carries, in the context of one Connect, where the dial
// records the connection it made.
type netSlotKey struct{}

// watchCommits installs the dialer that records each network connection
// on cfg and returns a connector whose transactions honour their
// context at COMMIT. dial is the dialer to wrap (nil: net.Dialer). A
// network the driver dials itself by a registered name (RegisterDial) is
// left alone: c is returned unwrapped, and COMMIT waits as the driver
// makes it wait.
func watchCommits(cfg *mysql.Config, dial func(ctx context.Context, network, addr string) (net.Conn, error), stmts int) (driver.Connector, error) {
	multi := cfg.MultiStatements && cfg.InterpolateParams
	if dial == nil {
		switch cfg.Net {
		case "tcp", "tcp4", "tcp6", "unix":
			var d net.Dialer
			dial = d.DialContext
		default:
			// A network dialed by its registered name: connections are
			// wrapped for the pipeline only, COMMIT is not watched.
			inner, err := mysql.NewConnector(cfg)
			if err != nil {
				return nil, err
			}
			return &watchConnector{inner: inner, timeout: cfg.Timeout, multi: multi, stmts: stmts}, nil
		}
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if slot, ok := ctx.Value(netSlotKey{}).(*net.Conn); ok && err == nil {
			*slot = c
		}
		return c, err
	}
	inner, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return &watchConnector{inner: inner, dial: dial, timeout: cfg.Timeout, multi: multi, stmts: stmts}, nil
}

// Connect makes a connection and remembers its network connection. The
// DSN's timeout bounds the handshake too: the driver watches ctx while it
// connects, but bounds only the dial by its timeout, so a server that
// accepts and then says nothing (stalled) would hold a caller without a
// deadline for good.
func (w *watchConnector) Connect(ctx context.Context) (driver.Conn, error) {
	callerCtx := ctx
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	var nc net.Conn
	c, err := w.inner.Connect(context.WithValue(ctx, netSlotKey{}, &nc))
	if err != nil {
		if ctx.Err() != nil && callerCtx.Err() == nil {
			// Tally's deadline, not the caller's: report the server as
			// unreachable (a dial failure), not as the caller giving up.
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: connectTimeoutError(w.timeout)}
		}
		return nil, err
	}
	return &watchConn{Conn: c, net: nc, multi: w.multi, stmts: stmtCache{size: w.stmts}}, nil
}

// Driver is the driver's own.
func (w *watchConnector) Driver() driver.Driver { return w.inner.Driver() }

// watchConn is a driver connection whose transactions' COMMIT ends when
// their context ends, and which keeps its recent statements prepared
// (stmtcache.go). It passes every optional interface of the MySQL
// driver's connection through.
type watchConn struct {
	driver.Conn
	net   net.Conn  // nil if the dial was not recorded: COMMIT is not watched
	multi bool      // see watchConnector
	stmts stmtCache // statements kept prepared (stmtcache.go)
	// cluster says whether the server is a Galera node, which gets no
	// pipeline (pipeline.go); clusterUnknown until the first commit asks.
	cluster int
}

// The interfaces database/sql looks for on the MySQL driver's connection.
var (
	_ driver.ConnBeginTx        = (*watchConn)(nil)
	_ driver.ConnPrepareContext = (*watchConn)(nil)
	_ driver.ExecerContext      = (*watchConn)(nil)
	_ driver.QueryerContext     = (*watchConn)(nil)
	_ driver.Pinger             = (*watchConn)(nil)
	_ driver.SessionResetter    = (*watchConn)(nil)
	_ driver.Validator          = (*watchConn)(nil)
	_ driver.NamedValueChecker  = (*watchConn)(nil)
	_ driver.Tx                 = (*watchTx)(nil)
)

// BeginTx begins a transaction whose COMMIT ends when ctx does.
func (c *watchConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil || c.net == nil || ctx.Done() == nil {
		return tx, err
	}
	return &watchTx{Tx: tx, ctx: ctx, net: c.net}, nil
}

// PrepareContext is the driver's.
func (c *watchConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

// Ping is the driver's.
func (c *watchConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

// ResetSession is the driver's.
func (c *watchConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

// IsValid is the driver's: false once COMMIT closed the connection.
func (c *watchConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

// CheckNamedValue is the driver's.
func (c *watchConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

// watchTx is a transaction whose COMMIT ends when its context ends.
type watchTx struct {
	driver.Tx
	ctx context.Context
	net net.Conn
}

// Commit sends COMMIT and waits for its reply until the transaction's
// context ends; then it closes the connection, and the driver returns.
func (t *watchTx) Commit() error {
	var closed sync.Once
	stop := context.AfterFunc(t.ctx, func() { closed.Do(func() { t.net.Close() }) })
	err := t.Tx.Commit()
	if !stop() && err != nil {
		return fmt.Errorf("%w: %w", context.Cause(t.ctx), err)
	}
	return err
}

// connectTimeoutError is a connect that took longer than the DSN's
// timeout (or dialect.ConnectTimeout): the server did not answer.
type connectTimeoutError time.Duration

func (e connectTimeoutError) Error() string {
	return fmt.Sprintf("no answer from the server within the connect timeout (%v; the DSN's timeout= sets it)", time.Duration(e))
}

// Timeout reports true: it is a net.Error timeout.
func (connectTimeoutError) Timeout() bool { return true }

// Temporary reports true, for net.Error.
func (connectTimeoutError) Temporary() bool { return true }
