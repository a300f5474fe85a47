package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// roundTrips counts the round trips of recorded events: each event not
// pipelined after the one before it starts one.
func roundTrips(evs []orm.QueryEvent) int {
	n := 0
	for _, ev := range evs {
		if !ev.Pipelined {
			n++
		}
	}
	return n
}

// describe lists events as op/pipelined, for failure messages.
func describe(evs []orm.QueryEvent) string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s/%v", ev.Op, ev.Pipelined))
	}
	return fmt.Sprint(out)
}

// On PostgreSQL and MySQL/MariaDB a commit sends every statement of its flush pipelined
// behind BEGIN, INSERT ... RETURNING included, and COMMIT with the last:
// updates (version checked at the server) and deletes in one round trip;
// with an INSERT reading keys back, two; one more when children need the
// keys of parents inserted in the same commit. Every database commits
// the same rows, and the generated keys reach the objects and children.
func TestPipelinedCommitRoundTrips(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann := newAccount("ann", 10)
		ann.Entries = []*Entry{{Amount: 1}, {Amount: 2}}
		seedObjects(t, eng, ann)
		pg := tg.Name != dbtest.SQLite // pipelined

		// Change a parent, add two children, delete one: the mixed unit of work.
		s := eng.NewSession()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		a.Balance = 11
		n1, n2 := &Entry{AccountID: ann.ID, Amount: 3}, &Entry{AccountID: ann.ID, Amount: 4}
		uowMust(t, s.Add(n1, n2))
		uowMust(t, s.Delete(&Entry{ID: ann.Entries[0].ID}))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		evs := log.Take()
		if pg && roundTrips(evs) != 2 {
			t.Fatalf("mixed commit: %d round trips %s, want 2: [BEGIN UPDATE INSERT…RETURNING] [DELETE COMMIT]", roundTrips(evs), describe(evs))
		}
		if n1.ID == 0 || n2.ID <= n1.ID || s.IsDirty(a) || a.Version != 2 {
			t.Fatalf("after commit: keys %d %d, account dirty %v version %d; want rising keys, clean, version 2", n1.ID, n2.ID, s.IsDirty(a), a.Version)
		}
		got, err := orm.Get[Entry](ctx, s, n2.ID)
		if err != nil || got != n2 {
			t.Fatalf("Get of the inserted child = %v, %v; want the tracked object", got, err)
		}
		uowMust(t, s.Close())
		if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", ann.ID); n != 3 {
			t.Fatalf("entries of ann: %d, want 3", n)
		}
		if bal, ver := scopeAccount(t, eng, ann.ID); bal != 11 || ver != 2 {
			t.Fatalf("ann: balance %d version %d, want 11 and 2", bal, ver)
		}

		// Version-checked updates of two rows and a delete: one round trip.
		s = eng.NewSession()
		a, err = orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		a.Balance = 12
		uowMust(t, s.Delete(n1))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if evs = log.Take(); pg && roundTrips(evs) != 1 {
			t.Fatalf("update and delete: %d round trips %s, want 1", roundTrips(evs), describe(evs))
		}
		uowMust(t, s.Close())
		if bal, ver := scopeAccount(t, eng, ann.ID); bal != 12 || ver != 3 {
			t.Fatalf("ann: balance %d version %d, want 12 and 3", bal, ver)
		}

		// An INSERT that no later statement needs the keys of (blobs have no
		// relations) waits in the queue: updates, inserts, a delete and
		// COMMIT in one round trip.
		s = eng.NewSession()
		a, err = orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		a.Balance = 13
		b1, b2 := &testmodels.Blob{Data: []byte("x")}, &testmodels.Blob{Data: []byte("y")}
		uowMust(t, s.Add(b1, b2))
		uowMust(t, s.Delete(n2))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if evs = log.Take(); pg && roundTrips(evs) != 1 {
			t.Fatalf("update, insert, delete: %d round trips %s, want 1", roundTrips(evs), describe(evs))
		}
		if b1.ID == 0 || b2.ID <= b1.ID || s.IsDirty(b1) || len(s.Pending()) != 0 {
			t.Fatalf("blobs: keys %d %d, dirty %v, pending %d; want rising keys, clean, none pending", b1.ID, b2.ID, s.IsDirty(b1), len(s.Pending()))
		}
		if got, err := orm.Get[testmodels.Blob](ctx, s, b2.ID); err != nil || got != b2 {
			t.Fatalf("Get of an inserted blob = %v, %v; want the tracked object", got, err)
		}
		uowMust(t, s.Close())
		if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != 2 {
			t.Fatalf("blobs: %d rows, want 2", n)
		}

		// A new parent and its children: the children wait for its key.
		s = eng.NewSession()
		bob := newAccount("bob", 5)
		bob.Entries = []*Entry{{Amount: 7}, {Amount: 8}}
		uowMust(t, s.Add(bob))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		evs = log.Take()
		if pg && roundTrips(evs) != 3 {
			t.Fatalf("parent and children: %d round trips %s, want 3", roundTrips(evs), describe(evs))
		}
		uowMust(t, s.Close())
		if bob.ID == 0 || bob.Entries[0].AccountID != bob.ID || bob.Entries[1].AccountID != bob.ID {
			t.Fatalf("keys: bob %d, children's account_id %d %d", bob.ID, bob.Entries[0].AccountID, bob.Entries[1].AccountID)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", bob.ID); n != 2 {
			t.Fatalf("entries of bob: %d, want 2", n)
		}
	})
}

// A pipelined commit that fails keeps the session's failure semantics: a
// version mismatch is ErrStaleData and a duplicate key ErrUniqueViolation,
// nothing is written, and the session is as before Commit (new objects
// pending with no key, changed objects dirty), so a second Commit after
// the cause is fixed writes everything.
func TestPipelinedCommitFailureRestores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		ann, bob := newAccount("ann", 10), newAccount("bob", 20)
		seedObjects(t, eng, ann, bob)

		t.Run("stale", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			other := eng.NewSession()
			o, err := orm.Get[Account](ctx, other, ann.ID)
			uowMust(t, err)
			o.Balance = 99
			uowMust(t, other.Commit(ctx))
			uowMust(t, other.Close())

			a.Balance = 12
			e := &Entry{AccountID: ann.ID, Amount: 5}
			uowMust(t, s.Add(e))
			err = s.Commit(ctx)
			if !errors.Is(err, orm.ErrStaleData) || errors.Is(err, orm.ErrCommitUnknown) {
				t.Fatalf("Commit: %v, want ErrStaleData", err)
			}
			if p := s.Pending(); len(p) != 1 || p[0] != e || e.ID != 0 || !s.IsDirty(a) || a.Version != 1 {
				t.Fatalf("after the failure: pending %v (id %d), account dirty %v version %d; want restored", p, e.ID, s.IsDirty(a), a.Version)
			}
			if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", ann.ID); n != 0 {
				t.Fatalf("%d entries written, want none", n)
			}
		})

		t.Run("stale, COMMIT in the same round trip", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			b, err := orm.Get[Account](ctx, s, bob.ID)
			uowMust(t, err)
			other := eng.NewSession()
			o, err := orm.Get[Account](ctx, other, bob.ID)
			uowMust(t, err)
			o.Balance = 77
			uowMust(t, other.Commit(ctx))
			uowMust(t, other.Close())
			balA, verA := scopeAccount(t, eng, ann.ID)

			a.Balance, b.Balance = a.Balance+1, 3
			err = s.Commit(ctx)
			var se *orm.StaleDataError
			if !errors.As(err, &se) || se.Table != "accounts" || errors.Is(err, orm.ErrCommitUnknown) {
				t.Fatalf("Commit: %v, want a *StaleDataError of accounts", err)
			}
			if !s.IsDirty(a) || !s.IsDirty(b) || b.Version != 1 {
				t.Fatalf("after the failure: dirty %v %v, bob version %d; want both dirty, version 1", s.IsDirty(a), s.IsDirty(b), b.Version)
			}
			if bal, ver := scopeAccount(t, eng, ann.ID); bal != balA || ver != verA {
				t.Fatalf("ann: balance %d version %d, want %d and %d: nothing of the commit written", bal, ver, balA, verA)
			}
		})

		t.Run("stale, with a queued insert", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			other := eng.NewSession()
			o, err := orm.Get[Account](ctx, other, ann.ID)
			uowMust(t, err)
			o.Balance++
			uowMust(t, other.Commit(ctx))
			uowMust(t, other.Close())

			a.Balance += 5
			blob := &testmodels.Blob{Data: []byte("z")}
			uowMust(t, s.Add(blob))
			if err := s.Commit(ctx); !errors.Is(err, orm.ErrStaleData) {
				t.Fatalf("Commit: %v, want ErrStaleData", err)
			}
			if p := s.Pending(); len(p) != 1 || p[0] != blob || blob.ID != 0 || !s.IsDirty(a) {
				t.Fatalf("after the failure: pending %v, blob id %d, account dirty %v; want the blob pending with no key, the account dirty", p, blob.ID, s.IsDirty(a))
			}
			if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != 0 {
				t.Fatalf("%d blobs written, want none", n)
			}
		})

		t.Run("unique", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			b, err := orm.Get[Account](ctx, s, bob.ID)
			uowMust(t, err)
			bal0, ver0 := b.Balance, b.Version
			b.Balance = bal0 + 1
			dup := newAccount("ann", 1)
			dup.Entries = []*Entry{{Amount: 6}}
			uowMust(t, s.Add(dup))
			err = s.Commit(ctx)
			if !errors.Is(err, orm.ErrUniqueViolation) {
				t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
			}
			if dup.ID != 0 || len(s.Pending()) != 2 || !s.IsDirty(b) || b.Version != ver0 {
				t.Fatalf("after the failure: dup id %d, %d pending, bob dirty %v version %d; want restored (version %d)", dup.ID, len(s.Pending()), s.IsDirty(b), b.Version, ver0)
			}
			if bal, _ := scopeAccount(t, eng, bob.ID); bal != bal0 {
				t.Fatalf("bob's balance %d, want %d", bal, bal0)
			}
			dup.Owner = "cy"
			uowMust(t, s.Commit(ctx))
			if dup.ID == 0 || dup.Entries[0].AccountID != dup.ID || b.Version != ver0+1 {
				t.Fatalf("second commit: dup %d, child's account_id %d, bob version %d", dup.ID, dup.Entries[0].AccountID, b.Version)
			}
		})
	})
}

// A connection lost in the round trip that carries COMMIT makes the
// outcome unknown (ErrCommitUnknown), whether it is the commit's only
// round trip or follows an INSERT's; the session is restored. The
// connections are killed, from another pool, right before that round
// trip.
func TestPipelinedCommitLostConnectionIsUnknown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name == dbtest.SQLite {
			return // no pipeline, no connection; serverkill_test.go covers COMMIT elsewhere
		}
		ctx := context.Background()
		killer := mustOpen(t, tg.Driver, tg.DSN)
		kill := func() {
			if tg.Name == dbtest.Postgres {
				if _, err := killer.DB().ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
					t.Errorf("kill: %v", err)
				}
				return
			}
			killOthers(t, killer.DB().DB)
		}
		var armed func(orm.QueryEvent) bool
		hook := func(_ context.Context, ev orm.QueryEvent) {
			if armed != nil && armed(ev) {
				armed = nil
				kill()
			}
		}
		if tg.Name == dbtest.MySQL {
			// The MySQL driver checks a pooled connection before handing it
			// out and would replace the killed ones; the commit must meet
			// the kill.
			tg.DSN += "&checkConnLiveness=false"
			if !strings.Contains(tg.DSN, "?") {
				tg.DSN = strings.Replace(tg.DSN, "&", "?", 1)
			}
		}
		eng := openEngine(t, tg, nil, orm.WithQueryHook(hook))
		ann, bob := newAccount("ann", 10), newAccount("bob", 20)
		ann.Entries = []*Entry{{Amount: 1}}
		seedObjects(t, eng, ann, bob)

		t.Run("one round trip", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[Account](ctx, s, ann.ID)
			uowMust(t, err)
			b, err := orm.Get[Account](ctx, s, bob.ID)
			uowMust(t, err)
			a.Balance, b.Balance = 1, 2
			kill() // the pooled connections the commit will use
			err = s.Commit(ctx)
			if !errors.Is(err, orm.ErrCommitUnknown) {
				t.Fatalf("Commit: %v, want ErrCommitUnknown", err)
			}
			if !s.IsDirty(a) || !s.IsDirty(b) || a.Version != 1 {
				t.Fatalf("after the lost commit: dirty %v %v, version %d; want restored", s.IsDirty(a), s.IsDirty(b), a.Version)
			}
		})

		t.Run("after an INSERT's round trip", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			e := &Entry{AccountID: ann.ID, Amount: 2}
			uowMust(t, s.Add(e))
			uowMust(t, s.Delete(&Entry{ID: ann.Entries[0].ID}))
			armed = func(ev orm.QueryEvent) bool { return ev.Op == orm.OpQuery } // the INSERT: the next round trip carries COMMIT
			err := s.Commit(ctx)
			if !errors.Is(err, orm.ErrCommitUnknown) {
				t.Fatalf("Commit: %v, want ErrCommitUnknown", err)
			}
			if p := s.Pending(); len(p) != 1 || e.ID != 0 {
				t.Fatalf("after the lost commit: pending %v, id %d; want the entry pending with no key", p, e.ID)
			}
		})
	})
}

// killOthers ends, as an operator would, every other connection to the
// MySQL/MariaDB database db uses, and waits until the server has closed
// them.
func killOthers(t *testing.T, db *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const others = "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()"
	for {
		rows, err := db.QueryContext(ctx, others)
		if err != nil {
			t.Fatalf("list connections: %v", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) == 0 {
			return
		}
		for _, id := range ids {
			// KILL takes no placeholder; id is an integer the server gave.
			// A connection already gone is no error here.
			_, _ = db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
