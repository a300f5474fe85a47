package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// TestMain drops the databases the tests below create (dbtest needs it).
func TestMain(m *testing.M) { dbtest.Main(m) }

// onPostgres runs fn on an engine orm.Open made on the PostgreSQL target,
// closed when the test ends; the other targets are skipped.
func onPostgres(t *testing.T, fn func(t *testing.T, eng *orm.Engine)) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.Postgres {
			t.Skip("this package tests PostgreSQL")
		}
		eng, err := orm.Open(context.Background(), tg.Driver, tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		fn(t, eng)
	})
}

// The tables of the tests below: a unique name, and a foreign key from
// item to shelf.
type shelf struct {
	ID    int64   `db:"id,pk,auto"`
	Name  string  `db:"name,unique,size=64"`
	Items []*item `rel:"shelf_id"`
}

func (shelf) TableName() string { return "driver_err_shelves" }

type item struct {
	ID      int64 `db:"id,pk,auto"`
	ShelfID int64 `db:"shelf_id"`
}

func (item) TableName() string { return "driver_err_items" }

// An error Tally returns for a constraint the database enforced keeps the
// driver's own error reachable with errors.As, with its code: callers that
// know PostgreSQL can still read it.
func TestDriverErrorReachableThroughOrm(t *testing.T) {
	onPostgres(t, func(t *testing.T, eng *orm.Engine) {
		ctx := context.Background()
		if err := eng.CreateTables(ctx, shelf{}, item{}); err != nil {
			t.Fatal(err)
		}
		add := func(v any) error {
			s := eng.NewSession()
			defer s.Close()
			if err := s.Add(v); err != nil {
				t.Fatal(err)
			}
			return s.Commit(ctx)
		}
		if err := add(&shelf{Name: "a"}); err != nil {
			t.Fatal(err)
		}

		err := add(&shelf{Name: "a"})
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("duplicate name: Commit = %v, want ErrUniqueViolation", err)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23505" { // unique_violation
			t.Errorf("errors.As(*pgconn.PgError) on %v: got %+v, want code 23505", err, pe)
		}

		err = add(&item{ShelfID: 404})
		if !errors.Is(err, orm.ErrForeignKeyViolation) {
			t.Fatalf("item without shelf: Commit = %v, want ErrForeignKeyViolation", err)
		}
		pe = nil
		if !errors.As(err, &pe) || pe.Code != "23503" { // foreign_key_violation
			t.Errorf("errors.As(*pgconn.PgError) on %v: got %+v, want code 23503", err, pe)
		}
	})
}
