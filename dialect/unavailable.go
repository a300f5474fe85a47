package dialect

import (
	"errors"
	"net"
)

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
