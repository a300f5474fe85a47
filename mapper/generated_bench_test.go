package mapper_test

// The mapper's own share of the session's work, generated accessor against
// reflective, side by side on the same six-column model
// (testmodels.BenchAccount): what a read does per row besides the driver's
// work, and what an unchanged flush does per tracked object.
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench 'Accessor' -count 1 ./mapper/; done

import (
	"strconv"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/mapper"
)

func accessorTables(b *testing.B) []struct {
	name string
	t    *mapper.Table
} {
	b.Helper()
	gen, err := mapper.NewRegistry().TableOf(testmodels.BenchAccount{})
	if err != nil {
		b.Fatal(err)
	}
	refl, err := mapper.NewRegistry(mapper.Reflective()).TableOf(testmodels.BenchAccount{})
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name string
		t    *mapper.Table
	}{{"generated", gen}, {"reflective", refl}}
}

// BenchmarkAccessorRead100 is the mapper's work for a 100-row result: per
// row a new object, its scan targets filled as a driver fills them, its
// key; then one batch of snapshots.
func BenchmarkAccessorRead100(b *testing.B) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// The rows as a driver returns them, boxed once.
	rows := make([][6]any, 100)
	for i := range rows {
		rows[i] = [6]any{int64(1000 + i), "owner", int64(100_000), int64(1), "note " + strconv.Itoa(i), created}
	}
	for _, tc := range accessorTables(b) {
		t := tc.t
		b.Run(tc.name, func(b *testing.B) {
			objs := make([]any, 100)
			dest := make([]any, len(t.Columns))
			var keys [100]mapper.Key
			var snaps [100]any
			b.ReportAllocs()
			for b.Loop() {
				for i := range objs {
					o := new(testmodels.BenchAccount)
					for j, c := range t.Columns {
						dest[j] = t.Acc.Addr(o, c)
					}
					fill(b, dest, &rows[i])
					keys[i] = t.Acc.Key(o)
					objs[i] = o
				}
				t.Acc.(mapper.BatchSnapshotter).SnapshotBatch(len(objs), func(i int) any { return objs[i] }, func(i int, s any) { snaps[i] = s })
			}
		})
	}
}

// fill stores a row into scan targets as database/sql would, through a
// Scanner when the target is one.
func fill(b *testing.B, dest []any, row *[6]any) {
	for i, d := range dest {
		switch p := d.(type) {
		case *int64:
			*p = row[i].(int64)
		case *string:
			*p = row[i].(string)
		case *time.Time:
			*p = row[i].(time.Time)
		case interface{ Scan(any) error }:
			if err := p.Scan(row[i]); err != nil {
				b.Fatal(err)
			}
		case **string: // database/sql allocates the string for a **string
			s := row[i].(string)
			*p = &s
		default:
			b.Fatalf("unexpected scan target %T", d)
		}
	}
}

// BenchmarkAccessorChanged10k diffs 10,000 unchanged objects against their
// snapshots, as an unchanged flush does.
func BenchmarkAccessorChanged10k(b *testing.B) {
	const n = 10_000
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range accessorTables(b) {
		t := tc.t
		objs, snaps := make([]any, n), make([]any, n)
		for i := range objs {
			note := "note " + strconv.Itoa(i)
			objs[i] = &testmodels.BenchAccount{ID: int64(i + 1), Owner: "owner " + strconv.Itoa(i), Balance: 100, Version: 1, Note: &note, Created: created}
		}
		t.Acc.(mapper.BatchSnapshotter).SnapshotBatch(n, func(i int) any { return objs[i] }, func(i int, s any) { snaps[i] = s })
		b.Run(tc.name, func(b *testing.B) {
			var cols []*mapper.Column
			b.ReportAllocs()
			for b.Loop() {
				for i := range objs {
					if cols = t.Acc.Changed(objs[i], snaps[i], cols[:0]); len(cols) != 0 {
						b.Fatalf("object %d changed: %d columns", i, len(cols))
					}
				}
			}
		})
		// What a flush asks of a generated accessor: no list, a yes or no.
		if cc, ok := mapper.Unwrap(t.Acc).(mapper.ChangeChecker); ok {
			b.Run(tc.name+"-unchanged", func(b *testing.B) {
				for b.Loop() {
					for i := range objs {
						if !cc.Unchanged(objs[i], snaps[i]) {
							b.Fatalf("object %d changed", i)
						}
					}
				}
			})
		}
	}
}
