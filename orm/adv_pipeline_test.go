package orm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// advpParent is a versioned parent with a unique name and has-many kids.
type advpParent struct {
	ID      int64      `db:"id,pk,auto"`
	Name    string     `db:"name,unique,size=32"`
	Score   int64      `db:"score"`
	Version int64      `db:"version,version"`
	Kids    []*advpKid `rel:"parent_id"`
}

func (advpParent) TableName() string { return "advp_parents" }

// advpKid belongs to an advpParent; it has a unique code and no version.
type advpKid struct {
	ID       int64       `db:"id,pk,auto"`
	ParentID int64       `db:"parent_id,index"`
	Parent   *advpParent `rel:"parent_id"`
	Code     string      `db:"code,unique,size=32"`
	Qty      int64       `db:"qty"`
}

func (advpKid) TableName() string { return "advp_kids" }

// advpDump renders the committed rows of the probe's tables, in key
// order, read through eng's pool outside any session.
func advpDump(t *testing.T, eng *orm.Engine) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT id, name, score, version, 0 FROM advp_parents ORDER BY id",
		"SELECT id, code, qty, parent_id, 0 FROM advp_kids ORDER BY id",
		"SELECT id, name, score, 0, 0 FROM handles ORDER BY id",
		"SELECT id, '', 0, 0, 0 FROM blobs ORDER BY id",
	} {
		rows, err := eng.DB().QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, a, c, d int64
			var s string
			if err := rows.Scan(&id, &s, &a, &c, &d); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d:%s:%d:%d ", id, s, a, c)
		}
		rows.Close()
		b.WriteString("| ")
	}
	return b.String()
}

// advpBelief renders what the session believes the same rows are.
func advpBelief(parents []*advpParent, kids []*advpKid, hs []*Handle, blobs []*testmodels.Blob) string {
	var b strings.Builder
	sort.Slice(parents, func(i, j int) bool { return parents[i].ID < parents[j].ID })
	for _, p := range parents {
		fmt.Fprintf(&b, "%d:%s:%d:%d ", p.ID, p.Name, p.Score, p.Version)
	}
	b.WriteString("| ")
	sort.Slice(kids, func(i, j int) bool { return kids[i].ID < kids[j].ID })
	for _, k := range kids {
		fmt.Fprintf(&b, "%d:%s:%d:%d ", k.ID, k.Code, k.Qty, k.ParentID)
	}
	b.WriteString("| ")
	sort.Slice(hs, func(i, j int) bool { return hs[i].ID < hs[j].ID })
	for _, h := range hs {
		fmt.Fprintf(&b, "%d:%s:%d:%d ", h.ID, h.Name, h.Score, 0)
	}
	b.WriteString("| ")
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].ID < blobs[j].ID })
	for _, x := range blobs {
		fmt.Fprintf(&b, "%d::%d:%d ", x.ID, 0, 0)
	}
	b.WriteString("| ")
	return b.String()
}

// A pipelined commit of a mixed unit of work (versioned and unversioned
// updates in batched runs, a new parent with children, a child of an
// existing parent, a queued insert, batched and versioned deletes) that
// fails at any of its statements, first, middle or last, or on a row
// another connection deleted, writes nothing and leaves the session as
// before Commit; fixed, it commits, and every row then matches what the
// session believes, generated keys and versions included.
func TestPipelinedCommitFailingAnywhereRestoresAndCommitsAgain(t *testing.T) {
	type fault struct {
		name string
		want error // nil: a CHECK violation has no class; any failure but ErrCommitUnknown
		arm  func(t *testing.T, eng *orm.Engine, w *advpWork)
		fix  func(t *testing.T, eng *orm.Engine, w *advpWork)
	}
	raw := func(t *testing.T, eng *orm.Engine, q string, args ...any) {
		t.Helper()
		if _, err := eng.DB().ExecContext(context.Background(), eng.Dialect().Rebind(q), args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	faults := []fault{
		{"unique, first insert", orm.ErrUniqueViolation,
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newP.Name = "A" },
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newP.Name = "C" }},
		{"unique, child insert", orm.ErrUniqueViolation,
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newP.Kids[1].Code = "a3" },
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newP.Kids[1].Code = "c2" }},
		{"unique, last insert (belongs-to)", orm.ErrUniqueViolation,
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newKid.Code = "b1" },
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newKid.Code = "a4" }},
		{"unique, batched handle update", orm.ErrUniqueViolation,
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.hs[1].Name = "h3" },
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.hs[1].Name = "h2x" }},
		{"check, child insert", nil,
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newP.Kids[0].Qty = -1 },
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newP.Kids[0].Qty = 1 }},
		{"check, batched update", nil,
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.a.Kids[0].Qty = -5 },
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.a.Kids[0].Qty = 5 }},
		{"row gone, unversioned update", orm.ErrStaleData,
			func(t *testing.T, eng *orm.Engine, w *advpWork) {
				raw(t, eng, "DELETE FROM handles WHERE id = ?", w.hs[1].ID)
			},
			func(t *testing.T, eng *orm.Engine, w *advpWork) {
				raw(t, eng, "INSERT INTO handles (id, name, score) VALUES (?, ?, ?)", w.hs[1].ID, "h2", 0)
			}},
		{"fk, versioned delete last", orm.ErrForeignKeyViolation,
			func(t *testing.T, eng *orm.Engine, w *advpWork) {
				raw(t, eng, "INSERT INTO advp_kids (parent_id, code, qty) VALUES (?, ?, ?)", w.d.ID, "dx", 1)
			},
			func(t *testing.T, eng *orm.Engine, w *advpWork) {
				raw(t, eng, "DELETE FROM advp_kids WHERE code = ?", "dx")
			}},
		{"fk, child of a missing parent", orm.ErrForeignKeyViolation,
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newKid.ParentID = 987654 },
			func(t *testing.T, eng *orm.Engine, w *advpWork) { w.newKid.ParentID = w.a.ID }},
	}
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		for _, f := range faults {
			t.Run(f.name, func(t *testing.T) {
				eng, _ := openLogged(t, tg)
				ctx := context.Background()
				for _, tb := range []string{"advp_kids", "advp_parents", "handles", "blobs"} {
					raw(t, eng, "DROP TABLE IF EXISTS "+tb)
				}
				uowMust(t, eng.CreateTables(ctx, advpParent{}, advpKid{}, Handle{}, testmodels.Blob{}))
				raw(t, eng, "ALTER TABLE advp_kids ADD CONSTRAINT advp_qty CHECK (qty >= 0)")
				w := advpSeed(t, eng)
				s := w.s
				defer s.Close()
				f.arm(t, eng, w)
				before := advpDump(t, eng)
				pend := len(s.Pending())
				err := s.Commit(ctx)
				if err == nil || f.want != nil && !errors.Is(err, f.want) || errors.Is(err, orm.ErrCommitUnknown) {
					t.Fatalf("Commit: %v, want %v", err, f.want)
				}
				if got := advpDump(t, eng); got != before {
					t.Fatalf("rows changed by a failed commit:\n%s\nwant\n%s", got, before)
				}
				if len(s.Pending()) != pend || w.newP.ID != 0 || w.newP.Kids[0].ID != 0 || w.newP.Kids[0].ParentID != 0 || w.newKid.ID != 0 || w.blob.ID != 0 || w.newP.Version != 0 {
					t.Fatalf("pending not restored: %d/%d, ids %d %d %d %d %d, parent_id %d version %d", len(s.Pending()), pend, w.newP.ID, w.newP.Kids[0].ID, w.newKid.ID, w.blob.ID, w.newP.Kids[1].ID, w.newP.Kids[0].ParentID, w.newP.Version)
				}
				if w.a.Version != 1 || w.b.Version != 1 || !s.IsDirty(w.a) || !s.IsDirty(w.b) || !s.IsDirty(w.hs[0]) {
					t.Fatalf("updates not restored: versions %d %d, dirty %v %v %v", w.a.Version, w.b.Version, s.IsDirty(w.a), s.IsDirty(w.b), s.IsDirty(w.hs[0]))
				}
				f.fix(t, eng, w)
				if err := s.Commit(ctx); err != nil {
					t.Fatalf("Commit after the fix: %v", err)
				}
				got, want := advpDump(t, eng), w.belief()
				if got != want {
					t.Fatalf("after the fix, rows\n%s\nsession believes\n%s", got, want)
				}
				// A second commit has nothing to write.
				uowMust(t, s.Commit(ctx))
				if got := advpDump(t, eng); got != want {
					t.Fatalf("empty commit changed rows:\n%s\nwant\n%s", got, want)
				}
			})
		}
	})
}

// advpWork is a session holding a mixed unit of work.
type advpWork struct {
	s       *orm.Session
	a, b, d *advpParent
	newP    *advpParent
	newKid  *advpKid
	hs      []*Handle
	blob    *testmodels.Blob
}

// belief renders, as advpDump does, the rows the session believes are
// committed: the surviving and new parents, kids and handles, the blob.
func (w *advpWork) belief() string {
	parents := []*advpParent{w.a, w.b, w.newP}
	var kids []*advpKid
	for _, p := range parents {
		kids = append(kids, p.Kids...)
	}
	kids = append(kids, w.newKid)
	return advpBelief(parents, kids, w.hs[:3], []*testmodels.Blob{w.blob})
}

// advpSeed commits parents A (three kids), B (one), D, and handles h1-h4,
// then returns a session holding the mixed unit of work over them.
func advpSeed(t *testing.T, eng *orm.Engine) *advpWork {
	t.Helper()
	ctx := context.Background()
	a := &advpParent{Name: "A", Kids: []*advpKid{{Code: "a1", Qty: 1}, {Code: "a2", Qty: 2}, {Code: "a3", Qty: 3}}}
	b := &advpParent{Name: "B", Kids: []*advpKid{{Code: "b1", Qty: 1}}}
	d := &advpParent{Name: "D"}
	hs := []any{&Handle{Name: "h1"}, &Handle{Name: "h2"}, &Handle{Name: "h3"}, &Handle{Name: "h4"}}
	seedObjects(t, eng, append([]any{a, b, d}, hs...)...)
	s := eng.NewSession()
	w := &advpWork{s: s}
	ps, err := orm.Query[advpParent](s).Load("Kids").OrderBy("id").All(ctx)
	uowMust(t, err)
	w.a, w.b, w.d = ps[0], ps[1], ps[2]
	w.hs, err = orm.Query[Handle](s).OrderBy("id").All(ctx)
	uowMust(t, err)
	// Versioned updates of two parents (a batched run), unversioned of
	// three handles (a batched run).
	w.a.Score, w.b.Score = 10, 20
	w.a.Kids[2].Qty = 30 // kid updated
	w.b.Kids[0].Qty = 40
	for i, h := range w.hs[:3] {
		h.Score = int64(100 + i)
	}
	// Inserts: a parent with kids, a kid of an existing parent, a blob.
	w.newP = &advpParent{Name: "C", Kids: []*advpKid{{Code: "c1", Qty: 1}, {Code: "c2", Qty: 2}}}
	w.newKid = &advpKid{ParentID: w.a.ID, Code: "a4", Qty: 4}
	w.blob = &testmodels.Blob{Data: []byte("x")}
	uowMust(t, s.Add(w.newP, w.newKid, w.blob))
	// Deletes: two kids (batched IN), a handle, a versioned parent.
	uowMust(t, s.Delete(w.a.Kids[0], w.a.Kids[1], w.hs[3], w.d))
	w.a.Kids = w.a.Kids[2:]
	return w
}

// advpLone has no relations of its own: a pipelined commit queues its
// INSERT (deferInsert) until a table referring to it needs its keys.
type advpLone struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,unique,size=32"`
}

func (advpLone) TableName() string { return "advp_lones" }

// advpLeaf belongs to an advpLone.
type advpLeaf struct {
	ID     int64     `db:"id,pk,auto"`
	LoneID int64     `db:"lone_id"`
	Lone   *advpLone `rel:"lone_id"`
	Code   string    `db:"code,unique,size=32"`
}

func (advpLeaf) TableName() string { return "advp_leaves" }

// A queued INSERT of a table without relations goes out with the round
// trip that a later table needing its keys forces; when a later round
// trip of the same commit fails, those rows are rolled back and their
// objects must be pending again with no key, and their children's
// foreign keys cleared, so that the next Commit inserts them anew and the
// children point at the new keys.
func TestPipelinedCommitUndoesAQueuedInsertAnEarlierRoundTripSent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advpLone{}, advpLeaf{}))
		old := &advpLone{Name: "old"}
		seedObjects(t, eng, old, &advpLeaf{Lone: old, Code: "taken"})
		s := eng.NewSession()
		defer s.Close()
		l1, l2 := &advpLone{Name: "n1"}, &advpLone{Name: "n2"}
		f1, f2 := &advpLeaf{Lone: l1, Code: "f1"}, &advpLeaf{Lone: l2, Code: "taken"}
		uowMust(t, s.Add(l1, l2, f1, f2))
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if len(s.Pending()) != 4 || l1.ID != 0 || l2.ID != 0 || f1.ID != 0 || f1.LoneID != 0 || f2.LoneID != 0 {
			t.Fatalf("not restored: %d pending, ids %d %d %d, lone_ids %d %d", len(s.Pending()), l1.ID, l2.ID, f1.ID, f1.LoneID, f2.LoneID)
		}
		f2.Code = "f2"
		uowMust(t, s.Commit(ctx))
		if l1.ID == 0 || f1.LoneID != l1.ID || f2.LoneID != l2.ID {
			t.Fatalf("after the fix: lones %d %d, leaves' lone_id %d %d", l1.ID, l2.ID, f1.LoneID, f2.LoneID)
		}
		for _, f := range []*advpLeaf{f1, f2} {
			if n := countRows(t, eng, "SELECT COUNT(*) FROM advp_leaves l JOIN advp_lones o ON o.id = l.lone_id WHERE l.id = ? AND l.lone_id = ? AND l.code = ?", f.ID, f.LoneID, f.Code); n != 1 {
				t.Fatalf("leaf %d (%s): row does not match the session", f.ID, f.Code)
			}
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM advp_lones"); n != 3 {
			t.Fatalf("%d lones, want 3", n)
		}
	})
}

// advpDoc has every flush feature at once: a version, a soft delete,
// created and updated stamps, hooks that count their runs into a column,
// and many-to-many labels.
type advpDoc struct {
	ID      int64        `db:"id,pk,auto"`
	Title   string       `db:"title,unique,size=32"`
	Hooks   int64        `db:"hooks"`
	Version int64        `db:"version,version"`
	Created time.Time    `db:"created_at,created"`
	Updated time.Time    `db:"updated_at,updated"`
	Deleted *time.Time   `db:"deleted_at,softdelete"`
	Labels  []*advpLabel `rel:"m2m=advp_doc_labels(doc_id,label_id)"`
}

func (advpDoc) TableName() string { return "advp_docs" }

func (d *advpDoc) BeforeInsert(context.Context, *orm.Session) error { d.Hooks += 1; return nil }
func (d *advpDoc) BeforeUpdate(context.Context, *orm.Session) error { d.Hooks += 10; return nil }
func (d *advpDoc) BeforeDelete(context.Context, *orm.Session) error { d.Hooks += 100; return nil }

// advpLabel has no relations: its INSERT is queued.
type advpLabel struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,unique,size=32"`
}

func (advpLabel) TableName() string { return "advp_labels" }

func advpDocRows(t *testing.T, eng *orm.Engine) string {
	t.Helper()
	var b strings.Builder
	rows, err := eng.DB().QueryContext(context.Background(), "SELECT id, title, hooks, version, deleted_at IS NULL, created_at IS NOT NULL, updated_at IS NOT NULL FROM advp_docs ORDER BY id")
	uowMust(t, err)
	for rows.Next() {
		var id, hooks, ver int64
		var title string
		var live, c, u bool
		uowMust(t, rows.Scan(&id, &title, &hooks, &ver, &live, &c, &u))
		fmt.Fprintf(&b, "%d:%s:%d:%d:%v:%v:%v ", id, title, hooks, ver, live, c, u)
	}
	rows.Close()
	rows, err = eng.DB().QueryContext(context.Background(), "SELECT doc_id, label_id FROM advp_doc_labels ORDER BY doc_id, label_id")
	uowMust(t, err)
	for rows.Next() {
		var d, l int64
		uowMust(t, rows.Scan(&d, &l))
		fmt.Fprintf(&b, "%d-%d ", d, l)
	}
	rows.Close()
	return b.String()
}

// A pipelined commit with hooks that change their objects, created and
// updated stamps, a versioned batched run, a soft delete, a versioned
// hard delete and many-to-many links (to a label inserted in the same
// commit, whose queued INSERT the links wait for) fails on a unique
// violation, a stale version or a link to a label gone: the hooks'
// changes, versions, stamps and soft-delete time are undone, nothing is
// written; fixed, the commit writes what the session then believes.
func TestPipelinedCommitWithHooksStampsSoftDeletesAndLinksRestores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		for _, fault := range []string{"unique", "stale", "label gone"} {
			t.Run(fault, func(t *testing.T) {
				eng, _ := openLogged(t, tg)
				ctx := context.Background()
				for _, tb := range []string{"advp_doc_labels", "advp_docs", "advp_labels"} {
					_, _ = eng.DB().ExecContext(ctx, "DROP TABLE IF EXISTS "+tb)
				}
				uowMust(t, eng.CreateTables(ctx, advpDoc{}, advpLabel{}))
				l1, l2 := &advpLabel{Name: "l1"}, &advpLabel{Name: "l2"}
				seedObjects(t, eng, &advpDoc{Title: "d1"}, &advpDoc{Title: "d2"}, &advpDoc{Title: "d3"}, &advpDoc{Title: "d4"}, l1, l2)
				s := eng.NewSession()
				defer s.Close()
				ds, err := orm.Query[advpDoc](s).Load("Labels").OrderBy("id").All(ctx)
				uowMust(t, err)
				ls, err := orm.Query[advpLabel](s).OrderBy("id").All(ctx)
				uowMust(t, err)
				ds[0].Title, ds[1].Title = "d1x", "d2x"
				ds[0].Labels = append(ds[0].Labels, ls[0])
				nl := &advpLabel{Name: "nl"}
				nd := &advpDoc{Title: "nd", Labels: []*advpLabel{nl, ls[1]}}
				uowMust(t, s.Add(nd))
				uowMust(t, s.Delete(ds[2]))     // soft
				uowMust(t, s.HardDelete(ds[3])) // hard, versioned
				switch fault {
				case "unique":
					nd.Title = "d4"
				case "stale":
					uowMust(t, eng.Do(ctx, func(ctx context.Context, o *orm.Session) error {
						d, err := orm.Get[advpDoc](ctx, o, ds[1].ID)
						if err == nil {
							d.Hooks = 1000
						}
						return err
					}))
				case "label gone":
					_, err := eng.DB().ExecContext(ctx, eng.Dialect().Rebind("DELETE FROM advp_labels WHERE id = ?"), ls[1].ID)
					uowMust(t, err)
				}
				before := advpDocRows(t, eng)
				err = s.Commit(ctx)
				if err == nil || errors.Is(err, orm.ErrCommitUnknown) {
					t.Fatalf("Commit: %v, want a failure", err)
				}
				if got := advpDocRows(t, eng); got != before {
					t.Fatalf("rows changed:\n%s\nwant\n%s", got, before)
				}
				for i, d := range ds {
					if d.Hooks != 1 || d.Version != 1 || d.Deleted != nil {
						t.Fatalf("doc %d not restored: hooks %d version %d deleted %v", i, d.Hooks, d.Version, d.Deleted)
					}
				}
				if nd.ID != 0 || nl.ID != 0 || nd.Hooks != 0 || !nd.Created.IsZero() || len(s.Pending()) != 2 {
					t.Fatalf("new not restored: ids %d %d hooks %d created %v pending %d", nd.ID, nl.ID, nd.Hooks, nd.Created, len(s.Pending()))
				}
				switch fault {
				case "unique":
					nd.Title = "nd"
				case "stale":
					uowMust(t, s.Refresh(ctx, ds[1]))
					ds[1].Title = "d2x"
				case "label gone":
					nd.Labels = nd.Labels[:1]
				}
				uowMust(t, s.Commit(ctx))
				// The session's belief: live docs in key order (the new one
				// last), the soft-deleted one gone from the session but
				// its row kept, the hard-deleted one gone, and the links.
				var want strings.Builder
				for _, d := range []*advpDoc{ds[0], ds[1], ds[2], nd} {
					hooks, live := d.Hooks, d.Deleted == nil
					if d == ds[2] {
						hooks = 1 // a soft delete writes its time and version only
					}
					fmt.Fprintf(&want, "%d:%s:%d:%d:%v:%v:%v ", d.ID, d.Title, hooks, d.Version, live, !d.Created.IsZero(), !d.Updated.IsZero())
				}
				links := [][2]int64{{ds[0].ID, ls[0].ID}}
				for _, l := range nd.Labels {
					links = append(links, [2]int64{nd.ID, l.ID})
				}
				sort.Slice(links, func(i, j int) bool {
					return links[i][0] < links[j][0] || links[i][0] == links[j][0] && links[i][1] < links[j][1]
				})
				for _, l := range links {
					fmt.Fprintf(&want, "%d-%d ", l[0], l[1])
				}
				if got := advpDocRows(t, eng); got != want.String() {
					t.Fatalf("after the fix, rows\n%s\nsession believes\n%s", got, want.String())
				}
			})
		}
	})
}

// On PostgreSQL a deferred constraint fails the COMMIT that rides with
// the statements: the server's reply proves nothing committed, so the
// failure is the violation, not ErrCommitUnknown, and the session is
// restored (the queued insert pending again with no key) for a second
// Commit once the cause is fixed.
func TestPipelinedCommitFailingAtCOMMITRestores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.Postgres {
			return // deferrable constraints
		}
		ctx := context.Background()
		eng, _ := seedHandles(t, tg, "h1", "h2", "h3")
		uowMust(t, eng.CreateTables(ctx, testmodels.Blob{}))
		for _, q := range []string{
			"UPDATE handles SET score = id",
			"ALTER TABLE handles ADD CONSTRAINT handles_score_d UNIQUE (score) DEFERRABLE INITIALLY DEFERRED",
		} {
			_, err := eng.DB().ExecContext(ctx, q)
			uowMust(t, err)
		}
		s, hs := loadHandles(t, eng)
		defer s.Close()
		hs[0].Score, hs[1].Score = 7, 7
		nb := &testmodels.Blob{Data: []byte("q")}
		uowMust(t, s.Add(nb))
		before := handleRows(t, eng)
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrUniqueViolation) || errors.Is(err, orm.ErrCommitUnknown) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if got := handleRows(t, eng); got != before {
			t.Fatalf("rows %s after the failed commit, want %s", got, before)
		}
		if nb.ID != 0 || len(s.Pending()) != 1 || !s.IsDirty(hs[0]) || !s.IsDirty(hs[1]) {
			t.Fatalf("not restored: blob id %d, %d pending, dirty %v %v", nb.ID, len(s.Pending()), s.IsDirty(hs[0]), s.IsDirty(hs[1]))
		}
		hs[1].Score = 8
		uowMust(t, s.Commit(ctx))
		if nb.ID == 0 || countRows(t, eng, "SELECT COUNT(*) FROM blobs WHERE id = ?", nb.ID) != 1 {
			t.Fatalf("blob %d not written", nb.ID)
		}
		if got := handleRows(t, eng); got != "h1:7 h2:8 h3:3" {
			t.Fatalf("rows %s, want h1:7 h2:8 h3:3", got)
		}
	})
}

// advpFile has a string key, so its updates are never batched into one
// statement: each is a statement of its own in the pipeline.
type advpFile struct {
	Name string `db:"name,pk,size=32"`
	Data []byte `db:"data"`
}

func (advpFile) TableName() string { return "advp_files" }

// On MySQL/MariaDB a pipelined commit larger than one query goes as
// several multi-statement queries, COMMIT in the last: a row found gone
// in a later query (after earlier ones ran) commits nothing and restores
// the session; the row put back, the commit writes every value.
func TestPipelinedCommitSplitAcrossQueriesFailingInALaterOne(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advpFile{}))
		const n, size = 30, 300 << 10 // about 18 MiB of escaped values: several queries
		objs := make([]any, n)
		for i := range objs {
			objs[i] = &advpFile{Name: fmt.Sprintf("f%02d", i), Data: []byte("s")}
		}
		seedObjects(t, eng, objs...)
		s := eng.NewSession()
		defer s.Close()
		fs, err := orm.Query[advpFile](s).OrderBy("name").All(ctx)
		uowMust(t, err)
		for i, f := range fs {
			f.Data = bytes.Repeat([]byte{byte('a' + i%26)}, size)
		}
		gone := fs[n-2]
		del := eng.Dialect().Rebind("DELETE FROM advp_files WHERE name = ?")
		_, err = eng.DB().ExecContext(ctx, del, gone.Name)
		uowMust(t, err)
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("Commit: %v, want ErrStaleData", err)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM advp_files WHERE LENGTH(data) > 1"); c != 0 {
			t.Fatalf("%d rows written by a failed commit", c)
		}
		if !s.IsDirty(fs[0]) || !s.IsDirty(gone) {
			t.Fatal("the files are not dirty after the failed commit")
		}
		ins := eng.Dialect().Rebind("INSERT INTO advp_files (name, data) VALUES (?, ?)")
		_, err = eng.DB().ExecContext(ctx, ins, gone.Name, []byte("s"))
		uowMust(t, err)
		uowMust(t, s.Commit(ctx))
		for i, f := range fs {
			q := "SELECT COUNT(*) FROM advp_files WHERE name = ? AND LENGTH(data) = ? AND SUBSTR(data, 1, 1) = ?"
			if c := countRows(t, eng, q, f.Name, size, []byte{byte('a' + i%26)}); c != 1 || s.IsDirty(f) {
				t.Fatalf("file %s: row does not hold the committed value (dirty %v)", f.Name, s.IsDirty(f))
			}
		}
	})
}

// A commit of updates whose values together pass MariaDB's
// max_allowed_packet (16 MiB by default), each well under it, commits:
// pipelined, the batched UPDATE of all of them (and the multi-statement
// query carrying it with COMMIT) made a packet the server refused by
// resetting the connection mid-write, so every such commit failed as
// ErrCommitUnknown, which Do never retries, though nothing had run.
func TestPipelinedCommitOfValuesOverThePacketLimitCommits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		objs := make([]any, 12)
		for i := range objs {
			objs[i] = &testmodels.Blob{Data: []byte("s")}
		}
		seedObjects(t, eng, objs...)
		s := eng.NewSession()
		defer s.Close()
		bs, err := orm.Query[testmodels.Blob](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		const size = 5 << 20 // 12 of them: 60 MiB in one statement
		for i, b := range bs {
			b.Data = bytes.Repeat([]byte{byte('a' + i)}, size)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		for i, b := range bs {
			if s.IsDirty(b) {
				t.Fatalf("blob %d dirty after the commit", b.ID)
			}
			q := "SELECT COUNT(*) FROM blobs WHERE id = ? AND LENGTH(data) = ? AND SUBSTR(data, ?, 1) = ?"
			if n := countRows(t, eng, q, b.ID, size, size, []byte{byte('a' + i)}); n != 1 {
				t.Fatalf("blob %d: row does not hold the committed value", b.ID)
			}
		}
	})
}
