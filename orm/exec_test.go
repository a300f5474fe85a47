package orm

import (
	"database/sql/driver"
	"testing"
)

// rowsAffected reports -1 for a result whose RowsAffected panics, as
// database/sql's does around a driver that gave none.
func TestRowsAffectedGuard(t *testing.T) {
	if n := rowsAffected(panicResult{}); n != -1 {
		t.Fatalf("rowsAffected of a panicking result = %d, want -1", n)
	}
	if n := rowsAffected(driver.RowsAffected(3)); n != 3 {
		t.Fatalf("rowsAffected = %d, want 3", n)
	}
}

type panicResult struct{}

func (panicResult) LastInsertId() (int64, error) { panic("no result") }
func (panicResult) RowsAffected() (int64, error) { panic("no result") }
