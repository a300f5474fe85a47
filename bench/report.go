package bench

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ReportConfig says how to run the report.
type ReportConfig struct {
	// Rounds is how many times every benchmark runs; libraries alternate
	// within each round, and the report gives medians over rounds.
	Rounds int
	// BenchTime is each benchmark's -test.benchtime (a duration or Nx);
	// testing.Init must have been called and the flag set to it.
	BenchTime string
	// Out is the Markdown file to write; the charts go in a folder named
	// after it without the extension (docs/benchmarks.md → docs/benchmarks/).
	Out string
	// Note is printed under the title: the conditions of the run.
	Note string
	// Log receives progress.
	Log io.Writer
	// Databases limits the run to these of [Databases] (all when empty):
	// a quicker look at one database, not a report to publish.
	Databases []string
}

// Result is one benchmark's figures.
type Result struct {
	NsPerOp, BytesPerOp, AllocsPerOp float64
	// RoundTrips is per op; negative where not counted (SQLite).
	RoundTrips float64
	// CPUNs is the client process's CPU time per op (CPUMetric).
	CPUNs float64
	// Ratio is NsPerOp over raw's in the same round.
	Ratio float64
}

type cell struct {
	db, lib string
	op      Op
}

// dbRun is one database's part of the report.
type dbRun struct {
	name    string
	env     *Env
	skipped string
	steps   map[string]map[Op]Step
	results map[cell][]Result
}

// Report runs every benchmark cfg.Rounds times on every reachable database
// and writes the Markdown report and its SVG charts.
func Report(ctx context.Context, cfg ReportConfig) error {
	if cfg.Rounds < 1 {
		return errors.New("bench: Rounds must be at least 1")
	}
	for _, name := range cfg.Databases {
		if !slices.Contains(Databases, name) {
			return fmt.Errorf("bench: unknown database %q (want one of %s)", name, strings.Join(Databases, ", "))
		}
	}
	start := time.Now()
	load := loadAverage()
	var runs []*dbRun
	for _, name := range Databases {
		if len(cfg.Databases) > 0 && !slices.Contains(cfg.Databases, name) {
			continue
		}
		r := &dbRun{name: name, results: map[cell][]Result{}}
		runs = append(runs, r)
		e, err := Open(ctx, name)
		if errors.Is(err, ErrUnreachable) {
			r.skipped = err.Error()
			fmt.Fprintf(cfg.Log, "%s: skipped: %v\n", name, err)
			continue
		}
		if err != nil {
			return err
		}
		defer e.Close()
		r.env = e
		r.steps = map[string]map[Op]Step{}
		for _, lib := range Libraries {
			steps, err := lib.Steps(ctx, e)
			if err != nil {
				return fmt.Errorf("%s on %s: %w", lib.Name, name, err)
			}
			r.steps[lib.Name] = steps
		}
	}
	for round := range cfg.Rounds {
		for _, r := range runs {
			if r.env == nil {
				continue
			}
			for _, op := range Ops {
				// Rotate the order each round, so that no library always
				// runs right after the same neighbour.
				libs := slices.Clone(Libraries)
				k := round % len(libs)
				libs = append(libs[k:], libs[:k]...)
				got := map[string]Result{}
				for _, lib := range libs {
					step := r.steps[lib.Name][op]
					if step == nil {
						continue
					}
					res, err := measure(r.env, step)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", r.name, op, lib.Name, err)
					}
					got[lib.Name] = res
				}
				raw, ok := got[rawLib.Name]
				for name, res := range got {
					if ok && raw.NsPerOp > 0 {
						res.Ratio = res.NsPerOp / raw.NsPerOp
					}
					c := cell{r.name, name, op}
					r.results[c] = append(r.results[c], res)
				}
			}
			fmt.Fprintf(cfg.Log, "round %d/%d: %s done (%s elapsed)\n", round+1, cfg.Rounds, r.name, time.Since(start).Round(time.Second))
		}
	}
	return writeReport(cfg, runs, start, load)
}

// measure runs one benchmark, returning the step's error if it failed.
func measure(e *Env, step Step) (Result, error) {
	var failure error
	guarded := func(ctx context.Context) error {
		err := step(ctx)
		if err != nil && failure == nil {
			failure = err
		}
		return err
	}
	br := testing.Benchmark(Benchmark(e, guarded))
	if failure != nil {
		return Result{}, failure
	}
	if br.N == 0 {
		return Result{}, errors.New("benchmark did not run")
	}
	rt := -1.0
	if v, ok := br.Extra[RoundTripsMetric]; ok {
		rt = v
	}
	return Result{
		NsPerOp:     float64(br.T.Nanoseconds()) / float64(br.N),
		BytesPerOp:  float64(br.AllocedBytesPerOp()),
		AllocsPerOp: float64(br.AllocsPerOp()),
		RoundTrips:  rt,
		CPUNs:       br.Extra[CPUMetric],
	}, nil
}

func median(rs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// summary is the medians of a cell's rounds.
func summary(rs []Result) (Result, bool) {
	if len(rs) == 0 {
		return Result{}, false
	}
	return Result{
		NsPerOp:     median(rs, func(r Result) float64 { return r.NsPerOp }),
		BytesPerOp:  median(rs, func(r Result) float64 { return r.BytesPerOp }),
		AllocsPerOp: median(rs, func(r Result) float64 { return r.AllocsPerOp }),
		RoundTrips:  median(rs, func(r Result) float64 { return r.RoundTrips }),
		CPUNs:       median(rs, func(r Result) float64 { return r.CPUNs }),
		Ratio:       median(rs, func(r Result) float64 { return r.Ratio }),
	}, true
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// versions lists the modules measured, from the build information.
func versions() string {
	want := []string{"gorm.io/gorm", "gorm.io/driver/postgres", "gorm.io/driver/mysql", "gorm.io/driver/sqlite", "github.com/uptrace/bun", "github.com/jmoiron/sqlx", "github.com/jackc/pgx/v5", "github.com/go-sql-driver/mysql", "modernc.org/sqlite"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(no build information)"
	}
	var out []string
	for _, w := range want {
		for _, d := range bi.Deps {
			if d.Path == w {
				out = append(out, "`"+d.Path+" "+d.Version+"`")
			}
		}
	}
	return strings.Join(out, ", ")
}

func fmtNs(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.0f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func fmtRT(rt float64) string {
	if rt < 0 {
		return "—"
	}
	if rt == float64(int64(rt)) {
		return fmt.Sprintf("%d", int64(rt))
	}
	return fmt.Sprintf("%.1f", rt)
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", r)
}

func writeReport(cfg ReportConfig, runs []*dbRun, start time.Time, load string) error {
	chartDir := strings.TrimSuffix(cfg.Out, filepath.Ext(cfg.Out))
	if err := os.MkdirAll(chartDir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks: Tally beside database/sql, sqlx, GORM and bun\n\n")
	w("<!-- Generated by `make bench` (bench/cmd/report). Do not edit: rerun it. -->\n\n")
	w("Run on %s: %d interleaved rounds, `-benchtime %s` per benchmark, %s, GOMAXPROCS=%d, %s; load average %s at the start; %s in all.\n\n",
		start.UTC().Format("2006-01-02 15:04 UTC"), cfg.Rounds, cfg.BenchTime, runtime.Version(), runtime.GOMAXPROCS(0), cpuModel(), load, time.Since(start).Round(time.Second))
	if cfg.Note != "" {
		w("**Conditions:** %s\n\n", cfg.Note)
	}
	w("Every figure is the median of the rounds (each round's are in [%s/rounds.csv](%s/rounds.csv)); a ratio is the library's time over raw database/sql's time for the same operation in the same round (median over rounds), so below 1 is faster than raw. Allocations are exact; times vary with the machine's load. Client CPU/op is the benchmark process's own CPU time per operation (user and system, the server's left out; on SQLite it includes the engine, which runs in the process): what the library itself costs, and far steadier than time on a shared machine.\n\n", filepath.Base(chartDir), filepath.Base(chartDir))

	// The unit of work first: it is why a session exists.
	w("## The unit of work\n\n")
	w("%s — written with each library's own transaction API; raw is the hand-written database/sql transaction sending one statement at a time.\n\n", OpDoc[UnitOfWork])
	for _, op := range []Op{UnitOfWork, LoadChangeSave} {
		w("**%s** — %s. Ratio to raw (round trips per op):\n\n", op, OpDoc[op])
		w("| library |")
		for _, r := range runs {
			if r.env != nil {
				w(" %s |", r.name)
			}
		}
		w("\n|---|")
		for _, r := range runs {
			if r.env != nil {
				w("---|")
			}
		}
		w("\n")
		for _, lib := range Libraries {
			w("| %s |", lib.Name)
			for _, r := range runs {
				if r.env == nil {
					continue
				}
				s, ok := summary(r.results[cell{r.name, lib.Name, op}])
				switch {
				case !ok:
					w(" — |")
				case s.RoundTrips >= 0:
					w(" %s (%s) |", fmtRatio(s.Ratio), fmtRT(s.RoundTrips))
				default:
					w(" %s |", fmtRatio(s.Ratio))
				}
			}
			w("\n")
		}
		w("\n")
	}

	writeTargets(w, runs)

	w("## Method\n\n")
	w("- **Libraries** (%s):\n", versions())
	for _, lib := range Libraries {
		w("  - **%s**: %s.\n", lib.Name, lib.About)
	}
	w("- **Same driver, same pool**: pgx v5 stdlib, go-sql-driver/mysql (default DSN) and modernc.org/sqlite; every pool at Tally's defaults (32 open, 32 idle, 5 min idle time). raw, sqlx, GORM and bun share one `*sql.DB` per database; Tally shares it on PostgreSQL and opens its own with `orm.Open` on MariaDB and SQLite (see bench/libs_tally.go).\n")
	w("- **Round trips** are counted on the client: the drivers dial through a `net.Conn` wrapper (pgx `ConnConfig.DialFunc`, `mysql.RegisterDialContext`) that counts one round trip each time the client reads after having written. Pipelined messages count once; a message needing no answer (COM_STMT_CLOSE) rides with the next. SQLite runs in process and has none.\n")
	w("- **Fair by construction**: every step runs once untimed (connections and first preparations), then `b.Loop`; Tally opens a fresh session per iteration and commits inside the loop; every UPDATE writes a value never written before, and every INSERT values never inserted before (the suite's constant row let bun, which writes values into the SQL text, send one text that pgx's statement cache prepared once, as no program inserting real data can).\n")
	w("- **Operations** (the model of efectn/go-orm-benchmarks: id, name, title, fax, web, age, right, counter; %d rows seeded in `models` and `notes`):\n", Seeded)
	for _, op := range Ops {
		w("  - **%s**: %s.\n", op, OpDoc[op])
	}
	w("- **Databases**:\n")
	for _, r := range runs {
		if r.env == nil {
			w("  - **%s**: skipped, %s.\n", r.name, r.skipped)
			continue
		}
		w("  - **%s**: %s; %s.\n", r.name, r.env.Server, r.env.Conditions)
	}
	w("\nRerun: `make bench` (or `cd bench && go run ./cmd/report -rounds %d -benchtime %s`); for single runs, `cd bench && go test -run '^$' -bench . -benchtime 200x`.\n\n", cfg.Rounds, cfg.BenchTime)

	for _, r := range runs {
		if r.env == nil {
			continue
		}
		slug := strings.ToLower(r.name)
		w("## %s\n\n", r.name)
		w("![%s: time per operation as a ratio to raw database/sql](%s/%s.svg)\n\n", r.name, filepath.Base(chartDir), slug)
		w("| operation | library | time/op | ratio to raw | round trips/op | client CPU/op | B/op | allocs/op |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, op := range Ops {
			for _, lib := range Libraries {
				s, ok := summary(r.results[cell{r.name, lib.Name, op}])
				if !ok {
					continue
				}
				w("| %s | %s | %s | %s | %s | %s | %.0f | %.0f |\n", op, lib.Name, fmtNs(s.NsPerOp), fmtRatio(s.Ratio), fmtRT(s.RoundTrips), fmtNs(s.CPUNs), s.BytesPerOp, s.AllocsPerOp)
			}
		}
		w("\n")
		if err := os.WriteFile(filepath.Join(chartDir, slug+".svg"), []byte(chart(r)), 0o644); err != nil {
			return err
		}
	}
	if err := writeRounds(filepath.Join(chartDir, "rounds.csv"), runs); err != nil {
		return err
	}
	return os.WriteFile(cfg.Out, []byte(b.String()), 0o644)
}

// writeRounds writes every round's figures as CSV, so that a reader can
// check the medians and see how far the rounds spread.
func writeRounds(path string, runs []*dbRun) error {
	var b strings.Builder
	cw := csv.NewWriter(&b)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	_ = cw.Write([]string{"database", "operation", "library", "round", "ns_per_op", "ratio_to_raw", "client_cpu_ns_per_op", "round_trips_per_op", "bytes_per_op", "allocs_per_op"})
	for _, r := range runs {
		for _, op := range Ops {
			for _, lib := range Libraries {
				for i, res := range r.results[cell{r.name, lib.Name, op}] {
					_ = cw.Write([]string{r.name, string(op), lib.Name, strconv.Itoa(i + 1), f(math.Round(res.NsPerOp)), f(math.Round(res.Ratio*1000) / 1000), f(math.Round(res.CPUNs)), f(res.RoundTrips), f(res.BytesPerOp), f(res.AllocsPerOp)})
				}
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
