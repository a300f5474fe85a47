package orm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Adversarial tests of the batched UPDATE (batchupdate.go): every result
// is compared with the rows read back in a fresh session or by raw SQL.
// Helpers carry an advb prefix.

// advbRow has no version column, so SQLite batches its updates too, and a
// column of each kind a CASE must carry as the plain UPDATE does.
type advbRow struct {
	ID   int64     `db:"id,pk,auto"`
	Name *string   `db:"name,unique,size=32"`
	Flag bool      `db:"flag"`
	At   time.Time `db:"at"`
	Data []byte    `db:"data"`
	Tags []string  `db:"tags,json"`
}

func (advbRow) TableName() string { return "advb_rows" }

// advbRender renders rows for comparison: the same text for a row read
// back and for the object that wrote it.
func advbRender(rows []*advbRow) string {
	var b strings.Builder
	for _, r := range rows {
		name := "NULL"
		if r.Name != nil {
			name = *r.Name
		}
		data := "NULL"
		if r.Data != nil {
			data = fmt.Sprintf("%x", r.Data)
		}
		fmt.Fprintf(&b, "[%d %s %v %s %s %q]", r.ID, name, r.Flag, r.At.UTC().Format(time.RFC3339Nano), data, r.Tags)
	}
	return b.String()
}

// A run whose values are NULL, false and true, times in another zone with
// nanoseconds, empty and NULL blobs and json goes as one UPDATE on every
// database and leaves the rows exactly as the objects hold them.
func TestBatchedUpdateWritesNullsBoolsTimesBlobsAndJSON(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advbRow{}))
		var seed []any
		for i := range 5 {
			name := fmt.Sprint("n", i)
			seed = append(seed, &advbRow{Name: &name, Flag: i%2 == 0, At: baseTime, Data: []byte("d"), Tags: []string{"t"}})
		}
		seedObjects(t, eng, seed...)

		s := eng.NewSession()
		defer s.Close()
		rows, err := orm.Query[advbRow](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		zone := time.FixedZone("west", -7*3600)
		for i, r := range rows {
			r.Name = nil
			if i%2 == 1 {
				name := fmt.Sprint("m", i)
				r.Name = &name
			}
			r.Flag = !r.Flag
			r.At = time.Date(2025, 6, 7, 8, 9, 10, 123456789+i, zone)
			r.Data = []byte{0, byte(i), 0xff}
			r.Tags = []string{fmt.Sprint("tag", i), ""}
		}
		rows[1].Data = []byte{} // empty, not NULL
		rows[2].Data = nil
		rows[3].Tags = nil
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if n := updateStatements(log.Take()); n != 1 {
			t.Fatalf("%d UPDATE statements for 5 objects changing the same columns, want 1", n)
		}
		for _, r := range rows {
			if s.IsDirty(r) {
				t.Fatalf("row %d dirty after the commit", r.ID)
			}
		}
		s2 := eng.NewSession()
		defer s2.Close()
		got, err := orm.Query[advbRow](s2).OrderBy("id").All(ctx)
		uowMust(t, err)
		if g, w := advbRender(got), advbRender(rows); g != w {
			t.Fatalf("rows after the batched UPDATE:\n%s\nwant what the objects hold:\n%s", g, w)
		}
	})
}

// A run longer than one statement may hold goes as several; a row gone
// from the third fails the commit naming that object, after the first
// two statements ran, and nothing of it stays written. With the object
// expunged, Commit again writes every other row.
func TestBatchedUpdateNamesARowMissingFromALaterStatementOfARun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		names := make([]string, 450)
		for i := range names {
			names[i] = fmt.Sprint("h", i)
		}
		eng, log := seedHandles(t, tg, names...)
		ctx := context.Background()
		s, hs := loadHandles(t, eng)
		for i, h := range hs {
			h.Name, h.Score = fmt.Sprint("g", i), int64(3*i)
		}
		gone := hs[420]
		if _, err := eng.DB().ExecContext(ctx, eng.Dialect().Rebind("DELETE FROM handles WHERE id = ?"), gone.ID); err != nil {
			t.Fatal(err)
		}
		log.Reset()
		err := s.Commit(ctx)
		var stale *orm.StaleDataError
		if !errors.As(err, &stale) || len(stale.Key) != 1 || fmt.Sprint(stale.Key[0]) != fmt.Sprint(gone.ID) {
			t.Fatalf("Commit: %v, want ErrStaleData naming handle %d", err, gone.ID)
		}
		if n := updateStatements(log.Take()); n < 3 {
			t.Fatalf("%d UPDATE statements before the failure, want the run split in at least 3", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM handles WHERE name LIKE 'g%' OR score <> 0"); n != 0 {
			t.Fatalf("%d rows written by the failed commit, want 0", n)
		}
		for _, h := range hs {
			if !s.IsDirty(h) {
				t.Fatalf("handle %d clean after the failed commit, want dirty", h.ID)
			}
		}
		uowMust(t, s.Expunge(gone))
		uowMust(t, s.Commit(ctx))
		_, got := loadHandles(t, eng)
		if len(got) != 449 {
			t.Fatalf("%d rows after the retry, want 449", len(got))
		}
		for _, g := range got {
			if want := fmt.Sprint("g", g.Score/3); g.Name != want || g.Score%3 != 0 {
				t.Fatalf("row %d is %s:%d after the retry, not its object's values", g.ID, g.Name, g.Score)
			}
		}
	})
}

// A batch that fails inside a savepoint (a row gone: on SQLite the batch
// ran, then the per-object UPDATEs named the row) rolls back to the
// savepoint only: the work flushed before it commits, and the session
// and the rows agree afterwards.
func TestBatchedUpdateFailingInASavepointRollsBackToIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := seedHandles(t, tg, "a", "b", "c", "d")
		ctx := context.Background()
		s, hs := loadHandles(t, eng)
		gone := hs[2]
		if _, err := eng.DB().ExecContext(ctx, eng.Dialect().Rebind("DELETE FROM handles WHERE id = ?"), gone.ID); err != nil {
			t.Fatal(err)
		}
		hs[0].Score = 1
		uowMust(t, s.Flush(ctx)) // before the savepoint: kept
		log.Reset()
		err := s.Savepoint(ctx, func() error {
			for _, h := range hs[1:] {
				h.Score = 7
			}
			return s.Flush(ctx)
		})
		var stale *orm.StaleDataError
		if !errors.As(err, &stale) || fmt.Sprint(stale.Key) != fmt.Sprint([]any{gone.ID}) {
			t.Fatalf("Savepoint: %v, want ErrStaleData naming handle %d", err, gone.ID)
		}
		if ups := log.Matching("UPDATE"); tg.Name == dbtest.SQLite && (len(ups) == 0 || !strings.Contains(ups[0].SQL, "CASE")) {
			t.Fatalf("statements %q in the savepoint, want the batched UPDATE first", log.SQL())
		}
		uowMust(t, s.Expunge(gone))
		hs[3].Score += 2
		uowMust(t, s.Commit(ctx))
		want := fmt.Sprintf("a:%d b:%d d:%d", hs[0].Score, hs[1].Score, hs[3].Score)
		if got := handleRows(t, eng); got != want || hs[0].Score != 1 {
			t.Fatalf("rows %q, want %q, the objects' values, with a:1 flushed before the savepoint", got, want)
		}
		for _, h := range []*Handle{hs[0], hs[1], hs[3]} {
			if s.IsDirty(h) {
				t.Fatalf("handle %s dirty after the commit", h.Name)
			}
		}
	})
}

// advbHooked's BeforeUpdate derives two columns from the name, so that a
// run of objects changes the same three columns and is batched.
type advbHooked struct {
	ID    int64  `db:"id,pk,auto"`
	Name  string `db:"name,unique,size=32"`
	Score int64  `db:"score"`
	Note  string `db:"note,size=40"`
}

func (advbHooked) TableName() string { return "advb_hooked" }

// BeforeUpdate sets the score and the note from the name.
func (h *advbHooked) BeforeUpdate(context.Context, *orm.Session) error {
	h.Score, h.Note = int64(len(h.Name)), "was "+h.Name
	return nil
}

// What BeforeUpdate hooks set is written by the batched UPDATE; when the
// batch fails (two objects take one unique name) the commit fails as the
// ordered UPDATEs do, the hooks' changes are undone with the rest, and a
// Commit after the fix writes the rows as the objects hold them.
func TestBatchedUpdateWritesWhatBeforeUpdateSetAndRetriesWhole(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advbHooked{}))
		var seed []any
		for i := range 6 {
			seed = append(seed, &advbHooked{Name: fmt.Sprint("h", i)})
		}
		seedObjects(t, eng, seed...)
		s := eng.NewSession()
		defer s.Close()
		hs, err := orm.Query[advbHooked](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		for i, h := range hs {
			h.Name = fmt.Sprint("name-", i*11)
		}
		hs[4].Name = hs[5].Name
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		for _, h := range hs {
			if h.Score != 0 || h.Note != "" || !s.IsDirty(h) {
				t.Fatalf("object %+v after the failed commit: want the hook's changes undone, dirty", *h)
			}
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM advb_hooked WHERE score <> 0 OR name LIKE 'name-%'"); n != 0 {
			t.Fatalf("%d rows written by the failed commit", n)
		}
		hs[4].Name = "fixed"
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if n := updateStatements(log.Take()); n != 1 {
			t.Fatalf("%d UPDATE statements after the fix, want 1 batch", n)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		got, err := orm.Query[advbHooked](s2).OrderBy("id").All(ctx)
		uowMust(t, err)
		for i, g := range got {
			if *g != *hs[i] || g.Note != "was "+g.Name {
				t.Fatalf("row %+v, want the object %+v with its hook's note", *g, *hs[i])
			}
		}
	})
}
