package orm

import (
	"errors"
	"fmt"
)

// ErrMissingWhere is returned, before any SQL is sent, by [Q.UpdateAll] and
// [Q.DeleteAll] on a query with no Where: a forgotten condition must not
// change or empty the whole table. [Q.AllRows] says "every row" on purpose.
var ErrMissingWhere = errors.New("orm: no Where condition")

// AllRows marks the query as meant for every row of the table, which
// [Q.UpdateAll] and [Q.DeleteAll] otherwise refuse with [ErrMissingWhere]:
//
//	n, err := orm.Query[Session](s).AllRows().DeleteAll(ctx)
//
// A Where added before or after still applies; AllRows changes nothing for
// reading queries.
func (q *Q[T]) AllRows() *Q[T] {
	c := q.clone()
	c.allRows = true
	return c
}

// checkWhere refuses a bulk statement without a condition, unless AllRows
// asked for every row.
func (q *Q[T]) checkWhere(method string) error {
	if len(q.where) > 0 || q.allRows {
		return nil
	}
	return fmt.Errorf("%w: %s would change every row of %s; add a Where, or call AllRows() to mean every row",
		ErrMissingWhere, method, q.t.Name)
}
