package orm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// directStatus is a named string reached through a pointer: database/sql
// converts into it by reflection, which a direct read does not reproduce.
type directStatus string

// DirectOdd has a field a direct read does not take.
type DirectOdd struct {
	ID     int64         `db:"id,pk,auto"`
	Status *directStatus `db:"status,size=16"`
}

// On PostgreSQL a read in autocommit (Get, Query.All and First, a Load's
// relation query) goes to pgx directly and gives the objects, hooks and
// errors database/sql would; reads in the session's transaction, and
// reads into a field type that only database/sql's reflection converts,
// stay on database/sql. MySQL and SQLite never read directly.
func TestDirectReadsInAutocommitOnPostgreSQLOnly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, log := openLogged(t, tg)
		if err := eng.CreateTables(ctx, DirectOdd{}); err != nil {
			t.Fatal(err)
		}
		seed := eng.NewSession()
		note := "n"
		a := newAccount("ann", 10)
		a.Note = &note
		a.Entries = []*Entry{{Amount: 1}, {Amount: 2}}
		b := newAccount("bob", 20)
		st := directStatus("open")
		if err := seed.Add(a, b, &DirectOdd{Status: &st}, &DirectOdd{}); err != nil {
			t.Fatal(err)
		}
		if err := seed.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		seed.Close()
		direct := 0
		if tg.Name == dbtest.Postgres {
			direct = 1
		}

		s := eng.NewSession()
		defer s.Close()
		log.Reset()
		got, err := orm.Get[Account](ctx, s, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "ann" || got.Note == nil || *got.Note != "n" || !got.Created.Equal(baseTime) || got.Version != a.Version {
			t.Errorf("Get read %+v", got)
		}
		if n := orm.DirectReads(s); n != direct {
			t.Errorf("Get: %d direct reads, want %d", n, direct)
		}
		if evs := log.Take(); len(evs) != 1 || evs[0].Rows != 1 || evs[0].Err != nil {
			t.Errorf("Get: hooks saw %+v, want one read of one row", evs)
		}
		if _, err := orm.Get[Account](ctx, s, a.ID+b.ID+100); !errors.Is(err, orm.ErrNotFound) {
			t.Errorf("Get of a missing key: %v, want ErrNotFound", err)
		}
		all, err := orm.Query[Account](s).OrderBy("id").Load("Entries").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0] != got || len(all[0].Entries) != 2 || all[0].Entries[1].Amount != 2 || len(all[1].Entries) != 0 {
			t.Errorf("All with Load read %d accounts: %+v", len(all), all)
		}
		first, err := orm.Query[Account](s).OrderBy("-id").First(ctx)
		if err != nil || first.Owner != "bob" {
			t.Errorf("First: %v, %v", first, err)
		}
		if n := orm.DirectReads(s); n != 5*direct {
			t.Errorf("after Get, Get, All, Load, First: %d direct reads, want %d", n, 5*direct)
		}

		// Fields only database/sql converts: read through it, correctly.
		odd, err := orm.Query[DirectOdd](s).OrderBy("id").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(odd) != 2 || odd[0].Status == nil || *odd[0].Status != "open" || odd[1].Status != nil {
			t.Errorf("read %s", cmp.Diff([]*DirectOdd{{Status: &st}, {}}, odd))
		}
		if n := orm.DirectReads(s); n != 5*direct {
			t.Errorf("a read into a *named string went direct (%d, want %d)", n, 5*direct)
		}

		// Once the session has written, its reads are in its transaction.
		got.Balance++
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		again, err := orm.Query[Account](s).Where("id = ?", a.ID).All(ctx)
		if err != nil || len(again) != 1 || again[0].Balance != 11 {
			t.Fatalf("read in the transaction: %v, %v", again, err)
		}
		if n := orm.DirectReads(s); n != 5*direct {
			t.Errorf("a read in the transaction went direct (%d, want %d)", n, 5*direct)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
