package orm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tallyorm/tally/dialect"
)

// WithPrimaries makes Open spread the engine's connections over several
// primaries of a multi-primary cluster, such as MariaDB Galera: the DSN
// given to Open is the first node and dsns are the others, in the same
// syntax. There is still one pool; each new connection goes to the next
// node in turn, so sessions, which take a connection each, land on all of
// them. A node that cannot be reached, or that answers but is not ready
// (a Galera node joining the cluster or cut off from its primary
// component), is taken out of the rotation. After a pause that doubles at
// each failure, from 250 ms up to 2 s, the next connection the pool opens
// starts a probe of it in the background (a request never waits on a node
// that is out), and the node is put back when the probe connects and
// finds it ready. While every node is out, each is tried in turn. Connections already open to a node that has
// returned are not moved: it gets its share again as the pool recycles
// connections (WithConnMaxLifetime; a minute or so suits a cluster).
//
// A session keeps one connection for its transaction, so its writes and
// the reads in its transaction go to one node; its reads before the first
// write, and later sessions, may go to another. For read-your-writes
// across nodes, ask the cluster for causal reads on every connection: on
// Galera add wsrep_sync_wait=1 to each DSN (the MySQL driver sets it as a
// session variable when it connects); each read then waits until the node
// has applied what the cluster had committed when the read began.
//
// Errors that such clusters return are classified like any other:
// Galera's certification conflict is a deadlock (1213) at COMMIT, which
// Do retries; a COMMIT whose outcome is unknown is ErrCommitUnknown. See
// PrimaryStats for per-node figures. The option is ignored by New, whose
// caller made the pool; the driver must support it (MySQL, PostgreSQL).
func WithPrimaries(dsns ...string) Option {
	return func(c *config) { c.primaries = append(c.primaries, dsns...) }
}

// NodeStats are the figures of one node of an engine opened WithPrimaries.
type NodeStats struct {
	Node   int    // position: 0 is Open's DSN, then WithPrimaries' in order
	DSN    string // the node's DSN, its password replaced by xxxxx
	Up     bool   // whether the node is in the rotation now
	Opened int64  // connections opened to the node
	Failed int64  // attempts to connect that failed or found the node not ready
	Downs  int64  // times the node was taken out
	Ups    int64  // times it was put back after being taken out
	// LastError is the message of the last failed attempt to connect,
	// "" if none failed.
	LastError string
}

// PrimaryStats returns the figures of each node of an engine opened
// WithPrimaries, in Node order; nil for an engine with one database.
func (e *Engine) PrimaryStats() []NodeStats {
	if e.nodes == nil {
		return nil
	}
	out := make([]NodeStats, len(e.nodes.nodes))
	for i, n := range e.nodes.nodes {
		n.mu.Lock()
		up, last := n.backoff == 0, n.lastErr
		n.mu.Unlock()
		out[i] = NodeStats{Node: i, DSN: n.label, Up: up, Opened: n.opened.Load(),
			Failed: n.failed.Load(), Downs: n.downs.Load(), Ups: n.ups.Load(), LastError: last}
	}
	return out
}

// openPrimaries opens one pool whose connections spread over the nodes
// dsns, and returns the passwords of the DSNs, for redaction.
func openPrimaries(drv *dialect.Driver, dsns []string, o dialect.OpenOptions) (*sql.DB, *balancer, []string, error) {
	if drv.Connector == nil {
		return nil, nil, nil, fmt.Errorf("orm: WithPrimaries: the %s driver cannot open connections node by node", drv.Name)
	}
	b := &balancer{ready: drv.NodeReady}
	var passwords []string
	for i, dsn := range dsns {
		// Open parses the DSN as Tally will use it and says which
		// password to keep out of messages; it connects nothing.
		db, pw, err := drv.Open(dsn, o)
		if err != nil {
			return nil, nil, passwords, fmt.Errorf("orm: WithPrimaries: node %d: %w", i, redactAll(err, append(passwords, pw)))
		}
		db.Close()
		if pw != "" {
			passwords = append(passwords, pw)
		}
		c, err := drv.Connector(dsn, o)
		if err != nil {
			return nil, nil, passwords, fmt.Errorf("orm: WithPrimaries: node %d: %w", i, redactAll(err, passwords))
		}
		label := dsn
		if pw != "" {
			label = strings.ReplaceAll(dsn, pw, "xxxxx")
		}
		b.nodes = append(b.nodes, &node{c: c, label: label})
	}
	if len(b.nodes) == 0 {
		return nil, nil, nil, errors.New("orm: WithPrimaries: no DSN")
	}
	b.passwords = passwords
	return sql.OpenDB(b), b, passwords, nil
}

func redactAll(err error, passwords []string) error {
	for _, pw := range passwords {
		err = redact(err, pw)
	}
	return err
}

// Bounds of the pause before a node that failed is tried again.
const (
	nodeMinBackoff = 250 * time.Millisecond
	nodeMaxBackoff = 2 * time.Second
	// probeTimeout bounds a background probe: a node still joining may
	// hold a connection without answering, and while one probe waits no
	// other starts.
	probeTimeout = 3 * time.Second
)

// balancer is a driver.Connector over the nodes of a cluster: each
// Connect starts at the next node in turn and skips nodes that are out.
// It is safe for concurrent use, as database/sql requires.
type balancer struct {
	nodes     []*node
	ready     func(context.Context, driver.Conn) error // the dialect's NodeReady; nil: every node is ready
	next      atomic.Uint64
	probes    sync.WaitGroup // background probes, which Close waits for
	passwords []string       // the nodes', kept out of LastError
}

// node is one member of a balancer.
type node struct {
	c     driver.Connector
	label string

	mu      sync.Mutex    // guards backoff, retryAt and lastErr
	backoff time.Duration // 0: in the rotation
	retryAt time.Time     // when a node out of the rotation is tried again
	lastErr string        // the last failure's message, passwords hidden

	probing                    atomic.Bool // a background probe is under way
	opened, failed, downs, ups atomic.Int64
}

// Connect opens a connection to the first node, from the next in turn,
// that is in the rotation and answers ready, starting probes of the nodes
// out of it whose pause is over; when no node in the rotation answers, it
// tries the others. The error of a total failure joins each node's.
func (b *balancer) Connect(ctx context.Context) (driver.Conn, error) {
	n := len(b.nodes)
	start := int(b.next.Add(1) % uint64(n))
	now := time.Now()
	var errs []error
	var skipped []*node
	for i := range n {
		nd := b.nodes[(start+i)%n]
		if up, due := nd.state(now); !up {
			if due {
				b.probe(nd)
			}
			skipped = append(skipped, nd)
			continue
		}
		c, err := b.dial(ctx, nd, false)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			return nil, errors.Join(errs...)
		}
	}
	for _, nd := range skipped {
		c, err := b.dial(ctx, nd, false)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// dial connects to nd and checks that it is ready, taking nd out of the
// rotation when either fails and putting it back when both succeed. A
// request's ctx that ends is the caller giving up, not the node failing;
// a probe's that times out is the node not answering.
func (b *balancer) dial(ctx context.Context, nd *node, probe bool) (driver.Conn, error) {
	c, err := nd.c.Connect(ctx)
	if err == nil && b.ready != nil {
		if err = b.ready(ctx, c); err != nil {
			c.Close()
		}
	}
	if err != nil {
		nd.failed.Add(1)
		msg := redactAll(err, b.passwords).Error()
		nd.mu.Lock()
		nd.lastErr = msg
		nd.mu.Unlock()
		if ctx.Err() == nil || probe {
			nd.out()
		}
		return nil, err
	}
	nd.opened.Add(1)
	nd.in()
	return c, nil
}

// probe connects to nd in the background, once at a time, to put it back
// into the rotation if it answers ready.
func (b *balancer) probe(nd *node) {
	if !nd.probing.CompareAndSwap(false, true) {
		return
	}
	b.probes.Go(func() {
		defer nd.probing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		if c, err := b.dial(ctx, nd, true); err == nil {
			c.Close()
		}
	})
}

// state reports whether nd is in the rotation and, if not, whether its
// pause is over.
func (nd *node) state(now time.Time) (up, due bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.backoff == 0, !now.Before(nd.retryAt)
}

// out takes nd out of the rotation, or doubles its pause if it was out.
func (nd *node) out() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.backoff == 0 {
		nd.downs.Add(1)
		nd.backoff = nodeMinBackoff
	} else {
		nd.backoff = min(2*nd.backoff, nodeMaxBackoff)
	}
	nd.retryAt = time.Now().Add(nd.backoff)
}

// in puts nd back into the rotation.
func (nd *node) in() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.backoff != 0 {
		nd.ups.Add(1)
		nd.backoff = 0
	}
}

// Driver returns the first node's driver, as database/sql asks of a
// Connector.
func (b *balancer) Driver() driver.Driver { return b.nodes[0].c.Driver() }

// Close waits for the probes under way and closes the nodes' connectors
// that hold resources (database/sql calls it when the pool closes).
func (b *balancer) Close() error {
	b.probes.Wait()
	var errs []error
	for _, nd := range b.nodes {
		if c, ok := nd.c.(interface{ Close() error }); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
