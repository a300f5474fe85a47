package orm_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/orm"
)

// BenchAuthor and BenchBook are the has-many pair of BenchmarkLoad.
type BenchAuthor struct {
	ID      int64        `db:"id,pk,auto"`
	Name    string       `db:"name,size=64"`
	Created time.Time    `db:"created_at"`
	Books   []*BenchBook `rel:"author_id"`
}

// BenchBook belongs to a BenchAuthor.
type BenchBook struct {
	ID       int64  `db:"id,pk,auto"`
	AuthorID int64  `db:"author_id,index"`
	Title    string `db:"title,size=64"`
	Pages    int64  `db:"pages"`
}

// BenchmarkLoad reads 100 authors and their 10 books each: "tally" is
// Query[BenchAuthor].Load("Books").All in a new session per op (BEGIN, two
// SELECTs, ROLLBACK at Close); "raw" is the same four statements by hand
// with database/sql, scanning into the same structs and appending each
// book to its author through a map. Target (issue 9): tally ≤ 1.2 × raw.
func BenchmarkLoad(b *testing.B) {
	const authors, books = 100, 10
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		ctx := context.Background()
		if err := env.eng.CreateTables(ctx, BenchAuthor{}, BenchBook{}); err != nil {
			b.Fatal(err)
		}
		seed := env.eng.NewSession()
		for a := range authors {
			au := &BenchAuthor{Name: "author " + strconv.Itoa(a), Created: env.created}
			for k := range books {
				au.Books = append(au.Books, &BenchBook{Title: "book " + strconv.Itoa(k), Pages: int64(100 + a*books + k)})
			}
			if err := seed.Add(au); err != nil {
				b.Fatal(err)
			}
		}
		if err := seed.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		seed.Close()
		check := func(b *testing.B, got []*BenchAuthor) {
			if len(got) != authors || len(got[0].Books) != books || len(got[authors-1].Books) != books {
				b.Fatalf("loaded %d authors, first with %d books", len(got), len(got[0].Books))
			}
		}

		tally := func(b *testing.B) {
			s := env.eng.NewSession()
			got, err := orm.Query[BenchAuthor](s).OrderBy("id").Load("Books").All(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			check(b, got)
		}
		// cpu-ns/op is the test process's CPU time per op: the client's
		// work, which is what Tally adds, steadier than wall time on a
		// shared machine (see processCPU).
		b.Run("tally", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				tally(b)
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})

		qa := "SELECT id, name, created_at FROM bench_authors ORDER BY id"
		var sb strings.Builder
		sb.WriteString("SELECT id, author_id, title, pages FROM bench_books WHERE author_id IN (")
		for i := range authors {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(env.ph(i + 1))
		}
		sb.WriteString(") ORDER BY id")
		qb := sb.String()
		raw := func(b *testing.B) {
			got, err := rawLoadAuthors(ctx, env, qa, qb)
			if err != nil {
				b.Fatal(err)
			}
			check(b, got)
		}
		b.Run("raw", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				raw(b)
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
		// paired runs tally and raw back to back in every op, in
		// alternating order, and reports the median of the per-op ratios:
		// on a machine whose load swings, both sides of each ratio see the
		// same load, which separate sub-benchmarks seconds apart do not.
		b.Run("paired", func(b *testing.B) {
			var ratios []float64
			for i := 0; b.Loop(); i++ {
				var dt, dr time.Duration
				for k := range 2 {
					start := time.Now()
					if (i+k)%2 == 0 {
						tally(b)
						dt = time.Since(start)
					} else {
						raw(b)
						dr = time.Since(start)
					}
				}
				ratios = append(ratios, float64(dt)/float64(dr))
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "tally/raw")
		})
	})
}

// rawLoadAuthors is what a careful programmer writes by hand for
// BenchmarkLoad: the authors, then their books with IN, each book appended
// to its author found through a map — two statements in autocommit, as
// Tally's session sends them before its first write.
func rawLoadAuthors(ctx context.Context, env *benchEnv, qa, qb string) ([]*BenchAuthor, error) {
	rows, err := env.db.QueryContext(ctx, qa)
	if err != nil {
		return nil, err
	}
	var out []*BenchAuthor
	for rows.Next() {
		a := new(BenchAuthor)
		if err := rows.Scan(&a.ID, &a.Name, &a.Created); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	byID := make(map[int64]*BenchAuthor, len(out))
	args := make([]any, len(out))
	for i, a := range out {
		byID[a.ID] = a
		args[i] = a.ID
	}
	rows, err = env.db.QueryContext(ctx, qb, args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		bk := new(BenchBook)
		if err := rows.Scan(&bk.ID, &bk.AuthorID, &bk.Title, &bk.Pages); err != nil {
			rows.Close()
			return nil, err
		}
		if a := byID[bk.AuthorID]; a != nil {
			a.Books = append(a.Books, bk)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return out, nil
}
