package orm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of Upsert: inserts, updates and do-nothing resolve as
// asked on every database, in batches under the parameter limit, and the
// objects come out tracked with their rows' values. Helpers carry an up
// prefix.

type upMember struct {
	ID      int64  `db:"id,pk,auto"`
	Email   string `db:"email,unique,size=64"`
	Name    string `db:"name,size=64"`
	Age     int    `db:"age"`
	Version int64  `db:"version,version"`
}

func (upMember) TableName() string { return "up_members" }

type upCountry struct {
	Code string `db:"code,pk,size=2"`
	Name string `db:"name,size=64"`
	Pop  int64  `db:"pop"`
}

func (upCountry) TableName() string { return "up_countries" }

func upOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), upMember{}, upCountry{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

// upRow reads a member's committed row outside any session.
func upRow(t *testing.T, eng *orm.Engine, email string) (id int64, name string, age int, version int64) {
	t.Helper()
	q := eng.Dialect().Rebind("SELECT id, name, age, version FROM up_members WHERE email = ?")
	if err := eng.DB().QueryRowContext(context.Background(), q, email).Scan(&id, &name, &age, &version); err != nil {
		t.Fatalf("row %s: %v", email, err)
	}
	return
}

func TestUpsertDoUpdateInsertsNewRowsAndUpdatesOnlyTheNamedColumnsOfExistingOnes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		ann := &upMember{Email: "ann@x", Name: "Ann", Age: 30}
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		a := &upMember{Email: "ann@x", Name: "Ann B", Age: 99}
		c := &upMember{Email: "cat@x", Name: "Cat", Age: 7}
		log.Reset()
		uowMust(t, orm.Upsert(ctx, s, []*upMember{a, c}, orm.OnConflict("email").DoUpdate("name")))
		// Each object is its row now: the existing row's key, its age
		// (not updated), the new name and a bumped version; the new row's
		// generated key and first version.
		if a.ID != ann.ID || a.Name != "Ann B" || a.Age != 30 || a.Version != 2 {
			t.Fatalf("updated object = %+v; want id %d, name Ann B, age 30 (the row's), version 2", *a, ann.ID)
		}
		if c.ID == 0 || c.ID == ann.ID || c.Version != 1 || c.Age != 7 {
			t.Fatalf("inserted object = %+v; want a new key, version 1", *c)
		}
		// Tracked: Get is served from the identity map, nothing is dirty.
		n := len(log.Events())
		got, err := orm.Get[upMember](ctx, s, c.ID)
		uowMust(t, err)
		if got != c || len(log.Events()) != n {
			t.Fatalf("Get after Upsert: %p (want %p), %d statements (want none)", got, c, len(log.Events())-n)
		}
		if s.IsDirty(a) || s.IsDirty(c) {
			t.Fatal("an upserted object is dirty: its snapshot differs from its row")
		}
		uowMust(t, s.Commit(ctx))
		if _, name, age, v := upRow(t, eng, "ann@x"); name != "Ann B" || age != 30 || v != 2 {
			t.Fatalf("committed ann = %s, %d, v%d; want Ann B, 30, v2", name, age, v)
		}
		if id, name, _, _ := upRow(t, eng, "cat@x"); id != c.ID || name != "Cat" {
			t.Fatalf("committed cat = %d %s; want %d Cat", id, name, c.ID)
		}
		// A change after the upsert is an ordinary UPDATE with the version check.
		a.Age = 31
		uowMust(t, s.Commit(ctx))
		if _, _, age, v := upRow(t, eng, "ann@x"); age != 31 || v != 3 {
			t.Fatalf("after a later change: age %d v%d; want 31 v3", age, v)
		}
	})
}

func TestUpsertDoNothingKeepsTheExistingRowAndGivesTheObjectItsValues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		ctx := context.Background()
		ann := &upMember{Email: "ann@x", Name: "Ann", Age: 30}
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		a := &upMember{Email: "ann@x", Name: "Impostor", Age: 1}
		b := &upMember{Email: "bob@x", Name: "Bob", Age: 2}
		uowMust(t, orm.Upsert(ctx, s, []*upMember{a, b}, orm.OnConflict("email").DoNothing()))
		if *a != *ann {
			t.Fatalf("object of the existing row = %+v; want the row %+v", *a, *ann)
		}
		if b.ID == 0 || b.Version != 1 {
			t.Fatalf("inserted object = %+v; want a key and version 1", *b)
		}
		if s.IsDirty(a) || s.IsDirty(b) {
			t.Fatal("an upserted object is dirty")
		}
		uowMust(t, s.Commit(ctx))
		if _, name, age, v := upRow(t, eng, "ann@x"); name != "Ann" || age != 30 || v != 1 {
			t.Fatalf("ann's row changed by DoNothing: %s %d v%d", name, age, v)
		}
		if id, _, _, _ := upRow(t, eng, "bob@x"); id != b.ID {
			t.Fatalf("bob's row id %d; object has %d", id, b.ID)
		}
	})
}

func TestUpsertOnTheClientSetPrimaryKeyByDefaultUpdatesEveryColumn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upCountry{Code: "fr", Name: "France", Pop: 1})
		s := eng.NewSession()
		defer s.Close()
		fr := &upCountry{Code: "fr", Name: "France", Pop: 68}
		de := &upCountry{Code: "de", Name: "Germany", Pop: 84}
		uowMust(t, orm.Upsert(ctx, s, []*upCountry{fr, de}, orm.OnConflict().DoUpdate()))
		uowMust(t, s.Commit(ctx))
		s2 := eng.NewSession()
		defer s2.Close()
		got, err := orm.Query[upCountry](s2).OrderBy("code").All(ctx)
		uowMust(t, err)
		if len(got) != 2 || *got[0] != *de || *got[1] != *fr {
			t.Fatalf("rows after Upsert = %v; want de 84, fr 68", got)
		}
	})
}

// 2,500 objects, half of them existing rows: three statements of at most
// 1,000 rows, each under the database's parameter limit, and every
// object gets its own row's key.
func TestUpsertBatchesUnderTheParameterLimitAndAssignsEveryKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		const total = 2500
		var seed []any
		for i := 0; i < total; i += 2 {
			seed = append(seed, &upMember{Email: fmt.Sprintf("m%d@x", i), Name: "old", Age: i})
		}
		seedObjects(t, eng, seed...)
		s := eng.NewSession()
		defer s.Close()
		objs := make([]*upMember, total)
		for i := range objs {
			objs[i] = &upMember{Email: fmt.Sprintf("m%d@x", i), Name: "new", Age: -1}
		}
		log.Reset()
		uowMust(t, orm.Upsert(ctx, s, objs, orm.OnConflict("email").DoUpdate("name")))
		ins := log.Matching("INSERT")
		if len(ins) != 3 {
			t.Fatalf("%d INSERT statements for %d objects; want 3", len(ins), total)
		}
		for _, ev := range ins {
			if len(ev.Args) > eng.Dialect().MaxParams() {
				t.Fatalf("a statement binds %d values; the limit is %d", len(ev.Args), eng.Dialect().MaxParams())
			}
		}
		keys := map[int64]bool{}
		for i, o := range objs {
			if o.ID == 0 || keys[o.ID] {
				t.Fatalf("objs[%d] key %d: zero or shared", i, o.ID)
			}
			keys[o.ID] = true
			wantAge, wantV := -1, int64(1)
			if i%2 == 0 {
				wantAge, wantV = i, 2 // an existing row: its age kept, version bumped
			}
			if o.Name != "new" || o.Age != wantAge || o.Version != wantV {
				t.Fatalf("objs[%d] = %+v; want name new, age %d, version %d", i, *o, wantAge, wantV)
			}
		}
		if st := s.Stats(); st.Tracked != total {
			t.Fatalf("%d objects tracked; want %d", st.Tracked, total)
		}
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM up_members WHERE name = ?", "new"); n != total {
			t.Fatalf("%d rows named new; want %d", n, total)
		}
		if id, _, _, _ := upRow(t, eng, "m2499@x"); id != objs[2499].ID {
			t.Fatalf("row m2499 has id %d, its object %d", id, objs[2499].ID)
		}
	})
}

// The session keeps one object per row: an upsert of a new instance for
// a row the session already tracks is refused before any SQL.
func TestUpsertOfARowTrackedAsAnotherObjectIsAnIdentityConflictWithoutSQL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upMember{Email: "ann@x", Name: "Ann"}, &upCountry{Code: "fr", Name: "France"})
		s := eng.NewSession()
		defer s.Close()
		tracked, err := orm.Query[upMember](s).Where("email = ?", "ann@x").One(ctx)
		uowMust(t, err)
		_, err = orm.Get[upCountry](ctx, s, "fr")
		uowMust(t, err)
		log.Reset()
		err = orm.Upsert(ctx, s, []*upMember{{Email: "ann@x", Name: "Other"}}, orm.OnConflict("email").DoUpdate("name"))
		if !errors.Is(err, orm.ErrIdentityConflict) {
			t.Fatalf("Upsert of a tracked row's email = %v; want ErrIdentityConflict", err)
		}
		err = orm.Upsert(ctx, s, []*upCountry{{Code: "fr", Name: "X"}}, orm.OnConflict().DoNothing())
		if !errors.Is(err, orm.ErrIdentityConflict) {
			t.Fatalf("Upsert of a tracked row's key = %v; want ErrIdentityConflict", err)
		}
		err = orm.Upsert(ctx, s, []*upMember{tracked}, orm.OnConflict("email").DoNothing())
		if err == nil || !strings.Contains(err.Error(), "tracked by this session") {
			t.Fatalf("Upsert of a tracked object = %v; want it refused", err)
		}
		if evs := log.Events(); len(evs) != 0 {
			t.Fatalf("refused Upserts sent %d statements, first %q", len(evs), evs[0].SQL)
		}
		if tracked.Name != "Ann" || s.IsDirty(tracked) {
			t.Fatalf("tracked object changed: %+v", *tracked)
		}
	})
}

func TestUpsertRefusesBadColumnsAndDuplicateTargetsBeforeSQL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		one := func() []*upMember { return []*upMember{{Email: "a@x"}} }
		var ce *orm.ColumnError
		for _, c := range []orm.Conflict{
			orm.OnConflict("mail").DoNothing(),                // not a column
			orm.OnConflict("email").DoUpdate("nme"),           // not a column
			orm.OnConflict("id").DoNothing(),                  // generated: never conflicts
			orm.OnConflict("email").DoUpdate("version"),       // set by Tally
			orm.OnConflict("email").DoUpdate("email"),         // the target itself
			orm.OnConflict("email; DROP TABLE x").DoNothing(), // not a column either
		} {
			if err := orm.Upsert(ctx, s, one(), c); !errors.As(err, &ce) {
				t.Fatalf("Upsert(%+v) = %v; want a *ColumnError", c, err)
			}
		}
		if err := orm.Upsert(ctx, s, one(), orm.OnConflict("email")); err == nil {
			t.Fatal("Upsert without DoUpdate or DoNothing succeeded")
		}
		dup := []*upMember{{Email: "a@x"}, {Email: "a@x"}}
		if err := orm.Upsert(ctx, s, dup, orm.OnConflict("email").DoNothing()); err == nil || !strings.Contains(err.Error(), "same (email)") {
			t.Fatalf("Upsert of two objects with one email = %v; want it refused", err)
		}
		if evs := log.Events(); len(evs) != 0 {
			t.Fatalf("refused Upserts sent %d statements, first %q", len(evs), evs[0].SQL)
		}
	})
}

// A failed Commit after an Upsert puts the objects back as they were:
// untracked, their fields as the caller set them, so the work can be
// retried in a new session.
func TestUpsertIsUndoneByAFailedCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upMember{Email: "ann@x", Name: "Ann"}, &upMember{Email: "bob@x", Name: "Bob"})
		s := eng.NewSession()
		defer s.Close()
		a := &upMember{Email: "ann@x", Name: "Ann B"}
		uowMust(t, orm.Upsert(ctx, s, []*upMember{a}, orm.OnConflict("email").DoUpdate("name")))
		// A second object with bob's email fails the commit (unique).
		uowMust(t, s.Add(&upMember{Email: "bob@x"}))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit = %v; want ErrUniqueViolation", err)
		}
		if a.ID != 0 || a.Version != 0 || a.Name != "Ann B" {
			t.Fatalf("upserted object after the failed commit = %+v; want its fields as before Upsert", *a)
		}
		if _, name, _, _ := upRow(t, eng, "ann@x"); name != "Ann" {
			t.Fatalf("ann's row is %q after the rollback; want Ann", name)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		uowMust(t, orm.Upsert(ctx, s2, []*upMember{a}, orm.OnConflict("email").DoUpdate("name")))
		uowMust(t, s2.Commit(ctx))
		if _, name, _, _ := upRow(t, eng, "ann@x"); name != "Ann B" {
			t.Fatalf("retried upsert: ann's row is %q; want Ann B", name)
		}
	})
}

// The local MySQL server is MariaDB, which has RETURNING; an engine built
// with dialect.MySQL over the same pool takes MySQL 8's path: the
// statement returns nothing, and the rows are read back by the conflict
// target, locked, in the same transaction.
func TestUpsertWithoutReturningReadsTheRowsBackByTheConflictTarget(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.MySQL {
			t.Skip("only MySQL has a dialect without RETURNING")
		}
		base, _ := upOpen(t, tg)
		log := &queryLog{}
		eng := orm.New(base.DB().DB, dialect.MySQL, orm.WithQueryHook(log.hook)) // closed with base
		ctx := context.Background()
		ann := &upMember{Email: "ann@x", Name: "Ann", Age: 30}
		bob := &upMember{Email: "bob@x", Name: "Bob", Age: 40}
		seedObjects(t, eng, ann, bob)
		s := eng.NewSession()
		defer s.Close()
		a := &upMember{Email: "ann@x", Name: "Ann B", Age: 1}
		c := &upMember{Email: "cat@x", Name: "Cat", Age: 7}
		log.Reset()
		uowMust(t, orm.Upsert(ctx, s, []*upMember{a, c}, orm.OnConflict("email").DoUpdate("name")))
		sqls := log.SQL()
		if len(sqls) != 3 || !strings.Contains(sqls[1], "ON DUPLICATE KEY UPDATE `name` = VALUES(`name`), `version` = `version` + 1") ||
			!strings.HasPrefix(sqls[2], "SELECT") || !strings.HasSuffix(sqls[2], "FOR UPDATE") {
			t.Fatalf("statements = %q; want BEGIN, the INSERT ... ON DUPLICATE KEY UPDATE, a locking SELECT", sqls)
		}
		if a.ID != ann.ID || a.Name != "Ann B" || a.Age != 30 || a.Version != 2 || c.ID == 0 || c.Version != 1 {
			t.Fatalf("objects = %+v, %+v; want ann's row updated, cat's inserted", *a, *c)
		}
		b := &upMember{Email: "bob@x", Name: "Nope"}
		uowMust(t, orm.Upsert(ctx, s, []*upMember{b}, orm.OnConflict("email").DoNothing()))
		if *b != *bob {
			t.Fatalf("DoNothing object = %+v; want the row %+v", *b, *bob)
		}
		uowMust(t, s.Commit(ctx))
	})
}
