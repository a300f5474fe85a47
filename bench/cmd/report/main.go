// Command report runs the benchmarks of the bench module over several
// interleaved rounds and writes docs/benchmarks.md and its charts:
//
//	cd bench && go run ./cmd/report -rounds 5 -benchtime 300ms -out ../docs/benchmarks.md
//
// `make bench` at the repository root runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tallyorm/tally/bench"
)

func main() {
	testing.Init() // testing.Benchmark reads -test.benchtime
	rounds := flag.Int("rounds", 5, "interleaved rounds; the report gives medians")
	benchtime := flag.String("benchtime", "300ms", "time (or Nx iterations) per benchmark and round")
	out := flag.String("out", "../docs/benchmarks.md", "Markdown report to write; charts go in the folder of the same name")
	dbs := flag.String("db", "", "comma-separated databases to run (PostgreSQL, MariaDB, SQLite); all when empty")
	note := flag.String("note", "", "conditions of the run, printed under the title")
	flag.Parse()
	if err := flag.Set("test.benchtime", *benchtime); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	cfg := bench.ReportConfig{Rounds: *rounds, BenchTime: *benchtime, Out: *out, Note: *note, Log: os.Stderr}
	if *dbs != "" {
		cfg.Databases = strings.Split(*dbs, ",")
	}
	if err := bench.Report(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "report: wrote", *out)
}
