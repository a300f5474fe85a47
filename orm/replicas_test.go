package orm_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/orm"
)

// The routing of reads to replicas is tested on real MariaDB and
// PostgreSQL replication in package scale (make scale). These tests use
// SQLite files standing in for a primary and its replicas, each holding a
// different Mark row, so that a read shows which database answered; SQLite
// has no replication, so its replicas' health is whether they answer.

type Mark struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name"`
}

// replicaFiles makes SQLite databases named for what they stand for, each
// with one Mark row carrying its name, and returns their DSNs.
func replicaFiles(t *testing.T, names ...string) []string {
	t.Helper()
	ctx := context.Background()
	var dsns []string
	for _, name := range names {
		dsn := "file:" + filepath.Join(t.TempDir(), name+".db")
		eng, err := orm.Open(ctx, "sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.CreateTables(ctx, Mark{}); err != nil {
			t.Fatal(err)
		}
		if err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error { return s.Add(&Mark{ID: 1, Name: name}) }); err != nil {
			t.Fatal(err)
		}
		eng.Close()
		dsns = append(dsns, dsn)
	}
	return dsns
}

func markOf(t *testing.T, ctx context.Context, s *orm.Session) string {
	t.Helper()
	m, err := orm.Query[Mark](s).NoTrack().One(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m.Name
}

func TestReplicaReadsAreSpreadAcrossSessionsAndEachSessionKeepsItsReplica(t *testing.T) {
	ctx := context.Background()
	dsns := replicaFiles(t, "primary", "r1", "r2")
	eng, err := orm.Open(ctx, "sqlite", dsns[0], orm.WithReplicas(dsns[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var got []string
	for range 4 {
		s := eng.NewSession()
		first := markOf(t, ctx, s)
		if again := markOf(t, ctx, s); again != first {
			t.Errorf("a session's second read came from %s, its first from %s; want the same replica", again, first)
		}
		got = append(got, first)
		s.Close()
	}
	if strings.Join(got, " ") != "r1 r2 r1 r2" && strings.Join(got, " ") != "r2 r1 r2 r1" {
		t.Errorf("sessions read from %v; want the two replicas in turn", got)
	}
	st := eng.Stats()
	if st.Replicas[0].Reads != 4 || st.Replicas[1].Reads != 4 || st.PrimaryReads != 0 {
		t.Errorf("Stats = %+v; want 4 reads on each replica, none on the primary", st)
	}
}

func TestReplicaSessionStaysOnThePrimaryFromItsFirstWriteUntilItCloses(t *testing.T) {
	ctx := context.Background()
	dsns := replicaFiles(t, "primary", "r1")
	eng, err := orm.Open(ctx, "sqlite", dsns[0], orm.WithReplicas(dsns[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s := eng.NewSession()
	defer s.Close()
	if m := markOf(t, ctx, s); m != "r1" {
		t.Fatalf("first read from %s, want r1", m)
	}
	if err := s.Add(&Mark{ID: 2, Name: "new"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"after the commit", "after a rollback"} {
		ms, err := orm.Query[Mark](s).NoTrack().OrderBy("id").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[0].Name != "primary" || ms[1].Name != "new" {
			t.Errorf("%s the session read %+v; want the primary's rows, its own write included", step, ms)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.ReplicaReads != 1 {
		t.Errorf("Stats().ReplicaReads = %d, want 1", st.ReplicaReads)
	}
}

func TestReplicaThatDoesNotAnswerIsSkipped(t *testing.T) {
	ctx := context.Background()
	dsns := replicaFiles(t, "primary", "r1")
	// mode=ro on a file that does not exist: every connection fails.
	missing := "file:" + filepath.Join(t.TempDir(), "gone", "r0.db") + "?mode=ro"
	eng, err := orm.Open(ctx, "sqlite", dsns[0], orm.WithReplicas(missing, dsns[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for range 4 {
		s := eng.NewSession()
		if m := markOf(t, ctx, s); m != "r1" {
			t.Errorf("read from %s; want r1, the replica that answers", m)
		}
		s.Close()
	}
	st := eng.Stats().Replicas[0]
	if st.Healthy || st.Err == "" || st.SkippedDown == 0 || st.Reads != 0 {
		t.Errorf("Stats of the replica that does not answer = %+v; want unhealthy, a reason, skipped, no reads", st)
	}
}

func TestReplicaStatsAndErrorsNeverShowThePassword(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Port 1 refuses at once; the engine never reaches a server.
	eng := orm.New(db, dialect.MySQL, orm.WithReplicas("root:s3cret-pw@tcp(127.0.0.1:1)/app?timeout=1s"),
		orm.WithReplicaCheckInterval(10*time.Millisecond))
	defer eng.Close()
	deadline := time.Now().Add(10 * time.Second)
	for eng.Stats().Replicas[0].Err == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := eng.Stats().Replicas[0]
	if st.Err == "" || st.Healthy {
		t.Fatalf("Stats = %+v; want an unhealthy replica with its error", st)
	}
	if strings.Contains(st.DSN+st.Err, "s3cret-pw") || !strings.Contains(st.DSN, "127.0.0.1:1") {
		t.Errorf("Stats DSN %q, Err %q: want the address, never the password", st.DSN, st.Err)
	}
}

func TestReplicaCheckerStopsOnClose(t *testing.T) {
	ctx := context.Background()
	dsns := replicaFiles(t, "primary", "r1")
	eng, err := orm.Open(ctx, "sqlite", dsns[0], orm.WithReplicas(dsns[1]), orm.WithReplicaCheckInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	checker := func() int {
		buf := make([]byte, 1<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*replicaSet).run")
	}
	before := checker()
	if before == 0 {
		t.Fatal("no checker goroutine running while the engine is open")
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if after := checker(); after != before-1 {
		t.Errorf("checker goroutines: %d before Close, %d after; want one fewer", before, after)
	}
}

func TestEngineStatsIsEmptyWithoutReplicas(t *testing.T) {
	eng, err := orm.Open(context.Background(), "sqlite", "file:"+filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if st := eng.Stats(); st.PrimaryReads != 0 || st.Replicas != nil {
		t.Errorf("Stats = %+v, want zero", st)
	}
}

type VMark struct {
	ID      int64  `db:"id,pk"`
	Name    string `db:"name"`
	Version int64  `db:"version,version"`
}

// A replica behind the primary hands out an old version of a row; the
// update made from it fails its version check instead of overwriting the
// newer row, and Do's retry reads the row on the primary.
func TestStaleReadFromAReplicaIsCaughtAndDoRetriesOnThePrimary(t *testing.T) {
	ctx := context.Background()
	var dsns []string
	for i, name := range []string{"primary", "replica"} {
		dsn := "file:" + filepath.Join(t.TempDir(), name+".db")
		eng, err := orm.Open(ctx, "sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.CreateTables(ctx, VMark{}); err != nil {
			t.Fatal(err)
		}
		// The primary's row has been updated once since the replica's.
		if _, err := eng.DB().ExecContext(ctx, "INSERT INTO v_marks (id, name, version) VALUES (1, ?, ?)", name, 2-i); err != nil {
			t.Fatal(err)
		}
		eng.Close()
		dsns = append(dsns, dsn)
	}
	eng, err := orm.Open(ctx, "sqlite", dsns[0], orm.WithReplicas(dsns[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var seen []string
	err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		m, err := orm.Get[VMark](ctx, s, int64(1))
		if err != nil {
			return err
		}
		seen = append(seen, m.Name)
		m.Name = "updated"
		return nil
	}, orm.RetryOnStale())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, " ") != "replica primary" {
		t.Errorf("attempts read from %v; want the replica, then (after ErrStaleData) the primary", seen)
	}
	var name string
	var version int64
	if err := eng.DB().QueryRowContext(ctx, "SELECT name, version FROM v_marks WHERE id = 1").Scan(&name, &version); err != nil {
		t.Fatal(err)
	}
	if name != "updated" || version != 3 {
		t.Errorf("primary row: %q version %d; want updated, version 3", name, version)
	}
}

// Merge reads the row it diffs against on the primary, never on a
// replica: a lagging replica's copy would make a real change look like
// none (a lost update) or fail a good version check.
func TestMergeReadsThePrimaryNotAReplica(t *testing.T) {
	ctx := context.Background()
	dsns := replicaFiles(t, "primary", "r1")
	eng, err := orm.Open(ctx, "sqlite", dsns[0], orm.WithReplicas(dsns[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s := eng.NewSession()
	defer s.Close()
	// The decoded object equals the replica's (stale) row: diffed against
	// it, Merge would write nothing and the primary would keep "primary".
	got, err := orm.Merge(ctx, s, &Mark{ID: 1, Name: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.IsDirty(got) {
		t.Fatalf("Merge's object is not dirty: it was diffed against the replica's row")
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	check := eng.NewSession(orm.WithPrimaryReads())
	defer check.Close()
	if name := markOf(t, ctx, check); name != "r1" {
		t.Fatalf("primary holds %q after the Merge; want r1", name)
	}
}
