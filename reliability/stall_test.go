package reliability

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/orm"
)

// A network stall: the server stops answering (SIGSTOP of every server
// process: its sockets stay open, nothing replies) while a statement or
// COMMIT is in flight. The caller's context deadline ends the wait
// promptly, and the outcome is reported honestly: a stall before COMMIT
// committed nothing and is the context's error, not ErrCommitUnknown; a
// stall during COMMIT is ErrCommitUnknown. Once the server answers again
// the bank holds whole transfers, the next request succeeds, and no
// connection or goroutine is left behind.
func TestStalledServerEndsAtTheCallersDeadlineWithAnHonestOutcome(t *testing.T) {
	longTest(t)
	const deadline = 500 * time.Millisecond
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := startServer(t, kind)
			b := openBank(t, srv, "bank_stall")
			leaks := goroutineBaseline(t)
			committed := 0
			for _, at := range []string{"statement", "commit"} {
				t.Run(at, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), deadline)
					defer cancel()
					var paused time.Time
					attempts := 0
					err := b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
						attempts++
						if err := b.transferIn(ctx, s, b.ids[0], b.ids[1], 5); err != nil {
							return err
						}
						if at == "statement" {
							srv.Pause(t)
							paused = time.Now()
							return s.Flush(ctx) // BEGIN and the UPDATEs meet a silent server
						}
						if err := s.Flush(ctx); err != nil {
							return err
						}
						srv.Pause(t)
						paused = time.Now()
						return nil // Do's COMMIT meets a silent server
					})
					returned := time.Now()
					srv.Resume(t)
					if paused.IsZero() {
						t.Fatalf("the server was never paused: %v", err)
					}
					late := returned.Sub(paused)
					t.Logf("stall during the %s: returned %v after the pause (deadline %v, %d attempt(s)): %v", at, late.Round(time.Millisecond), deadline, attempts, err)
					if late > deadline+time.Second {
						t.Errorf("stall during the %s: returned %v after the pause, want within a second of the %v deadline", at, late, deadline)
					}
					if err == nil {
						t.Fatalf("stall during the %s: Do succeeded against a paused server", at)
					}
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("stall during the %s: got %v, want an error matching context.DeadlineExceeded", at, err)
					}
					wantUnknown := at == "commit"
					if got := errors.Is(err, orm.ErrCommitUnknown); got != wantUnknown {
						t.Errorf("stall during the %s: errors.Is(err, ErrCommitUnknown) = %v, want %v: %v", at, got, wantUnknown, err)
					}
					applied := b.audit(t)
					switch {
					case at == "statement" && applied != committed:
						t.Errorf("stall before COMMIT: the journal holds %d transfers, want %d: nothing of it may commit", applied, committed)
					case at == "commit" && applied != committed && applied != committed+1:
						t.Errorf("stall during COMMIT: the journal holds %d transfers, want %d or %d", applied, committed, committed+1)
					}
					if at == "commit" {
						t.Logf("the commit-unknown transfer %s", map[bool]string{true: "committed", false: "did not commit"}[applied == committed+1])
					}
					committed = applied
					start := time.Now()
					b.checkServes(t)
					committed++
					t.Logf("next request served in %v", time.Since(start).Round(time.Millisecond))
					checkIdle(t, b.eng)
				})
			}
			b.eng.Close()
			leaks()
		})
	}
}

// A server that stalls while a caller with no deadline needs a new
// connection: the connect fails in dialect.ConnectTimeout (the driver's
// default would wait for good: the kernel accepts the TCP connection and
// the server never sends its greeting), as ErrConnection saying the
// database is unavailable.
func TestStalledServerFailsANewConnectionInTheConnectTimeout(t *testing.T) {
	longTest(t)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := startServer(t, kind)
			b := openBank(t, srv, "bank_connect")
			leaks := goroutineBaseline(t)
			b.eng.DB().SetMaxIdleConns(0) // no pooled connection: the request must connect
			srv.Pause(t)
			start := time.Now()
			err := b.transfer(context.Background(), b.ids[0], b.ids[1], 1, orm.MaxAttempts(1))
			took := time.Since(start)
			srv.Resume(t)
			t.Logf("connect to a stalled server: failed after %v: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, orm.ErrConnection) || !strings.Contains(err.Error(), "database unavailable") {
				t.Errorf("connect to a stalled server: got %v, want ErrConnection saying the database is unavailable", err)
			}
			if took > dialect.ConnectTimeout+2*time.Second {
				t.Errorf("connect to a stalled server took %v, want about dialect.ConnectTimeout (%v)", took, dialect.ConnectTimeout)
			}
			b.audit(t)
			b.checkServes(t)
			checkIdle(t, b.eng)
			b.eng.Close()
			leaks()
		})
	}
}
