package orm_test

// Generated against reflective mappers, side by side in the same run, on
// the same six-column model (testmodels.BenchAccount, whose mapper
// tallygen wrote) through two engines on the same database, one opened
// with orm.WithReflectiveMappers. For ratios, run several -count 1 rounds,
// which interleave the two:
//
//	for i in 1 2 3 4 5 6; do go test -run '^$' -bench 'Mapper' -count 1 ./orm/; done | tee /tmp/mapper.txt

import (
	"context"
	"runtime"
	"syscall"
	"testing"

	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// mapperEngines returns env's engine (generated mappers) and a second one
// on the same database with reflective mappers, by name.
func mapperEngines(b *testing.B, env *benchEnv) []namedEngine {
	b.Helper()
	refl, err := orm.Open(context.Background(), env.tg.Driver, env.tg.DSN, orm.WithReflectiveMappers())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { refl.Close() })
	return []namedEngine{{"generated", env.eng}, {"reflective", refl}}
}

type namedEngine struct {
	name string
	eng  *orm.Engine
}

// processCPU is the CPU time the process has used, in nanoseconds. The
// machines these run on are shared and busy, so wall time per op varies
// several-fold from round to round; CPU time per op (cpu-ns/op, garbage
// collection included) is the steadier measure of the work done.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkMapperRead100 reads 100 rows into fresh tracked objects in a
// fresh session per op. Target (issue 12): generated faster, with fewer
// allocations.
func BenchmarkMapperRead100(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		ctx := context.Background()
		ids := env.seed(b, 100)
		lo, hi := ids[0], ids[len(ids)-1]
		for _, ne := range mapperEngines(b, env) {
			b.Run(ne.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					s := ne.eng.NewSession()
					got, err := orm.Query[testmodels.BenchAccount](s).
						Where(testmodels.BenchAccountCols.ID+" >= ? AND "+testmodels.BenchAccountCols.ID+" <= ?", lo, hi).
						OrderBy(testmodels.BenchAccountCols.ID).All(ctx)
					if err != nil || len(got) != 100 {
						b.Fatal(len(got), err)
					}
					s.Close()
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	})
}

// BenchmarkMapperFlushUnchanged10k flushes a session tracking 10,000
// loaded, unchanged objects: every flush diffs every object against its
// snapshot and sends nothing. Target (issue 12): generated at least 3×
// faster than reflective. No statement is sent, so SQLite alone serves.
//
// Loading also measures what the session holds per tracked object beyond
// the object (B/tracked): the live heap after loading the rows tracked,
// minus after loading them untracked (NoTrack), per row — for a load by
// query (one batch snapshot) and by Get (one snapshot per object). Target:
// at most the column values (72 bytes of fields here) plus 64 bytes.
func BenchmarkMapperFlushUnchanged10k(b *testing.B) {
	const n = 10_000
	tg := sqliteTarget(b)
	env := openBench(b, tg)
	ids := env.seed(b, n)
	ctx := context.Background()
	for _, ne := range mapperEngines(b, env) {
		load := func(tracked bool) (*orm.Session, []*testmodels.BenchAccount) {
			s := ne.eng.NewSession(orm.WithoutAutoflush())
			q := orm.Query[testmodels.BenchAccount](s)
			if !tracked {
				q = q.NoTrack()
			}
			objs, err := q.All(ctx)
			if err != nil || len(objs) != n {
				b.Fatal(len(objs), err)
			}
			return s, objs
		}
		loadByGet := func() (*orm.Session, []*testmodels.BenchAccount) {
			s := ne.eng.NewSession(orm.WithoutAutoflush())
			objs := make([]*testmodels.BenchAccount, 0, n)
			for _, id := range ids {
				o, err := orm.Get[testmodels.BenchAccount](ctx, s, id)
				if err != nil {
					b.Fatal(err)
				}
				objs = append(objs, o)
			}
			return s, objs
		}
		// Warm the pool, the statement caches and SQLite's page cache for
		// both kinds of load, so that what is measured is what they keep.
		s, _ := load(true)
		s.Close()
		s, _ = loadByGet()
		s.Close()
		h0 := liveHeap()
		su, untracked := load(false)
		h1 := liveHeap()
		st, tracked := load(true)
		h2 := liveHeap()
		sg, byGet := loadByGet()
		h3 := liveHeap()
		own := float64(h1-h0) / n
		perQuery := float64(h2-h1)/n - own
		perGet := float64(h3-h2)/n - own
		runtime.KeepAlive(untracked)
		runtime.KeepAlive(byGet)
		su.Close()
		sg.Close()
		b.Run(ne.name, func(b *testing.B) {
			st0 := st.Stats()
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				if err := st.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			if got := st.Stats(); got.Tracked != n || got.Statements != st0.Statements {
				b.Fatalf("tracking %d objects after %d statements, want %d and none", got.Tracked, got.Statements-st0.Statements, n)
			}
			b.ReportMetric(perQuery, "B/tracked-query")
			b.ReportMetric(perGet, "B/tracked-get")
			b.ReportMetric(own, "B/obj")
		})
		st.Close()
		runtime.KeepAlive(tracked)
	}
}
