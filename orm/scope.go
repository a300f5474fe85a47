package orm

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"
)

// sessionKey is the context key under which a request's session travels:
// Go has no goroutine-local storage, so the scope rides in ctx.
type sessionKey struct{}

// NewContext returns a copy of ctx carrying s.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session ctx carries, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

// DoOption configures Engine.Do.
type DoOption func(*doConfig)

type doConfig struct {
	attempts    int
	minBackoff  time.Duration
	maxBackoff  time.Duration
	retryStale  bool
	sessionOpts []SessionOption
}

// MaxAttempts bounds how many times Do runs fn (default 5; 1 disables retries).
func MaxAttempts(n int) DoOption {
	return func(c *doConfig) { c.attempts = max(n, 1) }
}

// RetryBackoff sets the exponential backoff between attempts: the first
// wait is drawn from [0, min), each later one from a range twice as wide,
// up to max (defaults 5 ms and 500 ms). Full jitter keeps colliding
// requests from colliding again in lockstep.
func RetryBackoff(min, max time.Duration) DoOption {
	return func(c *doConfig) { c.minBackoff, c.maxBackoff = min, max }
}

// RetryOnStale makes Do also retry when fn or its commit fails with
// ErrStaleData: the next attempt reads fresh rows in a fresh session.
func RetryOnStale() DoOption { return func(c *doConfig) { c.retryStale = true } }

// WithSessionOptions passes options to the sessions Do creates.
func WithSessionOptions(opts ...SessionOption) DoOption {
	return func(c *doConfig) { c.sessionOpts = append(c.sessionOpts, opts...) }
}

// Do runs fn in a new session and commits if fn returns nil; it rolls back
// if fn returns an error or panics (the panic is re-raised after cleanup),
// and it always closes the session, returning its connection.
//
// When fn or the commit fails with a retryable error (deadlock, lock wait
// timeout, serialization failure, SQLite busy; and ErrStaleData with
// RetryOnStale), Do runs fn again in a fresh session after a jittered,
// growing pause, up to MaxAttempts, and stops early when ctx ends. fn must
// therefore do only database work, or work that is safe to repeat. A
// connection lost before COMMIT was sent (the server killed it, a timeout
// closed it, the network failed during the flush) committed nothing: Do
// retries that too, on another connection from the pool. A commit whose
// outcome is unknown (COMMIT, or the statement of a single-statement
// commit, was sent and no reply came) is never retried: Do returns an
// error matching ErrCommitUnknown.
//
// Retries converge under contention. An attempt that follows a
// stale-data or retryable failure locks the rows it reads on MySQL/MariaDB
// and PostgreSQL: before fn runs it begins a transaction and reads, with
// SELECT ... FOR UPDATE in table and key order, the rows the failed attempt
// had read, so fn's Gets of them return locked, current objects with no
// SQL; its Gets of other rows lock them as they read (queries through
// Query do not, unless they ask ForUpdate). Another transaction cannot
// change those rows before the attempt commits, so it does not lose the
// same race twice, and two locking attempts take their common rows in one
// order, queueing instead of deadlocking. The first attempt stays
// optimistic and takes no locks until it writes. On SQLite, which has no
// row locks, such an attempt begins IMMEDIATE and reads in that
// transaction, holding the database's write lock. Do also commits
// each table's updates in primary-key order, not the order fn read the
// rows, so that concurrent Do calls updating the same rows lock them in
// one order (on PostgreSQL a deadlock costs deadlock_timeout, 1 s by
// default, before it is detected). With 24 goroutines moving money
// between 6 accounts (Get, change, return nil, RetryOnStale), no transfer
// fails after the default attempts on either server in Tally's tests.
//
// Reads in fn before its first write run in autocommit, each seeing the
// data committed when it runs (see Session); the Snapshot option gives fn
// one consistent snapshot instead. On SQLite a retry begins IMMEDIATE, so
// a snapshot session that read and then failed busy when it wrote does
// not fail the same way again.
//
// The session travels in the ctx given to fn (SessionFrom). Called with a
// ctx that already carries a session of e, Do runs fn in a savepoint of
// that session instead, with no retries of its own: an error rolls back
// fn's work only, and the outer Do decides about the rest. A session of
// another engine (another database) in ctx is not nested into: fn gets a
// session of e's own, which Do commits.
func (e *Engine) Do(ctx context.Context, fn func(ctx context.Context, s *Session) error, opts ...DoOption) error {
	if outer := SessionFrom(ctx); outer != nil && outer.e == e {
		return outer.Savepoint(ctx, func() error { return fn(ctx, outer) })
	}
	cfg := doConfig{attempts: 5, minBackoff: 5 * time.Millisecond, maxBackoff: 500 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	var (
		err  error
		plan lockPlan // rows the last failed attempt read
		lock bool     // a stale-data or retryable failure happened: lock reads
	)
	for attempt := 1; ; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			if err != nil {
				return errors.Join(err, cerr)
			}
			return cerr
		}
		opts := cfg.sessionOpts
		if attempt > 1 && e.deferredReads() {
			opts = append(slices.Clip(opts), beginImmediate())
		}
		if lock {
			opts = append(slices.Clip(opts), withLockPlan(plan))
		}
		var read lockPlan
		read, err = e.doOnce(ctx, fn, opts)
		if err == nil || attempt >= cfg.attempts || !cfg.retryable(err) {
			return err
		}
		if errors.Is(err, ErrStaleData) || errors.Is(err, ErrRetryable) {
			lock, plan = true, read
		}
		wait := cfg.minBackoff << (attempt - 1)
		if wait <= 0 || wait > cfg.maxBackoff {
			wait = cfg.maxBackoff
		}
		if wait > 0 { // RetryBackoff(0, 0) asks for no pause; rand.N(0) would panic
			wait = rand.N(wait)
		}
		t := time.NewTimer(wait + 1)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// retryable reports whether another attempt may succeed where this one
// failed, having committed nothing. A connection error that is not
// ErrCommitUnknown came before COMMIT (or the statement of a
// single-statement commit) was sent, so the transaction died with its
// connection and nothing of it committed: the pool gives the next attempt
// another connection.
func (c *doConfig) retryable(err error) bool {
	if errors.Is(err, ErrCommitUnknown) {
		return false
	}
	return errors.Is(err, ErrRetryable) || errors.Is(err, ErrConnection) ||
		c.retryStale && errors.Is(err, ErrStaleData)
}

// doOnce is one attempt: a session, fn, commit or rollback, close. When
// it fails, read lists the rows its session had read, for a locking retry.
func (e *Engine) doOnce(ctx context.Context, fn func(context.Context, *Session) error, opts []SessionOption) (read lockPlan, err error) {
	s := e.NewSession(append(slices.Clip(opts), inUnitOfWork())...)
	defer func() {
		if p := recover(); p != nil {
			s.Close() // rolls back
			panic(p)
		}
		if err != nil && (errors.Is(err, ErrStaleData) || errors.Is(err, ErrRetryable)) {
			read = s.readSet()
		}
		if cerr := s.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if s.lockPlan != nil {
		if err = s.lockPlanned(ctx); err != nil {
			return nil, err
		}
	}
	if err = fn(NewContext(ctx, s), s); err != nil {
		return nil, err
	}
	if s.enter() == nil { // fn may have left the session busy in a goroutine
		s.orderUpdatesByKey()
		s.leave()
	}
	return nil, s.Commit(ctx)
}
