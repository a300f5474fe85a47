package orm

import (
	"context"
	"fmt"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
)

// On PostgreSQL through pgx, and on MySQL/MariaDB through a
// multi-statement query, a commit of several statements that return no
// rows goes as one batch (BEGIN, the statements and COMMIT in one round
// trip); on SQLite commitBatch declines and Commit runs the usual way.
func TestBatchedCommitIsOneRoundTrip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		var evs []QueryEvent
		eng, err := Open(ctx, tg.Driver, tg.DSN, WithQueryHook(func(_ context.Context, ev QueryEvent) { evs = append(evs, ev) }))
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		if err := eng.CreateTables(ctx, testmodels.Models...); err != nil {
			t.Fatal(err)
		}
		seed := eng.NewSession()
		ann, bob := &testmodels.Account{Owner: "ann", Balance: 1}, &testmodels.Account{Owner: "bob", Balance: 2}
		if err := seed.Add(ann, bob); err != nil {
			t.Fatal(err)
		}
		if err := seed.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		seed.Close()

		s := eng.NewSession()
		defer s.Close()
		a, err := Get[testmodels.Account](ctx, s, ann.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Get[testmodels.Account](ctx, s, bob.ID)
		if err != nil {
			t.Fatal(err)
		}
		a.Balance, b.Balance = 10, 20
		before := s.Stats()
		evs = nil
		if err := s.enter(); err != nil {
			t.Fatal(err)
		}
		done, err := s.commitBatch(ctx)
		s.leave()
		if err != nil {
			t.Fatalf("commitBatch: %v", err)
		}
		if want := tg.Name != dbtest.SQLite; done != want {
			t.Fatalf("commitBatch done = %v, want %v", done, want)
		}
		if !done {
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			if st := s.Stats(); st.Statements-before.Statements != 3 || st.Commits != before.Commits+1 {
				t.Fatalf("stats after the batch %+v (before %+v), want 3 statements (BEGIN, the 2 objects' batched UPDATE, COMMIT) and a commit", st, before)
			}
			// One round trip: BEGIN, the UPDATE of both (its version checks
			// made at the server) and COMMIT pipelined.
			var got []string
			for _, ev := range evs {
				got = append(got, fmt.Sprintf("%s/%v", ev.Op, ev.Pipelined))
			}
			if want := "[begin/false exec/true commit/true]"; fmt.Sprint(got) != want {
				t.Fatalf("events %v, want %s", got, want)
			}
		}
		var n int64
		if err := eng.DB().QueryRowContext(ctx, eng.Dialect().Rebind("SELECT COUNT(*) FROM accounts WHERE balance IN (10, 20) AND version = 2")).Scan(&n); err != nil || n != 2 {
			t.Fatalf("committed rows %d (%v), want both accounts updated, version 2", n, err)
		}
		if s.IsDirty(a) || s.IsDirty(b) || a.Version != 2 || b.Version != 2 {
			t.Fatalf("after the commit: dirty %v %v, versions %d %d; want clean, 2 and 2", s.IsDirty(a), s.IsDirty(b), a.Version, b.Version)
		}
	})
}
