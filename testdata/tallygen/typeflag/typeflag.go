// Package typeflag names its models with -type instead of comments.
package typeflag

// Account is named by -type.
type Account struct {
	ID      int64 `db:"id,pk,auto"`
	Balance int64
}

// Ignored is not named, so it gets no mapper.
type Ignored struct {
	ID int64 `db:"id,pk"`
}
