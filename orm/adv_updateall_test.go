package orm_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Adversarial tests of UpdateAll's kept statements and value conversion
// (sqlcache.go, Q.UpdateAll): every result is compared with what the
// database holds, read back in a fresh session. Helpers carry an adv
// prefix.

// advDoc has a column of each kind whose bound value is not the value its
// field holds: json text, a json.RawMessage bound as text, times
// normalised to UTC microseconds; and an updated stamp and a version.
type advDoc struct {
	ID      int64           `db:"id,pk,auto"`
	Name    string          `db:"name,unique,size=32"`
	Tags    []string        `db:"tags,json"`
	Meta    json.RawMessage `db:"meta"`
	Data    []byte          `db:"data"`
	At      time.Time       `db:"at"`
	Seen    sql.NullTime    `db:"seen"`
	N       *int64          `db:"n"`
	Upd     time.Time       `db:"upd,updated"`
	Version int64           `db:"version,version"`
}

func (advDoc) TableName() string { return "adv_docs" }

// advOpen opens an engine with advDoc's table and an empty query log.
func advOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	uowMust(t, eng.CreateTables(context.Background(), advDoc{}))
	log.Reset()
	return eng, log
}

// advReload reads the doc with key id in a new session.
func advReload(t *testing.T, eng *orm.Engine, id int64) *advDoc {
	t.Helper()
	s := eng.NewSession()
	defer s.Close()
	d, err := orm.Get[advDoc](context.Background(), s, id)
	uowMust(t, err)
	return d
}

// A json column and a json.RawMessage field bind text, which their
// fields do not take back: UpdateAll must give a tracked object the
// values themselves, not fail after the UPDATE and roll the transaction
// back (it did: "cannot set a mapper.jsonValue into a []string field").
// The object and its snapshot get copies of their own, as from a load:
// the caller's slice changing afterwards reaches neither, and the object
// changed in place is dirty and written.
func TestQueryUpdateAllSetsJSONColumnsOfTrackedObjects(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := advOpen(t, tg)
		ctx := context.Background()
		seed := &advDoc{Name: "a", At: baseTime, Meta: json.RawMessage(`{}`)}
		seedObjects(t, eng, seed)
		s := eng.NewSession()
		defer s.Close()
		d, err := orm.Get[advDoc](ctx, s, seed.ID)
		uowMust(t, err)
		d.Name = "flushed first" // version 2, in the UpdateAll's transaction
		tags := []string{"x", "y"}
		n, err := orm.Query[advDoc](s).Where("id = ?", d.ID).UpdateAll(ctx, orm.Set{"tags": tags, "meta": json.RawMessage(`{"k":1}`)})
		if err != nil || n != 1 {
			t.Fatalf("UpdateAll = %d, %v; want 1, nil", n, err)
		}
		tags[0] = "changed by the caller"
		if !slices.Equal(d.Tags, []string{"x", "y"}) || !jsonEqual(d.Meta, json.RawMessage(`{"k":1}`)) || d.Version != 3 || s.IsDirty(d) {
			t.Fatalf("tracked object after UpdateAll: tags %q meta %s version %d dirty %v; want [x y], {\"k\":1}, 3, clean",
				d.Tags, d.Meta, d.Version, s.IsDirty(d))
		}
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if ups := log.Matching("UPDATE"); len(ups) != 0 {
			t.Fatalf("Commit after UpdateAll sent %q; the object should be clean", log.SQL())
		}
		got := advReload(t, eng, d.ID)
		if got.Name != "flushed first" || !slices.Equal(got.Tags, []string{"x", "y"}) || !jsonEqual(got.Meta, d.Meta) || got.Version != 3 {
			t.Fatalf("row %+v, want the flushed name, tags [x y], meta {\"k\":1}, version 3", got)
		}

		d.Tags[1] = "z" // in place: the snapshot must not see it
		if !s.IsDirty(d) {
			t.Fatal("the object's json slice changed in place is not dirty: it shares it with its snapshot")
		}
		uowMust(t, s.Commit(ctx))
		if got := advReload(t, eng, d.ID); !slices.Equal(got.Tags, []string{"x", "z"}) {
			t.Fatalf("row tags %q after the in-place change, want [x z]", got.Tags)
		}
	})
}
