package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Faults from the server side: the server kills the session's connection
// (KILL CONNECTION, pg_terminate_backend) or closes it for a timeout
// (wait_timeout, idle_in_transaction_session_timeout). Each time the
// caller gets a typed error, the database holds only whole transactions,
// the next request succeeds and every connection goes back to the pool.
// SQLite has no server to kill its connections.

// backend is a test model for reading the server's id of the session's
// connection through the session itself.
type backend struct {
	ID int64 `db:"id,pk"`
}

// sessionConnID returns the server's id of the connection s's transaction
// runs on.
func sessionConnID(t *testing.T, ctx context.Context, s *orm.Session, tg dbtest.Target) int64 {
	t.Helper()
	q := "SELECT CONNECTION_ID() AS id"
	if tg.Name == dbtest.Postgres {
		q = "SELECT pg_backend_pid() AS id"
	}
	b, err := orm.Raw[backend](s, q).One(ctx)
	if err != nil {
		t.Fatalf("read the session's connection id: %v", err)
	}
	return b.ID
}

// killConn ends connection id from another connection, as an operator
// would, and waits until the server has closed it.
func killConn(t *testing.T, admin *sql.DB, tg dbtest.Target, id int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	gone := "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ?"
	if tg.Name == dbtest.Postgres {
		_, err = admin.ExecContext(ctx, "SELECT pg_terminate_backend($1)", id)
		gone = "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1"
	} else {
		// KILL takes no placeholder; id is an integer the server gave.
		_, err = admin.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
	}
	if err != nil {
		t.Fatalf("kill connection %d: %v", id, err)
	}
	for {
		var n int
		if err := admin.QueryRowContext(ctx, gone, id).Scan(&n); err != nil {
			t.Fatalf("wait for connection %d to end: %v", id, err)
		}
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eachServer runs fn on MySQL/MariaDB and PostgreSQL; SQLite's subtest
// says why it does not apply.
func eachServer(t *testing.T, fn func(t *testing.T, tg dbtest.Target)) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name == dbtest.SQLite {
			t.Skip("SQLite runs in the process: no server connection to kill or time out")
		}
		fn(t, tg)
	})
}

// killAt names the point of a commit where the connection is killed.
type killAt int

const (
	killBeforeFlush  killAt = iota // idle in the transaction, before Commit
	killBetween                    // after the first of the flush's two UPDATEs
	killBeforeCommit               // after the flush's last UPDATE, before COMMIT
)

// checkServed checks what must hold after a fault: balances as committed,
// a new request succeeds, and no connection is left in use.
func checkServed(t *testing.T, eng *orm.Engine, ids []int64, want []int64) {
	t.Helper()
	ctx := context.Background()
	err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		for i, id := range ids {
			a, err := orm.Get[Account](ctx, s, id)
			if err != nil {
				return err
			}
			if a.Balance != want[i] {
				t.Errorf("account %d: balance %d, want %d (only whole transactions)", id, a.Balance, want[i])
			}
			a.Note = new(string) // the next request writes too
		}
		return nil
	})
	if err != nil {
		t.Errorf("next request: got %v, want success", err)
	}
	if n := eng.DB().Stats().InUse; n != 0 {
		t.Errorf("connections in use: got %d, want 0", n)
	}
}

func TestServerKillGivesTypedErrorAndKeepsWholeTransactions(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		for _, at := range []killAt{killBeforeFlush, killBetween, killBeforeCommit} {
			name := [...]string{"before flush", "between statements", "before COMMIT"}[at]
			t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
				var armed atomic.Bool
				var updates atomic.Int32
				var kill func()
				hook := orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
					if ev.Op != "exec" || !strings.HasPrefix(ev.SQL, "UPDATE") || !armed.Load() {
						return
					}
					n := updates.Add(1)
					if at == killBetween && n == 1 || at == killBeforeCommit && n == 2 {
						kill()
					}
				})
				eng := openEngine(t, tg, nil, hook)
				admin := dbtest.Open(t, tg)
				ctx := context.Background()
				a, b := newAccount(fmt.Sprint("kill-a-", at), 100), newAccount(fmt.Sprint("kill-b-", at), 100)
				seedObjects(t, eng, a, b)
				ids := []int64{a.ID, b.ID}

				s := eng.NewSession()
				defer s.Close()
				locked, err := orm.Query[Account](s).Where("id IN (?)", ids).OrderBy("id").ForUpdate().All(ctx)
				if err != nil || len(locked) != 2 {
					t.Fatalf("lock both accounts: got %d, %v", len(locked), err)
				}
				id := sessionConnID(t, ctx, s, tg)
				kill = func() { killConn(t, admin, tg, id) }
				locked[0].Balance -= 30
				locked[1].Balance += 30
				if at == killBeforeFlush {
					kill()
				}
				armed.Store(true)
				err = s.Commit(ctx)
				armed.Store(false)
				if !errors.Is(err, orm.ErrConnection) {
					t.Fatalf("Commit after a kill %s: got %v, want an error matching ErrConnection", name, err)
				}
				wantUnknown := at == killBeforeCommit
				if got := errors.Is(err, orm.ErrCommitUnknown); got != wantUnknown {
					t.Errorf("Commit after a kill %s: errors.Is(err, ErrCommitUnknown) = %v, want %v (COMMIT sent: %v); err: %v", name, got, wantUnknown, wantUnknown, err)
				}
				if strings.Contains(err.Error(), "during COMMIT") {
					t.Errorf("error blames the COMMIT for a connection killed before it: %v", err)
				}
				t.Logf("%s: %v", name, err)
				if err := s.Rollback(ctx); err != nil {
					t.Errorf("Rollback: %v", err)
				}
				checkServed(t, eng, ids, []int64{100, 100})
			})
		}
	})
}

// A connection killed between two statements of the flush committed
// nothing, and Do knows COMMIT was never sent: it runs fn again on another
// connection, and the work is done exactly once.
func TestDoRetriesWorkWhoseConnectionWasKilledBeforeCommit(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		var kill atomic.Pointer[func()]
		hook := orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
			if ev.Op == "exec" && strings.HasPrefix(ev.SQL, "UPDATE") {
				if k := kill.Swap(nil); k != nil {
					(*k)()
				}
			}
		})
		eng := openEngine(t, tg, nil, hook)
		admin := dbtest.Open(t, tg)
		ctx := context.Background()
		a, b := newAccount("retry-a", 100), newAccount("retry-b", 100)
		seedObjects(t, eng, a, b)
		ids := []int64{a.ID, b.ID}
		attempts := 0
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			attempts++
			accts, err := orm.Query[Account](s).Where("id IN (?)", ids).OrderBy("id").ForUpdate().All(ctx)
			if err != nil {
				return err
			}
			if attempts == 1 {
				id := sessionConnID(t, ctx, s, tg)
				k := func() { killConn(t, admin, tg, id) }
				kill.Store(&k)
			}
			accts[0].Balance -= 25
			accts[1].Balance += 25
			return nil
		})
		if err != nil {
			t.Fatalf("Do: got %v, want success on a second attempt", err)
		}
		if attempts != 2 {
			t.Errorf("attempts: got %d, want 2", attempts)
		}
		checkServed(t, eng, ids, []int64{75, 125})
	})
}

// A connection the server closed for a timeout while the session held its
// transaction: idle_in_transaction_session_timeout on PostgreSQL,
// wait_timeout on MariaDB, each set on that connection only.
func TestServerTimeoutOfIdleTransactionGivesTypedError(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		for _, flushed := range []bool{false, true} {
			name := "changes unflushed"
			if flushed {
				name = "changes flushed, COMMIT next"
			}
			t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
				eng := openEngine(t, tg, nil)
				ctx := context.Background()
				a := newAccount(fmt.Sprint("idle-", flushed), 100)
				seedObjects(t, eng, a)
				s := eng.NewSession()
				defer s.Close()
				got, err := orm.Query[Account](s).Where("id = ?", a.ID).ForUpdate().One(ctx)
				if err != nil {
					t.Fatal(err)
				}
				set, wait := "SET SESSION wait_timeout = 1", 2500*time.Millisecond
				if tg.Name == dbtest.Postgres {
					set, wait = "SET idle_in_transaction_session_timeout = '200ms'", 800*time.Millisecond
				}
				if _, err := s.Exec(ctx, set); err != nil {
					t.Fatal(err)
				}
				got.Balance = 1
				if flushed {
					if err := s.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(wait)
				err = s.Commit(ctx)
				if !errors.Is(err, orm.ErrConnection) {
					t.Fatalf("Commit after the server's timeout: got %v, want an error matching ErrConnection", err)
				}
				if flushed && !errors.Is(err, orm.ErrCommitUnknown) {
					t.Errorf("COMMIT on a connection the server closed: got %v, want ErrCommitUnknown", err)
				}
				if !flushed && errors.Is(err, orm.ErrCommitUnknown) {
					t.Errorf("a flush that failed before COMMIT: got %v, want no ErrCommitUnknown", err)
				}
				if strings.Contains(err.Error(), "during COMMIT") {
					t.Errorf("error blames the COMMIT for a connection closed before it: %v", err)
				}
				t.Logf("%s: %v", name, err)
				if err := s.Rollback(ctx); err != nil {
					t.Errorf("Rollback: %v", err)
				}
				checkServed(t, eng, []int64{a.ID}, []int64{100})
			})
		}
	})
}

// A pooled connection the server closed while it sat idle
// (idle_session_timeout on PostgreSQL, wait_timeout on MariaDB, set on
// that connection only): the next Do succeeds, on a new connection if the
// pool handed out the dead one first (its connection error came before
// any COMMIT, so Do retries it).
func TestDoSucceedsAfterServerClosedIdlePooledConnection(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil, orm.WithMaxOpenConns(1))
		ctx := context.Background()
		a := newAccount("idle-pooled", 100)
		seedObjects(t, eng, a)
		set, wait := "SET SESSION wait_timeout = 1", 2500*time.Millisecond
		if tg.Name == dbtest.Postgres {
			set, wait = "SET idle_session_timeout = '200ms'", 800*time.Millisecond
		}
		if err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			_, err := s.Exec(ctx, set)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(wait)
		attempts := 0
		var firstErr error
		err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			attempts++
			got, err := orm.Get[Account](ctx, s, a.ID)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return err
			}
			got.Balance += 5
			return nil
		})
		if err != nil {
			t.Fatalf("Do after the server closed the idle connection: got %v, want success", err)
		}
		if firstErr != nil && !errors.Is(firstErr, orm.ErrConnection) {
			t.Errorf("the dead connection's error: got %v, want ErrConnection", firstErr)
		}
		t.Logf("attempts: %d, first error: %v", attempts, firstErr)
		checkServed(t, eng, []int64{a.ID}, []int64{105})
	})
}

// The server kills the connection while COMMIT is in flight: a deferred
// constraint trigger makes PostgreSQL's COMMIT sleep before it commits,
// and the kill lands during the sleep. The outcome is unknown to the
// client (ErrCommitUnknown), the database holds the transaction whole or
// not at all (here: not at all, the kill came before the commit record),
// and the next request succeeds. MariaDB has no deferred trigger to hold
// a COMMIT open; SQLite no server.
func TestServerKillDuringCommitIsCommitUnknown(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.Postgres {
			t.Skip("only PostgreSQL can hold a COMMIT open (a deferred constraint trigger)")
		}
		eng := openEngine(t, tg, nil)
		admin := dbtest.Open(t, tg)
		ctx := context.Background()
		a, b := newAccount("inflight-a", 100), newAccount("inflight-b", 100)
		seedObjects(t, eng, a, b)
		for _, ddl := range []string{
			`CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$`,
			`CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON accounts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()`,
		} {
			if _, err := admin.ExecContext(ctx, ddl); err != nil {
				t.Fatal(err)
			}
		}
		s := eng.NewSession()
		defer s.Close()
		locked, err := orm.Query[Account](s).Where("id IN (?)", []int64{a.ID, b.ID}).OrderBy("id").ForUpdate().All(ctx)
		if err != nil || len(locked) != 2 {
			t.Fatalf("lock both accounts: got %d, %v", len(locked), err)
		}
		id := sessionConnID(t, ctx, s, tg)
		locked[0].Balance -= 40
		locked[1].Balance += 40
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Wait until the COMMIT is running the trigger's sleep.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				var n int
				if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'", id).Scan(&n); err != nil {
					t.Errorf("watch the COMMIT: %v", err)
					return
				}
				if n == 1 {
					killConn(t, admin, tg, id)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Errorf("the COMMIT never reached the trigger's sleep")
		}()
		err = s.Commit(ctx)
		<-done
		if !errors.Is(err, orm.ErrCommitUnknown) || !errors.Is(err, orm.ErrConnection) {
			t.Fatalf("Commit killed in flight: got %v, want ErrCommitUnknown and ErrConnection", err)
		}
		t.Logf("in flight: %v", err)
		if err := s.Rollback(ctx); err != nil {
			t.Errorf("Rollback: %v", err)
		}
		if _, err := admin.ExecContext(ctx, "DROP TRIGGER slow_commit ON accounts"); err != nil {
			t.Fatal(err)
		}
		checkServed(t, eng, []int64{a.ID, b.ID}, []int64{100, 100})
	})
}
