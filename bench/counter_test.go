package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// openOrSkip opens a database for a test; an unreachable server skips,
// unless TALLY_REQUIRE names it (as for Tally's own tests).
func openOrSkip(t *testing.T, name, driver string) *Env {
	t.Helper()
	e, err := Open(context.Background(), name)
	if errors.Is(err, ErrUnreachable) && !strings.Contains(os.Getenv("TALLY_REQUIRE"), driver) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// roundTrips returns how many round trips fn made on e.
func roundTrips(t *testing.T, e *Env, fn func() error) int64 {
	t.Helper()
	before := e.RoundTrips()
	if err := fn(); err != nil {
		t.Fatal(err)
	}
	return e.RoundTrips() - before
}

// The counter is the instrument of every round-trip figure: it must see
// the protocol exchanges each driver is known to make.
func TestCounterCountsDriverExchanges(t *testing.T) {
	ctx := context.Background()
	t.Run("postgres", func(t *testing.T) {
		e := openOrSkip(t, "PostgreSQL", "postgres")
		var n int
		q := func() error { return e.DB.QueryRowContext(ctx, "SELECT $1::int + 1", 41).Scan(&n) }
		// pgx's statement cache: Parse and Describe the first time, then
		// Bind, Execute and Sync in one message.
		if got := roundTrips(t, e, q); got != 2 {
			t.Errorf("first execution: got %d round trips, want 2 (prepare, execute)", got)
		}
		if got := roundTrips(t, e, q); got != 1 || n != 42 {
			t.Errorf("cached statement: got %d round trips and %d, want 1 and 42", got, n)
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		e := openOrSkip(t, "MariaDB", "mysql")
		var n int
		if got := roundTrips(t, e, func() error { return e.DB.QueryRowContext(ctx, "SELECT 41 + 1").Scan(&n) }); got != 1 || n != 42 {
			t.Errorf("text query: got %d round trips and %d, want 1 and 42", got, n)
		}
		// With arguments and the default DSN the driver prepares, executes
		// and closes the statement; the close needs no answer.
		if got := roundTrips(t, e, func() error { return e.DB.QueryRowContext(ctx, "SELECT ? + 1", 41).Scan(&n) }); got != 2 || n != 42 {
			t.Errorf("query with an argument: got %d round trips and %d, want 2 and 42", got, n)
		}
	})
}
