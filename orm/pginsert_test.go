package orm_test

import (
	"context"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// A commit whose only statement is a multi-row INSERT sends it alone (on
// PostgreSQL straight to pgx, below database/sql), reads every generated
// key back into its object in order, and reports the statement to hooks
// with the values bound, as every other statement is reported.
func TestLoneMultiRowInsertReadsKeysAndReportsValues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		note := "a note"
		accts := []*Account{newAccount("lone-1", 10), newAccount("lone-2", 20), newAccount("lone-3", 30)}
		accts[1].Note = &note
		s := eng.NewSession()
		defer s.Close()
		uowMust(t, s.Add(anys(accts)...))
		log.Reset()
		uowMust(t, s.Commit(ctx))
		evs := log.Take()
		if len(evs) != 1 || evs[0].Op != orm.OpQuery || evs[0].Rows != 3 {
			t.Fatalf("events %v, want one query of 3 rows", acOps(evs))
		}
		args := evs[0].Args
		if len(args)%3 != 0 || args[0] != "lone-1" || args[len(args)/3] != "lone-2" {
			t.Fatalf("hook args %v, want the three rows' values, owners first", args)
		}
		for i, a := range accts {
			if a.ID == 0 || i > 0 && a.ID <= accts[i-1].ID || a.Version != 1 {
				t.Fatalf("account %d after commit: %+v; want rising keys and version 1", i, a)
			}
		}
		r := eng.NewSession()
		defer r.Close()
		for _, a := range accts {
			got, err := orm.Get[Account](ctx, r, a.ID)
			uowMust(t, err)
			if got.Owner != a.Owner || got.Balance != a.Balance || (got.Note == nil) != (a.Note == nil) || !got.Created.Equal(a.Created) {
				t.Fatalf("row %d: %+v, want %+v", a.ID, got, a)
			}
		}
		if got, err := orm.Get[Account](ctx, r, accts[1].ID); err != nil || got.Note == nil || *got.Note != note {
			t.Fatalf("note: %v, %v; want %q", got, err, note)
		}
	})
}
