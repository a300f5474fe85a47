package servers

import (
	"context"
	"os"
	"testing"
	"time"
)

// A three-node cluster replicates a write on one node to the others, and a
// killed node restarts, rejoins by IST and has what was committed while it
// was down.
func TestGaleraClusterReplicatesAndKilledNodeRejoins(t *testing.T) {
	if os.Getenv("TALLY_SCALE") != "1" {
		t.Skip("starts a three-node cluster (20-40 s): run make scale (TALLY_SCALE=1)")
	}
	nodes := Galera(t, 3)
	nodes[0].Exec(t, "CREATE DATABASE g", "CREATE TABLE g.t (id INT PRIMARY KEY)", "INSERT INTO g.t VALUES (1)")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	count := func(s *Server) int {
		t.Helper()
		var n int
		db := s.DB(t, "g")
		if _, err := db.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1"); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		return n
	}
	for _, s := range nodes {
		if n := count(s); n != 1 {
			t.Errorf("%s: %d rows, want 1", s, n)
		}
	}
	nodes[2].Kill(t)
	if err := WaitSyncedErr(2, 30*time.Second, nodes[:2]...); err != nil {
		t.Fatal(err)
	}
	nodes[1].Exec(t, "INSERT INTO g.t VALUES (2)")
	nodes[2].Start(t)
	WaitSynced(t, nodes...)
	if n := count(nodes[2]); n != 2 {
		t.Errorf("rejoined %s: %d rows, want 2", nodes[2], n)
	}
}
