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
// UPDATE per object.
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
