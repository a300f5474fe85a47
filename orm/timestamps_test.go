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
	"github.com/tallyorm/tally/testdata/tallygen/kinds"
)

// Behaviour tests of the created and updated columns. tsPost has one of
// each field type Tally fills; kinds.Stamped has a generated mapper.
// Helpers carry a ts prefix.

type tsPost struct {
	ID      int64        `db:"id,pk,auto"`
	Title   string       `db:"title,size=32,unique"`
	Views   int64        `db:"views,readonly"`
	Created time.Time    `db:"created_at,created"`
	Updated *time.Time   `db:"updated_at,updated"`
	Touched sql.NullTime `db:"touched_at,updated"`
}

func (tsPost) TableName() string { return "ts_posts" }

func tsOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), tsPost{}, kinds.Stamped{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

// tsCheckStamp fails unless got is a time Tally wrote between from and to:
// UTC and whole microseconds, as every database stores it.
func tsCheckStamp(t *testing.T, what string, got, from, to time.Time) {
	t.Helper()
	if got.Location() != time.UTC || got.Nanosecond()%1000 != 0 || got.Before(from.Truncate(time.Microsecond)) || got.After(to) {
		t.Fatalf("%s = %v; want a UTC time in whole microseconds between %v and %v", what, got, from, to)
	}
}

// An INSERT sets every created and updated column that holds no time, to
// one time, UTC in microseconds, which a later read returns unchanged; a
// time the caller set is kept.
func TestTimestampsAreSetAtInsert(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := tsOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		from := time.Now()
		p, kept := &tsPost{Title: "a"}, &tsPost{Title: "b", Created: baseTime}
		uowMust(t, s.Add(p, kept))
		uowMust(t, s.Commit(ctx))
		to := time.Now()
		tsCheckStamp(t, "Created", p.Created, from, to)
		if p.Updated == nil || !p.Updated.Equal(p.Created) || !p.Touched.Valid || !p.Touched.Time.Equal(p.Created) {
			t.Fatalf("Updated %v, Touched %v; want both set to Created %v", p.Updated, p.Touched, p.Created)
		}
		if !kept.Created.Equal(baseTime) {
			t.Fatalf("a created time the caller set became %v", kept.Created)
		}
		r := eng.NewSession()
		defer r.Close()
		got, err := orm.Get[tsPost](ctx, r, p.ID)
		uowMust(t, err)
		if got.Created != p.Created || *got.Updated != *p.Updated || got.Touched != p.Touched {
			t.Fatalf("read back %v %v %v; the writing session holds %v %v %v", got.Created, *got.Updated, got.Touched, p.Created, *p.Updated, p.Touched)
		}
	})
}

// The updated columns change with each UPDATE that writes something, in
// that UPDATE; a commit with nothing to write, or whose only change is to
// a readonly column, sends nothing and keeps the time. Created never
// changes after the insert.
func TestTimestampsUpdatedOnlyWhenAnUpdateWrites(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := tsOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		p := &tsPost{Title: "a"}
		uowMust(t, s.Add(p))
		uowMust(t, s.Commit(ctx))
		created, updated := p.Created, *p.Updated
		log.Reset()
		uowMust(t, s.Commit(ctx))
		p.Views = 7 // readonly: never written
		uowMust(t, s.Commit(ctx))
		if *p.Updated != updated || p.Touched.Time != updated || len(log.Matching("UPDATE")) != 0 {
			t.Fatalf("with nothing to write: updated %v (was %v), statements %v", *p.Updated, updated, log.SQL())
		}
		time.Sleep(2 * time.Millisecond)
		from := time.Now()
		p.Title = "b"
		uowMust(t, s.Commit(ctx))
		ups := log.Matching("UPDATE")
		if len(ups) != 1 || !strings.Contains(ups[0].SQL, "updated_at") || !strings.Contains(ups[0].SQL, "touched_at") {
			t.Fatalf("UPDATEs sent: %v; want one that also sets the updated columns", log.SQL())
		}
		tsCheckStamp(t, "Updated", *p.Updated, from, time.Now())
		if p.Created != created || p.Touched.Time != *p.Updated {
			t.Fatalf("after the update: created %v (was %v), touched %v, updated %v", p.Created, created, p.Touched.Time, *p.Updated)
		}
		if got := countRows(t, eng, "SELECT COUNT(*) FROM ts_posts WHERE updated_at > created_at"); got != 1 {
			t.Fatalf("%d rows updated after their creation, want 1", got)
		}
	})
}

// A commit that fails puts back the times it set: a pending object has
// none again, an updated one has its old updated time.
func TestTimestampsAreRestoredWhenCommitFails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := tsOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &tsPost{Title: "taken"})
		s := eng.NewSession()
		defer s.Close()
		p, dup := &tsPost{Title: "new"}, &tsPost{Title: "taken"}
		uowMust(t, s.Add(p, dup))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit = %v; want a unique violation", err)
		}
		if !p.Created.IsZero() || p.Updated != nil || p.Touched.Valid {
			t.Fatalf("after the failed insert: %v %v %v; want no times", p.Created, p.Updated, p.Touched)
		}
		uowMust(t, s.Delete(dup))
		uowMust(t, s.Commit(ctx))
		updated := *p.Updated
		p.Title = "taken"
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit = %v; want a unique violation", err)
		}
		if *p.Updated != updated || p.Touched.Time != updated {
			t.Fatalf("after the failed update: updated %v touched %v; want the old %v back", *p.Updated, p.Touched.Time, updated)
		}
	})
}

// The generated mapper of kinds.Stamped fills the same columns.
func TestTimestampsWithAGeneratedMapper(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := tsOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		from := time.Now()
		k := &kinds.Stamped{Title: "a"}
		uowMust(t, s.Add(k))
		uowMust(t, s.Commit(ctx))
		tsCheckStamp(t, "Created", k.Created, from, time.Now())
		if k.Updated == nil || *k.Updated != k.Created {
			t.Fatalf("Updated = %v; want %v", k.Updated, k.Created)
		}
		uowMust(t, s.Delete(k))
		uowMust(t, s.Commit(ctx))
		if !k.Deleted.Valid || countRows(t, eng, "SELECT COUNT(*) FROM stampeds WHERE deleted_at IS NOT NULL") != 1 {
			t.Fatalf("Deleted = %v; want the row kept, soft-deleted", k.Deleted)
		}
	})
}

// UpdateAll sets the updated columns of the rows it changes, and of the
// tracked objects among them, unless its Set names them; created stays.
func TestTimestampsAreSetByUpdateAll(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := tsOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		p := &tsPost{Title: "a"}
		uowMust(t, s.Add(p))
		uowMust(t, s.Commit(ctx))
		created := p.Created
		time.Sleep(2 * time.Millisecond)
		from := time.Now()
		set := orm.Set{"title": "b"}
		n, err := orm.Query[tsPost](s).Where("id = ?", p.ID).UpdateAll(ctx, set)
		if err != nil || n != 1 {
			t.Fatalf("UpdateAll = %d, %v", n, err)
		}
		if len(set) != 1 {
			t.Fatalf("UpdateAll changed the caller's Set: %v", set)
		}
		tsCheckStamp(t, "Updated", *p.Updated, from, time.Now())
		if p.Created != created || p.Touched.Time != *p.Updated || s.IsDirty(p) {
			t.Fatalf("after UpdateAll: created %v (was %v), touched %v, updated %v, dirty %v", p.Created, created, p.Touched.Time, *p.Updated, s.IsDirty(p))
		}
		uowMust(t, s.Commit(ctx))
		if got := countRows(t, eng, "SELECT COUNT(*) FROM ts_posts WHERE updated_at > created_at AND touched_at = updated_at"); got != 1 {
			t.Fatalf("%d rows with the new times, want 1", got)
		}
	})
}

// Upsert sets the times too: a new row gets created and updated, a
// conflict's UPDATE sets updated and keeps the row's created time, even
// with DoUpdate() of every column.
func TestTimestampsAreSetByUpsert(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := tsOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		from := time.Now()
		first := &tsPost{Title: "a"}
		uowMust(t, orm.Upsert(ctx, s, []*tsPost{first}, orm.OnConflict("title").DoUpdate()))
		uowMust(t, s.Commit(ctx))
		tsCheckStamp(t, "Created", first.Created, from, time.Now())
		if first.Updated == nil || *first.Updated != first.Created {
			t.Fatalf("Updated = %v; want %v", first.Updated, first.Created)
		}
		time.Sleep(2 * time.Millisecond)
		r := eng.NewSession()
		defer r.Close()
		again := &tsPost{Title: "a"}
		uowMust(t, orm.Upsert(ctx, r, []*tsPost{again}, orm.OnConflict("title").DoUpdate()))
		uowMust(t, r.Commit(ctx))
		if again.ID != first.ID || again.Created != first.Created || again.Updated == nil || !again.Updated.After(first.Created) {
			t.Fatalf("after the conflict: id %d created %v updated %v; want row %d, created %v kept, a later updated", again.ID, again.Created, again.Updated, first.ID, first.Created)
		}
	})
}
