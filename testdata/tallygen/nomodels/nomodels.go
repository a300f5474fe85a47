// Package nomodels has no model: tallygen says how to mark one.
package nomodels

// Plain is a struct nobody marked.
type Plain struct {
	ID int64 `db:"id,pk"`
}
