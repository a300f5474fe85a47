package orm_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// qtInsertAccounts inserts n accounts owned by prefix000000, prefix000001, …
// with multi-row INSERTs of 1000 rows sent through s.Exec, and commits.
func qtInsertAccounts(t testing.TB, eng *orm.Engine, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()
	const per = 1000
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		var b strings.Builder
		b.WriteString("INSERT INTO accounts (owner, balance, version, created_at) VALUES ")
		args := make([]any, 0, 4*(hi-lo))
		for i := lo; i < hi; i++ {
			if i > lo {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, 1, ?)")
			args = append(args, fmt.Sprintf("%s%06d", prefix, i), int64(i), baseTime)
		}
		if _, err := s.Exec(ctx, b.String(), args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// qtHeap is a heap reading after a full collection: what is live.
type qtHeap struct{ inuse, alloc uint64 }

// qtReadHeap collects garbage and reads the heap.
func qtReadHeap() qtHeap {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return qtHeap{ms.HeapInuse, ms.HeapAlloc}
}

// growth is how far h is above base, in bytes (0 if below).
func (h qtHeap) growth(base qtHeap) qtHeap {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return qtHeap{sub(h.inuse, base.inuse), sub(h.alloc, base.alloc)}
}

// max is the larger of h and o, figure by figure.
func (h qtHeap) max(o qtHeap) qtHeap {
	return qtHeap{max(h.inuse, o.inuse), max(h.alloc, o.alloc)}
}

func (h qtHeap) String() string {
	return fmt.Sprintf("HeapInuse +%.1f MiB, HeapAlloc +%.1f MiB", float64(h.inuse)/(1<<20), float64(h.alloc)/(1<<20))
}

// Iter is documented to stream with flat memory. It is measured over
// 100,000 rows against All, and against plain database/sql rows as the
// floor of what streaming costs. The session's identity map keeps every
// object Iter resolves, so what is measured here is Iter as a user meets
// it: through a session.
func TestIterMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts and reads 100,000 rows per database")
	}
	const rows = 100_000
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		start := time.Now()
		qtInsertAccounts(t, eng, "u", rows)
		t.Logf("%s: inserted %d rows in %v", tg.Name, rows, time.Since(start).Round(time.Millisecond))

		// Plain database/sql: the floor.
		var floor qtHeap
		{
			base := qtReadHeap()
			start := time.Now()
			r, err := eng.DB().QueryContext(ctx, "SELECT id, owner, balance, version, note, created_at FROM accounts")
			if err != nil {
				t.Fatal(err)
			}
			var a Account
			n := 0
			for r.Next() {
				if err := r.Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created); err != nil {
					t.Fatal(err)
				}
				n++
				if n%10_000 == 0 {
					floor = floor.max(qtReadHeap().growth(base))
				}
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			if n != rows {
				t.Fatalf("database/sql read %d rows", n)
			}
			t.Logf("%s: database/sql rows, peak %v (%v)", tg.Name, floor, time.Since(start).Round(time.Millisecond))
		}

		// Iter through a session, not tracking: a tracking session keeps
		// every object it returns (about 330 bytes a row here), by design.
		var iterPeak qtHeap
		var samples []string
		var tracked int
		{
			s := eng.NewSession()
			base := qtReadHeap()
			start := time.Now()
			n := 0
			for a, err := range orm.Query[Account](s).NoTrack().Iter(ctx) {
				if err != nil {
					t.Fatal(err)
				}
				_ = a
				n++
				if n%10_000 == 0 {
					g := qtReadHeap().growth(base)
					iterPeak = iterPeak.max(g)
					samples = append(samples, fmt.Sprintf("%dk:%.1f", n/1000, float64(g.alloc)/(1<<20)))
				}
			}
			if n != rows {
				t.Fatalf("Iter yielded %d rows", n)
			}
			tracked = s.Stats().Tracked
			took := time.Since(start)
			s.Close()
			after := qtReadHeap().growth(base)
			t.Logf("%s: Iter, peak %v (%v); HeapAlloc MiB by rows read: %s; session tracks %d objects at the end; after Close %v",
				tg.Name, iterPeak, took.Round(time.Millisecond), strings.Join(samples, " "), tracked, after)
		}

		// All through a session.
		var allPeak qtHeap
		{
			s := eng.NewSession()
			base := qtReadHeap()
			start := time.Now()
			all, err := orm.Query[Account](s).All(ctx)
			if err != nil || len(all) != rows {
				t.Fatalf("All: %d rows, %v", len(all), err)
			}
			took := time.Since(start)
			allPeak = qtReadHeap().growth(base)
			runtime.KeepAlive(all)
			s.Close()
			t.Logf("%s: All, holding the result %v (%v)", tg.Name, allPeak, took.Round(time.Millisecond))
		}

		const flat = 8 << 20
		if floor.alloc > flat {
			t.Errorf("plain database/sql grew %v: the driver does not stream, so the numbers below say nothing", floor)
		}
		if iterPeak.alloc > flat {
			t.Errorf("Iter is not flat: the live heap grew %v over %d rows (%.0f bytes a row), with the session tracking %d objects: "+
				"the identity map keeps every object Iter resolves", iterPeak, rows, float64(iterPeak.alloc)/rows, tracked)
		}
		if iterPeak.alloc*2 > allPeak.alloc {
			t.Errorf("Iter's peak (%v) is not much below All's (%v)", iterPeak, allPeak)
		}
	})
}

// Leaving an Iter loop early, by break or panic, closes the rows: the
// session runs the next query on the same transaction, and after Close the
// pool has every connection back.
func TestIterBreakReleases(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		const rows = 5000
		qtInsertAccounts(t, eng, "u", rows)

		s := eng.NewSession()
		n := 0
		for a, err := range orm.Query[Account](s).OrderBy("id").Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 5 {
				if a.Owner != "u000004" {
					t.Fatalf("fifth row %q", a.Owner)
				}
				break
			}
		}
		// The session is free and its connection can run another query.
		if c, err := orm.Query[Account](s).Count(ctx); err != nil || c != rows {
			t.Fatalf("Count after break: %d, %v", c, err)
		}
		m := 0
		for _, err := range orm.Query[Account](s).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			m++
		}
		if m != rows {
			t.Fatalf("second Iter read %d rows", m)
		}
		// Break again, then Close straight away.
		for _, err := range orm.Query[Account](s).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatalf("%d connections in use after break and Close", st.InUse)
		}

		// A fresh session whose first statement is the Iter we break out of.
		s = eng.NewSession()
		for _, err := range orm.Query[Account](s).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		s.Close()
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatalf("%d connections in use after break and Close", st.InUse)
		}

		// A panic in the loop body unwinds through the iterator.
		s = eng.NewSession()
		defer s.Close()
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v", r)
				}
			}()
			for range orm.Query[Account](s).Iter(ctx) {
				panic("boom")
			}
		}()
		if c, err := orm.Query[Account](s).Count(ctx); err != nil || c != rows {
			t.Fatalf("Count after a panic in the loop: %d, %v", c, err)
		}
		s.Close()
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatalf("%d connections in use after a panic and Close", st.InUse)
		}
	})
}

// While an Iter loop runs the session is busy: calls into it fail with
// ErrConcurrentUse and change nothing. A query error is yielded once.
func TestIterSessionBusy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("ann", 1), newAccount("bob", 2))
		s := eng.NewSession()
		defer s.Close()
		for a, err := range orm.Query[Account](s).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if _, err := orm.Get[Account](ctx, s, ids["bob"]); !errors.Is(err, orm.ErrConcurrentUse) {
				t.Fatalf("Get inside Iter: %v", err)
			}
			if _, err := orm.Query[Account](s).Count(ctx); !errors.Is(err, orm.ErrConcurrentUse) {
				t.Fatalf("Count inside Iter: %v", err)
			}
			if err := s.Add(&Account{Owner: "x" + a.Owner}); !errors.Is(err, orm.ErrConcurrentUse) {
				t.Fatalf("Add inside Iter: %v", err)
			}
			for _, err := range orm.Query[Account](s).Iter(ctx) {
				if !errors.Is(err, orm.ErrConcurrentUse) {
					t.Fatalf("nested Iter: %v", err)
				}
			}
		}
		if p := s.Pending(); len(p) != 0 {
			t.Fatalf("Add inside Iter left %d pending objects", len(p))
		}

		errs := 0
		for a, err := range orm.Query[Account](s).OrderBy("nope").Iter(ctx) {
			if err == nil || a != nil {
				t.Fatalf("bad query yielded %v, %v", a, err)
			}
			errs++
		}
		if errs != 1 {
			t.Fatalf("bad query yielded %d errors, want 1", errs)
		}
		s.Close()
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatalf("%d connections in use", st.InUse)
		}
	})
}

// A context cancelled while Iter streams ends the loop with an error
// matching context.Canceled, and after Rollback the session works again.
func TestIterCancel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		const rows = 5000
		qtInsertAccounts(t, eng, "u", rows)
		s := eng.NewSession()
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		var last error
		for _, err := range orm.Query[Account](s).Iter(ctx) {
			if err != nil {
				last = err
				break
			}
			n++
			if n == 10 {
				cancel()
				time.Sleep(50 * time.Millisecond) // let database/sql notice
			}
		}
		t.Logf("%s: Iter stopped after %d rows with %v; chain:%s", tg.Name, n, last, errorChain(last))
		if !errors.Is(last, context.Canceled) {
			t.Fatalf("Iter after cancel: %d rows, error %v; want context.Canceled", n, last)
		}
		if n >= rows {
			t.Fatalf("Iter read all %d rows after the cancel", n)
		}
		if err := s.Rollback(context.Background()); err != nil {
			t.Errorf("Rollback: %v", err)
		}
		if c, err := orm.Query[Account](s).Count(context.Background()); err != nil || c != rows {
			t.Fatalf("Count after cancel and Rollback: %d, %v", c, err)
		}
	})
}

// Q.Iter and RawQ.Iter stream through one helper: whether the loop reads
// every row or breaks out early, the query hook hears of the query once,
// with the rows read; an error before the first row (a result column that
// T does not map) is yielded once and reported to the hook too.
func TestIterReportsRowsRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var events []orm.QueryEvent
		hook := orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
			if ev.Op == "query" {
				events = append(events, ev)
			}
		})
		eng := openEngine(t, tg, nil, hook)
		ctx := context.Background()
		const rows = 20
		qtInsertAccounts(t, eng, "r", rows)
		iters := []struct {
			name string
			iter func(*orm.Session) iter.Seq2[*Account, error]
		}{
			{"Q", func(s *orm.Session) iter.Seq2[*Account, error] { return orm.Query[Account](s).OrderBy("id").Iter(ctx) }},
			{"RawQ", func(s *orm.Session) iter.Seq2[*Account, error] {
				return orm.Raw[Account](s, "SELECT * FROM accounts ORDER BY id").Iter(ctx)
			}},
		}
		for _, it := range iters {
			for _, stop := range []int{rows, 3} {
				t.Run(fmt.Sprintf("%s/stop%d", it.name, stop), func(t *testing.T) {
					s := eng.NewSession()
					defer s.Close()
					events = events[:0]
					n := 0
					for _, err := range it.iter(s) {
						if err != nil {
							t.Fatal(err)
						}
						if n++; n == stop {
							break
						}
					}
					if len(events) != 1 {
						t.Fatalf("%d query events, want 1", len(events))
					}
					if ev := events[0]; ev.Rows != int64(stop) || ev.Err != nil {
						t.Fatalf("event Rows %d Err %v, want %d, nil", ev.Rows, ev.Err, stop)
					}
				})
			}
		}
		t.Run("RawQ/unknown column", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			events = events[:0]
			var errs []error
			for _, err := range orm.Raw[Account](s, "SELECT id, 1 AS nonesuch FROM accounts").Iter(ctx) {
				errs = append(errs, err)
			}
			if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "nonesuch") {
				t.Fatalf("yielded %v, want one error naming nonesuch", errs)
			}
			if len(events) != 1 || events[0].Err == nil {
				t.Fatalf("query events %+v, want one with the error", events)
			}
		})
	})
}
