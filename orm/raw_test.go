package orm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Raw maps hand-written SELECTs onto T by column name, through the identity
// map: a subset of the columns with the key, aliases, joins selecting T's
// columns only.
func TestRawMapping(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		ids := qtSeed(t, eng,
			&Account{Owner: "ann", Balance: 100, Entries: []*Entry{{Amount: 5}, {Amount: 7}}},
			&Account{Owner: "bob", Balance: 200, Entries: []*Entry{{Amount: 7}}},
			&Account{Owner: "cid", Balance: 300},
		)
		s := eng.NewSession()
		defer s.Close()

		all, err := orm.Raw[Account](s, "SELECT * FROM accounts WHERE balance >= ? ORDER BY id", 200).All(ctx)
		if err != nil || !slices.Equal(qtOwners(all), []string{"bob", "cid"}) {
			t.Fatalf("SELECT *: %v, %v", qtOwners(all), err)
		}
		if b := all[0]; b.ID != ids["bob"] || b.Balance != 200 || b.Version != 1 || !b.Created.Equal(baseTime.Add(time.Minute)) {
			t.Fatalf("bob read as %+v", b)
		}
		bob := all[0]

		// A subset with the key: a tracked row resolves to its object.
		got, err := orm.Raw[Account](s, "SELECT id, owner FROM accounts WHERE owner = ?", "bob").One(ctx)
		if err != nil || got != bob || got.Balance != 200 {
			t.Fatalf("subset of tracked bob: %+v, %v", got, err)
		}
		// Aliases matching column names, over a derived table.
		got, err = orm.Raw[Account](s, "SELECT x.k AS id, x.o AS owner, x.b AS balance FROM (SELECT id AS k, owner AS o, balance AS b FROM accounts) x WHERE x.o = ?", "bob").One(ctx)
		if err != nil || got != bob {
			t.Fatalf("aliases: %+v, %v", got, err)
		}
		// A join selecting only T's columns.
		joined, err := orm.Raw[Account](s,
			"SELECT DISTINCT a.* FROM accounts a JOIN entries e ON e.account_id = a.id WHERE e.amount = ? ORDER BY a.id", 7).All(ctx)
		if err != nil || !slices.Equal(qtOwners(joined), []string{"ann", "bob"}) || joined[1] != bob {
			t.Fatalf("join: %v, %v", qtOwners(joined), err)
		}
		if joined[0].Balance != 100 || joined[0].ID != ids["ann"] {
			t.Fatalf("ann from the join: %+v", joined[0])
		}
		// The IN list expands in Raw too.
		in, err := orm.Raw[Account](s, "SELECT * FROM accounts WHERE owner IN (?) ORDER BY id", []string{"ann", "cid"}).All(ctx)
		if err != nil || !slices.Equal(qtOwners(in), []string{"ann", "cid"}) || in[0] != joined[0] {
			t.Fatalf("IN: %v, %v", qtOwners(in), err)
		}

		if _, err := orm.Raw[Account](s, "SELECT * FROM accounts WHERE owner = ?", "nobody").One(ctx); !errors.Is(err, orm.ErrNotFound) {
			t.Errorf("One of none: %v", err)
		}
		if _, err := orm.Raw[Account](s, "SELECT * FROM accounts").One(ctx); !errors.Is(err, orm.ErrMultipleRows) {
			t.Errorf("One of three: %v", err)
		}

		// Result columns T does not map: an error naming each of them.
		for _, c := range []struct {
			q    string
			want []string
		}{
			{"SELECT id, owner, 1 AS extra, balance * 2 AS doubled FROM accounts", []string{"extra", "doubled"}},
			{"SELECT a.*, e.amount FROM accounts a JOIN entries e ON e.account_id = a.id", []string{"amount"}},
			{"SELECT a.id, e.account_id FROM accounts a JOIN entries e ON e.account_id = a.id", []string{"account_id"}},
		} {
			_, err := orm.Raw[Account](s, c.q).All(ctx)
			if err == nil {
				t.Errorf("%s: accepted", c.q)
				continue
			}
			for _, name := range c.want {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("%s: error %q does not name %s", c.q, err, name)
				}
			}
		}
		// Without the primary key rows cannot be resolved.
		_, err = orm.Raw[Account](s, "SELECT owner, balance FROM accounts").All(ctx)
		if err == nil || !strings.Contains(err.Error(), "primary key") || !strings.Contains(err.Error(), "id") {
			t.Errorf("result without the key: %v", err)
		}
		// The same column twice (a join's two ids): the second would
		// overwrite the key, so it must be refused.
		dup, err := orm.Raw[Account](s, "SELECT a.id, a.owner, e.id FROM accounts a JOIN entries e ON e.account_id = a.id WHERE a.owner = ?", "bob").All(ctx)
		if err == nil {
			t.Errorf("a result with column id twice was accepted: got %d account(s), first %+v (bob is id %d)", len(dup), dup[0], ids["bob"])
		}

		// Bind errors come before SQL.
		log = nil
		_, err = orm.Raw[Account](s, "SELECT * FROM accounts WHERE id IN (?)", []int64{}).All(ctx)
		var be *dialect.BindError
		if !errors.As(err, &be) || be.Empty != 1 || len(log) != 0 {
			t.Errorf("empty IN list: %v, sent %q", err, log)
		}
		// The session still works and holds no connection once closed.
		if n, err := orm.Query[Account](s).Count(ctx); err != nil || n != 3 {
			t.Fatalf("after the errors: %d, %v", n, err)
		}
		s.Close()
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatalf("%d connections in use after Close", st.InUse)
		}
	})
}

// A Raw result that leaves columns out must not make the session believe
// the left-out columns are zero: the object it tracks is what later Gets
// and queries return, and what the next flush compares and version-checks.
func TestRawSubsetTracking(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("ann", 100))
		s := eng.NewSession()
		defer s.Close()

		part, err := orm.Raw[Account](s, "SELECT id, owner FROM accounts WHERE owner = ?", "ann").One(ctx)
		if err != nil {
			t.Fatal(err)
		}
		full, err := orm.Get[Account](ctx, s, ids["ann"])
		if err != nil {
			t.Fatal(err)
		}
		if full.Balance != 100 || full.Version != 1 {
			t.Errorf("Get after a partial Raw returned balance %d version %d; the row has 100 and 1 (same object as Raw's: %v)",
				full.Balance, full.Version, full == part)
		}
		full.Owner = "ann2"
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("renaming the account after a partial Raw read: %v", err)
		}
		if a := qtFresh(t, eng, ids["ann"]); a.Owner != "ann2" || a.Balance != 100 {
			t.Fatalf("committed %+v", a)
		}
	})
}

// Exec runs in the session's transaction, after autoflush: the session sees
// its effects at once, another session only after Commit.
func TestSessionExec(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		qtSeed(t, eng, newAccount("ann", 100), newAccount("bob", 200))
		s := eng.NewSession()
		defer s.Close()

		res, err := s.Exec(ctx, "UPDATE accounts SET balance = ? WHERE owner IN (?)", 7, []string{"ann", "bob", "zed"})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 2 {
			t.Fatalf("RowsAffected = %d, %v", n, err)
		}
		if n, err := orm.Query[Account](s).Where("balance = ?", 7).Count(ctx); err != nil || n != 2 {
			t.Fatalf("the session sees %d updated rows, %v; want 2", n, err)
		}
		if _, err := s.Exec(ctx, "INSERT INTO accounts (owner, balance, version, created_at) VALUES (?, ?, ?, ?)", "cid", 3, 1, baseTime); err != nil {
			t.Fatal(err)
		}
		cid, err := orm.Query[Account](s).Where("owner = ?", "cid").One(ctx)
		if err != nil || cid.Balance != 3 {
			t.Fatalf("the session does not see its insert: %+v, %v", cid, err)
		}
		if n := countAccounts(t, eng, "balance = ?", 7); n != 0 {
			t.Fatalf("another session sees %d updated rows before Commit", n)
		}
		if n := countAccounts(t, eng, "owner = ?", "cid"); n != 0 {
			t.Fatal("another session sees the insert before Commit")
		}

		// A pending object is flushed before the statement.
		dan := &Account{Owner: "dan", Balance: 4, Created: baseTime}
		s.Add(dan)
		res, err = s.Exec(ctx, "UPDATE accounts SET note = ? WHERE owner = ?", "seen", "dan")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 || dan.ID == 0 {
			t.Fatalf("Exec did not see the pending dan: %d rows", n)
		}
		// Exec does not refresh tracked objects (documented): Refresh does.
		if dan.Note != nil {
			t.Fatal("Exec changed a tracked object")
		}
		if err := s.Refresh(ctx, dan); err != nil || dan.Note == nil || *dan.Note != "seen" {
			t.Fatalf("Refresh: %v, note %s", err, qtDeref(dan.Note))
		}

		// Bind errors come before SQL.
		log = nil
		_, err = s.Exec(ctx, "DELETE FROM accounts WHERE id IN (?)", []int64{})
		var be *dialect.BindError
		if !errors.As(err, &be) || len(log) != 0 {
			t.Fatalf("empty IN list: %v, sent %q", err, log)
		}
		if _, err := s.Exec(ctx, "DELETE FROM accounts WHERE owner = ? AND balance = ?", "ann"); !errors.As(err, &be) {
			t.Fatalf("count mismatch: %v", err)
		}

		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countAccounts(t, eng, "balance = ?", 7); n != 2 {
			t.Fatalf("after Commit another session sees %d updated rows, want 2", n)
		}
		if n := countAccounts(t, eng, "owner IN (?, ?)", "cid", "dan"); n != 2 {
			t.Fatalf("after Commit another session sees %d of cid, dan", n)
		}

		// Rollback undoes Exec's work.
		if _, err := s.Exec(ctx, "DELETE FROM accounts WHERE owner = ?", "ann"); err != nil {
			t.Fatal(err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countAccounts(t, eng, "owner = ?", "ann"); n != 1 {
			t.Fatal("Rollback did not undo the Exec")
		}
	})
}

// qtSlow returns, for tg, a statement for Exec and a SELECT of accounts'
// id and owner for Raw, each of which takes several seconds.
func qtSlow(tg dbtest.Target) (exec, raw string) {
	switch tg.Name {
	case dbtest.Postgres:
		return "SELECT pg_sleep(5)",
			"SELECT id, owner FROM accounts, (SELECT pg_sleep(5)) AS z"
	case dbtest.MySQL:
		return "SELECT SLEEP(5)",
			"SELECT id, owner FROM accounts WHERE SLEEP(5) = 0"
	}
	// SQLite has no sleep: count a hundred million rows of a recursive CTE
	// (tens of seconds in modernc's SQLite).
	const cte = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
	return cte + "SELECT count(*) FROM c",
		cte + "SELECT id, owner FROM accounts WHERE (SELECT count(*) FROM c) > 0"
}

// A context that ends while a statement runs stops it promptly with an
// error matching the context's (context.Canceled or DeadlineExceeded), and
// after a Rollback the session works again.
func TestQueryContextCancel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ids := qtSeed(t, eng, newAccount("ann", 100))
		execSQL, rawSQL := qtSlow(tg)
		kinds := []struct {
			name string
			run  func(ctx context.Context, s *orm.Session) error
		}{
			{"Exec", func(ctx context.Context, s *orm.Session) error { _, err := s.Exec(ctx, execSQL); return err }},
			{"Raw", func(ctx context.Context, s *orm.Session) error {
				_, err := orm.Raw[Account](s, rawSQL).All(ctx)
				return err
			}},
		}
		for _, k := range kinds {
			for _, timeout := range []bool{false, true} {
				name := k.name + "/cancel"
				want := context.Canceled
				if timeout {
					name, want = k.name+"/timeout", context.DeadlineExceeded
				}
				t.Run(name, func(t *testing.T) {
					s := eng.NewSession()
					defer s.Close()
					// Open the transaction first: the slow statement then
					// runs inside it, as a session's statements do.
					if _, err := orm.Get[Account](context.Background(), s, ids["ann"]); err != nil {
						t.Fatal(err)
					}
					var ctx context.Context
					var cancel context.CancelFunc
					if timeout {
						ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
					} else {
						ctx, cancel = context.WithCancel(context.Background())
						time.AfterFunc(200*time.Millisecond, cancel)
					}
					defer cancel()
					errc := make(chan error, 1)
					start := time.Now()
					go func() { errc <- k.run(ctx, s) }()
					var err error
					select {
					case err = <-errc:
					case <-time.After(10 * time.Second):
						t.Fatal("the statement did not stop within 10s of its context ending")
					}
					took := time.Since(start)
					t.Logf("%s on %s after %v: %v; chain:%s", name, tg.Name, took.Round(time.Millisecond), err, errorChain(err))
					if err == nil {
						t.Fatal("no error from a statement whose context ended")
					}
					if !errors.Is(err, want) {
						t.Errorf("error %v does not match %v", err, want)
					}
					if took > 2*time.Second {
						t.Errorf("took %v to return after the context ended at 200ms", took)
					}
					if err := s.Rollback(context.Background()); err != nil {
						t.Errorf("Rollback after the cancelled statement: %v; chain:%s", err, errorChain(err))
					}
					a, err := orm.Get[Account](context.Background(), s, ids["ann"])
					if err != nil || a.Balance != 100 {
						t.Fatalf("Get after Rollback: %+v, %v", a, err)
					}
					s.Close()
					if st := eng.DB().Stats(); st.InUse != 0 {
						t.Errorf("%d connections in use after Close", st.InUse)
					}
				})
			}
		}
	})
}
