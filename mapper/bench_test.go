package mapper

import (
	"strconv"
	"testing"
	"time"
)

// benchAccount is the six-column model of the session benchmarks.
type benchAccount struct {
	ID      int64     `db:"id,pk,auto"`
	Owner   string    `db:"owner"`
	Balance int64     `db:"balance"`
	Version int64     `db:"version,version"`
	Note    *string   `db:"note"`
	Created time.Time `db:"created_at"`
}

func newBenchAccount(i int) *benchAccount {
	note := "note " + strconv.Itoa(i)
	return &benchAccount{
		ID: int64(i + 1), Owner: "owner " + strconv.Itoa(i), Balance: int64(i) * 100, Version: 1,
		Note: &note, Created: time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC),
	}
}

func benchTable(b *testing.B) *Table {
	b.Helper()
	tab, err := NewRegistry().TableOf(&benchAccount{})
	if err != nil {
		b.Fatal(err)
	}
	return tab
}

func BenchmarkSnapshot(b *testing.B) {
	tab := benchTable(b)
	obj := newBenchAccount(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = tab.Acc.Snapshot(obj)
	}
}

func BenchmarkChanged(b *testing.B) {
	tab := benchTable(b)
	obj := newBenchAccount(1)
	snap := tab.Acc.Snapshot(obj)
	obj.Balance++ // one changed column, as after a typical update
	dst := make([]*Column, 0, len(tab.Columns))
	b.ReportAllocs()
	for b.Loop() {
		dst = tab.Acc.Changed(obj, snap, dst[:0])
	}
	if len(dst) != 1 {
		b.Fatalf("Changed = %v", colNames(dst))
	}
}

// BenchmarkChanged10k diffs 10,000 tracked objects, as a flush of a large
// session does; one op is the whole 10k (target: well under 2 ms).
func BenchmarkChanged10k(b *testing.B) {
	const n = 10_000
	tab := benchTable(b)
	objs := make([]*benchAccount, n)
	snaps := make([]any, n)
	for i := range objs {
		objs[i] = newBenchAccount(i)
		snaps[i] = tab.Acc.Snapshot(objs[i])
		if i%10 == 0 {
			objs[i].Balance++
		}
	}
	dst := make([]*Column, 0, len(tab.Columns))
	b.ReportAllocs()
	changed := 0
	for b.Loop() {
		changed = 0
		for i, o := range objs {
			dst = tab.Acc.Changed(o, snaps[i], dst[:0])
			changed += len(dst)
		}
	}
	if changed != n/10 {
		b.Fatalf("%d changed columns, want %d", changed, n/10)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/object")
}

func BenchmarkKey(b *testing.B) {
	tab := benchTable(b)
	obj := newBenchAccount(1)
	b.ReportAllocs()
	var k Key
	for b.Loop() {
		k = tab.Acc.Key(obj)
	}
	if k.I != obj.ID {
		b.Fatal(k)
	}
}

func BenchmarkKeyOfInt64(b *testing.B) {
	tab := benchTable(b)
	b.ReportAllocs()
	var k Key
	for b.Loop() {
		k, _ = tab.KeyOf(int64(42))
	}
	if k.I != 42 {
		b.Fatal(k)
	}
}

func BenchmarkKeyComposite(b *testing.B) {
	tab, err := NewRegistry().TableOf(&intStrPK{})
	if err != nil {
		b.Fatal(err)
	}
	obj := &intStrPK{Tenant: 7, Code: "abc"}
	b.ReportAllocs()
	for b.Loop() {
		_ = tab.Acc.Key(obj)
	}
}

// BenchmarkAddr builds the scan targets of one row.
func BenchmarkAddr(b *testing.B) {
	tab := benchTable(b)
	obj := newBenchAccount(1)
	dest := make([]any, len(tab.Columns))
	b.ReportAllocs()
	for b.Loop() {
		for i, c := range tab.Columns {
			dest[i] = tab.Acc.Addr(obj, c)
		}
	}
}

// BenchmarkValue builds the bind values of one row.
func BenchmarkValue(b *testing.B) {
	tab := benchTable(b)
	obj := newBenchAccount(1)
	args := make([]any, len(tab.Columns))
	b.ReportAllocs()
	for b.Loop() {
		for i, c := range tab.Columns {
			args[i] = tab.Acc.Value(obj, c)
		}
	}
}
