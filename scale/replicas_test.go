package scale_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/tallyorm/tally/dialect/mysql"
	_ "github.com/tallyorm/tally/dialect/postgres"
	"github.com/tallyorm/tally/internal/servers"
	"github.com/tallyorm/tally/orm"
)

type Item struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name"`
}

// Origin is what a probe query returns: which server answered it.
type Origin struct {
	ID      int64 `db:"id,pk"`
	Replica bool  `db:"replica"`
}

// topology is a primary and one replica of a kind, and how to drive them.
type topology struct {
	primary, replica       *servers.Server
	driver                 string
	primaryDSN, replicaDSN string
	originSQL              string // one Origin row
	pause, resume          string // stop and restart applying, run on the replica
	replicating            func(testing.TB)
}

func mariadbTopology(t *testing.T) topology {
	p := servers.MariaDB(t, servers.Options{Name: "primary", Args: servers.MariaDBPrimaryArgs()})
	p.Exec(t, "CREATE DATABASE app")
	r := servers.MariaDBReplica(t, p, servers.Options{})
	return topology{primary: p, replica: r, driver: "mysql", primaryDSN: p.DSN("app"), replicaDSN: r.DSN("app"),
		originSQL: "SELECT @@server_id AS id, @@server_id <> 1 AS replica",
		pause:     "STOP SLAVE SQL_THREAD", resume: "START SLAVE SQL_THREAD", replicating: r.WaitReplicating}
}

func postgresTopology(t *testing.T) topology {
	p := servers.Postgres(t, servers.Options{Name: "primary"})
	// Replay cancels a conflicting standby query at once, instead of after
	// the default 30 s, for the recovery-conflict test.
	r := servers.PostgresStandby(t, p, servers.Options{Args: []string{"max_standby_streaming_delay=0"}})
	return topology{primary: p, replica: r, driver: "postgres", primaryDSN: p.DSN(""), replicaDSN: r.DSN(""),
		originSQL: "SELECT CASE WHEN pg_is_in_recovery() THEN 2 ELSE 1 END AS id, pg_is_in_recovery() AS replica",
		pause:     "SELECT pg_wal_replay_pause()", resume: "SELECT pg_wal_replay_resume()", replicating: r.WaitStreaming}
}

func TestReplicasMariaDBGTIDReplication(t *testing.T) {
	needScale(t)
	t.Parallel()
	replicaScenario(t, mariadbTopology(t))
}

func TestReplicasPostgresStreamingReplication(t *testing.T) {
	needScale(t)
	t.Parallel()
	top := postgresTopology(t)
	replicaScenario(t, top)
	t.Run("a read the standby cancels for a conflict with replay runs on the primary", func(t *testing.T) {
		standbyConflict(t, top)
	})
}

// standbyConflict: a read on a hot standby holding a lock that replay
// needs (the primary altered the table) is cancelled by the standby with
// SQLSTATE 40001; the session's read runs again on the primary and the
// request does not fail.
func standbyConflict(t *testing.T, top topology) {
	ctx := context.Background()
	top.primary.Exec(t, "CREATE TABLE conflicted (id int)")
	eng, err := orm.Open(ctx, top.driver, top.primaryDSN, orm.WithReplicas(top.replicaDSN), orm.WithReplicaCheckInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	waitFor(t, "standby has the table", 30*time.Second, func() bool {
		st := eng.Stats().Replicas[0]
		return st.Healthy && st.Lag == 0
	})
	go func() {
		time.Sleep(500 * time.Millisecond)
		top.primary.Exec(t, "ALTER TABLE conflicted ADD COLUMN x int")
	}()
	s := eng.NewSession()
	defer s.Close()
	// Holds conflicted's lock for a second and a half on the standby.
	o, err := orm.Raw[Origin](s, "SELECT CASE WHEN pg_is_in_recovery() THEN 2 ELSE 1 END AS id, pg_is_in_recovery() AS replica "+
		"FROM (SELECT count(*) FROM conflicted) c, (SELECT pg_sleep(1.5)) z").One(ctx)
	if err != nil {
		t.Fatalf("read failed: %v", err)
	}
	st := eng.Stats().Replicas[0]
	t.Logf("standby conflict: answered by the replica %v; failovers %d", o.Replica, st.Failovers)
	if o.Replica || st.Failovers != 1 {
		t.Errorf("read answered by the replica %v, failovers %d; want the primary, after one failover", o.Replica, st.Failovers)
	}
}

// replicaScenario checks the routing of reads and writes between a
// primary and its replica, and that a lagging or killed replica is
// routed around without a failed request.
func replicaScenario(t *testing.T, top topology) {
	ctx := context.Background()
	const maxLag, every = 500 * time.Millisecond, 50 * time.Millisecond
	eng, err := orm.Open(ctx, top.driver, top.primaryDSN, orm.WithReplicas(top.replicaDSN),
		orm.WithReplicaMaxLag(maxLag), orm.WithReplicaCheckInterval(every))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, Item{}); err != nil {
		t.Fatal(err)
	}
	healthy := func() bool { return eng.Stats().Replicas[0].Healthy }
	// caughtUp: applied everything the primary had at the last check.
	caughtUp := func() bool { st := eng.Stats().Replicas[0]; return st.Healthy && st.Lag == 0 }
	time.Sleep(2 * every) // a check after CREATE TABLE
	waitFor(t, "replica caught up after CREATE TABLE", 30*time.Second, caughtUp)

	origin := func(ctx context.Context, s *orm.Session) bool {
		t.Helper()
		o, err := orm.Raw[Origin](s, top.originSQL).One(ctx)
		if err != nil {
			t.Fatalf("origin probe: %v", err)
		}
		return o.Replica
	}

	// ready waits until the replica serves reads: on a loaded machine a
	// check can time out and take it out for a moment, as it should.
	ready := func(t *testing.T) { t.Helper(); waitFor(t, "replica caught up", 30*time.Second, caughtUp) }

	t.Run("reads of a session that has not written land on the replica", func(t *testing.T) {
		for range 20 {
			ready(t)
			s := eng.NewSession()
			if !origin(ctx, s) {
				t.Fatalf("a read-only session's probe ran on the primary; want the replica (%+v)", eng.Stats())
			}
			if _, err := orm.Query[Item](s).Count(ctx); err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().ReplicaReads; got != 2 {
				t.Errorf("Stats().ReplicaReads = %d, want 2", got)
			}
			s.Close()
		}
	})

	t.Run("after its first write a session reads its writes on the primary", func(t *testing.T) {
		ready(t)
		s := eng.NewSession()
		defer s.Close()
		if !origin(ctx, s) {
			t.Fatalf("first read ran on the primary; want the replica (%+v)", eng.Stats())
		}
		if err := s.Add(&Item{Name: "ryw"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		// Straight after the commit: the replica may not have it yet.
		got, err := orm.Query[Item](s).Where("name = ?", "ryw").NoTrack().One(ctx)
		if err != nil {
			t.Fatalf("reading its own committed write: %v", err)
		}
		if got.Name != "ryw" {
			t.Fatalf("got %+v", got)
		}
		if origin(ctx, s) {
			t.Error("a read after the session's commit ran on the replica; want the primary until the session ends")
		}
	})

	t.Run("Exec, ForUpdate, WithSnapshot, WithPrimaryReads and OnPrimary go to the primary", func(t *testing.T) {
		cases := []struct {
			name string
			opts []orm.SessionOption
			do   func(ctx context.Context, s *orm.Session) (context.Context, error)
		}{
			{"Exec", nil, func(ctx context.Context, s *orm.Session) (context.Context, error) {
				_, err := s.Exec(ctx, "UPDATE items SET name = name WHERE id = 0")
				return ctx, err
			}},
			{"ForUpdate", nil, func(ctx context.Context, s *orm.Session) (context.Context, error) {
				_, err := orm.Query[Item](s).Where("name = ?", "ryw").ForUpdate().All(ctx)
				return ctx, err
			}},
			{"WithSnapshot", []orm.SessionOption{orm.WithSnapshot()}, nil},
			{"WithPrimaryReads", []orm.SessionOption{orm.WithPrimaryReads()}, nil},
			{"OnPrimary, and the session stays there", nil, func(ctx context.Context, s *orm.Session) (context.Context, error) {
				if origin(orm.OnPrimary(ctx), s) {
					t.Error("a read with OnPrimary(ctx) ran on the replica")
				}
				return ctx, nil
			}},
		}
		for _, c := range cases {
			s := eng.NewSession(c.opts...)
			pctx := ctx
			if c.do != nil {
				var err error
				if pctx, err = c.do(ctx, s); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
			}
			if origin(pctx, s) {
				t.Errorf("%s: the session's read ran on the replica; want the primary", c.name)
			}
			s.Close()
		}
	})

	t.Run("a lagging replica is skipped, and used again once it catches up", func(t *testing.T) {
		ready(t)
		top.replica.Exec(t, top.pause)
		// Writes on the primary that the replica now does not apply.
		var written atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
					return s.Add(&Item{Name: "lag"})
				}); err != nil {
					t.Errorf("write on the primary: %v", err)
					return
				}
				written.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		})
		waitFor(t, "first write after pausing", 10*time.Second, func() bool { return written.Load() > 0 })
		d := waitFor(t, "lagging replica marked unhealthy", 10*time.Second, func() bool { return !healthy() })
		t.Logf("lag skip: replica marked unhealthy %v after the first unapplied write (bound %v, checks every %v)", d, maxLag, every)
		if d > maxLag+time.Second {
			t.Errorf("a replica lagging since %v ago was still healthy; want unhealthy soon after the %v bound", d, maxLag)
		}
		s := eng.NewSession()
		if origin(ctx, s) {
			t.Error("read went to a lagging replica")
		}
		n, err := orm.Query[Item](s).Where("name = ?", "lag").Count(ctx)
		if err != nil || n == 0 {
			t.Errorf("a fresh session should see the primary's writes: count %d, %v", n, err)
		}
		s.Close()
		if st := eng.Stats().Replicas[0]; st.SkippedLag == 0 || st.Lag <= maxLag {
			t.Errorf("Stats: SkippedLag %d, Lag %v; want > 0 and > %v", st.SkippedLag, st.Lag, maxLag)
		}
		close(stop)
		wg.Wait()
		time.Sleep(2 * every) // a check after the last write
		top.replica.Exec(t, top.resume)
		d = waitFor(t, "replica caught up after resuming", 30*time.Second, caughtUp)
		t.Logf("replica healthy and caught up %v after resuming", d)
		s = eng.NewSession()
		defer s.Close()
		if !origin(ctx, s) {
			t.Errorf("read after catching up went to the primary; want the replica (%+v)", eng.Stats())
		}
		n, err = orm.Query[Item](s).Where("name = ?", "lag").Count(ctx)
		if err != nil || n != written.Load() {
			t.Errorf("replica after catching up: count %d, %v; want %d", n, err, written.Load())
		}
		// An idle primary must not make the replica look lagged.
		time.Sleep(3 * maxLag)
		if st := eng.Stats().Replicas[0]; !st.Healthy || st.Lag != 0 {
			t.Errorf("idle primary: replica healthy %v, lag %v; want healthy, 0", st.Healthy, st.Lag)
		}
	})

	t.Run("a stalled replica is taken out by the check that times out", func(t *testing.T) {
		ready(t)
		top.replica.Pause(t) // SIGSTOP: connections stay open, nothing answers
		d := waitFor(t, "stalled replica marked unhealthy", 10*time.Second, func() bool { return !healthy() })
		t.Logf("stall: replica taken out %v after SIGSTOP (check timeout 1 s)", d)
		if d > 3*time.Second {
			t.Errorf("stalled replica taken out after %v; want about the 1 s check timeout", d)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s := eng.NewSession()
		if origin(rctx, s) {
			t.Error("read ran on a stalled replica")
		}
		s.Close()
		cancel()
		top.replica.Resume(t)
		ready(t)
	})

	t.Run("a killed replica is routed around with no failed request", func(t *testing.T) {
		var failed, onReplica, onPrimary, afterKillReplica, afterKillPrimary atomic.Int64
		var killed atomic.Bool
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					s := eng.NewSession()
					o, err := orm.Raw[Origin](s, top.originSQL).One(ctx)
					if err == nil {
						_, err = orm.Query[Item](s).Where("name = ?", "lag").Count(ctx)
					}
					s.Close()
					switch {
					case err != nil:
						failed.Add(1)
						t.Errorf("request failed: %v", err)
					case o.Replica:
						onReplica.Add(1)
						if killed.Load() {
							afterKillReplica.Add(1)
						}
					default:
						onPrimary.Add(1)
						if killed.Load() {
							afterKillPrimary.Add(1)
						}
					}
				}
			})
		}
		time.Sleep(300 * time.Millisecond)
		before := eng.Stats()
		top.replica.Kill(t)
		killed.Store(true)
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		st := eng.Stats()
		t.Logf("kill: requests on the replica %d, on the primary %d (after the kill: replica %d, primary %d), failed %d; replica reads %d, failovers %d, skipped down %d",
			onReplica.Load(), onPrimary.Load(), afterKillReplica.Load(), afterKillPrimary.Load(), failed.Load(),
			st.Replicas[0].Reads, st.Replicas[0].Failovers, st.Replicas[0].SkippedDown)
		if failed.Load() != 0 {
			t.Errorf("%d requests failed; want none", failed.Load())
		}
		if afterKillPrimary.Load() == 0 || st.Replicas[0].Healthy || st.Replicas[0].Err == "" {
			t.Errorf("after the kill: %d reads on the primary, replica healthy %v (err %q); want reads on the primary, unhealthy with a reason",
				afterKillPrimary.Load(), st.Replicas[0].Healthy, st.Replicas[0].Err)
		}
		if st.PrimaryReads <= before.PrimaryReads {
			t.Errorf("PrimaryReads %d -> %d; want it to grow after the kill", before.PrimaryReads, st.PrimaryReads)
		}

		restart := time.Now()
		top.replica.Start(t)
		top.replicating(t)
		waitFor(t, "restarted replica healthy", 30*time.Second, healthy)
		t.Logf("restarted replica serving reads again %v after its restart began", time.Since(restart))
		ready(t)
		s := eng.NewSession()
		defer s.Close()
		if !origin(ctx, s) {
			t.Errorf("read after the replica came back went to the primary; want the replica (%+v)", eng.Stats())
		}
	})
}
