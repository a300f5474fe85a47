package mysql_test

import (
	"context"
	"errors"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// TestMain drops the databases the tests below create (dbtest needs it).
func TestMain(m *testing.M) { dbtest.Main(m) }

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
// know MySQL can still read it.
func TestDriverErrorReachableThroughOrm(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.MySQL {
			t.Skip("this package tests MySQL")
		}
		ctx := context.Background()
		eng, err := orm.Open(ctx, tg.Driver, tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
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

		err = add(&shelf{Name: "a"})
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("duplicate name: Commit = %v, want ErrUniqueViolation", err)
		}
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1062 { // ER_DUP_ENTRY
			t.Errorf("errors.As(*mysql.MySQLError) on %v: got %+v, want number 1062", err, me)
		}

		err = add(&item{ShelfID: 404})
		if !errors.Is(err, orm.ErrForeignKeyViolation) {
			t.Fatalf("item without shelf: Commit = %v, want ErrForeignKeyViolation", err)
		}
		me = nil
		if !errors.As(err, &me) || me.Number != 1452 { // ER_NO_REFERENCED_ROW_2
			t.Errorf("errors.As(*mysql.MySQLError) on %v: got %+v, want number 1452", err, me)
		}
	})
}
