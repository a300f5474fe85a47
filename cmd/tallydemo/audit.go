package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tallyorm/tally/orm"
)

// Audit is the scheduled job: every Every it sums the balances in its own
// eng.Do — a session of its own, like any request — and checks that the
// sum is Want and that no balance is negative. Because the sum is read in
// one transaction while transfers commit around it, a wrong sum would mean
// a transfer was seen half done.
type Audit struct {
	Eng   *orm.Engine
	Want  int64
	Every time.Duration
	Log   *slog.Logger

	Runs     atomic.Int64
	Failures atomic.Int64

	mu       sync.Mutex // guards firstErr
	firstErr error
}

// Run runs the audit until ctx ends.
func (a *Audit) Run(ctx context.Context) {
	tick := time.NewTicker(a.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.once(ctx)
		}
	}
}

func (a *Audit) once(ctx context.Context) {
	var sum, low int64
	n := 0
	err := a.Eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		accts, err := orm.Query[Account](s).All(ctx)
		if err != nil {
			return err
		}
		sum, low, n = 0, 0, len(accts)
		for _, acct := range accts {
			sum += acct.Balance
			low = min(low, acct.Balance)
		}
		return nil
	})
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // stopped mid-run: not a result
	}
	a.Runs.Add(1)
	switch {
	case err != nil:
		err = fmt.Errorf("audit: %w", err)
	case sum != a.Want:
		err = fmt.Errorf("audit: %d accounts hold %d, want %d", n, sum, a.Want)
	case low < 0:
		err = fmt.Errorf("audit: a balance is negative: %d", low)
	}
	if err == nil {
		return
	}
	a.Failures.Add(1)
	a.mu.Lock()
	if a.firstErr == nil {
		a.firstErr = err
	}
	a.mu.Unlock()
	if a.Log != nil {
		a.Log.ErrorContext(ctx, "audit failed", slog.String("error", err.Error()))
	}
}

// FirstError returns the first failure, or nil.
func (a *Audit) FirstError() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.firstErr
}
