package orm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Adversarial tests of relations: rows must never be silently duplicated,
// lost or linked to the wrong parent.

// A Load of a relation into a tracked parent whose slice holds unflushed
// changes (autoflush off, so the query does not write them first) must not
// replace that slice: the child appended to it would otherwise never be
// inserted, and the child removed from it would come back.
func TestLoadKeepsUnflushedSliceOfTrackedParent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := caOpen(t, tg)
		ctx := context.Background()
		seed := caSeed(t, eng, "p", "c1", "c2")

		s := eng.NewSession(orm.WithoutAutoflush())
		defer s.Close()
		p, err := orm.Query[caParent](s).Where("id = ?", seed.ID).Load("Children").One(ctx)
		uowMust(t, err)
		c1 := p.Children[0]
		p.Children = append(p.Children[1:], &caChild{Name: "new"})
		again, err := orm.Query[caParent](s).Where("id = ?", seed.ID).Load("Children").One(ctx)
		uowMust(t, err)
		if again != p {
			t.Fatal("the query did not return the tracked parent")
		}
		if len(p.Children) != 2 || p.Children[1].Name != "new" {
			t.Fatalf("Load replaced the unflushed slice: %d children", len(p.Children))
		}
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "parent_id = ?", p.ID); n != 2 {
			t.Fatalf("%d children rows, want 2 (c2 and new)", n)
		}
		if n := caCount(t, eng, "id = ?", c1.ID); n != 0 {
			t.Fatal("the orphan c1 survived")
		}
	})
}

// A belongs-to pointer wins over a foreign-key column set by hand: the flush
// copies the pointed-at parent's key. Nil-ing the pointer leaves the column
// as it is.
func TestBelongsToPointerWinsOverForeignKeySetByHand(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		a, b := &RelAuthor{Name: "a"}, &RelAuthor{Name: "b"}
		bk := &RelBook{Title: "t", Author: a}
		seedObjects(t, eng, a, b, bk)
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Query[RelBook](s).Where("id = ?", bk.ID).Load("Author").One(ctx)
		uowMust(t, err)
		got.AuthorID = b.ID
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM books WHERE author_id = ?", a.ID); n != 1 || got.AuthorID != a.ID {
			t.Fatalf("book's author_id %d after setting the column under a pointer, rows at a: %d", got.AuthorID, n)
		}
		got.Author = nil
		got.AuthorID = b.ID
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM books WHERE author_id = ?", b.ID); n != 1 {
			t.Fatal("with the pointer nil the column set by hand was not written")
		}
	})
}

// A child listed in two live parents' slices gets one parent, the same in
// its object and its row; removed from both it is an orphan, deleted once.
func TestChildInTwoSlicesGetsOneParentAndIsDeletedOnceWhenRemovedFromBoth(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := caOpen(t, tg)
		ctx := context.Background()
		caSeed(t, eng, "p", "c1")
		caSeed(t, eng, "q")
		s := eng.NewSession()
		defer s.Close()
		ps, err := orm.Query[caParent](s).OrderBy("name").Load("Children").All(ctx)
		uowMust(t, err)
		p, q := ps[0], ps[1]
		c1 := p.Children[0]
		q.Children = append(q.Children, c1)
		uowMust(t, s.Commit(ctx))
		if c1.ParentID != p.ID && c1.ParentID != q.ID {
			t.Fatalf("c1 has parent %d, neither p (%d) nor q (%d)", c1.ParentID, p.ID, q.ID)
		}
		if n := caCount(t, eng, "id = ? AND parent_id = ?", c1.ID, c1.ParentID); n != 1 {
			t.Fatalf("c1's row does not point at its object's parent %d", c1.ParentID)
		}
		p.Children, q.Children = []*caChild{}, []*caChild{}
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "1=1"); n != 0 {
			t.Fatalf("%d children rows after removing c1 from both slices, want 0", n)
		}
	})
}

// A child moved from a persistent parent's cascade slice to a new parent's
// slice in one commit is re-parented under the new parent's key, not
// deleted; a failed commit restores it and the retry gives the same result.
func TestChildMovedToNewParentAcrossAFailedCommitIsReparentedOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := caOpen(t, tg)
		ctx := context.Background()
		seed := caSeed(t, eng, "p", "c1", "c2")
		caSeed(t, eng, "taken")
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Query[caParent](s).Where("id = ?", seed.ID).Load("Children").One(ctx)
		uowMust(t, err)
		c1 := p.Children[0]
		p.Children = p.Children[1:]
		n := &caParent{Name: "n", Children: []*caChild{c1}}
		uowMust(t, s.Add(n))
		bad := &caParent{Name: "taken"}
		uowMust(t, s.Add(bad))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if c1.ParentID != p.ID || n.ID != 0 || caCount(t, eng, "id = ? AND parent_id = ?", c1.ID, p.ID) != 1 {
			t.Fatalf("after failed commit c1.ParentID=%d n.ID=%d", c1.ParentID, n.ID)
		}
		uowMust(t, s.Expunge(bad))
		uowMust(t, s.Commit(ctx))
		if c1.ParentID != n.ID || caCount(t, eng, "id = ? AND parent_id = ?", c1.ID, n.ID) != 1 {
			t.Fatalf("c1 parent %d, want n %d (db too)", c1.ParentID, n.ID)
		}
		if k := caCount(t, eng, "1=1"); k != 2 {
			t.Fatalf("%d children rows, want 2", k)
		}
	})
}

// Moving a many-to-many link from one post to another and adding a new
// tag, with a failed commit in between, writes exactly the new pairs: the
// failed commit leaves the join rows as they were, the retry moves them.
func TestManyToManyLinkMovedAcrossAFailedCommitIsWrittenOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		goPost, sqlPost, _ := seedPosts(t, eng)
		seedObjects(t, eng, &RelTag{Name: "taken"})
		before := joinRows(t, eng)
		s := eng.NewSession()
		defer s.Close()
		ps, err := orm.Query[RelPost](s).Where("id IN (?, ?)", goPost.ID, sqlPost.ID).OrderBy("id").Load("Tags").All(ctx)
		uowMust(t, err)
		a, b := ps[0], ps[1]
		i := slices.IndexFunc(a.Tags, func(tg *RelTag) bool { return tg.Name == "go" })
		moved := a.Tags[i]
		a.Tags = slices.Delete(a.Tags, i, i+1)
		b.Tags = append(b.Tags, moved, &RelTag{Name: "fresh"})
		clash := &RelTag{Name: "taken"}
		uowMust(t, s.Add(clash))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if got := joinRows(t, eng); !slices.Equal(got, before) {
			t.Fatalf("join rows after the failed commit %v, want %v", got, before)
		}
		uowMust(t, s.Expunge(clash))
		uowMust(t, s.Commit(ctx))
		want := pairs(a.ID, "db", b.ID, "db", b.ID, "go", b.ID, "fresh")
		if got := joinRows(t, eng); !slices.Equal(got, want) {
			t.Fatalf("join rows %v, want %v", got, want)
		}
		uowMust(t, s.Commit(ctx)) // nothing left to write: no duplicate pair
		if got := joinRows(t, eng); !slices.Equal(got, want) {
			t.Fatalf("join rows after a second commit %v, want %v", got, want)
		}
	})
}

// The many-to-many form of TestLoadKeepsUnflushedSliceOfTrackedParent: a
// tag appended to a loaded post's slice survives a second Load in a session
// without autoflush, and its join row is written.
func TestLoadKeepsUnflushedManyToManySliceOfTrackedParent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		_, sqlPost, _ := seedPosts(t, eng)
		s := eng.NewSession(orm.WithoutAutoflush())
		defer s.Close()
		p, err := orm.Query[RelPost](s).Where("id = ?", sqlPost.ID).Load("Tags").One(ctx)
		uowMust(t, err)
		golang, err := orm.Get[RelTag](ctx, s, "go")
		uowMust(t, err)
		p.Tags = append(p.Tags, golang)
		if _, err := orm.Query[RelPost](s).Where("id = ?", sqlPost.ID).Load("Tags").One(ctx); err != nil {
			t.Fatal(err)
		}
		if got := tagNames(p); !slices.Equal(got, []string{"db", "go"}) {
			t.Fatalf("tags after the second Load %v, want [db go]", got)
		}
		uowMust(t, s.Commit(ctx))
		rows := joinRows(t, eng)
		if !slices.Contains(rows, pairs(p.ID, "go")[0]) {
			t.Fatalf("join rows %v lack the appended tag's pair", rows)
		}
	})
}

// Deleting a parent whose cascade slice holds a child appended since the
// Load (pending) and a changed child: the commit inserts and updates
// nothing of them and leaves no child row; a failed commit first leaves
// every row, and the session, as they were.
func TestCascadeDeleteWithPendingAndChangedChildrenLeavesNoRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := caOpen(t, tg)
		ctx := context.Background()
		seed := caSeed(t, eng, "p", "c1", "c2")
		caSeed(t, eng, "taken")
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Query[caParent](s).Where("id = ?", seed.ID).Load("Children").One(ctx)
		uowMust(t, err)
		p.Children[0].Name = "changed"
		late := &caChild{Name: "late"}
		p.Children = append(p.Children, late)
		uowMust(t, s.Delete(p))
		bad := &caParent{Name: "taken"}
		uowMust(t, s.Add(bad))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if n := caCount(t, eng, "1=1"); n != 2 {
			t.Fatalf("%d children rows after the failed commit, want 2", n)
		}
		uowMust(t, s.Expunge(bad))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if n := caCount(t, eng, "1=1"); n != 0 {
			t.Fatalf("%d children rows after deleting their parent, want 0", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ca_parents WHERE id = ?", p.ID); n != 0 {
			t.Fatal("the parent's row is still there")
		}
		for _, ev := range log.Events() {
			if strings.HasPrefix(ev.SQL, "UPDATE") || strings.HasPrefix(ev.SQL, "INSERT") {
				t.Fatalf("a child of a deleted parent was written: %s", ev.SQL)
			}
		}
		if st := s.Stats(); st.Tracked != 0 {
			t.Fatalf("tracking %d objects, want 0", st.Tracked)
		}
	})
}

// advLine is a child whose composite primary key includes its parent's
// generated key, which the flush copies in.
type advLine struct {
	OrderID int64  `db:"order_id,pk"`
	Seq     int64  `db:"seq,pk"`
	Item    string `db:"item,size=32"`
}

func (advLine) TableName() string { return "adv_lines" }

// advOrder has lines keyed by (order_id, seq).
type advOrder struct {
	ID    int64      `db:"id,pk,auto"`
	Name  string     `db:"name,size=32"`
	Lines []*advLine `rel:"order_id,cascade"`
}

func (advOrder) TableName() string { return "adv_orders" }

// A child whose composite key holds its parent's generated key gets that
// key at insert. Moving it to another parent would change its primary
// key: the flush refuses that with an error, and the row, the object and
// the parent's slice are as before the commit (no row lost or duplicated).
func TestCompositeKeyChildMovedToAnotherParentIsRefusedAndRestored(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advOrder{}, advLine{}))
		s := eng.NewSession()
		defer s.Close()
		a := &advOrder{Name: "a", Lines: []*advLine{{Seq: 1, Item: "x"}}}
		b := &advOrder{Name: "b", Lines: []*advLine{{Seq: 1, Item: "y"}}}
		// One at a time: before the flush both lines' keys would be (0, 1),
		// which Add refuses as the same row.
		uowMust(t, s.Add(a))
		uowMust(t, s.Commit(ctx))
		uowMust(t, s.Add(b))
		uowMust(t, s.Commit(ctx))
		for _, o := range []*advOrder{a, b} {
			if l := o.Lines[0]; l.OrderID != o.ID || countRows(t, eng, "SELECT COUNT(*) FROM adv_lines WHERE order_id = ? AND item = ?", o.ID, l.Item) != 1 {
				t.Fatalf("line %s has order %d, want %d (db too)", l.Item, l.OrderID, o.ID)
			}
		}
		l := b.Lines[0]
		b.Lines = []*advLine{}
		l.Seq = 2
		a.Lines = append(a.Lines, l)
		if err := s.Commit(ctx); err == nil || !strings.Contains(err.Error(), "primary key") {
			t.Fatalf("Commit moving a line to another order: %v, want a changed-primary-key error", err)
		}
		if l.OrderID != b.ID {
			t.Fatalf("after the failed commit the line has order %d, want b (%d)", l.OrderID, b.ID)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM adv_lines WHERE order_id = ? AND seq = 1", b.ID); n != 1 {
			t.Fatal("the line's row left b")
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM adv_lines"); n != 2 {
			t.Fatalf("%d line rows, want 2", n)
		}
	})
}

// Upsert meeting the row of an object the session tracks under changed,
// unflushed values (autoflush off, so the tracked object's conflict-target
// value in memory differs from its row) is an identity conflict: the
// statement's work is rolled back, the row keeps its values and the
// tracked object its unflushed change, which the next commit writes.
func TestUpsertMeetingRowOfChangedTrackedObjectIsRefusedAndRolledBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upMember{Email: "ann@x", Name: "Ann", Age: 30})
		s := eng.NewSession(orm.WithoutAutoflush())
		defer s.Close()
		ann, err := orm.Query[upMember](s).Where("email = ?", "ann@x").One(ctx)
		uowMust(t, err)
		ann.Email = "ann@y"
		in := &upMember{Email: "ann@x", Name: "Imposter", Age: 1}
		err = orm.Upsert(ctx, s, []*upMember{in}, orm.OnConflict("email").DoUpdate("name", "age"))
		if !errors.Is(err, orm.ErrIdentityConflict) {
			t.Fatalf("Upsert: %v, want ErrIdentityConflict", err)
		}
		if id, name, age, _ := upRow(t, eng, "ann@x"); id != ann.ID || name != "Ann" || age != 30 || in.ID != 0 {
			t.Fatalf("after the refused Upsert: row %d %s %d, object id %d", id, name, age, in.ID)
		}
		uowMust(t, s.Commit(ctx))
		if id, name, _, _ := upRow(t, eng, "ann@y"); id != ann.ID || name != "Ann" {
			t.Fatalf("the tracked object's change was not committed: row %d %s", id, name)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM up_members"); n != 1 {
			t.Fatalf("%d member rows, want 1", n)
		}
	})
}

// With autoflush, a second Load of a many-to-many relation whose slice was
// changed writes the change first and reads it back: the commit after it
// writes no join row twice and loses none.
func TestLoadTwiceWithAutoflushWritesManyToManyChangeOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		ctx := context.Background()
		goPost, sqlPost, _ := seedPosts(t, eng)
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Query[RelPost](s).Where("id = ?", sqlPost.ID).Load("Tags").One(ctx)
		uowMust(t, err)
		golang, err := orm.Get[RelTag](ctx, s, "go")
		uowMust(t, err)
		p.Tags = append(p.Tags, golang, &RelTag{Name: "fresh"})
		if _, err := orm.Query[RelPost](s).Where("id = ?", sqlPost.ID).Load("Tags").One(ctx); err != nil {
			t.Fatal(err)
		}
		got := tagNames(p)
		slices.Sort(got)
		if !slices.Equal(got, []string{"db", "fresh", "go"}) {
			t.Fatalf("tags after the second Load %v, want [db fresh go]", got)
		}
		*log = nil
		uowMust(t, s.Commit(ctx))
		if n := countPrefix(*log, "INSERT"); n != 0 {
			t.Fatalf("the commit after the autoflushed Load inserted again: %v", *log)
		}
		want := pairs(goPost.ID, "db", goPost.ID, "go", p.ID, "db", p.ID, "fresh", p.ID, "go")
		if rows := joinRows(t, eng); !slices.Equal(rows, want) {
			t.Fatalf("join rows %v, want %v", rows, want)
		}
	})
}

// A nested Load through a relation kept as it is (autoflush off, already
// loaded) still loads the next level for the elements the slice holds.
func TestNestedLoadThroughKeptRelationLoadsNextLevel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		a := &RelAuthor{Name: "a", Books: []*RelBook{{Title: "b1", Reviews: []*RelReview{{Stars: 5}, {Stars: 3}}}}}
		seedObjects(t, eng, a)
		s := eng.NewSession(orm.WithoutAutoflush())
		defer s.Close()
		got, err := orm.Query[RelAuthor](s).Where("id = ?", a.ID).Load("Books").One(ctx)
		uowMust(t, err)
		got.Books = append(got.Books, &RelBook{Title: "b2"})
		if _, err := orm.Query[RelAuthor](s).Where("id = ?", a.ID).Load("Books.Reviews").One(ctx); err != nil {
			t.Fatal(err)
		}
		if len(got.Books) != 2 || got.Books[1].Title != "b2" {
			t.Fatalf("the unflushed book was dropped: %d books", len(got.Books))
		}
		if n := len(got.Books[0].Reviews); n != 2 {
			t.Fatalf("the kept book has %d reviews loaded, want 2", n)
		}
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM books WHERE author_id = ?", a.ID); n != 2 {
			t.Fatalf("%d books rows, want 2", n)
		}
	})
}

// A child moved from a parent's cascade slice to another parent's, with the
// first parent then deleted, is re-parented at the commit, not deleted with
// its old parent: its foreign key still holds the old parent's key when
// Delete cascades, but it is listed by a live parent, as delete-orphan
// already treats such a child.
func TestDeleteCascadeSparesChildMovedToAnotherParentsSlice(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := caOpen(t, tg)
		ctx := context.Background()
		caSeed(t, eng, "p", "c1", "c2")
		caSeed(t, eng, "q")
		s := eng.NewSession()
		defer s.Close()
		ps, err := orm.Query[caParent](s).OrderBy("name").Load("Children").All(ctx)
		uowMust(t, err)
		p, q := ps[0], ps[1]
		c1 := p.Children[0]
		p.Children = p.Children[1:]
		q.Children = append(q.Children, c1)
		uowMust(t, s.Delete(p))
		if !s.IsDirty(p.Children[0]) {
			t.Fatal("c2, still in the deleted parent's slice, is not marked deleted")
		}
		uowMust(t, s.Commit(ctx))
		if c1.ParentID != q.ID || caCount(t, eng, "id = ? AND parent_id = ?", c1.ID, q.ID) != 1 {
			t.Fatalf("c1 has parent %d, want q (%d), in the database too", c1.ParentID, q.ID)
		}
		if n := caCount(t, eng, "1=1"); n != 1 {
			t.Fatalf("%d children rows, want 1 (c1 under q)", n)
		}
	})
}

// The has-one form: a profile moved from one author to another, the first
// author then deleted, keeps its row under the second author.
func TestDeleteCascadeSparesHasOneMovedToAnotherParent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &RelAuthor{Name: "a", Profile: &RelProfile{Bio: "bio"}}, &RelAuthor{Name: "b"})
		s := eng.NewSession()
		defer s.Close()
		as, err := orm.Query[RelAuthor](s).OrderBy("name").Load("Profile").All(ctx)
		uowMust(t, err)
		a, b := as[0], as[1]
		prof := a.Profile
		a.Profile, b.Profile = nil, prof
		uowMust(t, s.Delete(a))
		uowMust(t, s.Commit(ctx))
		if prof.AuthorID != b.ID || countRows(t, eng, "SELECT COUNT(*) FROM profiles WHERE author_id = ?", b.ID) != 1 {
			t.Fatalf("profile has author %d, want b (%d), in the database too", prof.AuthorID, b.ID)
		}
	})
}

// A tag appended to a post's slice and deleted in the same commit leaves
// no join row pointing at the deleted row (nor any of its other links),
// and the session does not believe the pair is still there.
func TestManyToManyLinkToObjectDeletedInSameCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		goPost, sqlPost, _ := seedPosts(t, eng)
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Query[RelPost](s).Where("id = ?", sqlPost.ID).Load("Tags").One(ctx)
		uowMust(t, err)
		golang, err := orm.Get[RelTag](ctx, s, "go")
		uowMust(t, err)
		p.Tags = append(p.Tags, golang)
		uowMust(t, s.Delete(golang))
		uowMust(t, s.Commit(ctx))
		if rows, want := joinRows(t, eng), pairs(goPost.ID, "db", sqlPost.ID, "db"); !slices.Equal(rows, want) {
			t.Fatalf("join rows %v, want %v", rows, want)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags WHERE name = 'go'"); n != 0 {
			t.Fatal("the deleted tag's row is still there")
		}
		// A new tag with the deleted one's key, in the slice in its place,
		// is linked: the deleted tag's pair left the snapshot with its row.
		again := &RelTag{Name: "go"}
		uowMust(t, s.Add(again))
		p.Tags[len(p.Tags)-1] = again
		uowMust(t, s.Commit(ctx))
		if rows, want := joinRows(t, eng), pairs(goPost.ID, "db", sqlPost.ID, "db", sqlPost.ID, "go"); !slices.Equal(rows, want) {
			t.Fatalf("join rows after re-creating the tag %v, want %v", rows, want)
		}
	})
}

// Upsert in a transaction begun before another session committed a row
// with the same conflict target updates that row: one row, and the object
// carries its key and the values the statement left.
func TestUpsertAfterAnotherSessionCommittedTheRowUpdatesIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		ctx := context.Background()
		if tg.Driver == "sqlite" {
			t.Skip("SQLite's write transaction excludes the other session's writer")
		}
		s := eng.NewSession()
		defer s.Close()
		uowMust(t, s.Add(&upMember{Email: "first@x", Name: "F"}))
		uowMust(t, s.Flush(ctx)) // the transaction is open from here
		other := &upMember{Email: "ann@x", Name: "Ann", Age: 30}
		seedObjects(t, eng, other)
		in := &upMember{Email: "ann@x", Name: "Ann2", Age: 31}
		uowMust(t, orm.Upsert(ctx, s, []*upMember{in}, orm.OnConflict("email").DoUpdate("name")))
		if in.ID != other.ID || in.Name != "Ann2" || in.Age != 30 {
			t.Fatalf("object after Upsert: id %d name %s age %d; want id %d, Ann2, 30", in.ID, in.Name, in.Age, other.ID)
		}
		uowMust(t, s.Commit(ctx))
		if id, name, age, _ := upRow(t, eng, "ann@x"); id != other.ID || name != "Ann2" || age != 30 {
			t.Fatalf("row %d %s %d", id, name, age)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM up_members"); n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
	})
}

// A failed commit that deleted a linked tag puts the linking post's
// snapshot back with the pair: the retry deletes the join row once, and
// leaves the post's other links alone.
func TestManyToManyDeletedTagFailedCommitRestoresSnapshot(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		goPost, sqlPost, _ := seedPosts(t, eng)
		seedObjects(t, eng, &RelTag{Name: "taken"})
		before := joinRows(t, eng)
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Query[RelPost](s).Where("id = ?", goPost.ID).Load("Tags").One(ctx)
		uowMust(t, err)
		golang, err := orm.Get[RelTag](ctx, s, "go")
		uowMust(t, err)
		uowMust(t, s.Delete(golang))
		clash := &RelTag{Name: "taken"}
		uowMust(t, s.Add(clash))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if rows := joinRows(t, eng); !slices.Equal(rows, before) {
			t.Fatalf("join rows after the failed commit %v, want %v", rows, before)
		}
		uowMust(t, s.Expunge(clash))
		p.Tags = slices.DeleteFunc(p.Tags, func(x *RelTag) bool { return x == golang })
		uowMust(t, s.Commit(ctx))
		if rows, want := joinRows(t, eng), pairs(goPost.ID, "db", sqlPost.ID, "db"); !slices.Equal(rows, want) {
			t.Fatalf("join rows %v, want %v", rows, want)
		}
		uowMust(t, s.Commit(ctx))
		if rows, want := joinRows(t, eng), pairs(goPost.ID, "db", sqlPost.ID, "db"); !slices.Equal(rows, want) {
			t.Fatalf("join rows after another commit %v, want %v", rows, want)
		}
	})
}
