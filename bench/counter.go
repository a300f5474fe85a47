package bench

import (
	"net"
	"sync/atomic"
)

// Counter counts round trips between the client and a database server: a
// round trip is one or more writes by the client followed by a read. Pipelined
// messages (pgx sends Parse, Bind, Execute and Sync in one go; the MySQL
// driver's COM_STMT_CLOSE needs no answer) therefore count once, and so does
// a reply that arrives in several reads. Connecting is not counted: the
// benchmarks warm the pool first.
//
// A Counter is safe for concurrent use.
type Counter struct{ n atomic.Int64 }

// Load returns the round trips counted so far.
func (c *Counter) Load() int64 { return c.n.Load() }

// Wrap returns conn counting into c.
func (c *Counter) Wrap(conn net.Conn) net.Conn { return &countingConn{Conn: conn, c: c} }

type countingConn struct {
	net.Conn
	c *Counter
	// wrote is set by a write and cleared by the read that answers it.
	wrote atomic.Bool
}

func (cc *countingConn) Write(p []byte) (int, error) {
	cc.wrote.Store(true)
	return cc.Conn.Write(p)
}

func (cc *countingConn) Read(p []byte) (int, error) {
	if cc.wrote.Swap(false) {
		cc.c.n.Add(1)
	}
	return cc.Conn.Read(p)
}
