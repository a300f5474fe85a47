package scale_test

import (
	"os"
	"testing"
	"time"
)

// needScale skips a scale-out test unless TALLY_SCALE=1 (make scale).
func needScale(t *testing.T) {
	t.Helper()
	if os.Getenv("TALLY_SCALE") != "1" {
		t.Skip("scale-out test: starts its own servers and takes a while; run make scale (TALLY_SCALE=1)")
	}
}

// waitFor polls cond every 10 ms until it holds, and returns how long
// that took; it fails the test after limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
