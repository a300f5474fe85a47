package orm_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Tests of Add's rules for objects that come from outside the session
// (DESIGN.md "Objects from outside the session: Merge"): an untracked
// object with a database-generated key is refused, a key freed by a
// flushed DELETE can be reused, reachable objects follow Add's rule, and
// an object belongs to one session at a time. Helpers carry an ar prefix.

type Tag = testmodels.Tag

// ArParent and ArChild have client-set (not generated) keys.
type ArParent struct {
	ID       int64      `db:"id,pk"`
	Name     string     `db:"name,size=32"`
	Children []*ArChild `rel:"parent_id"`
}

type ArChild struct {
	ID       int64     `db:"id,pk"`
	ParentID int64     `db:"parent_id,index"`
	Parent   *ArParent `rel:"parent_id"`
	Note     string    `db:"note,size=32"`
}

// TableName names ArParent's table.
func (ArParent) TableName() string { return "ar_parents" }

// TableName names ArChild's table.
func (ArChild) TableName() string { return "ar_children" }

// arOpen is openLogged with the ArParent and ArChild tables too.
func arOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), ArParent{}, ArChild{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

func TestAddRefusesUntrackedObjectWithGeneratedKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		s := eng.NewSession()
		defer s.Close()
		u := newAccount("ann", 100)
		uowMust(t, s.Add(u))
		uowMust(t, s.Commit(ctx))
		id := u.ID

		// Expunged, then added again: refused, nothing added.
		uowMust(t, s.Expunge(u))
		u.Balance = 5
		err := s.Add(u)
		if !errors.Is(err, orm.ErrDetachedObject) || !strings.Contains(err.Error(), "orm.Merge") {
			t.Fatalf("Add of an expunged account: err = %v, want ErrDetachedObject saying to use orm.Merge", err)
		}
		// Decoded from JSON in another session; with a valid object in the
		// same call, which Add must not keep either (all or nothing).
		var decoded Account
		uowMust(t, json.Unmarshal([]byte(`{"ID":`+jsonInt(id)+`,"Owner":"ann","Balance":7,"Version":1}`), &decoded))
		s2 := eng.NewSession()
		defer s2.Close()
		ok := newAccount("bob", 1)
		if err := s2.Add(ok, &decoded); !errors.Is(err, orm.ErrDetachedObject) {
			t.Fatalf("Add of a decoded account: err = %v, want ErrDetachedObject", err)
		}
		if p := s2.Pending(); len(p) != 0 {
			t.Errorf("after the failed Add, Pending() = %v, want nothing (Add is all or nothing)", p)
		}
		uowMust(t, s.Commit(ctx))
		uowMust(t, s2.Commit(ctx))
		if n := countAccounts(t, eng, ""); n != 1 {
			t.Errorf("accounts = %d, want 1 (no second row for the same object)", n)
		}
		if u.ID != id || decoded.ID != id {
			t.Errorf("keys = %d and %d, want both %d (never overwritten)", u.ID, decoded.ID, id)
		}
		if n := countAccounts(t, eng, "balance = ?", 100); n != 1 {
			t.Errorf("accounts with the committed balance 100 = %d, want 1", n)
		}
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestAddReusesKeyAfterFlushedDelete(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, log := arOpen(t, tg)
		seedObjects(t, eng, &Tag{Kind: "user", Name: "u2", Uses: 1})
		s := eng.NewSession()
		defer s.Close()
		old, err := orm.Get[Tag](ctx, s, "user", "u2")
		uowMust(t, err)
		uowMust(t, s.Delete(old))
		uowMust(t, s.Flush(ctx))
		if _, err := orm.Get[Tag](ctx, s, "user", "u2"); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get after the flushed DELETE: err = %v, want ErrNotFound", err)
		}
		nt := &Tag{Kind: "user", Name: "u2", Uses: 2}
		if err := s.Add(nt); err != nil {
			t.Fatalf("Add of a new object with the freed key: %v, want nil", err)
		}
		got, err := orm.Get[Tag](ctx, s, "user", "u2")
		if err != nil || got != nt {
			t.Fatalf("Get after Add = %p, %v; want the new object %p", got, err, nt)
		}
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags WHERE kind = 'user' AND name = 'u2' AND uses = 2"); n != 1 {
			t.Errorf("new rows u2 = %d, want 1", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags"); n != 1 {
			t.Errorf("tags = %d, want 1", n)
		}
		log.Reset()
		if got, err := orm.Get[Tag](ctx, s, "user", "u2"); err != nil || got != nt {
			t.Errorf("Get after commit = %p, %v; want the new object %p", got, err, nt)
		}
		if sqls := log.SQL(); len(sqls) != 0 {
			t.Errorf("Get after commit sent %q, want no SQL (identity map)", sqls)
		}
	})
}

func TestFailedCommitRestoresReusedKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		acct := newAccount("ann", 10)
		acct.Entries = []*Entry{{Amount: 10}}
		seedObjects(t, eng, acct, &Tag{Kind: "user", Name: "u2", Uses: 1})
		s := eng.NewSession()
		defer s.Close()
		old, err := orm.Get[Tag](ctx, s, "user", "u2")
		uowMust(t, err)
		uowMust(t, s.Delete(old))
		uowMust(t, s.Flush(ctx))
		nt := &Tag{Kind: "user", Name: "u2", Uses: 2}
		uowMust(t, s.Add(nt))
		// The account still has its entry: its DELETE, sent after the
		// new tag's INSERT, fails on the foreign key.
		a, err := orm.Get[Account](ctx, s, acct.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(a))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrForeignKeyViolation) {
			t.Fatalf("Commit: err = %v, want ErrForeignKeyViolation", err)
		}
		// Restored: the tag's delete mark (no longer flushed), the new
		// tag pending, the account's delete mark; the database untouched.
		if p := s.Pending(); len(p) != 1 || p[0] != nt {
			t.Errorf("Pending() = %v, want [the new tag]", p)
		}
		if !s.IsDirty(old) || !s.IsDirty(a) {
			t.Errorf("IsDirty(old tag), IsDirty(account) = %v, %v; want both true (still marked deleted)", s.IsDirty(old), s.IsDirty(a))
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags WHERE uses = 1"); n != 1 {
			t.Errorf("old tag rows = %d, want 1 (its DELETE rolled back)", n)
		}
		// Fixed (the account kept), the next Commit deletes the old row
		// before inserting the new one.
		uowMust(t, s.Add(a))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit after the fix: %v", err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags WHERE uses = 2"); n != 1 {
			t.Errorf("new tag rows = %d, want 1", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags"); n != 1 {
			t.Errorf("tags = %d, want 1", n)
		}
		if n := countAccounts(t, eng, ""); n != 1 {
			t.Errorf("accounts = %d, want 1", n)
		}
	})
}

func TestAddInsertsReachableObjectsWithClientSetKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		s := eng.NewSession()
		defer s.Close()
		p := &ArParent{ID: 7, Name: "p7", Children: []*ArChild{{ID: 70, Note: "a"}, {ID: 71, Note: "b"}}}
		c := &ArChild{ID: 80, Note: "c", Parent: &ArParent{ID: 8, Name: "p8"}}
		uowMust(t, s.Add(p, c))
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ar_children WHERE parent_id = 7"); n != 2 {
			t.Errorf("children of 7 = %d, want 2 (has-many with client-set keys inserted)", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ar_parents WHERE id = 8"); n != 1 {
			t.Errorf("parent 8 rows = %d, want 1 (belongs-to with a client-set key inserted)", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ar_children WHERE id = 80 AND parent_id = 8"); n != 1 {
			t.Errorf("child 80 of 8 = %d, want 1", n)
		}
		// A reachable object with a client-set key is a new row: one that
		// exists is a unique violation at commit, not silently skipped.
		s2 := eng.NewSession()
		defer s2.Close()
		uowMust(t, s2.Add(&ArChild{ID: 90, Parent: &ArParent{ID: 7, Name: "again"}}))
		if err := s2.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Errorf("Commit of an existing reachable parent: err = %v, want ErrUniqueViolation", err)
		}
	})
}

func TestAddTakesReachableObjectWithGeneratedKeyAsReference(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, log := arOpen(t, tg)
		acct := newAccount("ann", 10)
		other := newAccount("bob", 20)
		seedObjects(t, eng, acct, other)
		s := eng.NewSession()
		defer s.Close()
		ref := &Account{ID: acct.ID} // the idiom: point at row acct.ID
		e := &Entry{Amount: 5, Account: ref}
		uowMust(t, s.Add(e))
		if s.IsDirty(ref) {
			t.Error("IsDirty(reference) = true, want false: a reference is not tracked")
		}
		log.Reset()
		uowMust(t, s.Commit(ctx))
		for _, ev := range log.Events() {
			if strings.Contains(ev.SQL, "accounts") {
				t.Errorf("Commit sent %q: a reference must not be inserted or updated", ev.SQL)
			}
		}
		if e.AccountID != acct.ID {
			t.Errorf("entry.AccountID = %d, want %d (the reference's key)", e.AccountID, acct.ID)
		}
		if n := countAccounts(t, eng, ""); n != 2 {
			t.Errorf("accounts = %d, want 2", n)
		}
		if n := countAccounts(t, eng, "id = ? AND owner = 'ann' AND balance = 10", acct.ID); n != 1 {
			t.Errorf("account %d was changed, want it untouched", acct.ID)
		}
	})
}

func TestAddRefusesObjectOfAnotherSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		s1, s2 := eng.NewSession(), eng.NewSession()
		defer s1.Close()
		defer s2.Close()
		c := newAccount("ann", 1)
		uowMust(t, s1.Add(c))
		if err := s2.Add(c); !errors.Is(err, orm.ErrOtherSession) {
			t.Fatalf("second session's Add: err = %v, want ErrOtherSession", err)
		}
		uowMust(t, s1.Commit(ctx))
		uowMust(t, s2.Commit(ctx))
		if n := countAccounts(t, eng, ""); n != 1 {
			t.Errorf("accounts = %d, want 1", n)
		}
		// Committed and still tracked by s1: still s1's.
		tag := &Tag{Kind: "k", Name: "n"}
		uowMust(t, s1.Add(tag))
		uowMust(t, s1.Commit(ctx))
		if err := s2.Add(tag); !errors.Is(err, orm.ErrOtherSession) {
			t.Fatalf("Add of a tag s1 committed and tracks: err = %v, want ErrOtherSession", err)
		}
		// Once s1 lets it go, s2 may take it (here as a new row with the
		// same natural key: the unique violation at commit tells).
		uowMust(t, s1.Expunge(tag))
		if err := s2.Add(tag); err != nil {
			t.Fatalf("Add after s1 expunged it: %v", err)
		}
		if err := s2.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Errorf("Commit of the tag again: err = %v, want ErrUniqueViolation", err)
		}
	})
}

func TestOwnershipReleasedWhenSessionsEnd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		check := func(when string) {
			t.Helper()
			if n := orm.OwnedObjects(eng); n != 0 {
				t.Errorf("%s: %d objects still registered, want 0", when, n)
			}
		}
		// Commit and Close.
		s := eng.NewSession()
		uowMust(t, s.Add(newAccount("a1", 1), &Tag{Kind: "k", Name: "1"}))
		uowMust(t, s.Commit(ctx))
		uowMust(t, s.Close())
		check("after Commit and Close")

		// Loaded objects are never registered: reading costs nothing.
		s = eng.NewSession()
		loaded, err := orm.Query[Account](s).All(ctx)
		if err != nil || len(loaded) != 1 {
			t.Fatalf("Query = %d accounts, %v; want 1", len(loaded), err)
		}
		check("while a session holds loaded objects")
		uowMust(t, s.Close())

		// Rollback, with the session still open.
		s = eng.NewSession()
		uowMust(t, s.Add(newAccount("a2", 1)))
		uowMust(t, s.Rollback(ctx))
		check("after Rollback")
		uowMust(t, s.Close())

		// Expunge, and Delete of a pending object.
		s = eng.NewSession()
		x, y := newAccount("a3", 1), newAccount("a4", 1)
		uowMust(t, s.Add(x, y))
		uowMust(t, s.Expunge(x))
		uowMust(t, s.Delete(y))
		check("after Expunge and Delete of pending objects")
		// The deletion of a committed object, committed.
		z := newAccount("a5", 1)
		uowMust(t, s.Add(z))
		uowMust(t, s.Commit(ctx))
		uowMust(t, s.Delete(z))
		uowMust(t, s.Commit(ctx))
		check("after the deletion committed")
		// A failed commit, then Close.
		uowMust(t, s.Add(newAccount("a1", 1))) // unique violation
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit of a duplicate owner: err = %v, want ErrUniqueViolation", err)
		}
		uowMust(t, s.Close())
		check("after a failed commit and Close")

		// A savepoint rolled back.
		s = eng.NewSession()
		uowMust(t, s.Savepoint(ctx, func() error {
			uowMust(t, s.Add(newAccount("a6", 1)))
			return nil
		}))
		_ = s.Savepoint(ctx, func() error {
			uowMust(t, s.Add(newAccount("a7", 1)))
			return errBoom
		})
		uowMust(t, s.Commit(ctx))
		uowMust(t, s.Close())
		check("after savepoints and Close")

		// Do: error, panic, success.
		_ = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			uowMust(t, s.Add(newAccount("d1", 1)))
			return errBoom
		})
		func() {
			defer func() { _ = recover() }()
			_ = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
				uowMust(t, s.Add(newAccount("d2", 1)))
				panic(errBoom)
			})
		}()
		uowMust(t, eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			return s.Add(newAccount("d3", 1))
		}))
		check("after Do")

		// Middleware: success, error status, panic.
		h := eng.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := orm.SessionFrom(r.Context())
			if err := s.Add(newAccount("m"+r.URL.Path[1:], 1)); err != nil {
				t.Error(err)
			}
			switch r.URL.Path {
			case "/panic":
				panic(errBoom)
			case "/fail":
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		for _, path := range []string{"/ok", "/fail", "/panic"} {
			func() {
				defer func() { _ = recover() }()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", path, nil))
			}()
		}
		check("after Middleware requests")
		if n := countAccounts(t, eng, "owner IN ('a1', 'a6', 'd3', 'mok')"); n != 4 {
			t.Errorf("committed accounts = %d, want 4", n)
		}
	})
}

func TestAddOfOneObjectFromManyGoroutinesStoresOneRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		c := newAccount("shared", 1)
		const n = 8
		errs := make(chan error, n)
		sessions := make([]*orm.Session, n)
		for i := range sessions {
			sessions[i] = eng.NewSession()
		}
		var start sync.WaitGroup
		start.Add(1)
		for _, s := range sessions {
			go func() {
				start.Wait()
				errs <- s.Add(c)
			}()
		}
		start.Done()
		ok := 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				ok++
			case !errors.Is(err, orm.ErrOtherSession):
				t.Errorf("Add: %v, want nil or ErrOtherSession", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d sessions took the object, want 1", ok)
		}
		for _, s := range sessions {
			uowMust(t, s.Commit(ctx))
			uowMust(t, s.Close())
		}
		if got := countAccounts(t, eng, "owner = 'shared'"); got != 1 {
			t.Errorf("rows = %d, want 1", got)
		}
		if got := orm.OwnedObjects(eng); got != 0 {
			t.Errorf("%d objects still registered after Close, want 0", got)
		}
	})
}

func TestFailedAddChangesNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := arOpen(t, tg)
		a, b := newAccount("a", 1), newAccount("b", 2)
		seedObjects(t, eng, a, b)
		s := eng.NewSession()
		defer s.Close()
		la, err := orm.Get[Account](ctx, s, a.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(la))
		// Adding la back would cancel its deletion, and c is valid; the
		// detached copy of b fails the whole call.
		c := newAccount("c", 3)
		if err := s.Add(la, c, &Account{ID: b.ID, Owner: "b"}); !errors.Is(err, orm.ErrDetachedObject) {
			t.Fatalf("Add: err = %v, want ErrDetachedObject", err)
		}
		if p := s.Pending(); len(p) != 0 {
			t.Errorf("Pending() = %v, want nothing", p)
		}
		if !s.IsDirty(la) {
			t.Error("IsDirty(a) = false, want true: its deletion must still be marked")
		}
		if n := orm.OwnedObjects(eng); n != 0 {
			t.Errorf("%d objects registered after the failed Add, want 0", n)
		}
		uowMust(t, s.Commit(ctx))
		if got := uowAccountIDs(t, eng); len(got) != 1 || got["b"] != b.ID {
			t.Errorf("accounts after commit = %v, want only b", got)
		}
	})
}
