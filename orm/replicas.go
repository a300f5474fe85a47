package orm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tallyorm/tally/dialect"
)

// This file holds read replicas: the options, the routing of a session's
// reads, and the engine's one checker goroutine that measures each
// replica's health and lag.
//
// Routing rule: a session reads from a replica while it has not written,
// holds no lock and has no transaction; from its first transaction (a
// write, Exec, ForUpdate, Savepoint, a snapshot session's first read) or
// single-statement commit on, it runs everything on the primary until it
// is closed, Rollback and Commit included, so it always reads its own
// writes. A session keeps the replica it first read from (sessions are
// spread round-robin), so its reads never go back in time by moving to a
// replica further behind; for the same reason a session that has once read
// from the primary stays there.

// Defaults of the replica options.
const (
	defaultReplicaMaxLag = time.Second
	defaultReplicaCheck  = 250 * time.Millisecond
	// replicaHistory bounds the primary positions kept to measure lag
	// (only positions that changed are kept, and only until every replica
	// has passed them).
	replicaHistory = 4096
)

// replicaConfig is the replica part of an engine's config.
type replicaConfig struct {
	dsns   []string
	maxLag time.Duration
	every  time.Duration
	// pools are the replicas Open opened from dsns (with their DSNs
	// masked, in the same order); New opens dsns itself when nil.
	pools  []*sql.DB
	masked []string
}

// WithReplicas adds read replicas of the primary, each by its data source
// name in the primary's driver's syntax. Sessions that have not written
// and hold no lock read from a healthy replica, spread round-robin across
// sessions; everything else goes to the primary (see [Session]). A
// replica is healthy when it answers and lags the primary by at most the
// bound of [WithReplicaMaxLag]; with none healthy, reads go to the
// primary. The engine checks its replicas in the background, one
// goroutine per engine stopped by [Engine.Close]; [Engine.Stats] reports
// each replica.
//
// Lag is measured from replication positions (MariaDB GTIDs, MySQL GTID
// sets, PostgreSQL WAL locations; see dialect.Replication), never
// timestamps: a replica's lag is how long ago the checker first saw on
// the primary the oldest transaction the replica has not yet applied, so
// an idle primary never makes a replica look lagged, and a replica whose
// applying stopped looks lagged as soon as the primary writes. The
// measure is as fine as the check interval.
//
// Open opens the replicas without connecting to them (a replica that is
// down at start is only unhealthy) and waits for the first check, within
// its ctx; New opens them through the dialect's registered driver and does
// not wait: reads go to the primary until the first check.
func WithReplicas(dsn ...string) Option {
	return func(c *config) { c.repl.dsns = append(c.repl.dsns, dsn...) }
}

// WithReplicaMaxLag sets how far behind the primary a replica may be and
// still serve reads (default 1 s). A replica further behind is skipped
// until it catches up.
func WithReplicaMaxLag(d time.Duration) Option {
	return func(c *config) { c.repl.maxLag = max(d, 0) }
}

// WithReplicaCheckInterval sets how often the engine measures its
// replicas' health and lag (default 250 ms; at least 10 ms): each check is
// one statement on the primary and one on each replica.
func WithReplicaCheckInterval(d time.Duration) Option {
	return func(c *config) { c.repl.every = max(d, 10*time.Millisecond) }
}

// withReplicaPools hands New the replicas Open opened.
func withReplicaPools(pools []*sql.DB, masked []string) Option {
	return func(c *config) { c.repl.pools, c.repl.masked = pools, masked }
}

// WithPrimaryReads makes a session read from the primary only, never a
// replica: for work that must see data committed a moment ago by another
// session (a read after a redirect that followed a write).
func WithPrimaryReads() SessionOption { return func(s *Session) { s.primary = true } }

type onPrimaryKey struct{}

// OnPrimary returns a context whose reads go to the primary: a session's
// read with such a ctx runs on the primary, and the session then stays on
// the primary (so that its next read does not go back in time).
func OnPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, onPrimaryKey{}, true)
}

func onPrimary(ctx context.Context) bool {
	v, _ := ctx.Value(onPrimaryKey{}).(bool)
	return v
}

// EngineStats are an engine's counters, for monitoring and tests.
type EngineStats struct {
	// PrimaryReads counts the reads of sessions that went to the primary
	// while replicas are configured: in transactions, after a write, with
	// OnPrimary, or with no replica healthy. Zero without replicas.
	PrimaryReads int64
	// Replicas describes each replica, in WithReplicas order.
	Replicas []ReplicaStats
}

// ReplicaStats describes one replica.
type ReplicaStats struct {
	DSN     string        // its data source name, the password masked
	Healthy bool          // answering and within the lag bound: it serves reads
	Lag     time.Duration // at the last check; see WithReplicas
	// Reads counts the reads it served.
	Reads int64
	// SkippedDown and SkippedLag count the sessions that passed it over,
	// because it was down or because it lagged.
	SkippedDown, SkippedLag int64
	// Failovers counts reads that failed on it with a connection error,
	// or were cancelled for a conflict with replication (a hot standby's
	// SQLSTATE 40001), and were run again on the primary.
	Failovers int64
	// Err is why it is unhealthy ("" when healthy or merely lagging).
	Err string
}

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	rs := e.replicas
	if rs == nil {
		return EngineStats{}
	}
	st := EngineStats{PrimaryReads: rs.primaryReads.Load(), Replicas: make([]ReplicaStats, len(rs.list))}
	for i, r := range rs.list {
		r.mu.Lock()
		st.Replicas[i] = ReplicaStats{DSN: r.dsn, Healthy: r.state.Load() == replicaHealthy, Lag: r.lag, Err: r.err,
			Reads: r.reads.Load(), SkippedDown: r.skippedDown.Load(), SkippedLag: r.skippedLag.Load(), Failovers: r.failovers.Load()}
		r.mu.Unlock()
	}
	return st
}

// Replica states.
const (
	replicaDown    int32 = iota // not answering, not replicating, or not yet checked
	replicaHealthy              // serves reads
	replicaLagging              // answering, but behind by more than the bound
)

// replica is one read replica.
type replica struct {
	dsn   string  // masked
	db    *sql.DB // nil when it could not be opened (see err)
	state atomic.Int32

	reads, skippedDown, skippedLag, failovers atomic.Int64

	mu  sync.Mutex // guards the fields below
	lag time.Duration
	err string
	// pos is its replication position at the last check that answered,
	// known says whether there was one.
	pos   string
	known bool
}

// setDown marks r unhealthy with why.
func (r *replica) setDown(err error) {
	r.state.Store(replicaDown)
	r.mu.Lock()
	r.err = err.Error()
	r.mu.Unlock()
}

// posSample is the primary's replication position, first seen at at.
type posSample struct {
	pos string
	at  time.Time
}

// replicaSet is an engine's replicas and their checker.
type replicaSet struct {
	e      *Engine
	repl   dialect.Replication // nil: the dialect cannot measure lag; health is reachability
	list   []*replica
	maxLag time.Duration
	every  time.Duration

	next         atomic.Uint64 // round-robin cursor
	primaryReads atomic.Int64

	ctx    context.Context // cancelled by close: stops the checker
	cancel context.CancelFunc
	done   chan struct{} // closed when the checker returns
	first  chan struct{} // closed after the first check

	// hist is used by the checker goroutine only: the primary's positions
	// not yet passed by every replica, oldest first; hist[0] is passed by
	// every replica whose position is known (see prune).
	hist []posSample
}

// openReplicas opens the replicas' pools for Open, with the driver's
// settings, masking each DSN's password. It connects to none.
func openReplicas(drv *dialect.Driver, cfg config) ([]*sql.DB, []string, error) {
	var pools []*sql.DB
	var masked []string
	for i, dsn := range cfg.repl.dsns {
		db, password, err := drv.Open(dsn, dialect.OpenOptions{SQLiteStatementCache: cfg.sqliteStmts, Logger: cfg.logger})
		if err != nil {
			for _, p := range pools {
				p.Close()
			}
			return nil, nil, redact(fmt.Errorf("orm: replica %d: %w", i+1, err), password)
		}
		pools = append(pools, db)
		masked = append(masked, maskPassword(dsn, password))
	}
	return pools, masked, nil
}

func maskPassword(dsn, password string) string {
	if password == "" {
		return dsn
	}
	return strings.ReplaceAll(dsn, password, "xxxxx")
}

// newReplicaSet builds the replicas of cfg and starts their checker; nil
// when there are none.
func newReplicaSet(e *Engine, cfg config) *replicaSet {
	rc := cfg.repl
	if len(rc.dsns) == 0 {
		return nil
	}
	rs := &replicaSet{e: e, maxLag: rc.maxLag, every: rc.every, done: make(chan struct{}), first: make(chan struct{})}
	if rs.maxLag == 0 {
		rs.maxLag = defaultReplicaMaxLag
	}
	if rs.every == 0 {
		rs.every = defaultReplicaCheck
	}
	rs.repl, _ = e.dialect.(dialect.Replication)
	for i, dsn := range rc.dsns {
		r := &replica{}
		if rc.pools != nil {
			r.db, r.dsn = rc.pools[i], rc.masked[i]
		} else if err := r.open(e.dialect.Name(), dsn, cfg); err != nil {
			r.err = err.Error()
		}
		if r.db != nil {
			poolSettings(r.db, cfg)
		}
		rs.list = append(rs.list, r)
	}
	rs.ctx, rs.cancel = context.WithCancel(context.Background())
	go rs.run()
	return rs
}

// open opens a replica for New, through the driver registered for the
// dialect's name.
func (r *replica) open(name, dsn string, cfg config) error {
	r.dsn = "(unparsed replica DSN)"
	drv, err := dialect.Lookup(name)
	if err != nil {
		return fmt.Errorf("orm: replica: %w", err)
	}
	db, password, err := drv.Open(dsn, dialect.OpenOptions{SQLiteStatementCache: cfg.sqliteStmts, Logger: cfg.logger})
	if err != nil {
		return redact(fmt.Errorf("orm: replica: %w", err), password)
	}
	r.db, r.dsn = db, maskPassword(dsn, password)
	return nil
}

// waitFirst waits for the first check, or ctx.
func (rs *replicaSet) waitFirst(ctx context.Context) {
	select {
	case <-rs.first:
	case <-ctx.Done():
	}
}

// stop stops the checker, waits for it, and closes the replicas' pools.
func (rs *replicaSet) stop() error {
	rs.cancel()
	<-rs.done
	var errs []error
	for _, r := range rs.list {
		if r.db != nil {
			errs = append(errs, r.db.Close())
		}
	}
	return errors.Join(errs...)
}

// run is the checker goroutine.
func (rs *replicaSet) run() {
	defer close(rs.done)
	t := time.NewTicker(rs.every)
	defer t.Stop()
	for first := true; ; first = false {
		rs.check()
		if first {
			close(rs.first)
		}
		select {
		case <-rs.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkTimeout bounds each check statement: a replica that does not
// answer within it (a stalled host) is down.
func (rs *replicaSet) checkTimeout() time.Duration { return max(2*rs.every, time.Second) }

// check samples the primary's position, then checks each replica.
func (rs *replicaSet) check() {
	if rs.repl != nil {
		ctx, cancel := context.WithTimeout(rs.ctx, rs.checkTimeout())
		var pos sql.NullString
		err := rs.e.db.QueryRowContext(ctx, rs.repl.PrimaryPositionSQL()).Scan(&pos)
		cancel()
		// A primary that does not answer adds no sample: lag is then
		// measured against what was last seen.
		if err == nil && (len(rs.hist) == 0 || rs.hist[len(rs.hist)-1].pos != pos.String) {
			rs.hist = append(rs.hist, posSample{pos: pos.String, at: time.Now()})
			if len(rs.hist) > replicaHistory {
				// Keep the oldest: a replica behind it is behind by an
				// unknown amount, and must not look less lagged.
				rs.hist = append(rs.hist[:1], rs.hist[2:]...)
			}
		}
	}
	for _, r := range rs.list {
		if rs.ctx.Err() != nil {
			return
		}
		rs.checkOne(r)
	}
	rs.prune()
}

// checkOne asks a replica its position and sets its state.
func (rs *replicaSet) checkOne(r *replica) {
	if r.db == nil {
		r.state.Store(replicaDown) // could not be opened: r.err says why
		return
	}
	ctx, cancel := context.WithTimeout(rs.ctx, rs.checkTimeout())
	var pos sql.NullString
	var err error
	if rs.repl != nil {
		err = r.db.QueryRowContext(ctx, rs.repl.ReplicaPositionSQL()).Scan(&pos)
	} else {
		err = r.db.PingContext(ctx)
	}
	cancel()
	if err != nil {
		r.setDown(fmt.Errorf("orm: replica check: %w", classify(rs.e.dialect, err)))
		return
	}
	lag, known, err := rs.lagOf(pos.String, time.Now())
	if err != nil {
		r.setDown(fmt.Errorf("orm: replica check: %w", err))
		return
	}
	r.mu.Lock()
	r.lag, r.err, r.pos, r.known = lag, "", pos.String, true
	r.mu.Unlock()
	if known && lag <= rs.maxLag {
		r.state.Store(replicaHealthy)
	} else {
		r.state.Store(replicaLagging)
	}
}

// lagOf measures how far a replica at pos is behind: the age of the
// oldest sample of the primary's position it has not reached. known is
// false when it has not reached even the oldest sample kept: it is behind
// by more than the history says (it was never seen before, or the history
// was cut), and counts as lagging whatever the bound.
func (rs *replicaSet) lagOf(pos string, now time.Time) (lag time.Duration, known bool, err error) {
	if len(rs.hist) == 0 {
		return 0, true, nil
	}
	// Usually caught up: one comparison.
	if ok, err := rs.repl.PositionReached(pos, rs.hist[len(rs.hist)-1].pos); ok || err != nil {
		return 0, true, err
	}
	for i, s := range rs.hist {
		ok, err := rs.repl.PositionReached(pos, s.pos)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			return now.Sub(s.at), i > 0, nil
		}
	}
	return 0, true, nil // not reached: the newest sample was not passed
}

// prune drops the samples every replica has passed, keeping the newest
// such one as hist[0], so that a replica that falls behind later is
// measured from there. A replica whose position was never known keeps
// everything (up to replicaHistory), since it may be behind all of it.
func (rs *replicaSet) prune() {
	if rs.repl == nil {
		return
	}
	drop := 0
	for drop+1 < len(rs.hist) && rs.allReached(rs.hist[drop+1].pos) {
		drop++
	}
	if drop > 0 {
		rs.hist = append(rs.hist[:0], rs.hist[drop:]...)
	}
}

func (rs *replicaSet) allReached(primary string) bool {
	for _, r := range rs.list {
		r.mu.Lock()
		pos, known := r.pos, r.known
		r.mu.Unlock()
		if !known {
			return false
		}
		if ok, err := rs.repl.PositionReached(pos, primary); !ok || err != nil {
			return false
		}
	}
	return true
}

// pick returns the next healthy replica, round-robin, counting those it
// passes over; nil when none is healthy.
func (rs *replicaSet) pick() *replica {
	n := uint64(len(rs.list))
	start := rs.next.Add(1) - 1
	for i := range n {
		r := rs.list[(start+i)%n]
		switch r.state.Load() {
		case replicaHealthy:
			return r
		case replicaLagging:
			r.skippedLag.Add(1)
		default:
			r.skippedDown.Add(1)
		}
	}
	return nil
}

// readQuery runs a session's autocommit read where the routing rule says:
// on its replica, or on the primary. A read that fails on a replica with
// a connection error, or a retryable one, runs again on the primary (a
// read before the session's first write is safe to repeat), and the
// session stays there.
func (s *Session) readQuery(ctx context.Context, query string, args []any) (*sql.Rows, observation, error) {
	rs := s.e.replicas
	if s.primary || onPrimary(ctx) {
		s.primary = true
		rs.primaryReads.Add(1)
		return s.e.query(ctx, s.e.db, query, args)
	}
	r := s.replica
	if r != nil && r.state.Load() != replicaHealthy {
		// Another replica may be further behind than this one was:
		// only the primary is sure not to go back in time.
		s.primary, s.replica = true, nil
		rs.primaryReads.Add(1)
		return s.e.query(ctx, s.e.db, query, args)
	}
	if r == nil {
		if r = rs.pick(); r == nil {
			s.primary = true
			rs.primaryReads.Add(1)
			return s.e.query(ctx, s.e.db, query, args)
		}
		s.replica = r
	}
	rows, obs, err := s.e.query(ctx, r.db, query, args)
	if err != nil && ctx.Err() == nil && (errors.Is(err, ErrConnection) || errors.Is(err, ErrRetryable)) {
		if errors.Is(err, ErrConnection) {
			// Down until the checker sees it answer again, for every session.
			r.setDown(fmt.Errorf("orm: replica read: %w", err))
		}
		// A retryable error on a replica is a hot standby cancelling the
		// read for a conflict with replay (SQLSTATE 40001): the replica
		// is fine, the read goes to the primary.
		r.failovers.Add(1)
		s.primary, s.replica = true, nil
		rs.primaryReads.Add(1)
		return s.e.query(ctx, s.e.db, query, args)
	}
	if err == nil {
		r.reads.Add(1)
		s.stats.ReplicaReads++
	}
	return rows, obs, err
}
