package bench

import (
	"strings"
	"testing"
)

// fakeRun makes a dbRun of one operation from per-round times (ns/op) by
// library, with ratios to raw as Report computes them.
func fakeRun(op Op, times map[string][]float64) *dbRun {
	r := &dbRun{name: "PostgreSQL", env: &Env{}, results: map[cell][]Result{}}
	raw := times[rawLib.Name]
	for lib, ts := range times {
		for i, ns := range ts {
			c := cell{r.name, lib, op}
			r.results[c] = append(r.results[c], Result{NsPerOp: ns, Ratio: ns / raw[i], RoundTrips: -1})
		}
	}
	return r
}

func TestAheadOfComparesWithEachPeerRoundByRound(t *testing.T) {
	check := aheadOf("", false, []string{"gorm-prep"}, Insert)
	// Tally beats the peer in three rounds of five, and loses the other
	// two by little. The separate medians of ratios to raw (1.30 against
	// 1.20) would call it behind; round by round it is ahead.
	r := fakeRun(Insert, map[string][]float64{
		"raw":       {100, 100, 100, 100, 100},
		"tally":     {100, 100, 130, 130, 130},
		"gorm-prep": {120, 120, 120, 135, 135},
	})
	if met, got, ok := check(r); !ok || !met {
		t.Errorf("ahead in 3 rounds of 5: met=%v ok=%v (%s), want met", met, ok, got)
	}
	// Behind in every round: not met, and the peer is named.
	r = fakeRun(Insert, map[string][]float64{
		"raw":       {100, 90, 110},
		"tally":     {105, 95, 115},
		"gorm-prep": {100, 90, 110},
	})
	met, got, ok := check(r)
	if !ok || met || !strings.Contains(got, "gorm-prep") || !strings.Contains(got, "1.05×") {
		t.Errorf("behind in every round: met=%v ok=%v %q, want not met naming gorm-prep at 1.05×", met, ok, got)
	}
}
