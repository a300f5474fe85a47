// Package bench measures Tally beside the libraries Go programs pick
// instead — raw database/sql, sqlx, GORM and bun — doing the same jobs on
// the same driver, the same pool settings and the same tables, on
// PostgreSQL, MariaDB and SQLite.
//
// It is a module of its own (see go.mod) so that the peers never enter
// Tally's dependencies. Two ways to run it:
//
//	cd bench && go test -run '^$' -bench . -benchtime 200x ./...
//	make bench   # rounds, medians, docs/benchmarks.md and its charts
//
// Every library implements the operations of [Ops] as a [Step], one call
// per benchmark iteration, written the way that library's documentation
// recommends. [Benchmark] times a step and reports round trips per
// operation, counted by a net.Conn wrapper that the drivers dial through
// (see [Counter]). raw-again runs raw's code a second time as a library of
// its own: its ratio to raw is the run's noise, printed beside the targets.
package bench
