package scale

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/servers"
)

// The demo's bank runs on a three-node Galera cluster with its transfers
// landing on every node; one node is SIGKILLed mid-run and restarted. The
// demo's own checks must all pass: money unchanged, no negative balance,
// one journal row per transfer a client was told was committed, no request
// failed; and its report must show commits on every node and the node
// taken out and put back.
func demoSurvivesAKilledNode(t *testing.T, nodes []*servers.Server) {
	dsns := galeraDatabase(t, nodes, "demo")
	bin := filepath.Join(t.TempDir(), "tallydemo")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tallyorm/tally/cmd/tallydemo").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const run = 30 * time.Second
	args := []string{"-driver", "mysql", "-clients", "24", "-accounts", "32", "-duration", run.String()}
	for _, d := range dsns {
		args = append(args, "-dsn", d)
	}
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	victim := nodes[1]
	restarted := make(chan error, 1)
	var synced atomic.Int64 // when the cluster was whole again, UnixNano
	go func() {
		time.Sleep(run / 4)
		if err := victim.KillErr(); err != nil {
			restarted <- err
			return
		}
		time.Sleep(run / 4)
		if err := victim.StartErr(); err != nil {
			restarted <- err
			return
		}
		err := servers.WaitSyncedErr(3, 60*time.Second, nodes...)
		synced.Store(time.Now().UnixNano())
		restarted <- err
	}()
	err := cmd.Wait()
	ended := time.Now()
	if rerr := <-restarted; rerr != nil {
		t.Fatalf("killing and restarting %s: %v", victim, rerr)
	}
	report := out.String()
	t.Logf("tallydemo %s\n%s", strings.Join(args, " "), report)
	defer func() {
		if t.Failed() {
			t.Logf("tallydemo's log (head): %.4000s", errOut.String())
		}
	}()
	if err != nil {
		t.Fatalf("tallydemo: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(report, "checks\n") || strings.Contains(report, "FAIL") {
		t.Errorf("the demo's checks did not all pass")
	}
	per := regexp.MustCompile(`transfers committed: (.*)`).FindStringSubmatch(report)
	for _, n := range []string{"node1", "node2", "node3"} {
		if per == nil || !regexp.MustCompile(n+` [1-9]`).MatchString(per[1]) {
			t.Errorf("no transfers committed on %s; want some on every node", n)
		}
	}
	// The node can be put back only once it has rejoined the cluster, and
	// the pool notices within a second or two; a node whose state transfer
	// outlasted the run (16 s on a loaded 2-core machine) must still have
	// been taken out.
	back := time.Unix(0, synced.Load())
	switch {
	case back.Before(ended.Add(-3 * time.Second)):
		if !regexp.MustCompile(`-dsn 2: .* taken out [1-9]\d* times, put back [1-9]`).MatchString(report) {
			t.Errorf("the killed node was not reported taken out and put back (it rejoined %v before the run ended)", ended.Sub(back).Round(time.Millisecond))
		}
	case !regexp.MustCompile(`-dsn 2: .* taken out [1-9]\d* times`).MatchString(report):
		t.Errorf("the killed node was not reported taken out")
	default:
		t.Logf("the killed node rejoined %v after the run ended: taken out, not yet put back", back.Sub(ended).Round(time.Millisecond))
	}
}
