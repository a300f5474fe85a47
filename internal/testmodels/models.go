// Package testmodels holds the models that the orm tests and benchmarks
// share: the bank of DESIGN.md and a few shapes that exercise edge cases.
package testmodels

import "time"

// Account is DESIGN.md's account: generated key, unique owner, version.
type Account struct {
	ID      int64     `db:"id,pk,auto"`
	Owner   string    `db:"owner,unique,size=64"`
	Balance int64     `db:"balance"`
	Version int64     `db:"version,version"`
	Note    *string   `db:"note"`
	Created time.Time `db:"created_at"`
	Entries []*Entry  `rel:"account_id"`
}

// Entry is DESIGN.md's journal entry; it belongs to an Account.
type Entry struct {
	ID        int64    `db:"id,pk,auto"`
	AccountID int64    `db:"account_id,index"`
	Account   *Account `rel:"account_id"`
	Amount    int64    `db:"amount"`
}

// Tag has a composite natural key and no generated column.
type Tag struct {
	Kind string `db:"kind,pk,size=32"`
	Name string `db:"name,pk,size=64"`
	Uses int    `db:"uses"`
}

// Blob has a []byte column and no version, for in-place change detection
// and batched deletes.
type Blob struct {
	ID   int64  `db:"id,pk,auto"`
	Data []byte `db:"data"`
}

// Models lists every model, parents first, for CreateTables.
var Models = []any{Account{}, Entry{}, Tag{}, Blob{}}
