package orm_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tallyorm/tally/orm"
)

// A commit whose outcome is unknown (orm.ErrCommitUnknown) is never rerun
// by Do: running it again might apply it twice. Storing a request id the
// client chose, under a unique key in the same transaction, makes the
// retry safe: it either commits once, or finds the id committed and
// answers with the original result. Two attempts racing each other meet
// at the unique key (orm.ErrUniqueViolation), and the loser's retry finds
// the winner's row.
func ExampleEngine_Do_exactlyOnce() {
	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "pay.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	// The journal row: RequestID is the client's name for the request,
	// under a unique key.
	type Payment struct {
		ID        int64  `db:"id,pk,auto"`
		RequestID string `db:"request_id,unique,size=64"`
		Amount    int64  `db:"amount"`
	}
	if err := eng.CreateTables(ctx, Payment{}); err != nil {
		log.Fatal(err)
	}
	// pay applies a payment once per request id: it looks for the id
	// first, and a retry of a request that did commit gets the first
	// payment back. (With rows to lock, lock them before looking, so that
	// an attempt still in flight is waited for: cmd/tallydemo's Transfer.)
	pay := func(reqID string, amount int64) (p *Payment, replayed bool, err error) {
		err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			prev, err := orm.Query[Payment](s).Where("request_id = ?", reqID).One(ctx)
			switch {
			case err == nil:
				p, replayed = prev, true // committed before: the original result
				return nil
			case !errors.Is(err, orm.ErrNotFound):
				return err
			}
			p, replayed = &Payment{RequestID: reqID, Amount: amount}, false
			return s.Add(p)
		})
		return p, replayed, err
	}

	first, _, err := pay("order-17", 250)
	if err != nil {
		log.Fatal(err) // with orm.ErrCommitUnknown: retry with the same id
	}
	// The client never heard back, say, and sends the request again.
	again, replayed, err := pay("order-17", 250)
	if err != nil {
		log.Fatal(err)
	}
	s := eng.NewSession()
	defer s.Close()
	n, _ := orm.Query[Payment](s).Count(ctx)
	fmt.Println("payment", first.ID, "then", again.ID, "replayed:", replayed, "rows:", n)
	// Output: payment 1 then 1 replayed: true rows: 1
}
