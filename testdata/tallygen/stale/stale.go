// Package stale holds models changed after their tally_gen.go was
// generated, which the registry must refuse. Do not regenerate it: the
// stale file is the fixture (tallygen's -update leaves it alone).
package stale

// Added got a field after generation.
//
//tally:model
type Added struct {
	ID    int64 `db:"id,pk"`
	Name  string
	Extra string // added after generation
}

// Retagged had its column renamed after generation.
//
//tally:model
type Retagged struct {
	ID      int64 `db:"id,pk"`
	Balance int64 `db:"amount"` // was db:"balance" at generation
}

// Fresh did not change.
//
//tally:model
type Fresh struct {
	ID int64 `db:"id,pk"`
}
