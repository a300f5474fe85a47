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
// commit whose outcome is unknown (connection lost during COMMIT) is never
// retried: Do returns an error matching ErrCommitUnknown.
//
// Reads in fn before its first write run in autocommit, each seeing the
// data committed when it runs (see Session); the Snapshot option gives fn
// one consistent snapshot instead. On SQLite a retry begins IMMEDIATE, so
// a snapshot session that read and then failed busy when it wrote does
// not fail the same way again.
//
// The session travels in the ctx given to fn (SessionFrom). Called with a
// ctx that already carries a session, Do runs fn in a savepoint of that
// session instead, with no retries of its own: an error rolls back fn's
// work only, and the outer Do decides about the rest.
func (e *Engine) Do(ctx context.Context, fn func(ctx context.Context, s *Session) error, opts ...DoOption) error {
	if outer := SessionFrom(ctx); outer != nil {
		return outer.Savepoint(ctx, func() error { return fn(ctx, outer) })
	}
	cfg := doConfig{attempts: 5, minBackoff: 5 * time.Millisecond, maxBackoff: 500 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	var err error
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
		err = e.doOnce(ctx, fn, opts)
		if err == nil || attempt >= cfg.attempts || !cfg.retryable(err) {
			return err
		}
		wait := cfg.minBackoff << (attempt - 1)
		if wait <= 0 || wait > cfg.maxBackoff {
			wait = cfg.maxBackoff
		}
		t := time.NewTimer(rand.N(wait) + 1)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func (c *doConfig) retryable(err error) bool {
	if errors.Is(err, ErrCommitUnknown) {
		return false
	}
	return errors.Is(err, ErrRetryable) || c.retryStale && errors.Is(err, ErrStaleData)
}

// doOnce is one attempt: a session, fn, commit or rollback, close.
func (e *Engine) doOnce(ctx context.Context, fn func(context.Context, *Session) error, opts []SessionOption) (err error) {
	s := e.NewSession(opts...)
	defer func() {
		if p := recover(); p != nil {
			s.Close() // rolls back
			panic(p)
		}
		if cerr := s.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err = fn(NewContext(ctx, s), s); err != nil {
		return err
	}
	return s.Commit(ctx)
}
