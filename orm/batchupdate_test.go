package orm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// updateStatements counts the UPDATE statements among events.
func updateStatements(evs []orm.QueryEvent) int {
	n := 0
	for _, ev := range evs {
		if strings.HasPrefix(ev.SQL, "UPDATE") {
			n++
		}
	}
	return n
}

// seedAccounts commits n accounts owned by a0, a1, ... with balance 100
// and returns them in key order.
func seedAccounts(t *testing.T, eng *orm.Engine, n int) []*Account {
	t.Helper()
	accts := make([]*Account, n)
	objs := make([]any, n)
	for i := range accts {
		accts[i] = newAccount(fmt.Sprintf("a%d", i), 100)
		objs[i] = accts[i]
	}
	seedObjects(t, eng, objs...)
	return accts
}

// In a pipelined commit (PostgreSQL, MySQL/MariaDB) objects of one table
// whose keys rise in session order and which changed the same columns are
// written by one UPDATE that checks every version; objects in another
// order keep one UPDATE each, in session order. Either way every row and
// object ends up written, versions bumped, nothing dirty. SQLite sends one
// UPDATE per object of a model with a version column, as Account has.
func TestBatchedUpdateWritesARunOfObjectsInOneStatement(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		seeded := seedAccounts(t, eng, 5)
		pipelined := tg.Name != dbtest.SQLite

		s := eng.NewSession()
		defer s.Close()
		accts, err := orm.Query[Account](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		for i, a := range accts {
			a.Balance = int64(200 + i)
		}
		log.Reset()
		uowMust(t, s.Commit(ctx))
		want := 5
		if pipelined {
			want = 1
		}
		if n := updateStatements(log.Take()); n != want {
			t.Fatalf("%d UPDATE statements for 5 objects in key order, want %d", n, want)
		}
		for i, a := range accts {
			if bal, ver := scopeAccount(t, eng, a.ID); bal != int64(200+i) || ver != 2 || a.Version != 2 || s.IsDirty(a) {
				t.Fatalf("account %d: row balance %d version %d, object version %d dirty %v; want %d, 2, 2, clean", a.ID, bal, ver, a.Version, s.IsDirty(a), 200+i)
			}
		}

		// Keys falling in session order: one statement per object.
		s2 := eng.NewSession()
		defer s2.Close()
		var got []*Account
		for i := len(seeded) - 1; i >= 0; i-- {
			a, err := orm.Get[Account](ctx, s2, seeded[i].ID)
			uowMust(t, err)
			a.Balance = 300
			got = append(got, a)
		}
		log.Reset()
		uowMust(t, s2.Commit(ctx))
		if n := updateStatements(log.Take()); n != 5 {
			t.Fatalf("%d UPDATE statements for 5 objects in falling key order, want 5", n)
		}
		for _, a := range got {
			if bal, ver := scopeAccount(t, eng, a.ID); bal != 300 || ver != 3 || a.Version != 3 {
				t.Fatalf("account %d: balance %d version %d (object %d), want 300 and 3", a.ID, bal, ver, a.Version)
			}
		}
	})
}

// A batched UPDATE in which one object is stale (another session changed
// its row) commits nothing: the commit runs again one UPDATE per object,
// which names the stale one in ErrStaleData, and the session is as it was
// before Commit.
func TestBatchedUpdateStaleObjectIsNamedAndNothingWritten(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		seedAccounts(t, eng, 3)

		s := eng.NewSession()
		defer s.Close()
		accts, err := orm.Query[Account](s).OrderBy("id").All(ctx)
		uowMust(t, err)

		other := eng.NewSession()
		o, err := orm.Get[Account](ctx, other, accts[1].ID)
		uowMust(t, err)
		o.Balance = 7
		uowMust(t, other.Commit(ctx))
		other.Close()

		for _, a := range accts {
			a.Balance = 500
		}
		err = s.Commit(ctx)
		var stale *orm.StaleDataError
		if !errors.As(err, &stale) || len(stale.Key) != 1 || fmt.Sprint(stale.Key[0]) != fmt.Sprint(accts[1].ID) {
			t.Fatalf("Commit: %v, want ErrStaleData naming account %d", err, accts[1].ID)
		}
		for i, a := range accts {
			wantBal, wantVer := int64(100), int64(1)
			if i == 1 {
				wantBal, wantVer = 7, 2
			}
			if bal, ver := scopeAccount(t, eng, a.ID); bal != wantBal || ver != wantVer {
				t.Fatalf("account %d: balance %d version %d, want %d and %d: nothing of the failed commit written", a.ID, bal, ver, wantBal, wantVer)
			}
			if !s.IsDirty(a) || a.Version != 1 || a.Balance != 500 {
				t.Fatalf("account %d after the failed commit: dirty %v, version %d, balance %d; want dirty, 1, 500", a.ID, s.IsDirty(a), a.Version, a.Balance)
			}
		}
	})
}

// A unique value that moves along rows within one commit (a to c, then b
// to a) commits when the ordered statements would: a single statement may
// meet the old value first, depending on the order the server visits the
// rows, and then the commit runs again one UPDATE per object, in order.
func TestBatchedUpdateMovingAUniqueValueCommits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		seeded := seedAccounts(t, eng, 2)
		// Rewrite the first row, so that on PostgreSQL its new version
		// lies after the second's and a scan meets the second first.
		touch := eng.NewSession()
		a0, err := orm.Get[Account](ctx, touch, seeded[0].ID)
		uowMust(t, err)
		a0.Balance = 101
		uowMust(t, touch.Commit(ctx))
		touch.Close()

		s := eng.NewSession()
		defer s.Close()
		accts, err := orm.Query[Account](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		accts[0].Owner = "c"  // a0 → c: frees a0
		accts[1].Owner = "a0" // a1 → a0, taken by the first object's row until its UPDATE
		uowMust(t, s.Commit(ctx))
		var owners []string
		for _, a := range accts {
			var owner string
			if err := eng.DB().QueryRowContext(ctx, eng.Dialect().Rebind("SELECT owner FROM accounts WHERE id = ?"), a.ID).Scan(&owner); err != nil {
				t.Fatal(err)
			}
			owners = append(owners, owner)
		}
		if fmt.Sprint(owners) != "[c a0]" {
			t.Fatalf("owners %v, want [c a0]", owners)
		}
	})
}

// Handle is a model without a version column, whose updates SQLite also
// batches (see batchupdate.go), with a unique column to violate.
type Handle struct {
	ID    int64  `db:"id,pk,auto"`
	Name  string `db:"name,unique,size=32"`
	Score int64  `db:"score"`
}

// seedHandles commits handles named names, with score 0, and returns them
// in key order, read in a new session.
func seedHandles(t *testing.T, tg dbtest.Target, names ...string) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	ctx := context.Background()
	uowMust(t, eng.CreateTables(ctx, Handle{}))
	objs := make([]any, len(names))
	for i, n := range names {
		objs[i] = &Handle{Name: n}
	}
	seedObjects(t, eng, objs...)
	log.Reset()
	return eng, log
}

// loadHandles reads every handle, in key order, in a new session that
// the test closes.
func loadHandles(t *testing.T, eng *orm.Engine) (*orm.Session, []*Handle) {
	t.Helper()
	s := eng.NewSession()
	t.Cleanup(func() { s.Close() })
	hs, err := orm.Query[Handle](s).OrderBy("id").All(context.Background())
	uowMust(t, err)
	return s, hs
}

// handleRows returns "name:score" of every handle row, in key order.
func handleRows(t *testing.T, eng *orm.Engine) string {
	t.Helper()
	rows, err := eng.DB().QueryContext(context.Background(), "SELECT name, score FROM handles ORDER BY id")
	uowMust(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		var score int64
		uowMust(t, rows.Scan(&name, &score))
		out = append(out, fmt.Sprintf("%s:%d", name, score))
	}
	uowMust(t, rows.Err())
	return strings.Join(out, " ")
}

// Objects without a version column whose keys rise and which changed the
// same columns are written by one UPDATE on every database, SQLite
// included, with the same rows and clean objects as one UPDATE each.
func TestBatchedUpdateWithoutVersionIsOneStatementOnEveryDatabase(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := seedHandles(t, tg, "a", "b", "c", "d")
		ctx := context.Background()
		s, hs := loadHandles(t, eng)
		for i, h := range hs {
			h.Score = int64(10 * (i + 1))
		}
		hs[2].Name = "cc" // another column set: a run of its own
		log.Reset()
		uowMust(t, s.Commit(ctx))
		evs := log.Take()
		if n := updateStatements(evs); n != 3 {
			t.Fatalf("%d UPDATE statements (%q), want 3: the first two objects in one, then one each", n, log.SQL())
		}
		if got := handleRows(t, eng); got != "a:10 b:20 cc:30 d:40" {
			t.Fatalf("rows %q, want a:10 b:20 cc:30 d:40", got)
		}
		for _, h := range hs {
			if s.IsDirty(h) {
				t.Fatalf("handle %s dirty after the commit", h.Name)
			}
		}
	})
}

// A batched UPDATE that matches fewer rows than it has objects (a row
// another session deleted) fails the commit with ErrStaleData naming that
// object, as one UPDATE per object does: on SQLite the flush sends the
// per-object UPDATEs after the batch, in order. Nothing is written and the
// objects stay dirty.
func TestBatchedUpdateWithoutVersionNamesTheMissingRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := seedHandles(t, tg, "a", "b", "c")
		ctx := context.Background()
		s, hs := loadHandles(t, eng)
		if _, err := eng.DB().ExecContext(ctx, eng.Dialect().Rebind("DELETE FROM handles WHERE id = ?"), hs[1].ID); err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			h.Score = 9
		}
		log.Reset()
		err := s.Commit(ctx)
		var stale *orm.StaleDataError
		if !errors.As(err, &stale) || len(stale.Key) != 1 || fmt.Sprint(stale.Key[0]) != fmt.Sprint(hs[1].ID) {
			t.Fatalf("Commit: %v, want ErrStaleData naming handle %d", err, hs[1].ID)
		}
		if tg.Name == dbtest.SQLite {
			if ups := log.Matching("UPDATE"); len(ups) != 3 || !strings.Contains(ups[0].SQL, "CASE") || strings.Contains(ups[1].SQL, "CASE") {
				t.Fatalf("statements %q, want the batched UPDATE, then one per object up to the missing one", log.SQL())
			}
		}
		if got := handleRows(t, eng); got != "a:0 c:0" {
			t.Fatalf("rows %q, want a:0 c:0: nothing of the failed commit written", got)
		}
		for _, h := range hs {
			if !s.IsDirty(h) {
				t.Fatalf("handle %s clean after the failed commit, want dirty", h.Name)
			}
		}
	})
}

// A batched UPDATE that violates a unique constraint is answered by one
// UPDATE per object, so the commit fails or passes as they do: here the
// first object takes the second's name, which the ordered UPDATEs refuse
// too, with ErrUniqueViolation; nothing is written and the session can
// fix the value and commit.
func TestBatchedUpdateUniqueViolationFailsAsOrderedUpdates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := seedHandles(t, tg, "a", "b", "c")
		ctx := context.Background()
		s, hs := loadHandles(t, eng)
		hs[0].Name, hs[1].Name, hs[2].Name = "b", "x", "y"
		log.Reset()
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if tg.Name == dbtest.SQLite {
			if ups := log.Matching("UPDATE"); len(ups) != 2 || !strings.Contains(ups[0].SQL, "CASE") || ups[1].Err == nil {
				t.Fatalf("UPDATEs %q, want the batch, then the first object's, failing", log.SQL())
			}
		}
		if got := handleRows(t, eng); got != "a:0 b:0 c:0" {
			t.Fatalf("rows %q, want a:0 b:0 c:0: nothing of the failed commit written", got)
		}
		hs[0].Name = "z"
		uowMust(t, s.Commit(ctx))
		if got := handleRows(t, eng); got != "z:0 x:0 y:0" {
			t.Fatalf("rows %q after fixing the value, want z:0 x:0 y:0", got)
		}
	})
}
