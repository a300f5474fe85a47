package orm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// The helpers of this file (prefixed qt) serve query_test.go, raw_test.go
// and iter_test.go; those of the whole package are in helpers_test.go.

// qtSeed commits accts in a session of its own and returns their ids by
// owner. An account without a creation time gets baseTime plus its
// position in minutes, so that created_at differs from row to row.
func qtSeed(t testing.TB, eng *orm.Engine, accts ...*Account) map[string]int64 {
	t.Helper()
	for i, a := range accts {
		if a.Created.IsZero() {
			a.Created = baseTime.Add(time.Duration(i) * time.Minute)
		}
	}
	seedObjects(t, eng, anys(accts)...)
	ids := map[string]int64{}
	for _, a := range accts {
		ids[a.Owner] = a.ID
	}
	return ids
}

// qtSent drops BEGIN, COMMIT and ROLLBACK from a hook log, leaving the
// statements that did the work.
func qtSent(log []string) []string {
	var out []string
	for _, q := range log {
		switch strings.ToUpper(strings.TrimSpace(q)) {
		case "BEGIN", "COMMIT", "ROLLBACK":
			continue
		}
		out = append(out, q)
	}
	return out
}

// qtDeref renders a nullable string for a failure message: NULL or quoted.
func qtDeref(p *string) string {
	if p == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *p)
}

// qtOwners lists the accounts' owners, in the accounts' order.
func qtOwners(accts []*Account) []string {
	out := make([]string, len(accts))
	for i, a := range accts {
		out[i] = a.Owner
	}
	return out
}

// qtSortedOwners is qtOwners sorted, for results whose order is not
// specified.
func qtSortedOwners(accts []*Account) []string {
	out := qtOwners(accts)
	slices.Sort(out)
	return out
}

// qtFresh reads the account with id in a session of its own: the committed row.
func qtFresh(t *testing.T, eng *orm.Engine, id int64) *Account {
	t.Helper()
	s := eng.NewSession()
	defer s.Close()
	a, err := orm.Get[Account](context.Background(), s, id)
	if err != nil {
		t.Fatalf("get %d: %v", id, err)
	}
	return a
}

// Every row a query returns goes through the identity map: an object the
// session already tracks comes back as the same pointer, its unflushed
// changes kept, whichever way it is read.
func TestQueryIdentityMap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("ann", 100), newAccount("bob", 200))

		s := eng.NewSession(orm.WithoutAutoflush())
		defer s.Close()
		ann, err := orm.Get[Account](ctx, s, ids["ann"])
		if err != nil {
			t.Fatal(err)
		}
		ann.Balance = 999 // in memory only: autoflush is off
		log = nil

		same := func(how string, got *Account, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			if got != ann {
				t.Fatalf("%s: got a second object %p for ann, want the tracked %p", how, got, ann)
			}
			if got.Balance != 999 {
				t.Fatalf("%s: Balance = %d, want the unflushed 999", how, got.Balance)
			}
		}
		all, err := orm.Query[Account](s).OrderBy("id").All(ctx)
		if err != nil || len(all) != 2 {
			t.Fatalf("All: %v %v", all, err)
		}
		same("All", all[0], nil)
		one, err := orm.Query[Account](s).Where("owner = ?", "ann").One(ctx)
		same("One", one, err)
		first, err := orm.Query[Account](s).First(ctx)
		same("First", first, err)
		// The row matches on its stored balance, not the in-memory one.
		byOld, err := orm.Query[Account](s).Where("balance = ?", 100).One(ctx)
		same("One by the stored balance", byOld, err)
		if n, err := orm.Query[Account](s).Where("balance = ?", 999).Count(ctx); err != nil || n != 0 {
			t.Fatalf("Count(balance = 999) = %d, %v; want 0 without autoflush", n, err)
		}
		var iterated *Account
		for a, err := range orm.Query[Account](s).Where("owner = ?", "ann").Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			iterated = a
		}
		same("Iter", iterated, nil)
		raw, err := orm.Raw[Account](s, "SELECT * FROM accounts WHERE owner = ?", "ann").One(ctx)
		same("Raw", raw, err)
		got, err := orm.Get[Account](ctx, s, ids["ann"])
		same("Get", got, err)
		if len(qtSent(log)) != 7 {
			t.Fatalf("want 7 statements (Get needs none), got %q", log)
		}
		if !s.IsDirty(ann) {
			t.Fatal("ann lost its unflushed change: not dirty")
		}
		if st := s.Stats(); st.Tracked != 2 {
			t.Fatalf("tracked %d objects, want 2", st.Tracked)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if a := qtFresh(t, eng, ids["ann"]); a.Balance != 999 {
			t.Fatalf("committed balance %d, want 999", a.Balance)
		}
	})
}

// Queries autoflush: a pending Add and an in-memory change are written
// before the query runs, so the query sees them.
func TestQueryAutoflush(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("ann", 100), newAccount("bob", 200))
		s := eng.NewSession()
		defer s.Close()

		cid := &Account{Owner: "cid", Balance: 300, Created: baseTime}
		if err := s.Add(cid); err != nil {
			t.Fatal(err)
		}
		if n, err := orm.Query[Account](s).Count(ctx); err != nil || n != 3 {
			t.Fatalf("Count = %d, %v; want 3 with the pending cid", n, err)
		}
		if cid.ID == 0 {
			t.Fatal("cid not inserted by the autoflush")
		}
		all, err := orm.Query[Account](s).OrderBy("id").All(ctx)
		if err != nil || len(all) != 3 || all[2] != cid {
			t.Fatalf("All = %v, %v; want 3 with the pending object itself last", qtOwners(all), err)
		}

		dan := &Account{Owner: "dan", Balance: 400, Created: baseTime}
		s.Add(dan)
		if ok, err := orm.Query[Account](s).Where("owner = ?", "dan").Exists(ctx); err != nil || !ok {
			t.Fatalf("Exists(dan) = %v, %v", ok, err)
		}
		eve := &Account{Owner: "eve", Balance: 500, Created: baseTime}
		s.Add(eve)
		var seen []*Account
		for a, err := range orm.Query[Account](s).Where("balance >= ?", 500).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, a)
		}
		if len(seen) != 1 || seen[0] != eve {
			t.Fatalf("Iter = %v; want the pending eve", qtOwners(seen))
		}

		bob, err := orm.Get[Account](ctx, s, ids["bob"])
		if err != nil {
			t.Fatal(err)
		}
		bob.Balance = 555
		got, err := orm.Query[Account](s).Where("balance = ?", 555).One(ctx)
		if err != nil || got != bob {
			t.Fatalf("One(balance = 555) = %v, %v; want bob after autoflush", got, err)
		}
		if s.IsDirty(bob) {
			t.Fatal("bob dirty after the autoflush wrote him")
		}
		s.Delete(bob)
		if n, err := orm.Query[Account](s).Where("owner = ?", "bob").Count(ctx); err != nil || n != 0 {
			t.Fatalf("Count(bob) = %d, %v after Delete; want 0", n, err)
		}
	})
}

// One and First: ErrNotFound and ErrMultipleRows, usable with errors.Is;
// First sorts by primary key unless told otherwise.
func TestQueryOneFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		// Keys inserted out of order, and owners sorted against the keys,
		// so that neither insertion order nor the owner index gives the
		// primary-key order by accident.
		{
			s := eng.NewSession()
			_, err := s.Exec(ctx, "INSERT INTO accounts (id, owner, balance, version, created_at) VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)",
				30, "a", 1, 1, baseTime, 10, "c", 1, 1, baseTime, 20, "b", 1, 1, baseTime)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}
		s := eng.NewSession()
		defer s.Close()

		_, err := orm.Query[Account](s).Where("owner = ?", "nobody").One(ctx)
		if !errors.Is(err, orm.ErrNotFound) || errors.Is(err, orm.ErrMultipleRows) {
			t.Fatalf("One of none: %v; want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), "accounts") {
			t.Errorf("One of none: %q does not name the table", err)
		}
		_, err = orm.Query[Account](s).Where("balance = ?", 1).One(ctx)
		if !errors.Is(err, orm.ErrMultipleRows) || errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("One of three: %v; want ErrMultipleRows", err)
		}
		if a, err := orm.Query[Account](s).Where("owner = ?", "b").One(ctx); err != nil || a.ID != 20 {
			t.Fatalf("One(b) = %v, %v", a, err)
		}
		_, err = orm.Query[Account](s).Where("owner = ?", "nobody").First(ctx)
		if !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("First of none: %v; want ErrNotFound", err)
		}

		log = nil
		a, err := orm.Query[Account](s).Where("owner >= ?", "").First(ctx)
		if err != nil || a.ID != 10 {
			t.Fatalf("First = %+v, %v; want id 10, the lowest key", a, err)
		}
		q := qtSent(log)
		if len(q) != 1 || !strings.Contains(q[0], "ORDER BY "+eng.Dialect().Quote("id")) {
			t.Fatalf("First sent %q; want one query ordered by id", q)
		}
		if a, err := orm.Query[Account](s).OrderBy("owner").First(ctx); err != nil || a.ID != 30 {
			t.Fatalf("First by owner = %+v, %v; want id 30", a, err)
		}
		if a, err := orm.Query[Account](s).OrderBy("-id").First(ctx); err != nil || a.ID != 30 {
			t.Fatalf("First by -id = %+v, %v; want id 30", a, err)
		}
		// A limit given by the caller does not hide a second row from One
		// when it allows two, and One must not leak its own limit.
		base := orm.Query[Account](s).Where("balance = ?", 1)
		if _, err := base.Limit(5).One(ctx); !errors.Is(err, orm.ErrMultipleRows) {
			t.Fatalf("One with Limit(5): %v", err)
		}
		if _, err := base.First(ctx); err != nil {
			t.Fatal(err)
		}
		if all, err := base.All(ctx); err != nil || len(all) != 3 {
			t.Fatalf("base query after One and First: %d rows, %v; want 3", len(all), err)
		}
	})
}

// Builders return new queries: extending a shared base never changes it or
// a sibling.
func TestQueryBuilderImmutable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		qtSeed(t, eng, newAccount("ann", 100), newAccount("bob", 200), newAccount("cid", 300))
		s := eng.NewSession()
		defer s.Close()
		base := orm.Query[Account](s).Where("balance > ?", 0)
		a := base.Where("owner = ?", "ann")
		b := base.Where("owner = ?", "bob").OrderBy("-id")
		bad := base.OrderBy("nope")
		lim := base.OrderBy("id").Limit(1)
		for _, c := range []struct {
			q    *orm.Q[Account]
			want []string
		}{
			{base.OrderBy("id"), []string{"ann", "bob", "cid"}},
			{a, []string{"ann"}},
			{b, []string{"bob"}},
			{lim, []string{"ann"}},
			{lim.Offset(1), []string{"bob"}},
			{base.OrderBy("id").Offset(1), []string{"bob", "cid"}},
			{base.OrderBy("-balance").Limit(2), []string{"cid", "bob"}},
			{base.OrderBy("id").Limit(0), []string{}},
		} {
			got, err := c.q.All(ctx)
			if err != nil || !slices.Equal(qtOwners(got), c.want) {
				t.Errorf("got %v, %v; want %v", qtOwners(got), err, c.want)
			}
		}
		if _, err := bad.All(ctx); err == nil {
			t.Error("bad order key accepted")
		}
		if _, err := base.All(ctx); err != nil {
			t.Errorf("the base query caught its child's error: %v", err)
		}
		if n, err := base.Limit(1).Offset(1).Count(ctx); err != nil || n != 3 {
			t.Errorf("Count with Limit/Offset = %d, %v; want 3 (they are ignored)", n, err)
		}
		if ok, err := base.Where("owner = ?", "zed").Exists(ctx); err != nil || ok {
			t.Errorf("Exists(zed) = %v, %v", ok, err)
		}
		for _, q := range []*orm.Q[Account]{base.Limit(-1), base.Offset(-1)} {
			if _, err := q.All(ctx); err == nil {
				t.Error("negative Limit or Offset accepted")
			}
		}
	})
}

// OrderBy takes mapped column names only, optionally "-"-prefixed; any
// other key fails the query with an *orm.OrderByError before SQL is sent,
// whichever method runs it.
func TestQueryOrderBy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		qtSeed(t, eng,
			&Account{Owner: "ann", Balance: 1, Created: baseTime.Add(2 * time.Hour)},
			&Account{Owner: "bob", Balance: 2, Created: baseTime.Add(1 * time.Hour)},
			&Account{Owner: "cid", Balance: 3, Created: baseTime.Add(1 * time.Hour)},
			&Account{Owner: "dan", Balance: 4, Created: baseTime},
		)
		s := eng.NewSession()
		defer s.Close()

		got, err := orm.Query[Account](s).OrderBy("-created_at", "id").All(ctx)
		if want := []string{"ann", "bob", "cid", "dan"}; err != nil || !slices.Equal(qtOwners(got), want) {
			t.Fatalf("OrderBy(-created_at, id) = %v, %v; want %v", qtOwners(got), err, want)
		}
		got, err = orm.Query[Account](s).OrderBy("created_at", "-balance").All(ctx)
		if want := []string{"dan", "cid", "bob", "ann"}; err != nil || !slices.Equal(qtOwners(got), want) {
			t.Fatalf("OrderBy(created_at, -balance) = %v, %v; want %v", qtOwners(got), err, want)
		}
		for _, col := range []string{"id", "owner", "balance", "version", "note", "created_at"} {
			for _, k := range []string{col, "-" + col} {
				if _, err := orm.Query[Account](s).OrderBy(k).All(ctx); err != nil {
					t.Errorf("OrderBy(%q): %v", k, err)
				}
			}
		}

		bad := []string{
			"id; DROP TABLE x", "1", "lower(owner)", "", "-", "owner desc",
			"--id", "- id", " id", "id ", "ID", "Owner", "Balance", "Entries",
			"accounts.id", `"id"`, "`id`", "id,owner", "-created_at, id", "id\x00", "+id",
		}
		type runner struct {
			name string
			run  func(q *orm.Q[Account]) error
		}
		runners := []runner{
			{"All", func(q *orm.Q[Account]) error { _, err := q.All(ctx); return err }},
			{"One", func(q *orm.Q[Account]) error { _, err := q.One(ctx); return err }},
			{"First", func(q *orm.Q[Account]) error { _, err := q.First(ctx); return err }},
			{"Count", func(q *orm.Q[Account]) error { _, err := q.Count(ctx); return err }},
			{"Exists", func(q *orm.Q[Account]) error { _, err := q.Exists(ctx); return err }},
			{"Iter", func(q *orm.Q[Account]) error {
				for _, err := range q.Iter(ctx) {
					if err != nil {
						return err
					}
				}
				return nil
			}},
			{"UpdateAll", func(q *orm.Q[Account]) error { _, err := q.UpdateAll(ctx, orm.Set{"balance": 0}); return err }},
			{"DeleteAll", func(q *orm.Q[Account]) error { _, err := q.DeleteAll(ctx); return err }},
		}
		for _, k := range bad {
			queries := []*orm.Q[Account]{
				orm.Query[Account](s).OrderBy(k),
				orm.Query[Account](s).OrderBy("id", k),
				// The first error is kept through later, valid builders.
				orm.Query[Account](s).OrderBy(k).Where("id > ?", 0).OrderBy("id").Limit(3),
			}
			for qi, q := range queries {
				for _, r := range runners {
					log = nil
					err := r.run(q)
					var oe *orm.OrderByError
					if !errors.As(err, &oe) {
						t.Errorf("OrderBy(%q) #%d %s: %v; want *orm.OrderByError", k, qi, r.name, err)
						continue
					}
					if oe.Key != k || oe.Table != "accounts" {
						t.Errorf("OrderBy(%q) %s: error %+v", k, r.name, oe)
					}
					if len(log) != 0 {
						t.Errorf("OrderBy(%q) #%d %s sent %q", k, qi, r.name, log)
					}
				}
			}
		}
		if n, err := orm.Query[Account](s).Count(ctx); err != nil || n != 4 {
			t.Fatalf("after the bad keys: %d rows, %v", n, err)
		}
	})
}

// `?` becomes the dialect's placeholder, a slice bound to one `?` expands
// to a list, a `?` inside a string literal or comment is text, and an
// empty list or a count mismatch fails with *dialect.BindError before SQL.
func TestQueryPlaceholders(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("?", 1), newAccount("ann", 2), newAccount("bob", 3), newAccount("it's", 4), newAccount("cid", 5))
		s := eng.NewSession()
		defer s.Close()

		cases := []struct {
			where string
			args  []any
			want  []string
		}{
			{"owner = '?' OR owner = ?", []any{"ann"}, []string{"?", "ann"}},
			{"owner = ?", []any{"?"}, []string{"?"}},
			{"owner IN (?)", []any{[]string{"ann", "cid", "zed"}}, []string{"ann", "cid"}},
			{"owner IN (?) AND balance > ?", []any{[]string{"ann", "bob", "cid"}, 2}, []string{"bob", "cid"}},
			{"balance IN (?)", []any{[]int64{1, 4}}, []string{"?", "it's"}},
			{"id IN (?)", []any{[]any{ids["bob"], ids["cid"]}}, []string{"bob", "cid"}},
			{"balance IN (?) OR owner IN (?)", []any{[]int{5}, []string{"ann"}}, []string{"ann", "cid"}},
			{"owner = 'it''s' OR owner = ?", []any{"bob"}, []string{"bob", "it's"}},
			{"/* ? */ owner = ?", []any{"cid"}, []string{"cid"}},
			{"owner IN ('?', ?)", []any{"bob"}, []string{"?", "bob"}},
		}
		for _, c := range cases {
			log = nil
			got, err := orm.Query[Account](s).Where(c.where, c.args...).All(ctx)
			if err != nil || !slices.Equal(qtSortedOwners(got), c.want) {
				t.Errorf("Where(%q, %v) = %q, %v; want %q", c.where, c.args, qtSortedOwners(got), err, c.want)
				continue
			}
			sent := qtSent(log)
			if len(sent) != 1 {
				t.Errorf("Where(%q): sent %q", c.where, log)
				continue
			}
			if tg.Name == dbtest.Postgres {
				// Only the `?` inside the quotes or the comment is left.
				rest := strings.NewReplacer("'?'", "", "/* ? */", "").Replace(sent[0])
				if strings.Contains(rest, "?") || !strings.Contains(sent[0], "$1") {
					t.Errorf("Where(%q) sent %q to PostgreSQL", c.where, sent[0])
				}
			}
		}
		// Where and Limit/Offset placeholders are numbered together.
		got, err := orm.Query[Account](s).Where("owner IN (?)", []string{"ann", "bob", "cid"}).Where("balance > ?", 0).OrderBy("id").Limit(1).Offset(1).All(ctx)
		if err != nil || !slices.Equal(qtOwners(got), []string{"bob"}) {
			t.Errorf("IN list, limit and offset: %v, %v", qtOwners(got), err)
		}

		// Errors before SQL, in a session that tracks no account and in one
		// that does (UpdateAll and DeleteAll then read the keys first).
		badWhere := []struct {
			where string
			args  []any
			empty bool
		}{
			{"owner IN (?)", []any{[]string{}}, true},
			{"id IN (?) AND owner = ?", []any{[]int64(nil), "ann"}, true},
			{"owner = ? AND balance = ?", []any{"ann"}, false},
			{"owner = ?", []any{"ann", 1}, false},
			{"owner = '?'", []any{"ann"}, false},
		}
		for _, tracking := range []bool{false, true} {
			s := eng.NewSession()
			if tracking {
				if _, err := orm.Get[Account](ctx, s, ids["ann"]); err != nil {
					t.Fatal(err)
				}
				if err := s.Commit(ctx); err != nil { // no transaction open
					t.Fatal(err)
				}
			}
			for _, c := range badWhere {
				q := orm.Query[Account](s).Where(c.where, c.args...)
				runs := []struct {
					name string
					run  func() error
				}{
					{"All", func() error { _, err := q.All(ctx); return err }},
					{"One", func() error { _, err := q.One(ctx); return err }},
					{"Count", func() error { _, err := q.Count(ctx); return err }},
					{"Exists", func() error { _, err := q.Exists(ctx); return err }},
					{"Iter", func() error {
						for _, err := range q.Iter(ctx) {
							if err != nil {
								return err
							}
						}
						return nil
					}},
					{"UpdateAll", func() error { _, err := q.UpdateAll(ctx, orm.Set{"balance": 0}); return err }},
					{"DeleteAll", func() error { _, err := q.DeleteAll(ctx); return err }},
				}
				for _, r := range runs {
					name := r.name
					log = nil
					err := r.run()
					var be *dialect.BindError
					if !errors.As(err, &be) {
						t.Errorf("tracking=%v Where(%q, %v) %s: %v; want *dialect.BindError", tracking, c.where, c.args, name, err)
						continue
					}
					if (be.Empty > 0) != c.empty {
						t.Errorf("tracking=%v Where(%q) %s: %+v", tracking, c.where, name, be)
					}
					if len(log) != 0 {
						t.Errorf("tracking=%v Where(%q, %v) %s sent %q before failing", tracking, c.where, c.args, name, log)
					}
				}
			}
			s.Close()
		}
		if n := countAccounts(t, eng, "balance > ?", 0); n != 5 {
			t.Fatalf("rows changed by failed statements: %d left", n)
		}
	})
}

// ForUpdate locks the row until the transaction ends: a second session's
// ForUpdate of it waits for the first to commit, then reads the committed
// value. On SQLite the session holds the database's write lock instead.
func TestQueryForUpdate(t *testing.T) {
	for _, readFirst := range []bool{false, true} {
		name := "first statement"
		if readFirst {
			name = "after a read"
		}
		t.Run(name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
				var log []string
				eng := openEngine(t, tg, &log)
				ctx := context.Background()
				ids := qtSeed(t, eng, newAccount("ann", 100), newAccount("bob", 200))

				a := eng.NewSession()
				defer a.Close()
				if readFirst {
					// The transaction is open, and on SQLite deferred, before ForUpdate.
					if _, err := orm.Get[Account](ctx, a, ids["bob"]); err != nil {
						t.Fatal(err)
					}
				}
				log = nil
				row, err := orm.Query[Account](a).Where("id = ?", ids["ann"]).ForUpdate().One(ctx)
				if err != nil {
					t.Fatal(err)
				}
				sent := qtSent(log)
				if len(sent) == 0 || !strings.HasPrefix(sent[len(sent)-1], "SELECT ") {
					t.Fatalf("ForUpdate sent %q; want its SELECT last", log)
				}
				if hasFU := strings.HasSuffix(sent[len(sent)-1], " FOR UPDATE"); hasFU != (tg.Name != dbtest.SQLite) {
					t.Fatalf("ForUpdate on %s sent %q", tg.Name, sent)
				}
				row.Balance += 10

				type result struct {
					a   *Account
					err error
				}
				done := make(chan result, 1)
				release := make(chan struct{})
				// The second session runs on an engine of its own, as another
				// process would, so that its statements stay out of log.
				b := openEngine(t, tg, nil).NewSession()
				bClosed := make(chan struct{})
				go func() {
					defer close(bClosed)
					defer b.Close()
					got, err := orm.Query[Account](b).Where("id = ?", ids["ann"]).ForUpdate().One(ctx)
					done <- result{got, err}
					<-release
				}()
				defer close(release)
				var early *result
				select {
				case r := <-done:
					early = &r
					t.Errorf("the second ForUpdate returned (%+v, %v) while the first transaction held the row", r.a, r.err)
					// Let go of b's lock, or a's commit would wait for it.
					release <- struct{}{}
					<-bClosed
				case <-time.After(300 * time.Millisecond):
				}
				if err := a.Commit(ctx); err != nil {
					t.Fatalf("commit A: %v", err)
				}
				if early != nil {
					return
				}
				select {
				case r := <-done:
					if r.err != nil {
						t.Fatalf("second ForUpdate: %v", r.err)
					}
					if r.a.Balance != 110 {
						t.Fatalf("second ForUpdate read balance %d, want the committed 110", r.a.Balance)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("second ForUpdate still blocked 5s after the first session committed")
				}
			})
		})
	}
}

// UpdateAll returns the matched count, updates the tracked objects that
// matched (new values, fresh snapshots, version bumped) and leaves the
// others alone; with no object of the table tracked it is one statement.
func TestQueryUpdateAll(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("ann", 100), newAccount("bob", 200), newAccount("cid", 300), newAccount("dan", 400))

		s := eng.NewSession()
		defer s.Close()
		ann, _ := orm.Get[Account](ctx, s, ids["ann"])
		cid, err := orm.Get[Account](ctx, s, ids["cid"])
		if err != nil {
			t.Fatal(err)
		}
		log = nil
		n, err := orm.Query[Account](s).Where("balance >= ?", 200).Where("owner <> ?", "dan").
			UpdateAll(ctx, orm.Set{"balance": 5, "note": "bulk"})
		if err != nil || n != 2 {
			t.Fatalf("UpdateAll = %d, %v; want 2 (bob, cid)", n, err)
		}
		if cid.Balance != 5 || cid.Note == nil || *cid.Note != "bulk" || cid.Version != 2 {
			t.Fatalf("tracked cid after UpdateAll: %+v (note %v); want balance 5, note bulk, version 2", cid, cid.Note)
		}
		if s.IsDirty(cid) {
			t.Fatal("cid dirty after UpdateAll")
		}
		if ann.Balance != 100 || ann.Note != nil || ann.Version != 1 || s.IsDirty(ann) {
			t.Fatalf("untouched ann changed: %+v", ann)
		}
		if sent := qtSent(log); len(sent) != 2 {
			t.Fatalf("UpdateAll with tracked accounts sent %q; want the key SELECT and the UPDATE", sent)
		}
		// Reading cid again gives the same, updated object.
		if got, err := orm.Query[Account](s).Where("owner = ?", "cid").One(ctx); err != nil || got != cid || got.Balance != 5 {
			t.Fatalf("cid re-read: %+v, %v", got, err)
		}
		log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if sent := qtSent(log); len(sent) != 0 {
			t.Fatalf("commit after UpdateAll flushed %q; the updated objects should be clean", sent)
		}
		for owner, want := range map[string][2]int64{"ann": {100, 1}, "bob": {5, 2}, "cid": {5, 2}, "dan": {400, 1}} {
			a := qtFresh(t, eng, ids[owner])
			if a.Balance != want[0] || a.Version != want[1] {
				t.Errorf("%s committed as balance %d version %d, want %v", owner, a.Balance, a.Version, want)
			}
		}
		// The bumped version is the row's: a later change of cid passes
		// the version check.
		cid.Balance = 6
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("changing cid after UpdateAll: %v", err)
		}
		if a := qtFresh(t, eng, ids["cid"]); a.Balance != 6 || a.Version != 3 {
			t.Fatalf("cid committed as %+v", a)
		}

		// No account tracked (an object of another table does not count):
		// exactly one statement.
		s2 := eng.NewSession()
		defer s2.Close()
		if err := s2.Add(&testmodels.Tag{Kind: "k", Name: "n"}); err != nil {
			t.Fatal(err)
		}
		if err := s2.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		log = nil
		n, err = orm.Query[Account](s2).Where("owner IN (?)", []string{"ann", "dan"}).UpdateAll(ctx, orm.Set{"balance": 0})
		if err != nil || n != 2 {
			t.Fatalf("UpdateAll = %d, %v", n, err)
		}
		if sent := qtSent(log); len(sent) != 1 || !strings.HasPrefix(sent[0], "UPDATE ") {
			t.Fatalf("UpdateAll tracking no account sent %q; want one UPDATE", sent)
		}
		if err := s2.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countAccounts(t, eng, "balance = ? AND version = ?", 0, 2); n != 2 {
			t.Fatalf("%d rows updated and version-bumped, want 2", n)
		}

		// Bad sets fail before SQL.
		for _, set := range []orm.Set{{}, {"nope": 1}, {"id": 1}, {"version": 9}, {"Balance": 1}} {
			log = nil
			if _, err := orm.Query[Account](s2).AllRows().UpdateAll(ctx, set); err == nil || len(log) != 0 {
				t.Errorf("UpdateAll(%v) = %v, sent %q; want an error before SQL", set, err, log)
			}
		}
	})
}

// The values UpdateAll writes into a tracked object must be the object's
// own: editing them in place later is a change the session sees, and the
// caller's value is not shared with the object or its snapshot.
func TestQueryUpdateAllValuesNotShared(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("ann", 100))
		s := eng.NewSession()
		defer s.Close()
		ann, err := orm.Get[Account](ctx, s, ids["ann"])
		if err != nil {
			t.Fatal(err)
		}
		note := "bulk"
		if _, err := orm.Query[Account](s).Where("id = ?", ann.ID).UpdateAll(ctx, orm.Set{"note": &note}); err != nil {
			t.Fatal(err)
		}
		if ann.Note == &note {
			t.Error("the tracked object holds the caller's *string passed to UpdateAll")
		}
		*ann.Note = "edited in place"
		if !s.IsDirty(ann) {
			t.Error("an in-place edit of a value set by UpdateAll is not seen as a change: object and snapshot share it")
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if a := qtFresh(t, eng, ids["ann"]); a.Note == nil || *a.Note != "edited in place" {
			t.Errorf("committed note %s; the in-place edit was lost", qtDeref(a.Note))
		}

		// The same with a []byte column.
		blob := &testmodels.Blob{Data: []byte("one")}
		if err := s.Add(blob); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		data := []byte("two")
		if _, err := orm.Query[testmodels.Blob](s).Where("id = ?", blob.ID).UpdateAll(ctx, orm.Set{"data": data}); err != nil {
			t.Fatal(err)
		}
		blob.Data[0] = 'T'
		if !s.IsDirty(blob) {
			t.Error("an in-place edit of []byte set by UpdateAll is not seen as a change")
		}
		if string(data) != "two" {
			t.Errorf("editing the tracked blob changed the caller's slice to %q", data)
		}
	})
}

// DeleteAll returns the deleted count and detaches the tracked objects it
// deleted: Get of their key then reads the database and finds nothing.
func TestQueryDeleteAll(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		ids := qtSeed(t, eng, newAccount("ann", 100), newAccount("bob", 200), newAccount("cid", 300), newAccount("dan", 400))

		s := eng.NewSession()
		defer s.Close()
		ann, _ := orm.Get[Account](ctx, s, ids["ann"])
		cid, err := orm.Get[Account](ctx, s, ids["cid"])
		if err != nil {
			t.Fatal(err)
		}
		log = nil
		n, err := orm.Query[Account](s).Where("balance >= ?", 300).DeleteAll(ctx)
		if err != nil || n != 2 {
			t.Fatalf("DeleteAll = %d, %v; want 2 (cid, dan)", n, err)
		}
		if sent := qtSent(log); len(sent) != 2 {
			t.Fatalf("DeleteAll with tracked accounts sent %q; want the key SELECT and the DELETE", sent)
		}
		if st := s.Stats(); st.Tracked != 1 {
			t.Fatalf("tracking %d objects after DeleteAll, want 1 (ann)", st.Tracked)
		}
		if s.IsDirty(cid) {
			t.Fatal("detached cid reported dirty")
		}
		log = nil
		if _, err := orm.Get[Account](ctx, s, ids["cid"]); !errors.Is(err, orm.ErrNotFound) {
			t.Fatalf("Get(cid) after DeleteAll: %v; want ErrNotFound", err)
		}
		if sent := qtSent(log); len(sent) != 1 || !strings.HasPrefix(sent[0], "SELECT") {
			t.Fatalf("Get(cid) sent %q; want it to read the database", sent)
		}
		log = nil
		if got, err := orm.Get[Account](ctx, s, ids["ann"]); err != nil || got != ann || len(log) != 0 {
			t.Fatalf("Get(ann) = %p, %v, sent %q; want the tracked ann without SQL", got, err, log)
		}
		// Changing a detached object writes nothing.
		cid.Balance = 1
		log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if sent := qtSent(log); len(sent) != 0 {
			t.Fatalf("commit sent %q", sent)
		}
		if n := countAccounts(t, eng, "1 = 1"); n != 2 {
			t.Fatalf("%d rows left, want 2", n)
		}

		// With no account tracked: exactly one statement.
		s2 := eng.NewSession()
		defer s2.Close()
		log = nil
		n, err = orm.Query[Account](s2).Where("owner = ?", "ann").DeleteAll(ctx)
		if err != nil || n != 1 {
			t.Fatalf("DeleteAll = %d, %v", n, err)
		}
		if sent := qtSent(log); len(sent) != 1 || !strings.HasPrefix(sent[0], "DELETE ") {
			t.Fatalf("DeleteAll tracking no account sent %q; want one DELETE", sent)
		}
		if n, err := orm.Query[Account](s2).Where("owner = ?", "nobody").DeleteAll(ctx); err != nil || n != 0 {
			t.Fatalf("DeleteAll of nothing = %d, %v", n, err)
		}
		if err := s2.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countAccounts(t, eng, "1 = 1"); n != 1 {
			t.Fatalf("%d rows left, want 1", n)
		}
	})
}

// Load fills relations with one extra query per relation; the loaded
// objects go through the identity map too.
func TestQueryLoad(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		qtSeed(t, eng,
			&Account{Owner: "ann", Entries: []*Entry{{Amount: 1}, {Amount: 2}}},
			&Account{Owner: "bob", Entries: []*Entry{{Amount: 3}}},
			&Account{Owner: "cid"},
		)
		s := eng.NewSession()
		defer s.Close()

		log = nil
		accts, err := orm.Query[Account](s).OrderBy("id").Load("Entries").All(ctx)
		if err != nil || len(accts) != 3 {
			t.Fatalf("All with Entries: %v, %v", accts, err)
		}
		if sent := qtSent(log); len(sent) != 2 {
			t.Fatalf("Load(Entries) sent %d statements, want 2: %q", len(sent), sent)
		}
		amounts := func(a *Account) []int64 {
			var out []int64
			for _, e := range a.Entries {
				out = append(out, e.Amount)
			}
			return out
		}
		if got := amounts(accts[0]); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("ann's entries %v", got)
		}
		if got := amounts(accts[1]); !slices.Equal(got, []int64{3}) {
			t.Errorf("bob's entries %v", got)
		}
		if accts[2].Entries == nil || len(accts[2].Entries) != 0 {
			t.Errorf("cid's entries %v; want an empty, non-nil slice (loaded, none)", accts[2].Entries)
		}

		log = nil
		entries, err := orm.Query[Entry](s).OrderBy("id").Load("Account").All(ctx)
		if err != nil || len(entries) != 3 {
			t.Fatalf("entries with Account: %v, %v", entries, err)
		}
		if sent := qtSent(log); len(sent) != 2 {
			t.Fatalf("Load(Account) sent %q", sent)
		}
		for i, want := range []*Account{accts[0], accts[0], accts[1]} {
			if entries[i].Account != want {
				t.Errorf("entry %d's Account is %p, want the tracked %p", i, entries[i].Account, want)
			}
			if !slices.Contains(want.Entries, entries[i]) {
				t.Errorf("entry %d is not the object loaded into its account", i)
			}
		}

		// One, First and an empty result.
		bob, err := orm.Query[Account](s).Where("owner = ?", "bob").Load("Entries").One(ctx)
		if err != nil || bob != accts[1] || len(bob.Entries) != 1 {
			t.Fatalf("One with Entries: %+v, %v", bob, err)
		}
		if _, err := orm.Query[Account](s).OrderBy("id").Load("Entries").First(ctx); err != nil {
			t.Fatal(err)
		}
		log = nil
		none, err := orm.Query[Account](s).Where("owner = ?", "nobody").Load("Entries").All(ctx)
		if err != nil || len(none) != 0 || len(qtSent(log)) != 1 {
			t.Fatalf("empty result with Load: %v, %v, sent %q; want one query", none, err, log)
		}

		// Unknown relations fail before SQL.
		for _, rel := range []string{"Nope", "entries", "Owner", "Balance", ""} {
			log = nil
			_, err := orm.Query[Account](s).Load(rel).All(ctx)
			if err == nil || len(log) != 0 {
				t.Errorf("Load(%q) = %v, sent %q; want an error before SQL", rel, err, log)
			} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", rel)) {
				t.Errorf("Load(%q): error %q does not name it", rel, err)
			}
		}
	})
}

// Iter with Load must load the relation or refuse, not silently return
// objects with their relations unloaded.
func TestQueryLoadIter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		qtSeed(t, eng, &Account{Owner: "ann", Entries: []*Entry{{Amount: 1}, {Amount: 2}}})
		s := eng.NewSession()
		defer s.Close()
		for a, err := range orm.Query[Account](s).Load("Entries").Iter(ctx) {
			if err != nil {
				return // refusing is acceptable
			}
			if len(a.Entries) != 2 {
				t.Fatalf("Iter with Load(Entries) yielded %s with %d entries, want 2: Load is silently ignored by Iter", a.Owner, len(a.Entries))
			}
		}
	})
}

// A type that is not a model fails every query method with the mapper's
// error, before SQL and without panicking.
func TestQueryNotAModel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		type notModel struct{ X chan int }
		q := orm.Query[notModel](s).Where("x = ?", 1).OrderBy("x").Load("Y").Limit(1)
		log = nil
		if _, err := q.All(ctx); err == nil {
			t.Error("All accepted")
		}
		if _, err := q.One(ctx); err == nil {
			t.Error("One accepted")
		}
		if _, err := q.First(ctx); err == nil {
			t.Error("First accepted")
		}
		if _, err := q.Count(ctx); err == nil {
			t.Error("Count accepted")
		}
		if _, err := q.Exists(ctx); err == nil {
			t.Error("Exists accepted")
		}
		if _, err := q.UpdateAll(ctx, orm.Set{"x": 1}); err == nil {
			t.Error("UpdateAll accepted")
		}
		if _, err := q.DeleteAll(ctx); err == nil {
			t.Error("DeleteAll accepted")
		}
		for _, err := range q.Iter(ctx) {
			if err == nil {
				t.Error("Iter accepted")
			}
		}
		if _, err := orm.Raw[notModel](s, "SELECT 1 AS x").All(ctx); err == nil {
			t.Error("Raw accepted")
		}
		if len(log) != 0 {
			t.Errorf("sent %q", log)
		}
	})
}
