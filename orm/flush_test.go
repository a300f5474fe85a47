package orm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of the unit of work (DESIGN.md "Unit of work: flush and
// commit"): flush order, foreign keys, batching, optimistic locking, and
// "a failed flush or commit loses nothing". Helpers are in session_test.go
// and helpers_test.go.

// uowIndex returns the position of the first statement starting with
// prefix, or -1.
func uowIndex(sqls []string, prefix string) int {
	return slices.IndexFunc(sqls, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// --- Flush order and foreign keys -----------------------------------------

func TestFlushInsertsParentsFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()

		// Children first; the parent comes in through their Account field.
		acct := newAccount("ann", 1)
		e1 := &Entry{Amount: 10, Account: acct}
		e2 := &Entry{Amount: 20, Account: acct}
		uowMust(t, s.Add(e1, e2))
		if p := s.Pending(); len(p) != 3 {
			t.Fatalf("Pending() = %d objects, want the two entries and their account", len(p))
		}
		uowMust(t, s.Commit(ctx))
		sqls := log.SQL()
		ia, ie := uowIndex(sqls, uowSQL(tg, `INSERT INTO "accounts"`)), uowIndex(sqls, uowSQL(tg, `INSERT INTO "entries"`))
		if ia < 0 || ie < 0 || ia > ie {
			t.Fatalf("statements %q: want the accounts INSERT before the entries INSERT", sqls)
		}
		if len(log.Matching(uowSQL(tg, `INSERT INTO "entries"`))) != 1 {
			t.Fatalf("statements %q: want both entries in one INSERT", sqls)
		}
		if acct.ID == 0 || e1.AccountID != acct.ID || e2.AccountID != acct.ID {
			t.Fatalf("keys: account %d, entries' account_id %d %d", acct.ID, e1.AccountID, e2.AccountID)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", acct.ID); n != 2 {
			t.Fatalf("%d entry rows reference the account, want 2", n)
		}

		// A child added before its parent, linked only by the parent's
		// has-many slice.
		log.Reset()
		e3 := &Entry{Amount: 30}
		bob := newAccount("bob", 2)
		bob.Entries = []*Entry{e3}
		uowMust(t, s.Add(e3))
		uowMust(t, s.Add(bob))
		uowMust(t, s.Commit(ctx))
		sqls = log.SQL()
		if ia, ie := uowIndex(sqls, uowSQL(tg, `INSERT INTO "accounts"`)), uowIndex(sqls, uowSQL(tg, `INSERT INTO "entries"`)); ia < 0 || ie < 0 || ia > ie {
			t.Fatalf("statements %q: want the accounts INSERT before the entries INSERT", sqls)
		}
		if bob.ID == 0 || e3.AccountID != bob.ID {
			t.Fatalf("has-many: account %d, entry's account_id %d", bob.ID, e3.AccountID)
		}
	})
}

// New children of a persistent parent get its key, whether they are
// appended to its slice or point at it.
func TestFlushForeignKeyFromPersistentParent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 1)
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		appended := &Entry{Amount: 5}
		a.Entries = append(a.Entries, appended) // not Added: the flush finds it
		pointing := &Entry{Amount: 6, Account: a}
		uowMust(t, s.Add(pointing))
		uowMust(t, s.Commit(ctx))
		if appended.ID == 0 || appended.AccountID != ann.ID || pointing.AccountID != ann.ID {
			t.Fatalf("entries: %+v %+v, want both inserted with account_id %d", appended, pointing, ann.ID)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", ann.ID); n != 2 {
			t.Fatalf("%d entries rows, want 2", n)
		}
	})
}

func TestFlushDeletesChildrenFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		seed := newAccount("ann", 1)
		seed.Entries = []*Entry{{Amount: 1}, {Amount: 2}}
		seedObjects(t, eng, seed)

		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[Account](ctx, s, seed.ID)
		uowMust(t, err)
		e1, err := orm.Get[Entry](ctx, s, seed.Entries[0].ID)
		uowMust(t, err)
		e2, err := orm.Get[Entry](ctx, s, seed.Entries[1].ID)
		uowMust(t, err)
		// Parent first: the flush must still delete the children first,
		// or the foreign key refuses the parent's DELETE.
		uowMust(t, s.Delete(a))
		uowMust(t, s.Delete(e1, e2))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		want := []string{
			"BEGIN",
			uowSQL(tg, `DELETE FROM "entries" WHERE "id" IN (?, ?)`),
			uowSQL(tg, `DELETE FROM "accounts" WHERE "id" = ? AND "version" = ?`),
			"COMMIT",
		}
		if diff := cmp.Diff(want, log.SQL()); diff != "" {
			t.Fatalf("statements (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]any{e1.ID, e2.ID}, log.Events()[1].Args); diff != "" {
			t.Fatalf("DELETE args (-want +got):\n%s", diff)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts") + countRows(t, eng, "SELECT COUNT(*) FROM entries"); n != 0 {
			t.Fatalf("%d rows left", n)
		}
		if st := s.Stats(); st.Tracked != 0 {
			t.Fatalf("deleted objects still tracked after Commit: %+v", st)
		}
	})
}

// An object inserted by this session can be deleted by it, in the same
// transaction after a Flush or in a later one after Commit.
func TestFlushDeleteOfInsertedObject(t *testing.T) {
	for _, commitFirst := range []bool{false, true} {
		name := "same transaction"
		if commitFirst {
			name = "after commit"
		}
		t.Run(name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
				eng, log := openLogged(t, tg)
				ctx := context.Background()
				s := eng.NewSession()
				defer s.Close()
				a := newAccount("ann", 1)
				b := &testmodels.Blob{Data: []byte("x")}
				uowMust(t, s.Add(a, b))
				if commitFirst {
					uowMust(t, s.Commit(ctx))
				} else {
					uowMust(t, s.Flush(ctx))
				}
				uowMust(t, s.Delete(a, b))
				if !s.IsDirty(a) || !s.IsDirty(b) {
					t.Errorf("objects marked deleted are not dirty: %v %v", s.IsDirty(a), s.IsDirty(b))
				}
				log.Reset()
				uowMust(t, s.Commit(ctx))
				if len(log.Matching("DELETE")) != 2 {
					t.Errorf("statements %q, want a DELETE for each table", log.SQL())
				}
				if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts") + countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != 0 {
					t.Fatalf("%d rows left after Delete and Commit", n)
				}
			})
		})
	}
}

func TestFlushCycleIsAnError(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		checkCycle := func(where string, err error) {
			t.Helper()
			var ce *orm.CycleError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: %v (%T), want a *orm.CycleError", where, err, err)
			}
			if !slices.Contains(ce.Tables, "cyc_a") || !slices.Contains(ce.Tables, "cyc_b") {
				t.Fatalf("%s: the cycle names %q, want cyc_a and cyc_b", where, ce.Tables)
			}
			if msg := err.Error(); !strings.Contains(msg, "cyc_a") || !strings.Contains(msg, "cyc_b") {
				t.Fatalf("%s: the message does not name both tables: %s", where, msg)
			}
		}

		log.Reset()
		checkCycle("CreateTables", eng.CreateTables(ctx, testmodels.CycA{}, testmodels.CycB{}))
		if sqls := log.SQL(); len(sqls) != 0 {
			t.Fatalf("CreateTables of a cycle sent %q", sqls)
		}

		s := eng.NewSession()
		defer s.Close()
		a := &testmodels.CycA{B: &testmodels.CycB{}}
		uowMust(t, s.Add(a))
		err := s.Flush(ctx)
		checkCycle("Flush", err)
		var fe *orm.FlushError
		if !errors.As(err, &fe) || fe.Autoflush {
			t.Fatalf("Flush: %v, want a *orm.FlushError from an explicit flush", err)
		}
		if sqls := log.SQL(); len(sqls) != 0 {
			t.Fatalf("a flush that cannot be ordered sent %q", sqls)
		}
		if p := s.Pending(); len(p) != 2 {
			t.Fatalf("Pending() = %v, want both objects still pending", p)
		}
	})
}

// --- Batching -------------------------------------------------------------

// uowInsertAccountsSQL is the multi-row INSERT of n accounts.
func uowInsertAccountsSQL(tg dbtest.Target, n int, returning bool) string {
	rows := strings.Repeat("(?, ?, ?, ?, ?), ", n)
	q := `INSERT INTO "accounts" ("owner", "balance", "version", "note", "created_at") VALUES ` + rows[:len(rows)-2]
	if returning {
		q += ` RETURNING "id"`
	}
	return uowSQL(tg, q)
}

// uowCheckKeys checks that each account's key is its row's.
func uowCheckKeys(t *testing.T, eng *orm.Engine, accts []*Account) {
	t.Helper()
	ids := uowAccountIDs(t, eng)
	for _, a := range accts {
		if a.ID == 0 || ids[a.Owner] != a.ID {
			t.Fatalf("%s has id %d, its row %d", a.Owner, a.ID, ids[a.Owner])
		}
	}
}

func TestFlushBatchesInsertsWithReturning(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		if !eng.Dialect().Returning() {
			t.Fatalf("%s: the dialect has no RETURNING; the local MySQL server is MariaDB ≥ 10.5, which has", tg.Name)
		}
		s := eng.NewSession()
		defer s.Close()
		var accts []*Account
		for i := range 10 {
			// Owners out of key order, to see that keys follow Add order.
			a := newAccount(fmt.Sprintf("owner%02d", 9-i), int64(i))
			accts = append(accts, a)
			uowMust(t, s.Add(a))
		}
		uowMust(t, s.Commit(ctx))
		evs := log.Events()
		if len(evs) != 1 {
			t.Fatalf("statements %q, want one INSERT, alone (a single-statement commit)", log.SQL())
		}
		if want := uowInsertAccountsSQL(tg, 10, true); evs[0].SQL != want {
			t.Fatalf("INSERT:\n got %s\nwant %s", evs[0].SQL, want)
		}
		if len(evs[0].Args) != 50 || evs[0].Rows != 10 {
			t.Fatalf("INSERT bound %d values and returned %d rows, want 50 and 10", len(evs[0].Args), evs[0].Rows)
		}
		uowCheckKeys(t, eng, accts)
		for i := 1; i < len(accts); i++ {
			if accts[i].ID <= accts[i-1].ID {
				t.Fatalf("keys not in Add order: %d after %d", accts[i].ID, accts[i-1].ID)
			}
		}
		for _, a := range accts {
			if a.Version != 1 {
				t.Fatalf("%s: version %d, want 1", a.Owner, a.Version)
			}
		}
	})
}

// The local MySQL server is MariaDB, which has RETURNING; an engine built
// with dialect.MySQL over the same pool takes MySQL 8's path instead: one
// INSERT per row and LastInsertId.
func TestFlushInsertsWithoutReturning(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.MySQL {
			t.Skip("only MySQL has a dialect without RETURNING")
		}
		base := openEngine(t, tg, nil)
		log := &queryLog{}
		eng := orm.New(base.DB().DB, dialect.MySQL, orm.WithQueryHook(log.hook)) // closed with base
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		var accts []*Account
		for i := range 10 {
			a := newAccount(fmt.Sprintf("owner%02d", 9-i), int64(i))
			accts = append(accts, a)
		}
		uowMust(t, s.Add(anys(accts)...))
		uowMust(t, s.Commit(ctx))
		ins := log.Matching("INSERT")
		if len(ins) != 10 {
			t.Fatalf("%d INSERTs, want one per row: %q", len(ins), log.SQL())
		}
		want := uowInsertAccountsSQL(tg, 1, false)
		for _, ev := range ins {
			if ev.SQL != want {
				t.Fatalf("INSERT:\n got %s\nwant %s", ev.SQL, want)
			}
		}
		uowCheckKeys(t, eng, accts)
	})
}

// 3000 Blobs bind one value each: the 1000-row cap, not the parameter
// limit, makes three statements.
func TestFlushChunksInserts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		blobs := make([]*testmodels.Blob, 3000)
		for i := range blobs {
			blobs[i] = &testmodels.Blob{Data: fmt.Appendf(nil, "blob %d", i)}
		}
		uowMust(t, s.Add(anys(blobs)...))
		uowMust(t, s.Commit(ctx))
		ins := log.Matching(uowSQL(tg, `INSERT INTO "blobs"`))
		if len(ins) != 3 {
			t.Fatalf("%d INSERTs, want 3", len(ins))
		}
		for _, ev := range ins {
			if len(ev.Args) != 1000 || !strings.HasSuffix(ev.SQL, uowSQL(tg, ` RETURNING "id"`)) {
				t.Fatalf("an INSERT bound %d values (want 1000): %.80s...", len(ev.Args), ev.SQL)
			}
		}
		uowCheckBlobs(t, eng, blobs)
	})
}

// uowCheckBlobs checks that every blob's key is the row holding its data.
func uowCheckBlobs(t *testing.T, eng *orm.Engine, blobs []*testmodels.Blob) {
	t.Helper()
	rows, err := eng.DB().QueryContext(context.Background(), "SELECT id, data FROM blobs")
	uowMust(t, err)
	defer rows.Close()
	data := map[int64]string{}
	for rows.Next() {
		var id int64
		var d []byte
		uowMust(t, rows.Scan(&id, &d))
		data[id] = string(d)
	}
	uowMust(t, rows.Err())
	if len(data) != len(blobs) {
		t.Fatalf("%d rows, want %d", len(data), len(blobs))
	}
	for _, b := range blobs {
		if got, ok := data[b.ID]; !ok || got != string(b.Data) {
			t.Fatalf("blob %d holds %q, want %q", b.ID, got, b.Data)
		}
	}
}

// Wide binds 40 values a row: SQLite's 32766 parameters allow 819 rows a
// statement, below the 1000-row cap; MySQL's and PostgreSQL's 65535 do not
// bind before the cap.
func TestFlushChunksUnderParameterLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, testmodels.Wide{}))
		s := eng.NewSession()
		defer s.Close()
		rows := make([]*testmodels.Wide, 2000)
		for i := range rows {
			rows[i] = &testmodels.Wide{C01: int64(i), C40: int64(-i)}
		}
		uowMust(t, s.Add(anys(rows)...))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		var got []int
		for _, ev := range log.Matching(uowSQL(tg, `INSERT INTO "wides"`)) {
			got = append(got, len(ev.Args)/40)
			if len(ev.Args) > eng.Dialect().MaxParams() {
				t.Fatalf("an INSERT bound %d values, over the limit %d", len(ev.Args), eng.Dialect().MaxParams())
			}
		}
		want := map[string][]int{
			dbtest.SQLite:   {819, 819, 362},
			dbtest.MySQL:    {1000, 1000},
			dbtest.Postgres: {1000, 1000},
		}[tg.Name]
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("rows per INSERT (-want +got):\n%s", diff)
		}
		for i, w := range rows {
			if n := countRows(t, eng, "SELECT COUNT(*) FROM wides WHERE id = ? AND c01 = ? AND c40 = ?", w.ID, i, -i); n != 1 {
				t.Fatalf("row %d (id %d) not stored under its key", i, w.ID)
			}
			if i == 50 {
				break // enough to see the keys line up; 2000 queries would be slow
			}
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM wides"); n != 2000 {
			t.Fatalf("%d rows, want 2000", n)
		}
	})
}

func TestFlushBatchesDeletes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		seeded := make([]*testmodels.Blob, 6)
		for i := range seeded {
			seeded[i] = &testmodels.Blob{Data: []byte{byte(i)}}
		}
		ann, bob := newAccount("ann", 1), newAccount("bob", 2)
		seedObjects(t, eng, append(anys(seeded), ann, bob)...)

		// Loaded in a session of their own (TestFlushDeleteOfInsertedObject
		// covers deleting what the same session inserted).
		s := eng.NewSession()
		defer s.Close()
		blobs := make([]*testmodels.Blob, len(seeded))
		for i, sb := range seeded {
			var err error
			blobs[i], err = orm.Get[testmodels.Blob](ctx, s, sb.ID)
			uowMust(t, err)
		}
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		b, err := orm.Get[Account](ctx, s, bob.ID)
		uowMust(t, err)

		del := []*testmodels.Blob{blobs[4], blobs[0], blobs[2], blobs[1], blobs[5]}
		uowMust(t, s.Delete(anys(del)...))
		uowMust(t, s.Delete(a, b))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		// No version: one DELETE ... IN for all five, in Delete order.
		// A version column: one checked DELETE per row.
		dels := log.Matching("DELETE")
		var got []string
		for _, ev := range dels {
			got = append(got, ev.SQL)
		}
		want := []string{
			uowSQL(tg, `DELETE FROM "blobs" WHERE "id" IN (?, ?, ?, ?, ?)`),
			uowSQL(tg, `DELETE FROM "accounts" WHERE "id" = ? AND "version" = ?`),
			uowSQL(tg, `DELETE FROM "accounts" WHERE "id" = ? AND "version" = ?`),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DELETE statements (-want +got):\n%s", diff)
		}
		var wantIDs []any
		for _, b := range del {
			wantIDs = append(wantIDs, b.ID)
		}
		if diff := cmp.Diff(wantIDs, dels[0].Args); diff != "" {
			t.Fatalf("DELETE ... IN args (-want +got):\n%s", diff)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs WHERE id = ?", blobs[3].ID); n != 1 || countRows(t, eng, "SELECT COUNT(*) FROM blobs") != 1 {
			t.Fatal("want only blob 3 left")
		}
	})
}

// --- Optimistic locking ---------------------------------------------------

func TestFlushVersionCounter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := newAccount("ann", 1)
		uowMust(t, s.Add(a))
		uowMust(t, s.Commit(ctx))
		for want := int64(1); want <= 3; want++ {
			if a.Version != want || countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE id = ? AND version = ?", a.ID, want) != 1 {
				t.Fatalf("version %d in memory, want %d in memory and in the row", a.Version, want)
			}
			a.Balance++
			uowMust(t, s.Commit(ctx))
		}
	})
}

// uowLoadTwice loads the account id in two new sessions and ends their
// read transactions, so that each later Commit begins a fresh transaction:
// on SQLite a session still holding the snapshot it read would get busy
// (ErrRetryable) on writing instead of reaching the version check.
func uowLoadTwice(t *testing.T, eng *orm.Engine, id int64) (s1, s2 *orm.Session, a1, a2 *Account) {
	t.Helper()
	ctx := context.Background()
	s1, s2 = eng.NewSession(), eng.NewSession()
	t.Cleanup(func() { s1.Close(); s2.Close() })
	var err error
	a1, err = orm.Get[Account](ctx, s1, id)
	uowMust(t, err)
	a2, err = orm.Get[Account](ctx, s2, id)
	uowMust(t, err)
	uowMust(t, s1.Commit(ctx))
	uowMust(t, s2.Commit(ctx))
	return s1, s2, a1, a2
}

func TestFlushStaleUpdate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)
		s1, s2, a1, a2 := uowLoadTwice(t, eng, ann.ID)

		a1.Balance = 90
		a2.Balance = 80
		uowMust(t, s1.Commit(ctx))
		err := s2.Commit(ctx)
		var se *orm.StaleDataError
		if !errors.As(err, &se) || !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("second Commit: %v, want a *orm.StaleDataError", err)
		}
		if diff := cmp.Diff(&orm.StaleDataError{Op: "UPDATE", Table: "accounts", Key: []any{ann.ID}}, se); diff != "" {
			t.Fatalf("StaleDataError (-want +got):\n%s", diff)
		}
		// Nothing lost: still dirty, the version as loaded.
		if !s2.IsDirty(a2) || a2.Balance != 80 || a2.Version != 1 {
			t.Fatalf("after the stale Commit: dirty %v balance %d version %d; want true 80 1", s2.IsDirty(a2), a2.Balance, a2.Version)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance = 90 AND version = 2"); n != 1 {
			t.Fatal("the first Commit's row was changed")
		}
		// The way out: reload, reapply, commit.
		uowMust(t, s2.Refresh(ctx, a2))
		a2.Balance -= 20
		uowMust(t, s2.Commit(ctx))
		if a2.Version != 3 || countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance = 70 AND version = 3") != 1 {
			t.Fatalf("after reloading: version %d, want 3 and balance 70 in the row", a2.Version)
		}
	})
}

func TestFlushStaleDelete(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann)
		s1, s2, a1, a2 := uowLoadTwice(t, eng, ann.ID)

		a1.Balance = 90
		uowMust(t, s1.Commit(ctx))
		uowMust(t, s2.Delete(a2))
		err := s2.Commit(ctx)
		var se *orm.StaleDataError
		if !errors.As(err, &se) || !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("Commit of a stale delete: %v, want a *orm.StaleDataError", err)
		}
		if diff := cmp.Diff(&orm.StaleDataError{Op: "DELETE", Table: "accounts", Key: []any{ann.ID}}, se); diff != "" {
			t.Fatalf("StaleDataError (-want +got):\n%s", diff)
		}
		if !s2.IsDirty(a2) {
			t.Fatal("the delete is no longer marked after the failure")
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts"); n != 1 {
			t.Fatalf("%d rows, want the account kept", n)
		}
	})
}

// --- A failed flush or commit loses nothing -------------------------------

// The test: five pending accounts, the third's owner taken.
func TestCommitFailureLosesNothing(t *testing.T) {
	run := func(t *testing.T, eng *orm.Engine) {
		ctx := context.Background()
		seedObjects(t, eng, newAccount("taken", 1))
		s := eng.NewSession()
		defer s.Close()
		accts := []*Account{
			newAccount("a1", 1), newAccount("a2", 2), newAccount("taken", 3), newAccount("a4", 4), newAccount("a5", 5),
		}
		uowMust(t, s.Add(anys(accts)...))
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		var fe *orm.FlushError
		if !errors.As(err, &fe) || fe.Autoflush || fe.Op != "INSERT" || fe.Table != "accounts" {
			t.Fatalf("Commit: %#v, want a *orm.FlushError for the accounts INSERT", err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts"); n != 1 {
			t.Fatalf("%d rows, want only the committed one (none of the five)", n)
		}
		if diff := cmp.Diff(anys(accts), s.Pending()); diff != "" {
			t.Fatalf("Pending() (-want +got):\n%s", diff)
		}
		for _, a := range accts {
			if a.ID != 0 || a.Version != 0 {
				t.Fatalf("%s: id %d version %d after the failure, want 0 0", a.Owner, a.ID, a.Version)
			}
		}
		if eng.DB().Stats().InUse != 0 {
			t.Fatal("the failed Commit kept its connection")
		}
		accts[2].Owner = "a3"
		uowMust(t, s.Commit(ctx))
		uowCheckKeys(t, eng, accts)
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts"); n != 6 {
			t.Fatalf("%d rows, want 6", n)
		}
		for _, a := range accts {
			if a.Version != 1 {
				t.Fatalf("%s: version %d, want 1", a.Owner, a.Version)
			}
		}
	}
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		run(t, eng)
		if tg.Name == dbtest.MySQL {
			// Without RETURNING the first two rows are inserted, one
			// statement each, before the third fails: they must be
			// undone too.
			t.Run("without RETURNING", func(t *testing.T) {
				uowMust(t, eng.DropTables(context.Background(), testmodels.Models...))
				uowMust(t, eng.CreateTables(context.Background(), testmodels.Models...))
				run(t, orm.New(eng.DB().DB, dialect.MySQL))
			})
		}
	})
}

// An UPDATE that ran before the failing statement is undone in the
// database, so the object stays dirty, with its version as before.
func TestCommitFailureKeepsFlushedUpdateDirty(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann, &testmodels.Tag{Kind: "k", Name: "taken"})

		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[Account](ctx, s, ann.ID)
		uowMust(t, err)
		a.Balance = 50
		tag := &testmodels.Tag{Kind: "k", Name: "taken"} // accounts flush before tags
		uowMust(t, s.Add(tag))
		log.Reset()
		err = s.Commit(ctx)
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if uowIndex(log.SQL(), uowSQL(tg, `UPDATE "accounts"`)) < 0 {
			t.Fatalf("statements %q: the test needs the UPDATE to run before the failure", log.SQL())
		}
		if !s.IsDirty(a) || a.Balance != 50 || a.Version != 1 {
			t.Fatalf("after the failure: dirty %v balance %d version %d; want true 50 1", s.IsDirty(a), a.Balance, a.Version)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance = 100 AND version = 1"); n != 1 {
			t.Fatal("the UPDATE was not rolled back")
		}
		tag.Name = "free"
		uowMust(t, s.Commit(ctx))
		if a.Version != 2 || countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance = 50 AND version = 2") != 1 {
			t.Fatalf("after fixing: version %d, want 2 and balance 50 in the row", a.Version)
		}
	})
}

// A DELETE flushed before a failure is undone in the database, so the
// object stays marked, and the next successful Commit deletes it.
func TestCommitFailureKeepsFlushedDeleteMarked(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		blob := &testmodels.Blob{Data: []byte("x")}
		seedObjects(t, eng, blob, &testmodels.Tag{Kind: "k", Name: "taken"})

		s := eng.NewSession()
		defer s.Close()
		b, err := orm.Get[testmodels.Blob](ctx, s, blob.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(b))
		uowMust(t, s.Flush(ctx)) // the DELETE runs
		if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != 1 {
			t.Fatalf("%d blobs visible outside the transaction, want 1 (uncommitted delete)", n)
		}
		tag := &testmodels.Tag{Kind: "k", Name: "taken"}
		uowMust(t, s.Add(tag))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != 1 {
			t.Fatalf("%d blobs after the failure, want the row back", n)
		}
		if !s.IsDirty(b) {
			t.Fatal("the delete is no longer marked after the failure")
		}
		if _, err := orm.Get[testmodels.Blob](ctx, s, blob.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of the blob marked deleted: %v, want ErrNotFound", err)
		}
		tag.Name = "free"
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM blobs"); n != 0 {
			t.Fatalf("%d blobs after the second Commit, want 0", n)
		}
	})
}

// An INSERT flushed earlier in the transaction is undone with it: the
// object is pending again.
func TestCommitFailureUndoesEarlierFlush(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		seedObjects(t, eng, newAccount("taken", 0))
		s := eng.NewSession()
		defer s.Close()
		first := newAccount("first", 1)
		uowMust(t, s.Add(first))
		uowMust(t, s.Flush(ctx))
		if first.ID == 0 || first.Version != 1 {
			t.Fatalf("after Flush: %+v", first)
		}
		second := newAccount("taken", 2)
		uowMust(t, s.Add(second))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if diff := cmp.Diff([]any{first, second}, s.Pending()); diff != "" {
			t.Fatalf("Pending() (-want +got):\n%s", diff)
		}
		if first.ID != 0 || first.Version != 0 {
			t.Fatalf("the earlier flush's insert kept id %d version %d, want 0 0", first.ID, first.Version)
		}
		second.Owner = "second"
		uowMust(t, s.Commit(ctx))
		uowCheckKeys(t, eng, []*Account{first, second})
	})
}

func TestFlushFailureThenCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		seedObjects(t, eng, newAccount("taken", 0))
		s := eng.NewSession()
		defer s.Close()
		accts := []*Account{newAccount("x", 1), newAccount("taken", 2), newAccount("z", 3)}
		uowMust(t, s.Add(anys(accts)...))
		err := s.Flush(ctx)
		var fe *orm.FlushError
		if !errors.As(err, &fe) || fe.Autoflush || !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Flush: %v, want a *orm.FlushError (not autoflush) matching ErrUniqueViolation", err)
		}
		if diff := cmp.Diff(anys(accts), s.Pending()); diff != "" {
			t.Fatalf("Pending() (-want +got):\n%s", diff)
		}
		accts[1].Owner = "y"
		uowMust(t, s.Commit(ctx))
		uowCheckKeys(t, eng, accts)
	})
}

// Refresh reads committed data: a later failed Commit must not undo it.
// Before the Commit below the object is clean at version 2; after the
// failure it must be so again, or the retry sends a stale UPDATE.
func TestCommitFailureKeepsRefresh(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ann := newAccount("ann", 100)
		seedObjects(t, eng, ann, &testmodels.Tag{Kind: "k", Name: "taken"})
		s1, s2, a1, a2 := uowLoadTwice(t, eng, ann.ID)

		a2.Balance = 70
		uowMust(t, s2.Commit(ctx)) // version 2
		uowMust(t, s1.Refresh(ctx, a1))
		if a1.Balance != 70 || a1.Version != 2 || s1.IsDirty(a1) {
			t.Fatalf("after Refresh: balance %d version %d dirty %v", a1.Balance, a1.Version, s1.IsDirty(a1))
		}
		tag := &testmodels.Tag{Kind: "k", Name: "taken"}
		uowMust(t, s1.Add(tag))
		if err := s1.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if a1.Balance != 70 || a1.Version != 2 || s1.IsDirty(a1) {
			t.Errorf("after the failed Commit: balance %d version %d dirty %v; want 70 2 false, as before it",
				a1.Balance, a1.Version, s1.IsDirty(a1))
		}
		tag.Name = "free"
		if err := s1.Commit(ctx); err != nil {
			t.Fatalf("Commit after fixing the tag: %v", err)
		}
	})
}
