package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

type (
	piKind int32
	piID   int64
)

// piMixed has a column of each kind a multi-row INSERT binds, and a key
// of a named type.
type piMixed struct {
	ID     piID           `db:"id,pk,auto"`
	Name   string         `db:"name"`
	Label  string         `db:"label,size=20"`
	Note   *string        `db:"note"`
	Small  int32          `db:"small"`
	Kind   piKind         `db:"kind"`
	Ratio  float64        `db:"ratio"`
	Single float32        `db:"single"`
	OK     bool           `db:"ok"`
	At     time.Time      `db:"at"`
	Data   []byte         `db:"data"`
	Maybe  sql.NullString `db:"maybe"`
	MaybeN sql.NullInt64  `db:"maybe_n"`
}

func (piMixed) TableName() string { return "pi_mixed" }

// Every column kind goes into a lone multi-row INSERT (on PostgreSQL as
// one array per column) and reads back as it was: NULLs, empty and nil
// bytes, times, named and narrow integers, sql.Null* values.
func TestLoneMultiRowInsertRoundTripsEveryColumnKind(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		// One connection, so that unnestPrepared looks at the one used.
		eng := mustOpen(t, tg.Driver, tg.DSN, orm.WithMaxOpenConns(1))
		if err := eng.CreateTables(ctx, piMixed{}); err != nil {
			t.Fatal(err)
		}
		note := "n"
		at := time.Date(2026, 3, 4, 5, 6, 7, 891234000, time.UTC)
		rows := []*piMixed{
			{Name: "a", Label: "first", Note: &note, Small: -7, Kind: 3, Ratio: 0.25, Single: 1.5, OK: true, At: at, Data: []byte{0, 1, 2},
				Maybe: sql.NullString{String: "m", Valid: true}, MaybeN: sql.NullInt64{Int64: 1 << 40, Valid: true}},
			{Name: "b", Label: "", At: at.Add(time.Hour), Data: []byte{}},
			{Name: "c'\"\\", Label: "third", Small: 1 << 30, Kind: -1, Ratio: -1e300, At: at.In(time.FixedZone("x", 3600))},
		}
		commitNew(t, eng, anys(rows)...)
		if n := unnestPrepared(t, eng); tg.Name == dbtest.Postgres && n != 1 {
			t.Fatalf("%d prepared INSERTs with unnest, want 1: the rows went as VALUES", n)
		}
		for i, want := range rows {
			if i > 0 && want.ID <= rows[i-1].ID {
				t.Fatalf("keys %d then %d, want rising", rows[i-1].ID, want.ID)
			}
			got := reload[piMixed](t, eng, want.ID)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("row %d after a round trip (-want +got):\n%s", i, d)
			}
		}
	})
}

// piLabel is a table whose column type a test changes.
type piLabel struct {
	ID    int64  `db:"id,pk,auto"`
	Label string `db:"label"`
}

func (piLabel) TableName() string { return "pi_labels" }

// On PostgreSQL a multi-row INSERT goes as arrays typed like the table's
// columns, learnt once per connection; a column whose type changed since
// (ALTER TABLE) makes the arrays' statement fail before it runs, and the
// commit then sends the rows as VALUES and succeeds.
func TestLoneMultiRowInsertFollowsColumnTypeChange(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.Postgres {
			t.Skip("PostgreSQL's array form of a multi-row INSERT")
		}
		ctx := context.Background()
		// One connection: the one whose plan is learnt is the one used again.
		eng := mustOpen(t, tg.Driver, tg.DSN, orm.WithMaxOpenConns(1))
		if err := eng.CreateTables(ctx, piLabel{}); err != nil {
			t.Fatal(err)
		}
		uuids := []string{"00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002",
			"00000000-0000-0000-0000-000000000003", "00000000-0000-0000-0000-000000000004"}
		commitNew(t, eng, &piLabel{Label: uuids[0]}, &piLabel{Label: uuids[1]})
		if n := unnestPrepared(t, eng); n != 1 {
			t.Fatalf("%d prepared INSERTs with unnest, want 1", n)
		}
		if _, err := eng.DB().ExecContext(ctx, `ALTER TABLE pi_labels ALTER COLUMN label TYPE uuid USING label::uuid`); err != nil {
			t.Fatal(err)
		}
		more := []*piLabel{{Label: uuids[2]}, {Label: uuids[3]}}
		commitNew(t, eng, anys(more)...)
		for _, want := range more {
			if got := reload[piLabel](t, eng, want.ID); got.Label != want.Label {
				t.Fatalf("row %d: label %q, want %q", want.ID, got.Label, want.Label)
			}
		}
	})
}

// unnestPrepared counts the INSERTs with unnest prepared on the
// connection of eng, a PostgreSQL engine of one connection (0 elsewhere).
func unnestPrepared(t *testing.T, eng *orm.Engine) int {
	t.Helper()
	if eng.Dialect().Name() != "postgres" {
		return 0
	}
	var n int
	q := `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO%' AND strpos(statement, 'unnest(') > 0`
	if err := eng.DB().QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A lone multi-row INSERT that the database refuses (a duplicate key)
// commits nothing, is a unique violation and not an unknown outcome, and
// leaves every object pending without a key, to be fixed and committed.
func TestLoneMultiRowInsertRefusedRestoresSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, newAccount("taken", 1))
		s := eng.NewSession()
		defer s.Close()
		accts := []*Account{newAccount("free-1", 1), newAccount("taken", 2), newAccount("free-2", 3)}
		uowMust(t, s.Add(anys(accts)...))
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrUniqueViolation) || errors.Is(err, orm.ErrCommitUnknown) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation (and not unknown)", err)
		}
		if p := s.Pending(); len(p) != 3 {
			t.Fatalf("%d pending after the refused commit, want 3", len(p))
		}
		for _, a := range accts {
			if a.ID != 0 || a.Version != 0 {
				t.Fatalf("after the refused commit: %+v, want no key and version 0", a)
			}
		}
		if n := countAccounts(t, eng, "owner LIKE ?", "free-%"); n != 0 {
			t.Fatalf("%d rows of the refused commit, want none", n)
		}
		accts[1].Owner = "free-3"
		uowMust(t, s.Commit(ctx))
		if n := countAccounts(t, eng, "owner LIKE ?", "free-%"); n != 3 || accts[0].ID == 0 {
			t.Fatalf("after fixing the owner: %d rows, first ID %d; want 3 rows and keys", n, accts[0].ID)
		}
	})
}
