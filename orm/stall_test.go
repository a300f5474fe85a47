package orm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// A server or network that stalls once COMMIT is sent: the caller's
// deadline ends the wait, promptly, with an error matching both
// ErrCommitUnknown and the deadline, and the connection goes back to the
// pool to be discarded. Before, the COMMIT ran in the transaction's own
// context, which nothing ends, and both drivers waited for good.
// (reliability/stall_test.go pauses a real server.)
func TestCommitOnAStalledConnectionEndsAtTheCallersDeadline(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		eng, fc := faultOpen(t, tg)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		fc.arm(faultSocketStallAfterSend)
		start := time.Now()
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			// Flushed first: a transaction, not a statement sent alone.
			if err := s.Add(newAccount("stall-a", 1)); err != nil {
				return err
			}
			return s.Flush(ctx)
		})
		took := time.Since(start)
		if took > 2*time.Second {
			t.Errorf("a stalled COMMIT returned after %v, want at the 300 ms deadline", took)
		}
		if !errors.Is(err, orm.ErrCommitUnknown) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a stalled COMMIT: got %v, want an error matching ErrCommitUnknown and context.DeadlineExceeded", err)
		}
		if fc.fired.Load() != 1 {
			t.Fatalf("the stall fired %d times, want 1", fc.fired.Load())
		}
		scopeNoneInUse(t, eng)
		if err := eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
			return s.Add(newAccount("stall-next", 3))
		}); err != nil {
			t.Errorf("the next request: %v", err)
		}
	})
}
