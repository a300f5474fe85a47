package orm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of has-many relations tagged cascade: Delete of a parent
// marks every child the session tracks deleted (DESIGN.md "Declaring
// models"), and a child removed from its parent's slice is deleted at flush
// (delete-orphan). Helpers carry a ca prefix.

// caParent's children are deleted with it, and when removed from its slice.
type caParent struct {
	ID       int64      `db:"id,pk,auto"`
	Name     string     `db:"name,unique,size=32"`
	Children []*caChild `rel:"parent_id,cascade"`
}

func (caParent) TableName() string { return "ca_parents" }

type caChild struct {
	ID       int64  `db:"id,pk,auto"`
	ParentID int64  `db:"parent_id"`
	Name     string `db:"name,size=32"`
}

func (caChild) TableName() string { return "ca_children" }

// caOpen opens tg with every statement logged and this file's models
// created; the log is empty when it returns.
func caOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), caParent{}, caChild{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

// caSeed commits a parent named name with children of the given names.
func caSeed(t *testing.T, eng *orm.Engine, name string, kids ...string) *caParent {
	t.Helper()
	p := &caParent{Name: name}
	for _, k := range kids {
		p.Children = append(p.Children, &caChild{Name: k})
	}
	seedObjects(t, eng, p)
	return p
}

func caCount(t *testing.T, eng *orm.Engine, where string, args ...any) int64 {
	t.Helper()
	return countRows(t, eng, "SELECT COUNT(*) FROM ca_children WHERE "+where, args...)
}

// Children loaded by a query of their own, not through the parent's
// slice, are deleted with the parent: Get no longer serves them, a change
// to one writes nothing, and a failed commit keeps them marked.
func TestDeleteCascadesToTrackedChildrenOutsideTheSlice(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := caOpen(t, tg)
		ctx := context.Background()
		seed := caSeed(t, eng, "p", "c1", "c2")
		caSeed(t, eng, "taken")

		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Get[caParent](ctx, s, seed.ID)
		uowMust(t, err)
		kids, err := orm.Query[caChild](s).Where("parent_id = ?", p.ID).All(ctx)
		uowMust(t, err)
		if len(kids) != 2 || p.Children != nil {
			t.Fatalf("loaded %d children, parent's slice %v; want 2 outside the slice", len(kids), p.Children)
		}
		uowMust(t, s.Delete(p))
		for _, k := range kids {
			if !s.IsDirty(k) {
				t.Fatalf("child %s not marked deleted with its parent", k.Name)
			}
		}
		log.Reset()
		if _, err := orm.Get[caChild](ctx, s, kids[0].ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of a cascaded child: %v, want ErrNotFound", err)
		}

		// A failing insert in the same commit: nothing is lost, the
		// children stay marked, their rows stay.
		bad := &caParent{Name: "taken"}
		uowMust(t, s.Add(bad))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if n := caCount(t, eng, "parent_id = ?", p.ID); n != 2 {
			t.Fatalf("%d children rows after the failed commit, want 2", n)
		}
		for _, k := range kids {
			if !s.IsDirty(k) {
				t.Fatalf("child %s no longer marked deleted after the failed commit", k.Name)
			}
		}
		uowMust(t, s.Expunge(bad))
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "parent_id = ?", p.ID); n != 0 {
			t.Fatalf("%d children rows left, want 0", n)
		}
		if st := s.Stats(); st.Tracked != 0 {
			t.Fatalf("tracking %d objects after the commit, want 0", st.Tracked)
		}
		// A change to a deleted child writes nothing and fails nothing.
		kids[1].Name = "changed"
		log.Reset()
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit after changing a deleted child: %v", err)
		}
		if sent := log.Matching("UPDATE"); len(sent) != 0 {
			t.Fatalf("a deleted child was updated: %v", sent)
		}
	})
}

// A child removed from a loaded parent's cascade slice is deleted at
// flush; one moved to another parent's slice is re-parented; one added
// without being put in the slice stays; without cascade, removal does
// nothing.
func TestFlushDeletesOrphans(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := caOpen(t, tg)
		ctx := context.Background()
		caSeed(t, eng, "p", "c1", "c2", "c3")
		caSeed(t, eng, "q")

		s := eng.NewSession()
		defer s.Close()
		ps, err := orm.Query[caParent](s).OrderBy("name").Load("Children").All(ctx)
		uowMust(t, err)
		p, q := ps[0], ps[1]
		if len(p.Children) != 3 || q.Children == nil {
			t.Fatalf("loaded p with %d children, q with %v", len(p.Children), q.Children)
		}
		c1, c2, c3 := p.Children[0], p.Children[1], p.Children[2]
		p.Children = []*caChild{c3} // c1 removed, c2 moved
		q.Children = append(q.Children, c2)
		log.Reset()
		uowMust(t, s.Commit(ctx))
		dels := log.Matching(uowSQL(tg, `DELETE FROM "ca_children"`))
		if len(dels) != 1 || len(dels[0].Args) != 1 || dels[0].Args[0] != c1.ID {
			t.Fatalf("DELETEs %v, want one for c1 (%d)", dels, c1.ID)
		}
		if n := caCount(t, eng, "id = ?", c1.ID); n != 0 {
			t.Fatal("the orphan c1 is still in the database")
		}
		if c2.ParentID != q.ID || caCount(t, eng, "id = ? AND parent_id = ?", c2.ID, q.ID) != 1 {
			t.Fatalf("moved c2 has parent %d, want q (%d), in the database too", c2.ParentID, q.ID)
		}
		if _, err := orm.Get[caChild](ctx, s, c1.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of the orphan: %v, want ErrNotFound", err)
		}
		if n := caCount(t, eng, "id = ? AND parent_id = ?", c3.ID, p.ID); n != 1 {
			t.Fatal("c3, still in the slice, was deleted or moved")
		}

		// A child added pointing at p, never put in its slice, is not an
		// orphan at the next flushes.
		late := &caChild{ParentID: p.ID, Name: "late"}
		uowMust(t, s.Add(late))
		uowMust(t, s.Commit(ctx))
		p.Name = "p2"
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "id = ?", late.ID); n != 1 {
			t.Fatal("a child never listed in the slice was deleted as an orphan")
		}

		// Without cascade (accounts' entries), removal does nothing.
		acct := newAccount("ann", 1)
		acct.Entries = []*Entry{{Amount: 1}, {Amount: 2}}
		seedObjects(t, eng, acct)
		as, err := orm.Query[Account](s).Where("id = ?", acct.ID).Load("Entries").All(ctx)
		uowMust(t, err)
		as[0].Entries = as[0].Entries[:1]
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE account_id = ?", acct.ID); n != 2 {
			t.Fatalf("%d entries after removing one from a non-cascade slice, want 2", n)
		}
	})
}

// An orphan marked by a flush that fails is persistent again, exactly as
// before the commit; the next commit decides again.
func TestFlushOrphanFailedCommitRestores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := caOpen(t, tg)
		ctx := context.Background()
		caSeed(t, eng, "p", "c1", "c2")
		caSeed(t, eng, "taken")

		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Query[caParent](s).Where("name = ?", "p").Load("Children").One(ctx)
		uowMust(t, err)
		c1 := p.Children[0]
		p.Children = p.Children[1:]
		bad := &caParent{Name: "taken"}
		uowMust(t, s.Add(bad))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if s.IsDirty(c1) {
			t.Fatal("the orphan is still marked deleted after the failed commit")
		}
		if got, err := orm.Get[caChild](ctx, s, c1.ID); err != nil || got != c1 {
			t.Fatalf("Get of the orphan after the failed commit: %v, %v; want the tracked object", got, err)
		}
		if n := caCount(t, eng, "id = ?", c1.ID); n != 1 {
			t.Fatal("the orphan's row is gone after the failed commit")
		}
		// Put back in the slice, it is no orphan any more.
		p.Children = append(p.Children, c1)
		uowMust(t, s.Expunge(bad))
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "id = ?", c1.ID); n != 1 {
			t.Fatal("a child put back in its parent's slice was deleted")
		}
		// Removed again, it goes.
		p.Children = p.Children[:1]
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "id = ?", c1.ID); n != 0 {
			t.Fatalf("the orphan is still in the database")
		}
	})
}

// An orphan deleted by a flush inside a savepoint that fails is persistent
// again afterwards, and still an orphan: the next commit deletes it.
func TestFlushOrphanSavepointRollback(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := caOpen(t, tg)
		ctx := context.Background()
		caSeed(t, eng, "p", "c1", "c2")
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Query[caParent](s).Where("name = ?", "p").Load("Children").One(ctx)
		uowMust(t, err)
		c2 := p.Children[1]
		err = s.Savepoint(ctx, func() error {
			p.Children = p.Children[:1]
			if err := s.Flush(ctx); err != nil {
				return err
			}
			if n := caCount(t, eng, "id = ?", c2.ID); n != 1 {
				t.Error("a flush inside the savepoint committed the DELETE")
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Savepoint: %v, want errBoom", err)
		}
		if got, err := orm.Get[caChild](ctx, s, c2.ID); err != nil || got != c2 {
			t.Fatalf("Get of the orphan after the savepoint rolled back: %v, %v; want the tracked object", got, err)
		}
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "id = ?", c2.ID); n != 0 {
			t.Fatal("the child, still out of its parent's slice, was not deleted at the next commit")
		}
		if n := caCount(t, eng, "1 = 1"); n != 1 {
			t.Fatalf("%d children left, want 1", n)
		}
	})
}

// caTop's mids cascade, and so do the mids' leaves: three levels.
type caTop struct {
	ID   int64    `db:"id,pk,auto"`
	Name string   `db:"name,unique,size=32"`
	Mids []*caMid `rel:"top_id,cascade"`
}

func (caTop) TableName() string { return "ca_tops" }

type caMid struct {
	ID     int64     `db:"id,pk,auto"`
	TopID  int64     `db:"top_id"`
	Name   string    `db:"name,size=32"`
	Leaves []*caLeaf `rel:"mid_id,cascade"`
}

func (caMid) TableName() string { return "ca_mids" }

type caLeaf struct {
	ID    int64  `db:"id,pk,auto"`
	MidID int64  `db:"mid_id"`
	Name  string `db:"name,size=32"`
}

func (caLeaf) TableName() string { return "ca_leaves" }

// An orphan whose own cascade drops a pending child (added under it, never
// inserted) gets both back after a failed commit: the orphan persistent,
// the child pending, and the next commit inserts the child.
func TestFlushOrphanFailedCommitRestoresItsPendingChildren(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, caTop{}, caMid{}, caLeaf{}))
		seedObjects(t, eng, &caTop{Name: "t", Mids: []*caMid{{Name: "m"}}})
		seedObjects(t, eng, &caTop{Name: "taken"})

		s := eng.NewSession()
		defer s.Close()
		top, err := orm.Query[caTop](s).Where("name = ?", "t").Load("Mids").One(ctx)
		uowMust(t, err)
		mid := top.Mids[0]
		leaf := &caLeaf{Name: "l"}
		mid.Leaves = append(mid.Leaves, leaf)
		uowMust(t, s.Add(leaf))
		top.Mids = nil // mid is an orphan now; its cascade drops the pending leaf
		bad := &caTop{Name: "taken"}
		uowMust(t, s.Add(bad))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		pending := s.Pending()
		found := false
		for _, p := range pending {
			found = found || p == any(leaf)
		}
		if !found {
			t.Fatalf("after the failed commit Pending() = %v, want it to hold the leaf the orphan's cascade dropped", pending)
		}
		// Put back, the mid is no orphan, and the leaf is inserted under it.
		top.Mids = []*caMid{mid}
		uowMust(t, s.Expunge(bad))
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ca_leaves WHERE mid_id = ?", mid.ID); n != 1 {
			t.Fatalf("leaves under the mid after the retried commit: got %d, want 1", n)
		}
	})
}
