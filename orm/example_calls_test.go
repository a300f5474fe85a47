package orm_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/tallyorm/tally/orm"

	_ "github.com/tallyorm/tally/dialect/sqlite" // the database the examples use
)

// Wallet is the model of these examples.
type Wallet struct {
	ID      int64  `db:"id,pk,auto"`
	Owner   string `db:"owner,unique"`
	Balance int64  `db:"balance"`
	Version int64  `db:"version,version"` // optimistic lock: a lost update is ErrStaleData
}

// openWallets opens a SQLite database in a temp dir with the wallets table
// and the given wallets, and returns it with a function that removes it.
func openWallets(wallets ...*Wallet) (*orm.Engine, func()) {
	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	if err := eng.CreateTables(ctx, Wallet{}); err != nil {
		log.Fatal(err)
	}
	s := eng.NewSession()
	defer s.Close()
	for _, w := range wallets {
		if err := s.Add(w); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	return eng, func() { eng.Close(); os.RemoveAll(dir) }
}

// Do runs a unit of work: a new session, fn, a commit if fn returns nil and
// a rollback otherwise; a deadlock or lock timeout runs fn again.
func ExampleEngine_Do() {
	eng, done := openWallets(&Wallet{Owner: "ann", Balance: 100}, &Wallet{Owner: "bob"})
	defer done()
	ctx := context.Background()

	transfer := func(from, to int64, amount int64) error {
		return eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
			src, err := orm.Get[Wallet](ctx, s, from)
			if err != nil {
				return err
			}
			dst, err := orm.Get[Wallet](ctx, s, to)
			if err != nil {
				return err
			}
			if src.Balance < amount {
				return fmt.Errorf("wallet %d has %d, needs %d", from, src.Balance, amount)
			}
			src.Balance -= amount
			dst.Balance += amount
			return nil // Do commits both updates, in one transaction
		})
	}
	fmt.Println(transfer(1, 2, 30))
	fmt.Println(transfer(1, 2, 500)) // rolled back: nothing changes

	_ = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		ws, err := orm.Query[Wallet](s).OrderBy("id").All(ctx)
		for _, w := range ws {
			fmt.Println(w.Owner, w.Balance)
		}
		return err
	})
	// Output:
	// <nil>
	// wallet 1 has 70, needs 500
	// ann 70
	// bob 30
}

// Query builds a SELECT for a model: Where takes SQL with ? placeholders,
// OrderBy column names ("-" for descending), checked against the model.
func ExampleQuery() {
	eng, done := openWallets(&Wallet{Owner: "ann", Balance: 100}, &Wallet{Owner: "bob", Balance: 5},
		&Wallet{Owner: "cy", Balance: 40})
	defer done()
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()

	rich, err := orm.Query[Wallet](s).Where("balance >= ?", 10).OrderBy("-balance").All(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range rich {
		fmt.Println(w.Owner, w.Balance)
	}
	n, err := orm.Query[Wallet](s).Where("owner LIKE ?", "b%").Count(ctx)
	fmt.Println(n, err)
	_, err = orm.Query[Wallet](s).OrderBy("balance; DROP TABLE wallets").All(ctx)
	fmt.Println(err != nil)
	// Output:
	// ann 100
	// cy 40
	// 1 <nil>
	// true
}

// Get loads an object by primary key; the session's identity map returns the
// same object for the same row, without SQL the second time.
func ExampleGet() {
	eng, done := openWallets(&Wallet{Owner: "ann", Balance: 100})
	defer done()
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()

	a, err := orm.Get[Wallet](ctx, s, int64(1))
	if err != nil {
		log.Fatal(err)
	}
	again, _ := orm.Get[Wallet](ctx, s, int64(1))
	fmt.Println(a.Owner, a == again)

	_, err = orm.Get[Wallet](ctx, s, int64(42))
	fmt.Println(errors.Is(err, orm.ErrNotFound))
	// Output:
	// ann true
	// true
}

// Commit writes what changed since the objects were loaded or last
// committed: an INSERT for added objects, an UPDATE of the changed columns
// only (checking and bumping the version), a DELETE for deleted ones.
func ExampleSession_Commit() {
	eng, done := openWallets()
	defer done()
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()

	w := &Wallet{Owner: "ann", Balance: 100}
	if err := s.Add(w); err != nil {
		log.Fatal(err)
	}
	if err := s.Commit(ctx); err != nil { // INSERT: the key and version are set
		log.Fatal(err)
	}
	fmt.Println(w.ID, w.Version, s.IsDirty(w))

	w.Balance = 90
	fmt.Println(s.IsDirty(w))
	if err := s.Commit(ctx); err != nil { // UPDATE ... SET balance, version WHERE id AND version
		log.Fatal(err)
	}
	fmt.Println(w.Version, s.IsDirty(w))
	// Output:
	// 1 1 false
	// true
	// 2 false
}

// Savepoint runs part of a unit of work that can fail on its own: an error
// rolls back the savepoint's work, in the database and in the session, and
// keeps the rest.
func ExampleSession_Savepoint() {
	eng, done := openWallets(&Wallet{Owner: "ann"})
	defer done()
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()

	if err := s.Add(&Wallet{Owner: "bob"}); err != nil {
		log.Fatal(err)
	}
	err := s.Savepoint(ctx, func() error {
		if err := s.Add(&Wallet{Owner: "ann"}); err != nil { // a second ann
			return err
		}
		return s.Flush(ctx) // fails on the unique owner
	})
	fmt.Println(errors.Is(err, orm.ErrUniqueViolation))
	if err := s.Commit(ctx); err != nil { // bob is still there to insert
		log.Fatal(err)
	}
	n, err := orm.Query[Wallet](s).Count(ctx)
	fmt.Println(n, err)
	// Output:
	// true
	// 2 <nil>
}

// Middleware gives each request a session in its context and commits it
// before the first byte of a success response, so that a client told
// "created" has its row committed; a status of 400 or more rolls back.
func ExampleEngine_Middleware() {
	eng, done := openWallets()
	defer done()

	create := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := orm.SessionFrom(r.Context())
		owner := r.URL.Query().Get("owner")
		if err := s.Add(&Wallet{Owner: owner}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if strings.HasPrefix(owner, "x") {
			http.Error(w, "no x owners", http.StatusBadRequest) // rolled back
			return
		}
		w.WriteHeader(http.StatusCreated) // commits first
	})
	h := eng.Middleware(create)
	for _, owner := range []string{"ann", "xavier", "ann"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/wallets?owner="+owner, nil))
		fmt.Println(owner, rec.Code)
	}

	s := eng.NewSession()
	defer s.Close()
	n, err := orm.Query[Wallet](s).Count(context.Background())
	fmt.Println(n, err)
	// Output:
	// ann 201
	// xavier 400
	// ann 409
	// 1 <nil>
}
