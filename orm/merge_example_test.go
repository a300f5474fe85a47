package orm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tallyorm/tally/orm"
)

// Merge saves an object decoded from a request body: the edit-form story.
// Two clients read the account at version 1; the first save wins, and the
// second, made on the version it read, is refused instead of overwriting
// the first.
func ExampleMerge() {
	type Account struct {
		ID      int64  `db:"id,pk,auto" json:"id"`
		Owner   string `db:"owner" json:"owner"`
		Version int64  `db:"version,version" json:"version"`
	}
	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, Account{}); err != nil {
		log.Fatal(err)
	}
	if err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		return s.Add(&Account{Owner: "ann"})
	}); err != nil {
		log.Fatal(err)
	}

	// PUT /accounts/1 handlers, each in its own session (eng.Middleware
	// would give them one).
	save := func(body string) error {
		var in Account
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			return err
		}
		return eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			a, err := orm.Merge(ctx, s, &in)
			if err == nil {
				fmt.Println("saving", a.Owner, "over version", a.Version)
			}
			return err
		})
	}
	fmt.Println(save(`{"id":1,"owner":"Ann","version":1}`))
	err = save(`{"id":1,"owner":"ANN","version":1}`)
	fmt.Println(errors.Is(err, orm.ErrStaleData)) // 409 Conflict: reload and redo the edit
	// Output:
	// saving Ann over version 1
	// <nil>
	// true
}
