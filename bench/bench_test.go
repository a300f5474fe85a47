package bench

import (
	"context"
	"errors"
	"testing"
)

// BenchmarkPostgreSQL, BenchmarkMariaDB and BenchmarkSQLite run every
// operation of every library, as sub-benchmarks named operation/library:
//
//	go test -run '^$' -bench . -benchtime 200x ./...
//
// For ratios on a busy machine, prefer `make bench` (go run ./cmd/report),
// which interleaves libraries over several rounds and takes medians.
func BenchmarkPostgreSQL(b *testing.B) { benchDatabase(b, "PostgreSQL") }

// BenchmarkMariaDB: see BenchmarkPostgreSQL.
func BenchmarkMariaDB(b *testing.B) { benchDatabase(b, "MariaDB") }

// BenchmarkSQLite: see BenchmarkPostgreSQL.
func BenchmarkSQLite(b *testing.B) { benchDatabase(b, "SQLite") }

func benchDatabase(b *testing.B, name string) {
	ctx := context.Background()
	e, err := Open(ctx, name)
	if errors.Is(err, ErrUnreachable) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := e.Close(); err != nil {
			b.Error(err)
		}
	})
	steps := make([]map[Op]Step, len(Libraries))
	for i, lib := range Libraries {
		if steps[i], err = lib.Steps(ctx, e); err != nil {
			b.Fatalf("%s: %v", lib.Name, err)
		}
	}
	for _, op := range Ops {
		b.Run(string(op), func(b *testing.B) {
			for i, lib := range Libraries {
				if step := steps[i][op]; step != nil {
					b.Run(lib.Name, Benchmark(e, step))
				}
			}
		})
	}
}
