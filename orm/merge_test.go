package orm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Tests of orm.Merge (DESIGN.md "Objects from outside the session:
// Merge"), on every database. Helpers carry a merge prefix.

// mergeSeed commits one account and returns a detached copy of it, as a
// client would send it back: same key, same version.
func mergeSeed(t *testing.T, eng *orm.Engine) Account {
	t.Helper()
	a := newAccount("ann", 100)
	seedObjects(t, eng, a)
	cp := *a
	cp.Entries = nil
	return cp
}

// mergeCount returns how many of evs are statements starting with prefix.
func mergeCount(evs []orm.QueryEvent, prefix string) int {
	n := 0
	for _, ev := range evs {
		if strings.HasPrefix(ev.SQL, prefix) {
			n++
		}
	}
	return n
}

func TestMergeIntoTrackedObjectSendsNoSQL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, log := openLogged(t, tg)
		in := mergeSeed(t, eng)
		s := eng.NewSession()
		defer s.Close()
		tracked, err := orm.Get[Account](ctx, s, in.ID)
		uowMust(t, err)
		log.Reset()
		in.Balance = 70
		got, err := orm.Merge(ctx, s, &in)
		uowMust(t, err)
		if got != tracked {
			t.Errorf("Merge returned %p, want the tracked object %p", got, tracked)
		}
		if sqls := log.SQL(); len(sqls) != 0 {
			t.Errorf("Merge sent %q, want no SQL (identity map hit)", sqls)
		}
		if tracked.Balance != 70 || !s.IsDirty(tracked) {
			t.Errorf("tracked balance = %d, dirty = %v; want 70, true", tracked.Balance, s.IsDirty(tracked))
		}
		if s.IsDirty(&in) {
			t.Error("the merged argument is tracked; want it left untracked")
		}
	})
}

func TestMergeLoadsTheRowByKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, log := openLogged(t, tg)
		in := mergeSeed(t, eng)
		s := eng.NewSession()
		defer s.Close()
		in.Balance = 55
		got, err := orm.Merge(ctx, s, &in)
		uowMust(t, err)
		if got == &in {
			t.Fatal("Merge returned its argument, want the session's own object")
		}
		if n := mergeCount(log.Take(), "SELECT"); n != 1 {
			t.Errorf("Merge sent %d SELECTs, want 1", n)
		}
		again, err := orm.Get[Account](ctx, s, in.ID)
		uowMust(t, err)
		if again != got || got.Balance != 55 || got.Owner != "ann" || got.ID != in.ID {
			t.Errorf("Get after Merge = %p %+v, want the merged object %p with balance 55", again, *again, got)
		}
		uowMust(t, s.Commit(ctx))
		if n := countAccounts(t, eng, "id = ? AND balance = 55 AND version = 2", in.ID); n != 1 {
			t.Errorf("rows with the merged balance and version 2 = %d, want 1", n)
		}
		if got.Version != 2 {
			t.Errorf("merged object's version = %d after commit, want 2", got.Version)
		}
	})
}

func TestMergeOfUnchangedObjectWritesNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, log := openLogged(t, tg)
		in := mergeSeed(t, eng)
		log.Reset()
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Merge(ctx, s, &in)
		uowMust(t, err)
		if s.IsDirty(got) {
			t.Error("IsDirty after merging an unchanged object = true, want false")
		}
		uowMust(t, s.Commit(ctx))
		evs := log.Take()
		if sel, upd, ins := mergeCount(evs, "SELECT"), mergeCount(evs, "UPDATE"), mergeCount(evs, "INSERT"); sel != 1 || upd != 0 || ins != 0 {
			t.Errorf("Merge and Commit sent %d SELECT, %d UPDATE, %d INSERT; want 1, 0, 0", sel, upd, ins)
		}
	})
}

func TestMergeUpdatesOnlyChangedColumns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, log := openLogged(t, tg)
		in := mergeSeed(t, eng)
		s := eng.NewSession()
		defer s.Close()
		note := "vip"
		in.Note = &note
		_, err := orm.Merge(ctx, s, &in)
		uowMust(t, err)
		log.Reset()
		uowMust(t, s.Commit(ctx))
		ups := log.Matching("UPDATE")
		if len(ups) != 1 {
			t.Fatalf("Commit sent %d UPDATEs, want 1: %q", len(ups), log.SQL())
		}
		want := uowSQL(tg, `UPDATE "accounts" SET "note" = ?, "version" = ? WHERE "id" = ? AND "version" = ?`)
		if ups[0].SQL != want {
			t.Errorf("UPDATE = %q\nwant     %q (only the changed column)", ups[0].SQL, want)
		}
		if n := countAccounts(t, eng, "note = 'vip' AND balance = 100 AND owner = 'ann'"); n != 1 {
			t.Errorf("rows with the merged note = %d, want 1", n)
		}
	})
}

func TestMergeRefusesStaleVersion(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := openLogged(t, tg)
		in := mergeSeed(t, eng) // read at version 1
		// Someone else saves version 2.
		uowMust(t, eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			a, err := orm.Get[Account](ctx, s, in.ID)
			if err == nil {
				a.Balance = 1
			}
			return err
		}))
		for _, tc := range []struct {
			name    string
			version int64
		}{{"older version", 1}, {"no version sent", 0}, {"newer version", 3}} {
			s := eng.NewSession()
			stale := in
			stale.Version = tc.version
			stale.Balance = 999
			got, err := orm.Merge(ctx, s, &stale)
			var sde *orm.StaleDataError
			if !errors.Is(err, orm.ErrStaleData) || !errors.As(err, &sde) || sde.Table != "accounts" || got != nil {
				t.Errorf("%s: Merge = %v, %v; want nil and a *StaleDataError for accounts", tc.name, got, err)
			}
			if st := s.Stats(); st.Tracked != 0 || st.Pending != 0 {
				t.Errorf("%s: after the refused Merge, %d tracked and %d pending, want nothing", tc.name, st.Tracked, st.Pending)
			}
			uowMust(t, s.Commit(ctx))
			uowMust(t, s.Close())
		}
		// The same check against a tracked object, from the identity map.
		s := eng.NewSession()
		defer s.Close()
		tracked, err := orm.Get[Account](ctx, s, in.ID)
		uowMust(t, err)
		stale := in
		stale.Balance = 999
		if _, err := orm.Merge(ctx, s, &stale); !errors.Is(err, orm.ErrStaleData) {
			t.Errorf("Merge onto a tracked object at another version: err = %v, want ErrStaleData", err)
		}
		if tracked.Balance != 1 || s.IsDirty(tracked) {
			t.Errorf("tracked balance = %d, dirty = %v; want 1, false (nothing changed)", tracked.Balance, s.IsDirty(tracked))
		}
		if n := countAccounts(t, eng, "balance = 999"); n != 0 {
			t.Errorf("rows with the stale balance = %d, want 0", n)
		}
	})
}

func TestMergeOfNewObjectInserts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := openLogged(t, tg)
		s := eng.NewSession()
		defer s.Close()
		// A zero generated key: a new row, inserted as a copy.
		in := newAccount("new", 5)
		got, err := orm.Merge(ctx, s, in)
		uowMust(t, err)
		if got == in {
			t.Fatal("Merge of a new object returned its argument, want a copy")
		}
		if p := s.Pending(); len(p) != 1 || p[0] != got {
			t.Errorf("Pending() = %v, want [the copy]", p)
		}
		// A client-set key with no row: a new row too.
		tag := &Tag{Kind: "k", Name: "n", Uses: 3}
		gotTag, err := orm.Merge(ctx, s, tag)
		uowMust(t, err)
		uowMust(t, s.Commit(ctx))
		if got.ID == 0 || in.ID != 0 {
			t.Errorf("keys after commit: copy %d, argument %d; want the copy's set, the argument's 0", got.ID, in.ID)
		}
		if got.Version != 1 {
			t.Errorf("copy's version = %d, want 1", got.Version)
		}
		if n := countAccounts(t, eng, "owner = 'new' AND balance = 5"); n != 1 {
			t.Errorf("new account rows = %d, want 1", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags WHERE uses = 3"); n != 1 || gotTag == tag {
			t.Errorf("new tag rows = %d (copy returned: %v), want 1, true", n, gotTag != tag)
		}
		// A generated key that has no row: the client cannot choose it.
		if _, err := orm.Merge(ctx, s, &Account{ID: got.ID + 100, Owner: "x"}); !errors.Is(err, orm.ErrNotFound) {
			t.Errorf("Merge of an unknown generated key: err = %v, want ErrNotFound", err)
		}
		// A version with no row: the row that was read is gone.
		if _, err := orm.Merge(ctx, s, &Account{ID: got.ID + 100, Owner: "x", Version: 2}); !errors.Is(err, orm.ErrStaleData) {
			t.Errorf("Merge of a versioned object without a row: err = %v, want ErrStaleData", err)
		}
		if st := s.Stats(); st.Pending != 0 {
			t.Errorf("pending after the refused Merges = %d, want 0", st.Pending)
		}
	})
}

func TestMergeThenFailedCommitRestores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, _ := openLogged(t, tg)
		in := mergeSeed(t, eng)
		seedObjects(t, eng, newAccount("bob", 1))
		s := eng.NewSession()
		defer s.Close()
		in.Balance = 42
		got, err := orm.Merge(ctx, s, &in)
		uowMust(t, err)
		dup, err := orm.Merge(ctx, s, newAccount("bob", 2)) // a new row whose owner is taken
		uowMust(t, err)
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: err = %v, want ErrUniqueViolation", err)
		}
		if got.Balance != 42 || got.Version != 1 || !s.IsDirty(got) {
			t.Errorf("merged object after the failed commit: balance %d, version %d, dirty %v; want 42, 1, true",
				got.Balance, got.Version, s.IsDirty(got))
		}
		if p := s.Pending(); len(p) != 1 || p[0] != dup || dup.ID != 0 {
			t.Errorf("Pending() = %v (key %d), want [the new copy] with no key", p, dup.ID)
		}
		if n := countAccounts(t, eng, "balance = 42"); n != 0 {
			t.Errorf("rows with the merged balance = %d, want 0 (rolled back)", n)
		}
		// Fixed, the commit writes the merged change.
		dup.Owner = "carol"
		uowMust(t, s.Commit(ctx))
		if n := countAccounts(t, eng, "id = ? AND balance = 42 AND version = 2", in.ID); n != 1 {
			t.Errorf("rows with the merged balance = %d, want 1", n)
		}
	})
}
