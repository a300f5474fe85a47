package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of the transaction options: an isolation level is in
// effect from the session's first statement, and a read-only session
// refuses writes before sending them and never blocks a writer. They
// reuse upsert_test.go's models.

// txAge reads ann's age in s, past the identity map (NoTrack).
func txAge(t *testing.T, s *orm.Session) int {
	t.Helper()
	m, err := orm.Query[upMember](s).Where("email = ?", "ann@x").NoTrack().One(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m.Age
}

// txSetAge commits a new age for ann from a session of its own, within a
// deadline, so that a writer blocked by the session under test fails the
// test instead of hanging it.
func txSetAge(t *testing.T, eng *orm.Engine, age int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := eng.NewSession()
	defer s.Close()
	_, err := orm.Query[upMember](s).Where("email = ?", "ann@x").UpdateAll(ctx, orm.Set{"age": age})
	if err != nil {
		return err
	}
	return s.Commit(ctx)
}

// With REPEATABLE READ the session's reads share one snapshot, taken at
// its first read, which begins the transaction; without it each read
// sees what is committed when it runs.
func TestRepeatableReadSessionSeesOneSnapshotFromItsFirstRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upMember{Email: "ann@x", Name: "Ann", Age: 30})

		s := eng.NewSession(orm.WithIsolation(sql.LevelRepeatableRead))
		defer s.Close()
		plain := eng.NewSession()
		defer plain.Close()
		log.Reset()
		if got := txAge(t, s); got != 30 {
			t.Fatalf("first read: age %d, want 30", got)
		}
		if sqls := log.SQL(); len(sqls) != 2 || sqls[0] != "BEGIN" {
			t.Fatalf("first read sent %q; want BEGIN, then the SELECT", sqls)
		}
		if got := txAge(t, plain); got != 30 {
			t.Fatalf("plain session: age %d, want 30", got)
		}
		uowMust(t, txSetAge(t, eng, 31))
		if got := txAge(t, s); got != 30 {
			t.Fatalf("REPEATABLE READ session after a concurrent commit: age %d, want its snapshot's 30", got)
		}
		if got := txAge(t, plain); got != 31 {
			t.Fatalf("autocommit session after a concurrent commit: age %d, want 31", got)
		}
		uowMust(t, s.Commit(ctx))
		if got := txAge(t, s); got != 31 {
			t.Fatalf("after Commit the next transaction sees age %d, want 31", got)
		}
	})
}

// txSkew runs write skew between two sessions made with opts: s1 reads
// ann and writes bob, s2 reads bob and writes ann, s2 commits first. It
// returns both commits' errors.
func txSkew(t *testing.T, tg dbtest.Target, eng *orm.Engine, opts ...orm.SessionOption) (err1, err2 error) {
	t.Helper()
	ctx := context.Background()
	s1, s2 := eng.NewSession(opts...), eng.NewSession(opts...)
	defer s1.Close()
	defer s2.Close()
	if tg.Name == dbtest.MySQL {
		// Under SERIALIZABLE, InnoDB's reads take shared locks and s2's
		// write waits for s1's: fail it after a second, not fifty.
		_, err := s2.Exec(ctx, "SET SESSION innodb_lock_wait_timeout = 1")
		uowMust(t, err)
	}
	ann, err := orm.Query[upMember](s1).Where("email = ?", "ann@x").One(ctx)
	uowMust(t, err)
	bob, err := orm.Query[upMember](s2).Where("email = ?", "bob@x").One(ctx)
	uowMust(t, err)
	bob2, err := orm.Query[upMember](s1).Where("email = ?", "bob@x").One(ctx)
	uowMust(t, err)
	ann2, err := orm.Query[upMember](s2).Where("email = ?", "ann@x").One(ctx)
	uowMust(t, err)
	ann2.Age = bob.Age + 1
	err2 = s2.Commit(ctx)
	bob2.Age = ann.Age + 1
	err1 = s1.Commit(ctx)
	return err1, err2
}

// SERIALIZABLE is in effect: of two transactions that each read what the
// other writes, one fails with a retryable error — PostgreSQL's
// serialization failure, InnoDB's lock wait on the shared lock a read
// took, SQLite's stale snapshot — where the default level commits both.
func TestSerializableSessionsCannotBothCommitWriteSkew(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		seedObjects(t, eng, &upMember{Email: "ann@x", Age: 1}, &upMember{Email: "bob@x", Age: 1})
		if err1, err2 := txSkew(t, tg, eng); err1 != nil || err2 != nil {
			t.Fatalf("default isolation: commits = %v, %v; want both to succeed", err1, err2)
		}
		err1, err2 := txSkew(t, tg, eng, orm.WithIsolation(sql.LevelSerializable))
		failed := 0
		for _, err := range []error{err1, err2} {
			if err != nil {
				if !errors.Is(err, orm.ErrRetryable) {
					t.Fatalf("SERIALIZABLE commit failed with %v; want ErrRetryable", err)
				}
				failed++
			}
		}
		if failed != 1 {
			t.Fatalf("SERIALIZABLE: commits = %v, %v; want exactly one to fail", err1, err2)
		}
	})
}

// A read-only session refuses every write with ErrReadOnly and sends
// nothing for it; its reads still work, without autoflushing the change
// it refused, which stays unsaved and dirty.
func TestReadOnlySessionRefusesWritesWithoutSendingSQL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upMember{Email: "ann@x", Name: "Ann", Age: 30})
		s := eng.NewSession(orm.WithReadOnly())
		defer s.Close()
		ann, err := orm.Query[upMember](s).Where("email = ?", "ann@x").One(ctx)
		uowMust(t, err)
		ann.Age = 99
		log.Reset()
		writes := map[string]func() error{
			"Commit": func() error { return s.Commit(ctx) },
			"Flush":  func() error { return s.Flush(ctx) },
			"Exec":   func() error { _, err := s.Exec(ctx, "DELETE FROM up_members"); return err },
			"UpdateAll": func() error {
				_, err := orm.Query[upMember](s).Where("age > ?", 0).UpdateAll(ctx, orm.Set{"age": 1})
				return err
			},
			"DeleteAll": func() error { _, err := orm.Query[upMember](s).AllRows().DeleteAll(ctx); return err },
			"Upsert": func() error {
				return orm.Upsert(ctx, s, []*upMember{{Email: "b@x"}}, orm.OnConflict("email").DoNothing())
			},
			"ForUpdate": func() error { _, err := orm.Query[upMember](s).ForUpdate().All(ctx); return err },
		}
		for name, fn := range writes {
			if err := fn(); !errors.Is(err, orm.ErrReadOnly) {
				t.Fatalf("%s in a read-only session = %v; want ErrReadOnly", name, err)
			}
		}
		if sqls := log.SQL(); len(sqls) != 0 {
			t.Fatalf("refused writes sent %q", sqls)
		}
		// A query does not autoflush (which would fail): it runs, and
		// returns the tracked object with its unsaved change.
		got, err := orm.Query[upMember](s).Where("email = ?", "ann@x").One(ctx)
		if err != nil || got != ann {
			t.Fatalf("query after the refused writes = %p, %v; want the tracked object", got, err)
		}
		if !s.IsDirty(ann) || ann.Age != 99 {
			t.Fatal("the refused change was lost")
		}
		uowMust(t, s.Add(&upMember{Email: "new@x"}))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrReadOnly) {
			t.Fatalf("Commit of an added object = %v; want ErrReadOnly", err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM up_members WHERE age = 30"); n != 1 {
			t.Fatalf("%d rows still aged 30; want 1", n)
		}
	})
}

// A read-only Do with an isolation level holds a read-only transaction
// from its first read, and a writer committing meanwhile is not blocked
// by it — on SQLite, the transaction is deferred and never takes the
// write lock — while fn keeps seeing its snapshot. Its closing Commit,
// with nothing to write, succeeds.
func TestReadOnlyTransactionDoesNotBlockAConcurrentWriter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upMember{Email: "ann@x", Name: "Ann", Age: 30})
		log.Reset()
		var before, after int
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			before = txAge(t, s)
			if err := txSetAge(t, eng, 31); err != nil {
				return err
			}
			after = txAge(t, s)
			return nil
		}, orm.ReadOnly(), orm.Isolation(sql.LevelRepeatableRead))
		uowMust(t, err)
		if before != 30 || after != 30 {
			t.Fatalf("read-only snapshot saw ages %d, %d; want 30 both times", before, after)
		}
		if got := countRows(t, eng, "SELECT age FROM up_members WHERE email = ?", "ann@x"); got != 31 {
			t.Fatalf("the writer's age %d is not committed", got)
		}
		if sqls := log.SQL(); sqls[0] != "BEGIN" || sqls[len(sqls)-1] != "COMMIT" {
			t.Fatalf("statements %q; want the read-only Do's BEGIN first and its COMMIT last", sqls)
		}
	})
}

// A session with an isolation level commits even a single statement in
// a transaction begun at that level, not alone in autocommit at the
// server's default.
func TestIsolationSessionWritesInATransactionAtItsLevel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		s := eng.NewSession(orm.WithIsolation(sql.LevelReadCommitted))
		defer s.Close()
		uowMust(t, s.Add(&upMember{Email: "ann@x"}))
		uowMust(t, s.Commit(context.Background()))
		sqls := log.SQL()
		if len(sqls) != 3 || sqls[0] != "BEGIN" || !strings.HasPrefix(sqls[1], "INSERT") || sqls[2] != "COMMIT" {
			t.Fatalf("statements %q; want BEGIN, INSERT, COMMIT", sqls)
		}
	})
}

// An isolation level the database does not have fails the first
// statement, naming the levels to use, before BEGIN is sent.
func TestUnsupportedIsolationLevelFailsBeforeBegin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		s := eng.NewSession(orm.WithIsolation(sql.LevelLinearizable))
		defer s.Close()
		_, err := orm.Query[upMember](s).All(context.Background())
		if tg.Name == dbtest.SQLite {
			// Every SQLite transaction is serializable: any level is met.
			uowMust(t, err)
			return
		}
		if err == nil || !strings.Contains(err.Error(), "sql.LevelSerializable") {
			t.Fatalf("Linearizable on %s = %v; want an error naming the supported levels", tg.Name, err)
		}
		if sqls := log.SQL(); len(sqls) != 0 {
			t.Fatalf("sent %q", sqls)
		}
	})
}

// The transaction a read-only session holds is read-only in the server
// too, as PostgreSQL's own setting reports inside it. (MySQL/MariaDB has
// no such report: @@tx_read_only is the next transaction's default, and
// InnoDB marks every transaction that has not written read-only; the
// driver sends START TRANSACTION READ ONLY for database/sql's ReadOnly.)
func TestReadOnlySessionTransactionIsReadOnlyInTheServer(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.Postgres {
			t.Skip("only PostgreSQL reports a transaction's access mode; TestReadOnlySessionRefusesWritesWithoutSendingSQL and TestReadOnlyTransactionDoesNotBlockAConcurrentWriter cover the others")
		}
		eng, _ := upOpen(t, tg)
		seedObjects(t, eng, &upMember{Email: "ann@x"})
		type setting struct {
			RO string `db:"ro"`
		}
		for _, c := range []struct {
			opts []orm.SessionOption
			want string
		}{
			{[]orm.SessionOption{orm.WithReadOnly(), orm.WithIsolation(sql.LevelRepeatableRead)}, "on"},
			{[]orm.SessionOption{orm.WithIsolation(sql.LevelRepeatableRead)}, "off"},
		} {
			s := eng.NewSession(c.opts...)
			got, err := orm.Project[setting](orm.Query[upMember](s).Limit(1)).
				SelectExpr("current_setting('transaction_read_only')", "ro").One(context.Background())
			s.Close()
			uowMust(t, err)
			if got.RO != c.want {
				t.Fatalf("transaction_read_only in the session's transaction = %q; want %q", got.RO, c.want)
			}
		}
	})
}
