package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/tallyorm/tally/orm"
)

// Leaks compares the process before and after a load run: the goroutines
// (every server, client and job goroutine must end), the pool's
// connections in use (every session must give its connection back), and
// the live heap after a GC.
type Leaks struct {
	GoroutinesBefore, GoroutinesAfter int
	InUse                             int
	HeapBefore, HeapAfter             uint64
}

// heapSlack is how much the live heap may grow over a run: the clients'
// receipts stay alive for the checks (about 60 bytes a transfer), and the
// pool may hold more idle connections than at the start. A leak of a
// request's worth of memory each time would exceed it within seconds.
const heapSlack = 64 << 20

// leakCheck is a run's starting point.
type leakCheck struct {
	goroutines int
	heap       uint64
}

func startLeakCheck() leakCheck {
	return leakCheck{goroutines: runtime.NumGoroutine(), heap: liveHeap()}
}

// finish measures after the servers stopped, and empties the pool. Goroutines are given a
// moment to end: a connection's goroutine may still be returning.
func (lc leakCheck) finish(eng *orm.Engine) Leaks {
	l := Leaks{GoroutinesBefore: lc.goroutines, HeapBefore: lc.heap}
	// Idle pooled connections keep a goroutine each in some drivers
	// (MySQL's watcher): closing them leaves only what leaked. Nothing
	// uses the engine after the run but the checks, which need no pool.
	eng.DB().SetMaxIdleConns(0)
	deadline := time.Now().Add(3 * time.Second)
	for {
		l.GoroutinesAfter, l.InUse = runtime.NumGoroutine(), eng.DB().Stats().InUse
		if l.GoroutinesAfter <= l.GoroutinesBefore && l.InUse == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.HeapAfter = liveHeap()
	return l
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func (l Leaks) String() string {
	return fmt.Sprintf("goroutines %d → %d, connections in use at the end %d, live heap %.1f → %.1f MiB",
		l.GoroutinesBefore, l.GoroutinesAfter, l.InUse, float64(l.HeapBefore)/(1<<20), float64(l.HeapAfter)/(1<<20))
}

func (l Leaks) checks() []Check {
	return []Check{
		{Name: "no connection left in use", OK: l.InUse == 0, Detail: fmt.Sprintf("%d in use", l.InUse)},
		{Name: "no goroutine left behind", OK: l.GoroutinesAfter <= l.GoroutinesBefore,
			Detail: fmt.Sprintf("%d before, %d after", l.GoroutinesBefore, l.GoroutinesAfter)},
		{Name: "heap flat", OK: l.HeapAfter <= l.HeapBefore+heapSlack,
			Detail: fmt.Sprintf("%.1f MiB before, %.1f MiB after (allowed: +%d MiB)",
				float64(l.HeapBefore)/(1<<20), float64(l.HeapAfter)/(1<<20), heapSlack>>20)},
	}
}
