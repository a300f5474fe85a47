package reliability

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/orm"
)

// A server stopped (cleanly, or killed with SIGKILL) in the middle of a
// load run and started again: while it is down every request fails fast
// with ErrConnection and a message saying the database is unavailable;
// once it is back requests succeed at the first attempt (no dead
// connection from before the restart is handed to a caller); the database
// holds whole transfers only; every connection and goroutine is returned.
func TestServerDownMidLoadFailsFastAndRecovers(t *testing.T) {
	longTest(t)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := startServer(t, kind)
			for _, mode := range []string{"stop", "kill"} {
				t.Run(mode, func(t *testing.T) {
					b := openBank(t, srv, "bank_"+mode)
					leaks := goroutineBaseline(t)
					l := newLoad(b, 5*time.Second, orm.RetryOnStale())
					stop := make(chan struct{})
					l.run(6, stop)
					time.Sleep(300 * time.Millisecond)

					downAt := time.Now()
					if mode == "stop" {
						srv.Stop(t)
					} else {
						srv.Kill(t)
					}
					t.Logf("%s took %v", mode, time.Since(downAt).Round(time.Millisecond))

					// While it is down: each request fails, fast, typed.
					var probeOK atomic.Int64
					var slowest time.Duration
					const probes = 20
					for i := range probes {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						start := time.Now()
						err := b.transfer(ctx, b.ids[0], b.ids[1], 1)
						took := time.Since(start)
						cancel()
						slowest = max(slowest, took)
						if err == nil {
							t.Errorf("probe %d while the server is down: succeeded", i)
							probeOK.Add(1)
							continue
						}
						if !errors.Is(err, orm.ErrConnection) {
							t.Errorf("probe %d while the server is down: got %v, want an error matching ErrConnection", i, err)
						}
						if !strings.Contains(err.Error(), "database unavailable") {
							t.Errorf("probe %d while the server is down: %q does not say the database is unavailable", i, err)
						}
						if i == 0 {
							t.Logf("while down: %v", err)
						}
					}
					if slowest > 2*time.Second {
						t.Errorf("while the server is down a request took %v to fail, want under 2s", slowest)
					}
					t.Logf("while down: %d probes failed, slowest %v", probes-probeOK.Load(), slowest.Round(time.Millisecond))

					startAt := time.Now()
					srv.Start(t)
					upAt := time.Now()
					t.Logf("restart took %v; down for %v", upAt.Sub(startAt).Round(time.Millisecond), upAt.Sub(downAt).Round(time.Millisecond))

					// Back up: requests succeed at their first attempt. The
					// load's workers race these for the pool's dead
					// connections.
					for i := range 10 {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						err := b.transfer(ctx, b.ids[2], b.ids[3], 1, orm.MaxAttempts(1), orm.RetryOnStale())
						cancel()
						if err != nil && !errors.Is(err, orm.ErrStaleData) {
							t.Errorf("request %d after the restart, one attempt: got %v, want success (a dead connection handed out?)", i, err)
						} else if err == nil {
							probeOK.Add(1)
						}
					}
					recovered := time.Since(upAt)
					time.Sleep(300 * time.Millisecond)
					close(stop)
					l.wait()
					t.Logf("load: %v", l)
					t.Logf("first requests after the restart done in %v", recovered.Round(time.Millisecond))
					for _, err := range l.untyped {
						t.Errorf("a request failed with an untyped error: %v", err)
					}
					applied := b.audit(t)
					if lo, hi := l.ok.Load()+probeOK.Load(), l.ok.Load()+probeOK.Load()+l.unknown.Load(); int64(applied) < lo || int64(applied) > hi {
						t.Errorf("journal holds %d transfers; %d succeeded and %d had an unknown outcome", applied, lo, l.unknown.Load())
					}
					t.Logf("commit-unknown outcomes: %d, of which the journal shows %d committed", l.unknown.Load(), int64(applied)-l.ok.Load()-probeOK.Load())
					b.checkServes(t)
					checkIdle(t, b.eng)
					b.eng.Close()
					leaks()
				})
			}
		})
	}
}
