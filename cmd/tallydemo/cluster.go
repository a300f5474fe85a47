package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tallyorm/tally/orm"
)

// On a multi-primary cluster (several -dsn flags, one per node) the demo
// opens its engine with orm.WithPrimaries, so its sessions, and the
// transfers they commit, land on every node:
//
//	tallydemo -driver mysql -clients 24 -duration 30s \
//	  -dsn 'root@tcp(127.0.0.1:4001)/bank?wsrep_sync_wait=1' \
//	  -dsn 'root@tcp(127.0.0.1:4002)/bank?wsrep_sync_wait=1' \
//	  -dsn 'root@tcp(127.0.0.1:4003)/bank?wsrep_sync_wait=1'
//
// wsrep_sync_wait=1 gives causal reads on Galera: a transfer's reads may
// run on another node than the commit before it. The report then adds a
// line per node: the transfers committed there (a trigger records
// @@wsrep_node_name, or host:port, in each transfer's row), the engine's
// connections and the times it took the node out and put it back; and the
// failures a node's loss causes: statements that failed on a lost
// connection (retried by eng.Do on another node), COMMITs with no reply
// (ErrCommitUnknown: the client retries with its request id, and the
// bank answers from its journal if the first attempt committed), and
// Galera's certification conflicts, refused at COMMIT and retried.

// dsnFlag is the repeatable -dsn flag: the first is the DSN, the others
// the cluster's other nodes.
type dsnFlag config

func (f *dsnFlag) String() string {
	if f == nil {
		return ""
	}
	return f.dsn
}

func (f *dsnFlag) Set(v string) error {
	if v == "" {
		return errors.New("empty DSN")
	}
	if f.dsn == "" {
		f.dsn = v
	} else {
		f.primaries = append(f.primaries, v)
	}
	return nil
}

// clusterStats counts, from the engine's query hook, what the cluster
// refused; safe for concurrent use.
type clusterStats struct {
	lost, commitUnknown, certConflicts atomic.Int64
}

// options are the engine options of a cluster run: the nodes, the
// counting hook, and connections recycled every few seconds, so that a
// node that comes back gets its share of them during the run.
func (c *clusterStats) options(others []string) []orm.Option {
	return []orm.Option{orm.WithPrimaries(others...), orm.WithQueryHook(c.count), orm.WithConnMaxLifetime(3 * time.Second)}
}

func (c *clusterStats) count(_ context.Context, ev orm.QueryEvent) {
	switch {
	case ev.Err == nil:
	case ev.Op == orm.OpCommit && errors.Is(ev.Err, orm.ErrConnection):
		c.commitUnknown.Add(1)
	case errors.Is(ev.Err, orm.ErrConnection):
		c.lost.Add(1)
	case ev.Op == orm.OpCommit && errors.Is(ev.Err, orm.ErrRetryable):
		c.certConflicts.Add(1)
	}
}

// track makes every transfer row record the node that committed it: a
// column filled by a trigger, which runs on the node where the INSERT
// runs (row-based replication applies rows elsewhere without it). MySQL
// and MariaDB only; elsewhere commits are not counted per node.
func (c *clusterStats) track(ctx context.Context, eng *orm.Engine) error {
	if eng.Dialect().Name() != "mysql" {
		return nil
	}
	db := eng.DB()
	node := "CONCAT(@@hostname, ':', @@port)"
	var name, value string
	if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'").Scan(&name, &value); err == nil {
		node = "@@wsrep_node_name"
	}
	for _, q := range []string{
		"ALTER TABLE transfers ADD COLUMN node VARCHAR(64) NULL",
		"CREATE TRIGGER transfers_node BEFORE INSERT ON transfers FOR EACH ROW SET NEW.node = " + node,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// ClusterReport is what a run on several primaries adds to the report.
type ClusterReport struct {
	Commits       map[string]int64 // committed transfers by the node that committed them
	Nodes         []orm.NodeStats
	Lost          int64 // statements failed on a lost connection
	CommitUnknown int64 // COMMITs without a reply
	CertConflicts int64 // COMMITs refused retryably: Galera certification failures
}

func (c *clusterStats) report(ctx context.Context, eng *orm.Engine) (*ClusterReport, error) {
	r := &ClusterReport{Commits: map[string]int64{}, Nodes: eng.PrimaryStats(), Lost: c.lost.Load(),
		CommitUnknown: c.commitUnknown.Load(), CertConflicts: c.certConflicts.Load()}
	if eng.Dialect().Name() != "mysql" {
		return r, nil
	}
	rows, err := eng.DB().QueryContext(ctx, "SELECT COALESCE(node, '?'), COUNT(*) FROM transfers GROUP BY node ORDER BY node")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var node string
		var n int64
		if err := rows.Scan(&node, &n); err != nil {
			return nil, err
		}
		r.Commits[node] = n
	}
	return r, rows.Err()
}

func (r *ClusterReport) print(w io.Writer) {
	if r == nil {
		return
	}
	var commits []string
	for _, name := range sortedKeys(r.Commits) {
		commits = append(commits, fmt.Sprintf("%s %d", name, r.Commits[name]))
	}
	fmt.Fprintf(w, "  per node   transfers committed: %s\n", strings.Join(commits, ", "))
	for _, n := range r.Nodes {
		fmt.Fprintf(w, "             -dsn %d: %d connections opened, %d failed; taken out %d times, put back %d\n", n.Node+1, n.Opened, n.Failed, n.Downs, n.Ups)
	}
	fmt.Fprintf(w, "  cluster    %d certification conflicts at COMMIT (retried); %d statements failed on a lost node's connection (retried on another); %d COMMITs without a reply (outcome unknown, resolved by request id)\n",
		r.CertConflicts, r.Lost, r.CommitUnknown)
}

func sortedKeys(m map[string]int64) []string {
	return slices.Sorted(maps.Keys(m))
}
