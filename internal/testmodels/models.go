// Package testmodels holds the models that the orm tests and benchmarks
// share: the bank of DESIGN.md and a few shapes that exercise edge cases.
package testmodels

//go:generate go run github.com/tallyorm/tally/cmd/tallygen

import "time"

// Account is DESIGN.md's account: generated key, unique owner, version.
//
//tally:model
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
//
//tally:model
type Entry struct {
	ID        int64    `db:"id,pk,auto"`
	AccountID int64    `db:"account_id,index"`
	Account   *Account `rel:"account_id"`
	Amount    int64    `db:"amount"`
}

// Tag has a composite natural key and no generated column.
//
//tally:model
type Tag struct {
	Kind string `db:"kind,pk,size=32"`
	Name string `db:"name,pk,size=64"`
	Uses int    `db:"uses"`
}

// Blob has a []byte column and no version, for in-place change detection
// and batched deletes.
//
//tally:model
type Blob struct {
	ID   int64  `db:"id,pk,auto"`
	Data []byte `db:"data"`
}

// Models lists every model, parents first, for CreateTables.
var Models = []any{Account{}, Entry{}, Tag{}, Blob{}}

// CycA and CycB reference each other through belongs-to relations, a
// foreign-key cycle that no insert order satisfies. They are not in Models:
// CreateTables refuses them, which is what the tests check.
//
//tally:model
type CycA struct {
	ID  int64 `db:"id,pk,auto"`
	BID int64 `db:"b_id"`
	B   *CycB `rel:"b_id"`
}

// TableName names CycA's table, so that the cycle error names it plainly.
func (CycA) TableName() string { return "cyc_a" }

// CycB is the other half of the CycA ↔ CycB cycle.
//
//tally:model
type CycB struct {
	ID  int64 `db:"id,pk,auto"`
	AID int64 `db:"a_id"`
	A   *CycA `rel:"a_id"`
}

// TableName names CycB's table.
func (CycB) TableName() string { return "cyc_b" }

// Wide has 40 insertable columns, so a batch of inserts meets a dialect's
// parameter limit (SQLite's 32766 allows 819 rows) before the 1000-row cap.
// Not in Models; tests that need it create it.
//
//tally:model
type Wide struct {
	ID  int64 `db:"id,pk,auto"`
	C01 int64
	C02 int64
	C03 int64
	C04 int64
	C05 int64
	C06 int64
	C07 int64
	C08 int64
	C09 int64
	C10 int64
	C11 int64
	C12 int64
	C13 int64
	C14 int64
	C15 int64
	C16 int64
	C17 int64
	C18 int64
	C19 int64
	C20 int64
	C21 int64
	C22 int64
	C23 int64
	C24 int64
	C25 int64
	C26 int64
	C27 int64
	C28 int64
	C29 int64
	C30 int64
	C31 int64
	C32 int64
	C33 int64
	C34 int64
	C35 int64
	C36 int64
	C37 int64
	C38 int64
	C39 int64
	C40 int64
}

// BenchAccount is the six-column model of the mapper benchmarks: a
// generated key, a string, two integers (one the version), a nullable
// column and a timestamp, with no relation. It maps the table of the orm
// benchmarks' BenchAccount, column for column.
//
//tally:model
type BenchAccount struct {
	ID      int64     `db:"id,pk,auto"`
	Owner   string    `db:"owner,size=64"`
	Balance int64     `db:"balance"`
	Version int64     `db:"version,version"`
	Note    *string   `db:"note"`
	Created time.Time `db:"created_at"`
}
