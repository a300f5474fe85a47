package main

import (
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
)

// reliabilityEnv gates the long tests: make reliability sets it.
const reliabilityEnv = "TALLY_RELIABILITY"

// loadDurationEnv overrides the 60 s of the load with faults (CI runs a
// shorter one; see the Makefile).
const loadDurationEnv = "TALLY_LOAD_DURATION"

// TestReliabilityLoadWithFaults is the load: 200 clients, half
// over HTTP and half over TCP, for 60 s on each database, with faults
// injected at random — the server killing the demo's own connections
// (MariaDB, PostgreSQL) and the clients cutting requests off once sent —
// and every unknown outcome retried with its request id. The report's
// checks must all pass: money conserved, each transfer applied exactly
// once and as reported, no refused transfer applied, no request failed,
// no connection in use at the end, no goroutine left, heap flat.
func TestReliabilityLoadWithFaults(t *testing.T) {
	if os.Getenv(reliabilityEnv) != "1" {
		t.Skip("a 200-client load with faults, 60 s per database: run it with make reliability, or " +
			reliabilityEnv + "=1 go test -run TestReliabilityLoadWithFaults ./cmd/tallydemo (" + loadDurationEnv + "=20s to shorten)")
	}
	d := 60 * time.Second
	if v := os.Getenv(loadDurationEnv); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration", loadDurationEnv, v)
		}
	}
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		before := runtime.NumGoroutine()
		cfg := testConfig(tg)
		cfg.clients, cfg.duration, cfg.audit = 200, d, 500*time.Millisecond
		cfg.faults = Faults{Cut: true, Kill: tg.Name != dbtest.SQLite, Every: 100 * time.Millisecond}
		cfg.cut = 0.02
		if tg.Name == dbtest.Postgres {
			// As the README advises: the demo's deliberate deadlocks are
			// found in 50 ms instead of PostgreSQL's default 1 s.
			cfg.dsn += "&deadlock_timeout=50ms"
		}
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		rep, err := runLoad(t.Context(), cfg, nil, false, log)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		rep.Print(&b)
		t.Log("\n" + b.String())
		if !rep.OK() {
			t.Error("a check failed")
		}
		l := rep.Load
		if l.HTTPCommits == 0 || l.TCPCommits == 0 || l.Unknown == 0 || (cfg.faults.Kill && rep.Kills == 0) {
			t.Errorf("HTTP commits %d, TCP commits %d, unknown outcomes %d, kills %d: the load did not exercise the faults",
				l.HTTPCommits, l.TCPCommits, l.Unknown, rep.Kills)
		}
		checkGoroutines(t, before)
	})
}
