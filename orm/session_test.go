package orm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of the Session: states and identity (DESIGN.md "Session:
// states and identity"), change tracking, autobegin and autoflush,
// Rollback and Close. Every test runs on SQLite, MariaDB and PostgreSQL.
//
// Helpers shared by session_test.go, flush_test.go, savepoint_test.go and
// concurrency_test.go carry a uow prefix; those of the whole package are in
// helpers_test.go.

// uowSQL spells a statement written with "x" quotes and ? placeholders the
// way tg's dialect sends it: `x` on MySQL, $n on PostgreSQL. Test
// statements hold no string literals, so a plain rewrite is exact.
func uowSQL(tg dbtest.Target, q string) string {
	switch tg.Name {
	case dbtest.MySQL:
		return strings.ReplaceAll(q, `"`, "`")
	case dbtest.Postgres:
		var b strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				fmt.Fprintf(&b, "$%d", n)
				continue
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	return q
}

// uowAccountIDs maps each committed account's owner to its id.
func uowAccountIDs(t *testing.T, eng *orm.Engine) map[string]int64 {
	t.Helper()
	rows, err := eng.DB().QueryContext(context.Background(), "SELECT owner, id FROM accounts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var owner string
		var id int64
		if err := rows.Scan(&owner, &id); err != nil {
			t.Fatal(err)
		}
		out[owner] = id
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// uowMust fails t at once on a non-nil err: for the calls whose error is
// not what the test is about.
func uowMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// --- Identity -------------------------------------------------------------

func TestSessionIdentityOneObjectPerKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		log = nil
		a1, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		// A read before the first write runs in autocommit: no BEGIN.
		want := []string{uowSQL(tg, `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "id" = ?`)}
		if diff := cmp.Diff(want, log); diff != "" {
			t.Fatalf("first Get: statements (-want +got):\n%s", diff)
		}
		if a1 == ann {
			t.Fatal("a second session returned the first session's object")
		}

		log = nil
		a2, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		a3, err := orm.Get[Account](ctx, s, int(ann.ID)) // any integer type names the key
		uowMust(t, err)
		if a2 != a1 || a3 != a1 {
			t.Fatalf("Get of a tracked key returned another object: %p %p, want %p", a2, a3, a1)
		}
		if len(log) != 0 {
			t.Fatalf("Get of a tracked key sent SQL: %q", log)
		}
		if got := s.Stats().Tracked; got != 1 {
			t.Fatalf("Stats().Tracked = %d, want 1", got)
		}
	})
}

func TestSessionIdentityAfterInsert(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		ann := newAccount("ann", 100)
		uowMust(t, s.Add(ann))
		uowMust(t, s.Commit(ctx))

		log = nil
		got, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		if got != ann {
			t.Fatalf("Get after Commit returned %p, want the inserted object %p", got, ann)
		}
		if len(log) != 0 {
			t.Fatalf("Get of an inserted object sent SQL: %q", log)
		}
	})
}

// Each session has its own identity map: a row read by two sessions is two
// objects, and a tracked object keeps its unflushed changes until Refresh.
func TestSessionIdentityPerSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		s1 := eng.NewSession()
		defer s1.Close()
		a1, err := orm.Get[Account](ctx, s1, ann.ID)
		uowMust(t, err)
		// End s1's read transaction, so that its Refresh below reads what
		// s2 commits under every isolation level (MySQL's REPEATABLE READ
		// and SQLite's WAL snapshot would otherwise show the old row).
		uowMust(t, s1.Commit(ctx))

		s2 := eng.NewSession()
		defer s2.Close()
		a2, err := orm.Get[Account](ctx, s2, ann.ID)
		uowMust(t, err)
		if a1 == a2 {
			t.Fatal("two sessions share one object")
		}
		a2.Balance = 70
		uowMust(t, s2.Commit(ctx))

		note := "s1's unflushed change"
		a1.Note = &note
		log = nil
		again, err := orm.Get[Account](ctx, s1, ann.ID)
		uowMust(t, err)
		if again != a1 || len(log) != 0 {
			t.Fatalf("Get of a tracked key: %p (want %p), statements %q", again, a1, log)
		}
		if a1.Note == nil || *a1.Note != note || a1.Balance != 100 {
			t.Fatalf("Get overwrote the tracked object: note %v, balance %d", a1.Note, a1.Balance)
		}

		uowMust(t, s1.Refresh(ctx, a1))
		if a1.Note != nil || a1.Balance != 70 || a1.Version != 2 {
			t.Fatalf("after Refresh: note %v balance %d version %d, want nil 70 2", a1.Note, a1.Balance, a1.Version)
		}
		if s1.IsDirty(a1) {
			t.Fatal("a refreshed object is dirty")
		}
		if again, _ := orm.Get[Account](ctx, s1, ann.ID); again != a1 {
			t.Fatal("Refresh replaced the tracked object")
		}
	})
}

func TestSessionAddIdentityConflict(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		if err := s.Add(a); err != nil {
			t.Fatalf("adding a tracked object again: %v, want nil (a no-op)", err)
		}
		twin := &Account{ID: ann.ID, Owner: "twin", Created: baseTime}
		if err := s.Add(twin); !errors.Is(err, orm.ErrIdentityConflict) {
			t.Fatalf("Add of a second object with a tracked key: %v, want ErrIdentityConflict", err)
		}
		if err := s.Delete(twin); !errors.Is(err, orm.ErrIdentityConflict) {
			t.Fatalf("Delete of a second object with a tracked key: %v, want ErrIdentityConflict", err)
		}
		if p := s.Pending(); len(p) != 0 {
			t.Fatalf("Pending() = %v, want none", p)
		}
		if s.IsDirty(a) || s.IsDirty(twin) {
			t.Fatal("a refused Add or Delete left something dirty")
		}

		// Composite natural keys conflict the same way.
		tag := &testmodels.Tag{Kind: "color", Name: "red"}
		uowMust(t, s.Add(tag))
		uowMust(t, s.Commit(ctx))
		if err := s.Add(&testmodels.Tag{Kind: "color", Name: "red", Uses: 9}); !errors.Is(err, orm.ErrIdentityConflict) {
			t.Fatalf("Add of a second Tag with a tracked key: %v, want ErrIdentityConflict", err)
		}
	})
}

// A pending object with an explicit key is in the session too: a second
// object with its key is refused at Add, not left to fail the flush.
func TestSessionAddConflictWithPendingKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		first := &testmodels.Tag{Kind: "color", Name: "red", Uses: 1}
		uowMust(t, s.Add(first))
		second := &testmodels.Tag{Kind: "color", Name: "red", Uses: 2}
		if err := s.Add(second); !errors.Is(err, orm.ErrIdentityConflict) {
			t.Fatalf("Add of a second Tag with a pending object's key: %v, want ErrIdentityConflict", err)
		}
		if p := s.Pending(); len(p) != 1 || p[0] != first {
			t.Fatalf("Pending() = %v, want only the first tag", p)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	})
}

// Delete of a pending object drops it: nothing is sent.
func TestSessionDeletePending(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		log = nil
		a := newAccount("ann", 1)
		uowMust(t, s.Add(a))
		uowMust(t, s.Delete(a))
		if p := s.Pending(); len(p) != 0 || s.IsDirty(a) {
			t.Fatalf("after Delete of a pending object: pending %v, dirty %v", p, s.IsDirty(a))
		}
		uowMust(t, s.Commit(ctx))
		if len(log) != 0 {
			t.Fatalf("Commit sent %q, want nothing", log)
		}
	})
}

func TestSessionGetNotFound(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		if a, err := orm.Get[Account](ctx, s, int64(424242)); !errors.Is(err, orm.ErrNotFound) || a != nil {
			t.Fatalf("Get of a missing account: %v, %v; want nil, ErrNotFound", a, err)
		}
		if tag, err := orm.Get[testmodels.Tag](ctx, s, "no", "such"); !errors.Is(err, orm.ErrNotFound) || tag != nil {
			t.Fatalf("Get of a missing tag: %v, %v; want nil, ErrNotFound", tag, err)
		}
		// A row deleted in this session is gone for it, before and after
		// the DELETE is flushed.
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(a))
		if _, err := orm.Get[Account](ctx, s, ann.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of an account marked deleted: %v, want ErrNotFound", err)
		}
		uowMust(t, s.Flush(ctx))
		if _, err := orm.Get[Account](ctx, s, ann.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of an account deleted in the open transaction: %v, want ErrNotFound", err)
		}
	})
}

func TestSessionGetCompositeKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		seedObjects(t, eng, &testmodels.Tag{Kind: "color", Name: "red", Uses: 3}, &testmodels.Tag{Kind: "color", Name: "blue", Uses: 4})

		s := eng.NewSession()
		defer s.Close()
		log = nil
		red, err := orm.Get[testmodels.Tag](ctx, s, "color", "red")
		uowMust(t, err)
		if diff := cmp.Diff(&testmodels.Tag{Kind: "color", Name: "red", Uses: 3}, red); diff != "" {
			t.Fatalf("Get(color, red) (-want +got):\n%s", diff)
		}
		want := []string{uowSQL(tg, `SELECT "kind", "name", "uses" FROM "tags" WHERE "kind" = ? AND "name" = ?`)}
		if diff := cmp.Diff(want, log); diff != "" {
			t.Fatalf("statements (-want +got):\n%s", diff)
		}

		log = nil
		again, err := orm.Get[testmodels.Tag](ctx, s, "color", "red")
		uowMust(t, err)
		if again != red || len(log) != 0 {
			t.Fatalf("second Get: %p (want %p), statements %q", again, red, log)
		}
		blue, err := orm.Get[testmodels.Tag](ctx, s, "color", "blue")
		uowMust(t, err)
		if blue == red || blue.Uses != 4 {
			t.Fatalf("Get(color, blue) = %+v", blue)
		}
		if _, err := orm.Get[testmodels.Tag](ctx, s, "red", "color"); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get with the key parts swapped: %v, want ErrNotFound", err)
		}
	})
}

// --- Change tracking ------------------------------------------------------

func TestSessionUpdateWritesOnlyChangedColumns(t *testing.T) {
	want := map[string]string{
		dbtest.SQLite:   `UPDATE "accounts" SET "balance" = ?, "version" = ? WHERE "id" = ? AND "version" = ?`,
		dbtest.MySQL:    "UPDATE `accounts` SET `balance` = ?, `version` = ? WHERE `id` = ? AND `version` = ?",
		dbtest.Postgres: `UPDATE "accounts" SET "balance" = $1, "version" = $2 WHERE "id" = $3 AND "version" = $4`,
	}
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := newAccount("ann", 100)
		uowMust(t, s.Add(a))
		uowMust(t, s.Commit(ctx))

		a.Balance = 90
		log.Reset()
		uowMust(t, s.Commit(ctx))
		evs := log.Events()
		if len(evs) != 1 {
			t.Fatalf("statements = %q, want one UPDATE, alone (a single-statement commit)", log.SQL())
		}
		if evs[0].SQL != want[tg.Name] {
			t.Fatalf("UPDATE:\n got %s\nwant %s", evs[0].SQL, want[tg.Name])
		}
		if diff := cmp.Diff([]any{int64(90), int64(2), a.ID, int64(1)}, evs[0].Args); diff != "" {
			t.Fatalf("UPDATE args (-want +got):\n%s", diff)
		}
		if evs[0].Rows != 1 {
			t.Fatalf("UPDATE matched %d rows, want 1", evs[0].Rows)
		}

		// Two columns: in column order, the version last.
		note := "vip"
		a.Note = &note
		a.Owner = "anna"
		log.Reset()
		uowMust(t, s.Commit(ctx))
		ups := log.Matching("UPDATE")
		wantSQL := uowSQL(tg, `UPDATE "accounts" SET "owner" = ?, "note" = ?, "version" = ? WHERE "id" = ? AND "version" = ?`)
		if len(ups) != 1 || ups[0].SQL != wantSQL {
			t.Fatalf("UPDATE statements %q, want [%s]", log.SQL(), wantSQL)
		}
		if diff := cmp.Diff([]any{"anna", "vip", int64(3), a.ID, int64(2)}, ups[0].Args); diff != "" {
			t.Fatalf("UPDATE args (-want +got):\n%s", diff)
		}
	})
}

func TestSessionUpdateWritesZeroValues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		note := "x"
		a := newAccount("ann", 100)
		a.Note = &note
		uowMust(t, s.Add(a))
		uowMust(t, s.Commit(ctx))

		a.Owner, a.Balance, a.Note = "", 0, nil
		if !s.IsDirty(a) {
			t.Fatal("setting fields to their zero values is not a change")
		}
		log.Reset()
		uowMust(t, s.Commit(ctx))
		ups := log.Matching("UPDATE")
		wantSQL := uowSQL(tg, `UPDATE "accounts" SET "owner" = ?, "balance" = ?, "note" = ?, "version" = ? WHERE "id" = ? AND "version" = ?`)
		if len(ups) != 1 || ups[0].SQL != wantSQL {
			t.Fatalf("statements %q, want one %s", log.SQL(), wantSQL)
		}
		if diff := cmp.Diff([]any{"", int64(0), nil, int64(2), a.ID, int64(1)}, ups[0].Args); diff != "" {
			t.Fatalf("UPDATE args (-want +got):\n%s", diff)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE id = ? AND owner = '' AND balance = 0 AND note IS NULL AND version = 2", a.ID); n != 1 {
			t.Fatalf("the zero values did not reach the row (%d rows match)", n)
		}
	})
}

func TestSessionNothingChangedSendsNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := newAccount("ann", 100)
		b := &testmodels.Blob{Data: []byte("abc")}
		uowMust(t, s.Add(a, b))
		uowMust(t, s.Commit(ctx))

		log = nil
		uowMust(t, s.Flush(ctx))
		uowMust(t, s.Commit(ctx))
		if len(log) != 0 {
			t.Fatalf("Flush and Commit with nothing changed sent %q", log)
		}

		// A change undone before the flush is no change; so is a new but
		// equal []byte or *string.
		a.Balance = 1
		a.Balance = 100
		b.Data = []byte("abc")
		uowMust(t, s.Commit(ctx))
		if len(log) != 0 {
			t.Fatalf("Commit after changes that were undone sent %q", log)
		}
		if s.IsDirty(a) || s.IsDirty(b) {
			t.Fatal("unchanged objects are dirty")
		}
		if st := s.Stats(); st.Flushes != 1 || st.Commits != 1 {
			t.Fatalf("Stats() = %+v, want one flush and one commit (the insert)", st)
		}
	})
}

func TestSessionBytesChangedInPlace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		b := &testmodels.Blob{Data: []byte("abc")}
		uowMust(t, s.Add(b))
		uowMust(t, s.Commit(ctx))

		b.Data[0] = 'X' // in place: the slice header is unchanged
		if !s.IsDirty(b) {
			t.Fatal("an in-place change of a []byte is not seen")
		}
		log.Reset()
		uowMust(t, s.Commit(ctx))
		ups := log.Matching("UPDATE")
		wantSQL := uowSQL(tg, `UPDATE "blobs" SET "data" = ? WHERE "id" = ?`)
		if len(ups) != 1 || ups[0].SQL != wantSQL {
			t.Fatalf("statements %q, want one %s", log.SQL(), wantSQL)
		}
		var got []byte
		uowMust(t, eng.DB().QueryRowContext(ctx, eng.Dialect().Rebind("SELECT data FROM blobs WHERE id = ?"), b.ID).Scan(&got))
		if string(got) != "Xbc" {
			t.Fatalf("row holds %q, want Xbc", got)
		}
		if s.IsDirty(b) {
			t.Fatal("dirty after Commit")
		}
	})
}

func TestSessionIsDirty(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		note := "n"
		a := newAccount("ann", 100)
		a.Note = &note
		if s.IsDirty(a) {
			t.Fatal("a transient object is dirty")
		}
		uowMust(t, s.Add(a))
		if !s.IsDirty(a) {
			t.Fatal("a pending object is not dirty")
		}
		uowMust(t, s.Commit(ctx))
		if s.IsDirty(a) {
			t.Fatal("dirty right after Commit")
		}
		steps := []struct {
			name   string
			change func()
			undo   func()
		}{
			{"int", func() { a.Balance++ }, func() { a.Balance-- }},
			{"through a pointer", func() { *a.Note = "m" }, func() { *a.Note = "n" }},
			{"pointer to nil", func() { a.Note = nil }, func() { a.Note = &note }},
			{"time", func() { a.Created = a.Created.Add(time.Second) }, func() { a.Created = baseTime }},
			// The same instant in another location is the same value.
			{"time zone only", nil, func() { a.Created = baseTime.In(time.FixedZone("X", 3600)) }},
		}
		for _, st := range steps {
			if st.change != nil {
				st.change()
				if !s.IsDirty(a) {
					t.Fatalf("%s: a change is not seen", st.name)
				}
			}
			st.undo()
			if s.IsDirty(a) {
				t.Fatalf("%s: dirty after the change was undone", st.name)
			}
		}
		a.Balance = 5
		uowMust(t, s.Flush(ctx))
		if s.IsDirty(a) {
			t.Fatal("dirty after Flush")
		}
		uowMust(t, s.Delete(a))
		if !s.IsDirty(a) {
			t.Fatal("an object marked deleted is not dirty")
		}
		uowMust(t, s.Commit(ctx))
		if s.IsDirty(a) {
			t.Fatal("a deleted, committed (detached) object is dirty")
		}
	})
}

// --- Autobegin and autoflush ----------------------------------------------

func TestSessionBeginsAtFirstWrite(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := newAccount("ann", 1)
		uowMust(t, s.Add(a))
		if len(log.Events()) != 0 || eng.DB().Stats().InUse != 0 {
			t.Fatalf("NewSession and Add took a connection or sent SQL: %q", log.SQL())
		}
		// One statement to send: it goes alone, in autocommit.
		uowMust(t, s.Commit(ctx))
		if evs := log.Events(); len(evs) != 1 || !strings.HasPrefix(evs[0].SQL, "INSERT") {
			t.Fatalf("Commit of one insert sent %q, want the INSERT alone", log.SQL())
		}
		// Two statements to send: one transaction, begun by the first.
		log.Reset()
		a.Balance++
		uowMust(t, s.Add(newAccount("bob", 2)))
		uowMust(t, s.Commit(ctx))
		evs := log.Events()
		if len(evs) != 4 {
			t.Fatalf("statements %q, want BEGIN, INSERT, UPDATE, COMMIT", log.SQL())
		}
		if evs[0].Op != "begin" || evs[0].SQL != "BEGIN" || evs[3].Op != "commit" || evs[3].SQL != "COMMIT" {
			t.Fatalf("first and last events %+v, %+v; want the BEGIN and the COMMIT", evs[0], evs[3])
		}

		// A read does not begin one, and holds no connection afterwards.
		s2 := eng.NewSession()
		defer s2.Close()
		log.Reset()
		_, err := orm.Get[Account](ctx, s2, a.ID)
		uowMust(t, err)
		evs = log.Events()
		if len(evs) != 1 || evs[0].Op != "query" {
			t.Fatalf("Get sent %q, want the SELECT alone", log.SQL())
		}
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Fatalf("a session that has only read holds %d connections, want 0", n)
		}
		uowMust(t, s2.Commit(ctx))
		if got := log.SQL(); len(got) != 1 {
			t.Fatalf("Commit of a read-only session sent %q after the SELECT, want nothing", got[1:])
		}
	})
}

func TestSessionAutoflushBeforeGet(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		tag := &testmodels.Tag{Kind: "color", Name: "red", Uses: 1}
		uowMust(t, s.Add(tag))
		got, err := orm.Get[testmodels.Tag](ctx, s, "color", "red")
		uowMust(t, err)
		if got != tag {
			t.Fatalf("Get of a pending key returned %p, want the added object %p", got, tag)
		}
		want := []string{"BEGIN", uowSQL(tg, `INSERT INTO "tags" ("kind", "name", "uses") VALUES (?, ?, ?)`)}
		if diff := cmp.Diff(want, log.SQL()); diff != "" {
			t.Fatalf("statements (-want +got):\n%s", diff)
		}
		if p := s.Pending(); len(p) != 0 {
			t.Fatalf("still pending after the autoflush: %v", p)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags"); n != 0 {
			t.Fatalf("an autoflushed row is visible outside the transaction (%d rows)", n)
		}

		// An auto key: the Get that misses flushes first, then reads.
		a := newAccount("ann", 1)
		uowMust(t, s.Add(a))
		log.Reset()
		if _, err := orm.Get[Account](ctx, s, int64(999999)); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
		}
		sqls := log.SQL()
		if len(sqls) != 2 || !strings.HasPrefix(sqls[0], uowSQL(tg, `INSERT INTO "accounts"`)) || !strings.HasPrefix(sqls[1], "SELECT") {
			t.Fatalf("statements %q, want the INSERT then the SELECT", sqls)
		}
		if a.ID == 0 {
			t.Fatal("the autoflushed account has no key")
		}
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags"); n != 1 {
			t.Fatalf("%d tags after Commit, want 1", n)
		}
	})
}

func TestSessionAutoflushError(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		seedObjects(t, eng, newAccount("ann", 1))

		s := eng.NewSession()
		defer s.Close()
		dup := newAccount("ann", 2)
		uowMust(t, s.Add(dup))
		_, err := orm.Get[Account](ctx, s, int64(999999))
		var fe *orm.FlushError
		if !errors.As(err, &fe) {
			t.Fatalf("Get whose autoflush fails: %v (%T), want a *orm.FlushError", err, err)
		}
		if !fe.Autoflush || fe.Op != "INSERT" || fe.Table != "accounts" {
			t.Fatalf("FlushError %+v, want Autoflush INSERT accounts", fe)
		}
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("%v does not match ErrUniqueViolation", err)
		}
		if !strings.Contains(err.Error(), "autoflush") {
			t.Fatalf("the message does not say it was an autoflush: %v", err)
		}
		// Nothing is lost: the object is pending again, without a key.
		if p := s.Pending(); len(p) != 1 || p[0] != dup || dup.ID != 0 || dup.Version != 0 {
			t.Fatalf("after the failed autoflush: pending %v, id %d, version %d", p, dup.ID, dup.Version)
		}
		dup.Owner = "bob"
		uowMust(t, s.Commit(ctx))
		if ids := uowAccountIDs(t, eng); ids["bob"] != dup.ID {
			t.Fatalf("committed %v, want bob with id %d", ids, dup.ID)
		}
	})
}

func TestSessionWithoutAutoflush(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession(orm.WithoutAutoflush())
		defer s.Close()
		tag := &testmodels.Tag{Kind: "color", Name: "red"}
		uowMust(t, s.Add(tag))
		if _, err := orm.Get[testmodels.Tag](ctx, s, "color", "red"); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of an unflushed key without autoflush: %v, want ErrNotFound", err)
		}
		if ins := log.Matching("INSERT"); len(ins) != 0 {
			t.Fatalf("a session without autoflush flushed before Get: %q", log.SQL())
		}
		if p := s.Pending(); len(p) != 1 || p[0] != tag {
			t.Fatalf("Pending() = %v, want the tag", p)
		}
		uowMust(t, s.Commit(ctx))
		got, err := orm.Get[testmodels.Tag](ctx, s, "color", "red")
		if err != nil || got != tag {
			t.Fatalf("after Commit: %p, %v; want the tag", got, err)
		}
	})
}

// --- Rollback and Close ---------------------------------------------------

func TestSessionRollbackDetachesEverything(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		a.Balance = 1
		bob := newAccount("bob", 2)
		uowMust(t, s.Add(bob))
		uowMust(t, s.Flush(ctx)) // bob's INSERT and a's UPDATE run, uncommitted
		carl := newAccount("carl", 3)
		uowMust(t, s.Add(carl))
		uowMust(t, s.Delete(a))

		uowMust(t, s.Rollback(ctx))
		if st := s.Stats(); st.Tracked != 0 || st.Pending != 0 {
			t.Fatalf("after Rollback: Stats() = %+v, want nothing tracked or pending", st)
		}
		if p := s.Pending(); len(p) != 0 {
			t.Fatalf("after Rollback: Pending() = %v", p)
		}
		for _, obj := range []*Account{a, bob, carl} {
			if s.IsDirty(obj) {
				t.Fatalf("after Rollback: %s is still dirty", obj.Owner)
			}
		}
		if eng.DB().Stats().InUse != 0 {
			t.Fatal("Rollback kept the connection")
		}
		if ids := uowAccountIDs(t, eng); len(ids) != 1 || ids["ann"] != ann.ID {
			t.Fatalf("rows after Rollback: %v, want only ann", ids)
		}

		// The session stays usable, and knows nothing of its old objects.
		a2, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		if a2 == a || a2.Balance != 100 {
			t.Fatalf("Get after Rollback: %p balance %d; want a new object with balance 100", a2, a2.Balance)
		}
		dave := newAccount("dave", 4)
		uowMust(t, s.Add(dave))
		uowMust(t, s.Commit(ctx))
		if ids := uowAccountIDs(t, eng); len(ids) != 2 || ids["dave"] != dave.ID {
			t.Fatalf("rows after Add and Commit: %v, want ann and dave (%d)", ids, dave.ID)
		}
	})
}

func TestSessionCloseRollsBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		a := newAccount("ann", 1)
		uowMust(t, s.Add(a))
		uowMust(t, s.Flush(ctx))
		if a.ID == 0 {
			t.Fatal("Flush did not insert")
		}
		uowMust(t, s.Close())
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts"); n != 0 {
			t.Fatalf("%d accounts after Close, want the flushed insert rolled back", n)
		}
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Fatalf("%d connections in use after Close", n)
		}

		calls := map[string]func() error{
			"Add":      func() error { return s.Add(newAccount("bob", 1)) },
			"Delete":   func() error { return s.Delete(a) },
			"Expunge":  func() error { return s.Expunge(a) },
			"Flush":    func() error { return s.Flush(ctx) },
			"Commit":   func() error { return s.Commit(ctx) },
			"Rollback": func() error { return s.Rollback(ctx) },
			"Refresh":  func() error { return s.Refresh(ctx, a) },
			"Savepoint": func() error {
				return s.Savepoint(ctx, func() error { t.Error("Savepoint ran fn on a closed session"); return nil })
			},
			"Get": func() error { _, err := orm.Get[Account](ctx, s, int64(1)); return err },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, orm.ErrSessionClosed) {
				t.Errorf("%s after Close: %v, want ErrSessionClosed", name, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Fatalf("%d connections in use at the end", n)
		}
	})
}

// Close of a session that only read releases its connection too.
func TestSessionCloseAfterRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 1)
		seedObjects(t, eng, ann)
		s := eng.NewSession()
		_, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		if _, err := orm.Get[Account](ctx, s, int64(999999)); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of a missing key: %v", err)
		}
		uowMust(t, s.Close())
		if n := eng.DB().Stats().InUse; n != 0 {
			t.Fatalf("%d connections in use after Close", n)
		}
	})
}
