package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/mapper"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of UpdateAll's values: each is converted to its field's
// type before any SQL, as the database would convert it, so that a value
// that does not fit fails with nothing sent, and the tracked objects get
// exactly what the UPDATE wrote. Helpers carry a ua prefix.

type uaUser struct {
	ID    int64          `db:"id,pk,auto"`
	Name  string         `db:"name,size=32"`
	Nick  sql.NullString `db:"nick,size=32"`
	Age   int32          `db:"age"`
	Score *int64         `db:"score"`
}

func (uaUser) TableName() string { return "ua_users" }

func uaOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), uaUser{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

// The call: a string into a sql.NullString field, on a tracked
// object, succeeds; so do an int into an int32 field, an int into a
// *int64 field, and nil into a NullString.
func TestQueryUpdateAllConvertsToFieldType(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := uaOpen(t, tg)
		ctx := context.Background()
		seed := &uaUser{Name: "ann"}
		seedObjects(t, eng, seed, &uaUser{Name: "bob"})

		s := eng.NewSession()
		defer s.Close()
		u, err := orm.Get[uaUser](ctx, s, seed.ID)
		uowMust(t, err)
		n, err := orm.Query[uaUser](s).Where("id = ?", u.ID).UpdateAll(ctx, orm.Set{"nick": "x", "age": 42, "score": int16(7)})
		if err != nil || n != 1 {
			t.Fatalf("UpdateAll = %d, %v; want 1, nil", n, err)
		}
		if u.Nick != (sql.NullString{String: "x", Valid: true}) || u.Age != 42 || u.Score == nil || *u.Score != 7 {
			t.Fatalf("tracked object after UpdateAll: nick %+v age %d score %v", u.Nick, u.Age, u.Score)
		}
		if s.IsDirty(u) {
			t.Fatal("the tracked object is dirty after UpdateAll")
		}
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if sent := log.Matching("UPDATE"); len(sent) != 0 {
			t.Fatalf("Commit after UpdateAll sent %v; the object should be clean", sent)
		}
		if got := countRows(t, eng, "SELECT COUNT(*) FROM ua_users WHERE nick = 'x' AND age = 42 AND score = 7"); got != 1 {
			t.Fatalf("%d rows committed with the new values, want 1", got)
		}

		// nil into the NullString, on every row, with no object tracked.
		s2 := eng.NewSession()
		defer s2.Close()
		if n, err := orm.Query[uaUser](s2).AllRows().UpdateAll(ctx, orm.Set{"nick": nil}); err != nil || n != 2 {
			t.Fatalf("UpdateAll(nick: nil) = %d, %v; want 2, nil", n, err)
		}
		uowMust(t, s2.Commit(ctx))
		if got := countRows(t, eng, "SELECT COUNT(*) FROM ua_users WHERE nick IS NULL"); got != 2 {
			t.Fatalf("%d rows with a NULL nick, want 2", got)
		}
	})
}

// A value that cannot be converted is an error that names the column,
// returned before any statement is sent (no autoflush either), and the
// tracked object keeps its values.
func TestQueryUpdateAllRejectsBeforeSQL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := uaOpen(t, tg)
		ctx := context.Background()
		seed := &uaUser{Name: "ann", Age: 5}
		seedObjects(t, eng, seed)
		s := eng.NewSession()
		defer s.Close()
		u, err := orm.Get[uaUser](ctx, s, seed.ID)
		uowMust(t, err)
		u.Name = "pending change" // an autoflush would send it
		for _, tc := range []struct {
			set  orm.Set
			want string
		}{
			{orm.Set{"age": "forty"}, "ua_users.age"},
			{orm.Set{"age": int64(1) << 40}, "ua_users.age"},
			{orm.Set{"name": nil}, "ua_users.name"},
			{orm.Set{"nick": struct{}{}}, "ua_users.nick"},
			{orm.Set{"nope": 1}, `"nope"`},
		} {
			log.Reset()
			_, err := orm.Query[uaUser](s).Where("id = ?", u.ID).UpdateAll(ctx, tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("UpdateAll(%v) = %v; want an error naming %s", tc.set, err, tc.want)
			}
			if sent := log.SQL(); len(sent) != 0 {
				t.Errorf("UpdateAll(%v) sent %q before failing", tc.set, sent)
			}
		}
		if u.Age != 5 || u.Nick.Valid {
			t.Fatalf("the tracked object changed: %+v", u)
		}
		uowMust(t, s.Commit(ctx))
		if got := countRows(t, eng, "SELECT COUNT(*) FROM ua_users WHERE age = 5 AND name = 'pending change'"); got != 1 {
			t.Fatal("the committed row is not the unchanged one with the pending change")
		}
	})
}

// uaFragile's accessor refuses to set any field of the object named
// "fragile", standing for a generated accessor that fails where the
// reflective one did not: UpdateAll's check before SQL passes, and
// applying the result to the tracked object fails after the UPDATE.
type uaFragile struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,size=32"`
	Age  int32  `db:"age"`
}

func (uaFragile) TableName() string { return "ua_fragiles" }

var errFragile = errors.New("fragile object")

type uaFragileAcc struct{ mapper.Accessor }

func (a uaFragileAcc) Set(obj any, c *mapper.Column, v any) error {
	if obj.(*uaFragile).Name == "fragile" {
		return errFragile
	}
	return a.Accessor.Set(obj, c, v)
}

func init() {
	// Generated accessors register at init, as tallygen's code does.
	mapper.RegisterGenerated(reflect.TypeFor[uaFragile](), func(t *mapper.Table) (mapper.Accessor, error) {
		return uaFragileAcc{t.Acc}, nil
	})
}

// When a tracked object cannot take UpdateAll's result, the UPDATE is
// rolled back with the rest of the transaction's flushed work, and the
// session is put back as it was before that work: database and session
// agree, nothing is lost.
func TestQueryUpdateAllUndoesWhenApplyFails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, uaFragile{}))
		other := &uaFragile{Name: "other", Age: 5}
		seedObjects(t, eng, other)
		if _, err := eng.DB().ExecContext(ctx, "INSERT INTO ua_fragiles (name, age) VALUES ('fragile', 5)"); err != nil {
			t.Fatal(err)
		}

		s := eng.NewSession()
		defer s.Close()
		all, err := orm.Query[uaFragile](s).OrderBy("name").All(ctx)
		uowMust(t, err)
		fragile, o := all[0], all[1]
		o.Age = 6
		uowMust(t, s.Flush(ctx)) // an UPDATE in the transaction, before UpdateAll's
		_, err = orm.Query[uaFragile](s).AllRows().UpdateAll(ctx, orm.Set{"age": 9})
		if !errors.Is(err, errFragile) {
			t.Fatalf("UpdateAll: %v, want the accessor's error", err)
		}
		if fragile.Age != 5 || o.Age != 6 {
			t.Fatalf("after the failure: fragile age %d (want 5), other age %d (want 6)", fragile.Age, o.Age)
		}
		if !s.IsDirty(o) || s.IsDirty(fragile) {
			t.Fatalf("dirty: other %v (want true: its flush was undone), fragile %v (want false)", s.IsDirty(o), s.IsDirty(fragile))
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ua_fragiles WHERE age = 5"); n != 2 {
			t.Fatalf("%d rows at age 5, want 2: the UPDATE was not undone", n)
		}
		uowMust(t, s.Commit(ctx))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ua_fragiles WHERE age = 9"); n != 0 {
			t.Fatalf("%d rows at age 9 committed", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM ua_fragiles WHERE name = 'other' AND age = 6"); n != 1 {
			t.Fatal("the other object's change was lost")
		}
	})
}

// UpdateAll keeps its statement per table, set of columns and list of
// conditions: a second call of the same shape sends the same SQL with its
// own values, a value of another type is still converted or refused
// before SQL, and shapes that differ only in how their conditions are
// split are different statements, each updating the rows it names.
func TestQueryUpdateAllSameShapeSendsItsOwnValues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := uaOpen(t, tg)
		ctx := context.Background()
		ann, bob := &uaUser{Name: "ann"}, &uaUser{Name: "bob"}
		seedObjects(t, eng, ann, bob)
		s := eng.NewSession()
		defer s.Close()
		update := func(q *orm.Q[uaUser], set orm.Set) {
			t.Helper()
			if n, err := q.UpdateAll(ctx, set); err != nil || n != 1 {
				t.Fatalf("UpdateAll(%v) = %d, %v; want 1, nil", set, n, err)
			}
		}
		tracked, err := orm.Get[uaUser](ctx, s, ann.ID)
		uowMust(t, err)
		update(orm.Query[uaUser](s).Where("id = ?", ann.ID), orm.Set{"age": int32(1), "name": "ann1"})
		if tracked.Name != "ann1" || tracked.Age != 1 || s.IsDirty(tracked) {
			t.Fatalf("tracked object after UpdateAll: %+v, dirty %v; want ann1, 1, clean", tracked, s.IsDirty(tracked))
		}
		update(orm.Query[uaUser](s).Where("id = ?", bob.ID), orm.Set{"age": int32(2), "name": "bob2"})
		update(orm.Query[uaUser](s).Where("id = ?", bob.ID), orm.Set{"age": int64(3), "name": "bob3"}) // converted
		if _, err := orm.Query[uaUser](s).Where("id = ?", bob.ID).UpdateAll(ctx, orm.Set{"age": "x", "name": "bob4"}); err == nil {
			t.Fatal(`UpdateAll(age: "x") succeeded after the shape was kept; want the conversion error`)
		}
		if ups := log.Matching("UPDATE"); len(ups) != 3 || ups[0].SQL != ups[1].SQL || ups[1].SQL != ups[2].SQL {
			t.Fatalf("UPDATEs %q, want the same statement three times", log.SQL())
		}
		update(orm.Query[uaUser](s).Where("id = ?", ann.ID).Where("name = ?", "ann1"), orm.Set{"age": int32(4)})
		update(orm.Query[uaUser](s).Where("id = ? AND name = ?", bob.ID, "bob3"), orm.Set{"age": int32(5)})
		uowMust(t, s.Commit(ctx))
		if got := countRows(t, eng, "SELECT COUNT(*) FROM ua_users WHERE (name = 'ann1' AND age = 4) OR (name = 'bob3' AND age = 5)"); got != 2 {
			t.Fatalf("%d rows with the values of their last UpdateAll, want 2", got)
		}
	})
}

// The statements UpdateAll keeps per table are bounded, so that
// conditions with values spliced into their text do not grow memory
// without end; calls past the bound still run.
func TestQueryUpdateAllKeepsBoundedStatements(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := uaOpen(t, tg)
		ctx := context.Background()
		u := &uaUser{Name: "ann"}
		seedObjects(t, eng, u)
		s := eng.NewSession()
		defer s.Close()
		calls := orm.MaxUpdateAllPlans + 20
		for i := range calls {
			cond := "id = ? AND " + strings.Repeat("1 = 1 AND ", i) + "1 = 1"
			if n, err := orm.Query[uaUser](s).Where(cond, u.ID).UpdateAll(ctx, orm.Set{"age": i}); err != nil || n != 1 {
				t.Fatalf("UpdateAll %d = %d, %v; want 1, nil", i, n, err)
			}
		}
		uowMust(t, s.Commit(ctx))
		if got := orm.UpdateAllPlans(eng); got > orm.MaxUpdateAllPlans {
			t.Fatalf("%d UpdateAll statements kept, want at most %d", got, orm.MaxUpdateAllPlans)
		}
		if got := countRows(t, eng, "SELECT COUNT(*) FROM ua_users WHERE age = ?", calls-1); got != 1 {
			t.Fatalf("%d rows with the last call's value, want 1", got)
		}
	})
}

// Sessions of one engine run UpdateAll at once, sharing the engine's kept
// statements: each call writes its own values (go test -race checks the
// sharing).
func TestQueryUpdateAllFromManySessionsAtOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := uaOpen(t, tg)
		ctx := context.Background()
		users := []*uaUser{{Name: "u0"}, {Name: "u1"}, {Name: "u2"}, {Name: "u3"}}
		seedObjects(t, eng, anys(users)...)
		errs := make(chan error, len(users))
		for i, u := range users {
			go func() {
				for k := range 20 {
					err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
						set := orm.Set{"age": 100*i + k}
						if k%2 == 1 {
							set["name"] = u.Name
						}
						_, err := orm.Query[uaUser](s).Where("id = ?", u.ID).UpdateAll(ctx, set)
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range users {
			uowMust(t, <-errs)
		}
		for i, u := range users {
			if got := countRows(t, eng, "SELECT COUNT(*) FROM ua_users WHERE id = ? AND age = ?", u.ID, 100*i+19); got != 1 {
				t.Fatalf("user %d: no row with its last value %d", i, 100*i+19)
			}
		}
	})
}
