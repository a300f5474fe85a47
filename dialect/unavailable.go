package dialect

import (
	"errors"
	"net"
	"time"
)

// ConnectTimeout is how long the dialect/<db> packages let a new
// connection take, dial and handshake, when the DSN does not say (MySQL's
// timeout, PostgreSQL's connect_timeout or PGCONNECT_TIMEOUT): a server
// that cannot be reached then fails a request as unavailable in seconds,
// not after the operating system gives up on the dial (two minutes on
// Linux) or never (a stalled server that accepted the connection). A
// request's ctx deadline, when shorter, ends it sooner.
const ConnectTimeout = 5 * time.Second

// HintUnavailable is the hint a connection error carries when no
// connection could be made at all: the request failed before anything
// was sent, so nothing of it reached the database. The message says so in
// words a reader of a log looks for ("database unavailable"); programs
// test errors.Is(err, orm.ErrConnection).
const HintUnavailable = "database unavailable: no connection could be made; the server is down, restarting or unreachable, so nothing was sent: retry later"

// dialFailed reports whether err is the failure to open a network
// connection (refused, timed out, no route, an unknown host): no server
// ever saw the request.
func dialFailed(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "dial"
}
