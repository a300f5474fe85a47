package orm_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// A tracked object matched by UpdateAll holds what its row reads back: a
// time in another zone with nanoseconds as stored (UTC microseconds), a
// sql.NullTime, T into *T, bytes, the updated stamp and the version.
func TestQueryUpdateAllLeavesTrackedObjectsAsTheirRowsRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := advOpen(t, tg)
		ctx := context.Background()
		seed := &advDoc{Name: "a", At: baseTime}
		seedObjects(t, eng, seed)
		s := eng.NewSession()
		defer s.Close()
		d, err := orm.Get[advDoc](ctx, s, seed.ID)
		uowMust(t, err)
		data := []byte{0, 1}
		at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("east", 5*3600))
		set := orm.Set{"at": at, "seen": baseTime, "n": 5, "data": data}
		if n, err := orm.Query[advDoc](s).Where("id = ?", d.ID).UpdateAll(ctx, set); err != nil || n != 1 {
			t.Fatalf("UpdateAll = %d, %v; want 1, nil", n, err)
		}
		data[0] = 9 // the caller's slice, changed afterwards
		uowMust(t, s.Commit(ctx))
		got := advReload(t, eng, d.ID)
		same := d.At.Equal(got.At) && d.At.Nanosecond() == got.At.Nanosecond() && d.Seen == got.Seen &&
			d.N != nil && got.N != nil && *d.N == *got.N && slices.Equal(d.Data, got.Data) &&
			d.Upd.Equal(got.Upd) && d.Version == got.Version
		if !same || *d.N != 5 || d.Data[0] != 0 || d.Version != 2 {
			t.Fatalf("tracked object %+v, row %+v: want equal, n 5, data [0 1], version 2", *d, *got)
		}
	})
}

// advEntryAccount reads an entry's committed account_id.
func advEntryAccount(t *testing.T, eng *orm.Engine, id int64) int64 {
	t.Helper()
	return countRows(t, eng, "SELECT account_id FROM entries WHERE id = ?", id)
}

// A tracked object's relation fields decide its foreign-key columns at
// every flush: UpdateAll moving an entry to another account while its
// Account pointer, or its old account's Entries slice, still holds the
// old parent was set back by the commit, silently. It is now refused,
// the UPDATE rolled back and the session as before; with the relation
// cleared, or holding the new parent, the move commits.
func TestQueryUpdateAllRefusesAForeignKeyARelationWouldSetBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		a1, a2 := newAccount("a1", 1), newAccount("a2", 2)
		seedObjects(t, eng, a1, a2)
		seed := &Entry{AccountID: a1.ID, Amount: 5}
		seedObjects(t, eng, seed)
		move := func(s *orm.Session, to int64) error {
			_, err := orm.Query[Entry](s).Where("id = ?", seed.ID).UpdateAll(ctx, orm.Set{"account_id": to})
			return err
		}

		// Belongs-to: the entry points at a1.
		s := eng.NewSession()
		defer s.Close()
		es, err := orm.Query[Entry](s).Load("Account").All(ctx)
		uowMust(t, err)
		e := es[0]
		if err := move(s, a2.ID); err == nil {
			t.Fatal("UpdateAll moved an entry whose Account field holds its old account; want an error")
		}
		if got := advEntryAccount(t, eng, e.ID); got != a1.ID || e.AccountID != a1.ID || s.IsDirty(e) {
			t.Fatalf("after the refusal: row account %d, object %d, dirty %v; want %d, %d, clean", got, e.AccountID, s.IsDirty(e), a1.ID, a1.ID)
		}
		if err := move(s, a1.ID); err != nil {
			t.Fatalf("UpdateAll to the parent the relation holds: %v", err)
		}
		e.Account = nil
		uowMust(t, move(s, a2.ID))
		uowMust(t, s.Commit(ctx))
		if got := advEntryAccount(t, eng, e.ID); got != a2.ID || e.AccountID != a2.ID {
			t.Fatalf("row account %d, object %d after the move with the relation cleared, want %d", got, e.AccountID, a2.ID)
		}

		// Has-many: a2's Entries lists the entry.
		s2 := eng.NewSession()
		defer s2.Close()
		as, err := orm.Query[Account](s2).Where("id = ?", a2.ID).Load("Entries").All(ctx)
		uowMust(t, err)
		if len(as) != 1 || len(as[0].Entries) != 1 {
			t.Fatalf("loaded %d accounts, want a2 with its one entry", len(as))
		}
		if err := move(s2, a1.ID); err == nil {
			t.Fatal("UpdateAll moved an entry its old account's Entries lists; want an error")
		}
		uowMust(t, s2.Commit(ctx))
		if got := advEntryAccount(t, eng, e.ID); got != a2.ID {
			t.Fatalf("row account %d after the refused move and a commit, want %d", got, a2.ID)
		}
	})
}

// At READ COMMITTED (PostgreSQL's default; MySQL's then takes no gap
// locks), a SELECT ... FOR UPDATE locks only the rows it returns, so
// another transaction can make a row match between the SELECT that finds
// the tracked objects UpdateAll or DeleteAll affects and the statement. That row's tracked object then kept
// its old values (or stayed tracked with its row deleted) while the
// statement committed. Now the statement is rolled back with an error
// matching ErrStaleData, and the session and the rows still agree.
func TestQueryUpdateAllRollsBackWhenRowsCameToMatchMeanwhile(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name == dbtest.SQLite {
			t.Skip("SQLite has one writer: no other transaction commits in between")
		}
		var eng *orm.Engine
		var meanwhile string // SQL another connection runs right after the SELECT of keys
		hook := orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
			if meanwhile == "" {
				return
			}
			if d := eng.Dialect(); strings.HasPrefix(ev.SQL, "SELECT "+d.Quote("id")+" FROM "+d.Quote("accounts")+" WHERE") {
				q := meanwhile
				meanwhile = ""
				if _, err := eng.DB().ExecContext(context.Background(), q); err != nil {
					t.Errorf("%s: %v", q, err)
				}
			}
		})
		eng = openEngine(t, tg, nil, hook)
		ctx := context.Background()
		seeded := seedAccounts(t, eng, 2)
		// MySQL's default REPEATABLE READ locks the gaps too: the row could
		// not come to match.
		readCommitted := orm.WithIsolation(sql.LevelReadCommitted)
		s := eng.NewSession(readCommitted)
		defer s.Close()
		accts, err := orm.Query[Account](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		a1 := accts[1]

		meanwhile = "UPDATE accounts SET balance = 0 WHERE owner = 'a1'"
		_, err = orm.Query[Account](s).Where("balance = ?", 0).UpdateAll(ctx, orm.Set{"note": "zeroed"})
		if !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("UpdateAll with a row come to match meanwhile: %v, want ErrStaleData", err)
		}
		if n := countAccounts(t, eng, "note IS NOT NULL OR version <> 1"); n != 0 || a1.Note != nil || a1.Version != 1 {
			t.Fatalf("%d rows written; object note %v version %d: want the UPDATE rolled back, the object as it was", n, a1.Note, a1.Version)
		}
		if n, err := orm.Query[Account](s).Where("balance = ?", 0).UpdateAll(ctx, orm.Set{"note": "zeroed"}); err != nil || n != 1 {
			t.Fatalf("UpdateAll again = %d, %v; want 1, nil", n, err)
		}
		uowMust(t, s.Commit(ctx))
		if a1.Note == nil || *a1.Note != "zeroed" || a1.Version != 2 || countAccounts(t, eng, "note = 'zeroed' AND version = 2") != 1 {
			t.Fatalf("object note %v version %d, want the committed row's zeroed and 2", a1.Note, a1.Version)
		}

		// DeleteAll: the row of a tracked object comes to match.
		s2 := eng.NewSession(readCommitted)
		defer s2.Close()
		_, err = orm.Query[Account](s2).OrderBy("id").All(ctx)
		uowMust(t, err)
		meanwhile = "UPDATE accounts SET balance = 5 WHERE owner = 'a0'"
		if _, err := orm.Query[Account](s2).Where("balance = ?", 5).DeleteAll(ctx); !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("DeleteAll with a row come to match meanwhile: %v, want ErrStaleData", err)
		}
		uowMust(t, s2.Commit(ctx))
		if n := countAccounts(t, eng, "id = ?", seeded[0].ID); n != 1 {
			t.Fatal("the row that came to match was deleted, its object still tracked")
		}
	})
}

// advList is a slice column type of its own, stored through its Valuer
// and Scanner as JSON text.
type advList []string

// Value returns the list as JSON text.
func (l advList) Value() (driver.Value, error) {
	b, err := json.Marshal([]string(l))
	return string(b), err
}

// Scan reads the JSON text back.
func (l *advList) Scan(src any) error {
	switch v := src.(type) {
	case string:
		return json.Unmarshal([]byte(v), (*[]string)(l))
	case []byte:
		return json.Unmarshal(v, (*[]string)(l))
	case nil:
		*l = nil
		return nil
	}
	return fmt.Errorf("advList: cannot scan %T", src)
}

type advListed struct {
	ID   int64   `db:"id,pk,auto"`
	List advList `db:"list,type=TEXT"`
}

func (advListed) TableName() string { return "adv_listed" }

// A slice value UpdateAll gives a tracked object was shared by the
// caller, the object and its snapshot (only []byte and pointers were
// copied): the caller changing it afterwards changed the object, which
// then disagreed with its row, and the object changed in place was not
// dirty, its change never written.
func TestQueryUpdateAllGivesTrackedObjectsValuesOfTheirOwn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advListed{}))
		seed := &advListed{List: advList{"a"}}
		seedObjects(t, eng, seed)
		s := eng.NewSession()
		defer s.Close()
		o, err := orm.Get[advListed](ctx, s, seed.ID)
		uowMust(t, err)
		list := advList{"x", "y"}
		if n, err := orm.Query[advListed](s).Where("id = ?", o.ID).UpdateAll(ctx, orm.Set{"list": list}); err != nil || n != 1 {
			t.Fatalf("UpdateAll = %d, %v; want 1, nil", n, err)
		}
		list[0] = "changed by the caller"
		if !slices.Equal(o.List, advList{"x", "y"}) || s.IsDirty(o) {
			t.Fatalf("tracked object %q dirty %v after the caller changed its slice, want [x y], clean", o.List, s.IsDirty(o))
		}
		o.List[1] = "z"
		if !s.IsDirty(o) {
			t.Fatal("the object's slice changed in place is not dirty: it shares it with its snapshot")
		}
		uowMust(t, s.Commit(ctx))
		s2 := eng.NewSession()
		defer s2.Close()
		got, err := orm.Get[advListed](ctx, s2, seed.ID)
		uowMust(t, err)
		if !slices.Equal(got.List, advList{"x", "z"}) {
			t.Fatalf("row list %q, want [x z]", got.List)
		}
	})
}

// The has-one side of the same rule: an author's Profile field decides
// the profile's author_id at every flush, so moving the profile to
// another author by UpdateAll while the first author's field holds it is
// refused, and with the field cleared it commits.
func TestQueryUpdateAllRefusesAForeignKeyAHasOneWouldSetBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		ann, bob := &RelAuthor{Name: "ann", Profile: &RelProfile{Bio: "poet"}}, &RelAuthor{Name: "bob"}
		seedObjects(t, eng, ann, bob)
		s := eng.NewSession()
		defer s.Close()
		authors, err := orm.Query[RelAuthor](s).OrderBy("id").Load("Profile").All(ctx)
		uowMust(t, err)
		move := func() error {
			_, err := orm.Query[RelProfile](s).Where("id = ?", ann.Profile.ID).UpdateAll(ctx, orm.Set{"author_id": bob.ID})
			return err
		}
		if err := move(); err == nil {
			t.Fatal("UpdateAll moved a profile its author's Profile field holds; want an error")
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM profiles WHERE author_id = ?", ann.ID); n != 1 {
			t.Fatal("the refused UPDATE was not rolled back")
		}
		authors[0].Profile = nil
		uowMust(t, move())
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM profiles WHERE author_id = ?", bob.ID); n != 1 {
			t.Fatal("the profile's move to bob was not committed")
		}
	})
}
