package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of soft delete. Helpers carry an sd prefix.

type sdOwner struct {
	ID    int64     `db:"id,pk,auto"`
	Name  string    `db:"name,size=32"`
	Notes []*sdNote `rel:"owner_id"`
}

func (sdOwner) TableName() string { return "sd_owners" }

type sdNote struct {
	ID      int64      `db:"id,pk,auto"`
	OwnerID int64      `db:"owner_id"`
	Body    string     `db:"body,size=32"`
	Deleted *time.Time `db:"deleted_at,softdelete"`
}

func (sdNote) TableName() string { return "sd_notes" }

type sdDoc struct {
	ID      int64        `db:"id,pk,auto"`
	Body    string       `db:"body,size=32"`
	Version int64        `db:"version,version"`
	Deleted sql.NullTime `db:"deleted_at,softdelete"`
}

func (sdDoc) TableName() string { return "sd_docs" }

func sdOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), sdOwner{}, sdNote{}, sdDoc{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

// sdSeed stores an owner with notes "kept" and "gone", and soft-deletes
// "gone" through a session.
func sdSeed(t *testing.T, eng *orm.Engine) (owner *sdOwner, kept, gone *sdNote) {
	t.Helper()
	kept, gone = &sdNote{Body: "kept"}, &sdNote{Body: "gone"}
	owner = &sdOwner{Name: "ann", Notes: []*sdNote{kept, gone}}
	seedObjects(t, eng, owner)
	s := eng.NewSession()
	defer s.Close()
	uowMust(t, s.Delete(gone))
	uowMust(t, s.Commit(context.Background()))
	return owner, kept, gone
}

// Delete of a soft-delete model sends an UPDATE of its column, not a
// DELETE; the row stays, the object holds the time, and like a deleted
// object it is gone from the session.
func TestSoftDeleteUpdatesTheColumnInsteadOfDeleting(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := sdOpen(t, tg)
		ctx := context.Background()
		n := &sdNote{Body: "x"}
		seedObjects(t, eng, &sdOwner{Name: "ann", Notes: []*sdNote{n}})
		log.Reset()
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Get[sdNote](ctx, s, n.ID)
		uowMust(t, err)
		from := time.Now()
		uowMust(t, s.Delete(got))
		uowMust(t, s.Commit(ctx))
		if len(log.Matching("DELETE")) != 0 || len(log.Matching("UPDATE")) != 1 {
			t.Fatalf("statements %v; want one UPDATE and no DELETE", log.SQL())
		}
		if got.Deleted == nil || got.Deleted.Before(from.Truncate(time.Microsecond)) || got.Deleted.Location() != time.UTC {
			t.Fatalf("Deleted = %v; want the time of the delete, UTC", got.Deleted)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes WHERE deleted_at IS NOT NULL"); c != 1 {
			t.Fatalf("%d soft-deleted rows, want 1", c)
		}
		if s.Stats().Tracked != 0 {
			t.Fatalf("%d objects tracked after the commit; the soft-deleted one must be detached", s.Stats().Tracked)
		}
		if _, err := orm.Get[sdNote](ctx, s, n.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of the soft-deleted row = %v; want ErrNotFound", err)
		}
	})
}

// Queries, Count, Exists, Get, Load and UpdateAll skip soft-deleted rows;
// WithDeleted sees them; Raw is not filtered. A soft-deleted object the
// session tracks (read WithDeleted) is not found by Get either.
func TestSoftDeletedRowsAreSkippedUnlessWithDeleted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := sdOpen(t, tg)
		ctx := context.Background()
		owner, kept, gone := sdSeed(t, eng)
		s := eng.NewSession()
		defer s.Close()

		all, err := orm.Query[sdNote](s).All(ctx)
		uowMust(t, err)
		if len(all) != 1 || all[0].Body != "kept" {
			t.Fatalf("query returned %d notes; want only the live one", len(all))
		}
		if n, err := orm.Query[sdNote](s).Count(ctx); err != nil || n != 1 {
			t.Fatalf("Count = %d, %v; want 1", n, err)
		}
		if ok, err := orm.Query[sdNote](s).Where("id = ?", gone.ID).Exists(ctx); err != nil || ok {
			t.Fatalf("Exists of the soft-deleted row = %v, %v; want false", ok, err)
		}
		if _, err := orm.Get[sdNote](ctx, s, gone.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of the soft-deleted row = %v; want ErrNotFound", err)
		}
		owners, err := orm.Query[sdOwner](s).Load("Notes").All(ctx)
		uowMust(t, err)
		if len(owners) != 1 || len(owners[0].Notes) != 1 || owners[0].Notes[0].ID != kept.ID {
			t.Fatalf("Load gave %d notes; want only the live one", len(owners[0].Notes))
		}
		if n, err := orm.Query[sdNote](s).Where("owner_id = ?", owner.ID).UpdateAll(ctx, orm.Set{"body": "edited"}); err != nil || n != 1 {
			t.Fatalf("UpdateAll = %d, %v; want 1 row", n, err)
		}
		uowMust(t, s.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes WHERE body = 'gone'"); c != 1 {
			t.Fatalf("UpdateAll changed the soft-deleted row (%d left unchanged, want 1)", c)
		}

		w := eng.NewSession()
		defer w.Close()
		withDel, err := orm.Query[sdNote](w).WithDeleted().OrderBy("id").All(ctx)
		uowMust(t, err)
		if n, err := orm.Query[sdNote](w).WithDeleted().Count(ctx); len(withDel) != 2 || err != nil || n != 2 {
			t.Fatalf("WithDeleted: %d notes, Count %d, %v; want 2", len(withDel), n, err)
		}
		if _, err := orm.Get[sdNote](ctx, w, gone.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get of a tracked soft-deleted object = %v; want ErrNotFound", err)
		}
		raw, err := orm.Raw[sdNote](w, "SELECT id, owner_id, body, deleted_at FROM sd_notes").All(ctx)
		uowMust(t, err)
		if len(raw) != 2 {
			t.Fatalf("Raw returned %d rows; Raw is not filtered, want 2", len(raw))
		}
	})
}

// DeleteAll of a soft-delete model soft-deletes the matching live rows
// (and detaches their objects); HardDeleteAll and HardDelete remove rows
// for good.
func TestSoftDeleteBulkAndHardDeletes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := sdOpen(t, tg)
		ctx := context.Background()
		_, kept, gone := sdSeed(t, eng)
		s := eng.NewSession()
		defer s.Close()
		k, err := orm.Get[sdNote](ctx, s, kept.ID)
		uowMust(t, err)
		log.Reset()
		n, err := orm.Query[sdNote](s).AllRows().DeleteAll(ctx)
		if err != nil || n != 1 {
			t.Fatalf("DeleteAll = %d, %v; want 1 (the live row)", n, err)
		}
		if len(log.Matching("DELETE")) != 0 {
			t.Fatalf("DeleteAll sent %v; want an UPDATE", log.SQL())
		}
		if _, err := orm.Get[sdNote](ctx, s, k.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get after DeleteAll = %v; want ErrNotFound", err)
		}
		uowMust(t, s.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes WHERE deleted_at IS NOT NULL"); c != 2 {
			t.Fatalf("%d soft-deleted rows, want 2", c)
		}

		n, err = orm.Query[sdNote](s).WithDeleted().Where("id = ?", gone.ID).HardDeleteAll(ctx)
		if err != nil || n != 1 {
			t.Fatalf("HardDeleteAll = %d, %v; want 1", n, err)
		}
		uowMust(t, s.Commit(ctx))
		d := &sdNote{Body: "hard", OwnerID: kept.OwnerID}
		uowMust(t, s.Add(d))
		uowMust(t, s.Commit(ctx))
		uowMust(t, s.HardDelete(d))
		uowMust(t, s.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes"); c != 1 {
			t.Fatalf("%d rows left, want 1 (the soft-deleted one)", c)
		}
	})
}

// A versioned soft delete checks and bumps the version like an UPDATE:
// a row another session changed first is ErrStaleData, and the row stays
// live; a failed commit restores the object's column and version.
func TestVersionedSoftDeleteDetectsStaleRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := sdOpen(t, tg)
		ctx := context.Background()
		doc := &sdDoc{Body: "v1"}
		seedObjects(t, eng, doc)
		a, b := eng.NewSession(), eng.NewSession()
		defer a.Close()
		defer b.Close()
		da, err := orm.Get[sdDoc](ctx, a, doc.ID)
		uowMust(t, err)
		db, err := orm.Get[sdDoc](ctx, b, doc.ID)
		uowMust(t, err)
		db.Body = "v2"
		uowMust(t, b.Commit(ctx))

		uowMust(t, a.Delete(da))
		if err := a.Commit(ctx); !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("Commit = %v; want ErrStaleData", err)
		}
		if da.Deleted.Valid || da.Version != 1 {
			t.Fatalf("after the stale delete: deleted %v, version %d; want both as before", da.Deleted, da.Version)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_docs WHERE deleted_at IS NULL"); c != 1 {
			t.Fatalf("%d live rows, want 1", c)
		}

		c := eng.NewSession()
		defer c.Close()
		dc, err := orm.Get[sdDoc](ctx, c, doc.ID)
		uowMust(t, err)
		log.Reset()
		uowMust(t, c.Delete(dc))
		uowMust(t, c.Commit(ctx))
		ups := log.Matching("UPDATE")
		if len(ups) != 1 || !strings.Contains(ups[0].SQL, "version") || dc.Version != 3 || !dc.Deleted.Valid {
			t.Fatalf("versioned soft delete sent %v; object version %d deleted %v", log.SQL(), dc.Version, dc.Deleted)
		}
	})
}

type sdArticle struct {
	ID      int64      `db:"id,pk,auto"`
	Title   string     `db:"title,size=32"`
	Deleted *time.Time `db:"deleted_at,softdelete"`
	Labels  []*sdLabel `rel:"m2m=sd_article_labels(article_id,label_id)"`
}

func (sdArticle) TableName() string { return "sd_articles" }

type sdLabel struct {
	ID       int64        `db:"id,pk,auto"`
	Name     string       `db:"name,size=32"`
	Articles []*sdArticle `rel:"m2m=sd_article_labels(label_id,article_id)"`
}

func (sdLabel) TableName() string { return "sd_labels" }

// A soft-deleted object keeps its many-to-many join rows (its row is
// still there to be brought back), and loading the relation from the
// other side skips it; a hard delete removes the join rows with the row.
func TestSoftDeleteKeepsJoinRowsAndLoadSkipsTheRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := sdOpen(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, sdArticle{}, sdLabel{}))
		l := &sdLabel{Name: "go"}
		a1, a2 := &sdArticle{Title: "a1", Labels: []*sdLabel{l}}, &sdArticle{Title: "a2", Labels: []*sdLabel{l}}
		seedObjects(t, eng, a1, a2)
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Get[sdArticle](ctx, s, a1.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(got))
		uowMust(t, s.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_article_labels"); c != 2 {
			t.Fatalf("%d join rows after the soft delete, want both kept", c)
		}
		r := eng.NewSession()
		defer r.Close()
		labels, err := orm.Query[sdLabel](r).Load("Articles").All(ctx)
		uowMust(t, err)
		if len(labels) != 1 || len(labels[0].Articles) != 1 || labels[0].Articles[0].ID != a2.ID {
			t.Fatalf("Load of the label's articles: %d, want only the live one", len(labels[0].Articles))
		}
		uowMust(t, r.HardDelete(labels[0].Articles[0]))
		uowMust(t, r.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_article_labels"); c != 1 {
			t.Fatalf("%d join rows after the hard delete, want 1", c)
		}
	})
}

// sdNoteRow is a projection of sdNote.
type sdNoteRow struct {
	Body string `db:"body"`
	Name string `db:"name"`
}

// A projection skips soft-deleted rows as its query does (WithDeleted
// included), also when it joins another table.
func TestSoftDeletedRowsAreSkippedByProjections(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := sdOpen(t, tg)
		ctx := context.Background()
		sdSeed(t, eng)
		s := eng.NewSession()
		defer s.Close()
		rows, err := orm.Project[sdNoteRow](orm.Query[sdNote](s)).
			Join("JOIN sd_owners ON sd_owners.id = sd_notes.owner_id").
			Select("body", "sd_owners.name").All(ctx)
		uowMust(t, err)
		if len(rows) != 1 || rows[0].Body != "kept" || rows[0].Name != "ann" {
			t.Fatalf("projection returned %+v; want only the live note", rows)
		}
		all, err := orm.Project[sdNoteRow](orm.Query[sdNote](s).WithDeleted()).
			Join("JOIN sd_owners ON sd_owners.id = sd_notes.owner_id").
			Select("body", "sd_owners.name").All(ctx)
		uowMust(t, err)
		if len(all) != 2 {
			t.Fatalf("projection WithDeleted returned %d rows, want 2", len(all))
		}
	})
}
