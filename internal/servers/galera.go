package servers

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GaleraProvider is the Galera library Debian's galera-4 package installs.
const GaleraProvider = "/usr/lib/galera/libgalera_smm.so"

// Galera starts a MariaDB Galera cluster of n nodes on loopback and waits
// until every node sees all n members and is Synced; the test's cleanup
// tears it down. It skips the test when galera-4, mariadbd or rsync is
// missing (fails when TALLY_REQUIRE names mysql).
//
// Each node has its own data directory (initialised by mariadb-install-db),
// SQL port, group-communication port, IST port and SST port. The first node
// bootstraps the cluster (--wsrep-new-cluster, on its first start only);
// the others join it and receive its state by rsync SST. A node that is
// killed and started again ([Server.Kill], [Server.Start]) rejoins by IST
// from a node's write-set cache; [WaitSynced] waits for that.
//
// The failure-detection timeouts are shortened (a node that stops answering
// is suspected after 1.5 s, evicted after 3 s, where the defaults are 5 s
// and 15 s): the surviving nodes cannot commit while a dead member is still
// in the view, and tests should not wait that long.
//
// Node i (from 0) is named "node<i+1>", which is also its wsrep_node_name.
func Galera(t testing.TB, n int) []*Server {
	t.Helper()
	if n < 1 {
		t.Fatalf("servers: Galera(%d): a cluster needs a node", n)
	}
	if _, err := os.Stat(GaleraProvider); err != nil {
		unavailable(t, KindMySQL, GaleraProvider+" is not installed (Debian package galera-4)")
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		unavailable(t, KindMySQL, "rsync is not installed; Galera's rsync state transfer needs it (Debian package rsync)")
	}
	type ports struct{ sql, gcomm, ist, sst int }
	ps := make([]ports, n)
	taken := map[int]bool{}
	free := func() int {
		for {
			if p := FreePort(t); !taken[p] {
				taken[p] = true
				return p
			}
		}
	}
	var members []string
	for i := range ps {
		ps[i] = ports{free(), free(), free(), free()}
		members = append(members, "127.0.0.1:"+strconv.Itoa(ps[i].gcomm))
	}
	nodes := make([]*Server, n)
	for i, p := range ps {
		name := "node" + strconv.Itoa(i+1)
		provider := strings.Join([]string{
			"gmcast.listen_addr=tcp://127.0.0.1:" + strconv.Itoa(p.gcomm),
			"ist.recv_addr=127.0.0.1:" + strconv.Itoa(p.ist),
			"gcache.size=32M",
			"evs.suspect_timeout=PT1.5S", "evs.inactive_timeout=PT3S",
			"evs.inactive_check_period=PT0.5S", "evs.keepalive_period=PT0.5S",
			"evs.install_timeout=PT3S", "evs.join_retrans_period=PT0.5S",
		}, ";")
		nodes[i] = MariaDB(t, Options{Name: name, Port: p.sql, NoStart: true, Args: []string{
			"--wsrep-on=ON", "--wsrep-provider=" + GaleraProvider,
			"--wsrep-cluster-name=tally", "--wsrep-node-name=" + name,
			"--wsrep-cluster-address=gcomm://" + strings.Join(members, ","),
			"--wsrep-node-address=127.0.0.1:" + strconv.Itoa(p.gcomm),
			"--wsrep-node-incoming-address=127.0.0.1:" + strconv.Itoa(p.sql),
			"--wsrep-provider-options=" + provider,
			"--wsrep-sst-method=rsync", "--wsrep-sst-receive-address=127.0.0.1:" + strconv.Itoa(p.sst),
			"--binlog-format=ROW", "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
			"--wsrep-slave-threads=2",
		}})
	}
	// The first node founds the cluster; on a later start it must join
	// the others instead, so the flag goes once.
	first := nodes[0]
	base := first.opts.Args
	first.opts.Args = append(slices.Clip(base), "--wsrep-new-cluster")
	first.Start(t)
	first.opts.Args = base
	for _, s := range nodes[1:] {
		// One joiner at a time: each takes a full state transfer from a
		// donor, which is blocked while it gives one.
		s.Start(t)
		WaitSynced(t, nodes[:slices.Index(nodes, s)+1]...)
	}
	WaitSynced(t, nodes...)
	return nodes
}

// WaitSynced waits until each of nodes reports Synced
// (wsrep_local_state_comment) and a cluster of len(nodes) members
// (wsrep_cluster_size), or fails the test after the start timeout.
func WaitSynced(t testing.TB, nodes ...*Server) {
	t.Helper()
	if err := WaitSyncedErr(len(nodes), startTimeout, nodes...); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

// WaitSyncedErr waits until each of nodes reports Synced and a cluster of
// size members, for at most d; a goroutine of a load test restarting a
// node calls it.
func WaitSyncedErr(size int, d time.Duration, nodes ...*Server) error {
	deadline := time.Now().Add(d)
	for _, s := range nodes {
		for {
			state, members, err := s.GaleraState()
			if err == nil && state == "Synced" && members == size {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not Synced in a cluster of %d within %s (state %q, size %d, err %v); log:\n%s",
					s, size, d, state, members, err, s.LogTail(30))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// GaleraState returns a node's wsrep_local_state_comment ("Synced",
// "Joining", "Donor/Desynced", ...) and wsrep_cluster_size.
func (s *Server) GaleraState() (state string, size int, err error) {
	db, err := sql.Open(s.driver(), s.DSN(""))
	if err != nil {
		return "", 0, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment', 'wsrep_cluster_size')")
	if err != nil {
		return "", 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return "", 0, err
		}
		if strings.EqualFold(name, "wsrep_cluster_size") {
			size, _ = strconv.Atoi(value)
		} else {
			state = value
		}
	}
	return state, size, rows.Err()
}
