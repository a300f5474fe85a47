// Package broken does not compile for a reason of its own: tallygen
// reports it, while it forgives uses of the names it is about to generate.
package broken

// Account is a model.
//
//tally:model
type Account struct {
	ID int64 `db:"id,pk"`
}

var _ = AccountCols.ID // declared by the generated file: not an error

var _ = missing // a real error
