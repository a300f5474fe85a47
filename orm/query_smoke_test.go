package orm_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

func TestQuerySmoke(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		for i := range 10 {
			a := &Account{Owner: fmt.Sprintf("o%d", i), Balance: int64(i * 10)}
			a.Entries = []*Entry{{Amount: 1}, {Amount: int64(i)}}
			s.Add(a)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		log = nil
		accts, err := orm.Query[Account](s2).Where("balance > ?", 20).Where("owner IN (?)", []string{"o3", "o4", "o9", "x"}).OrderBy("-balance", "id").Limit(20).Load("Entries").All(ctx)
		if err != nil || len(accts) != 3 || accts[0].Owner != "o9" || len(accts[0].Entries) != 2 {
			t.Fatalf("%v %v %v", accts, err, log)
		}
		t.Log(log)
		n, err := orm.Query[Account](s2).Count(ctx)
		if err != nil || n != 10 {
			t.Fatal(n, err)
		}
		one, err := orm.Query[Account](s2).Where("owner = ?", "o9").One(ctx)
		if err != nil || one != accts[0] {
			t.Fatal(one, err)
		}
		_, err = orm.Query[Account](s2).One(ctx)
		if !errors.Is(err, orm.ErrMultipleRows) {
			t.Fatal(err)
		}
		cnt := 0
		for a, err := range orm.Query[Account](s2).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			cnt++
			if cnt == 3 {
				_ = a
				break
			}
		}
		m, err := orm.Query[Account](s2).Where("owner LIKE ?", "o%").UpdateAll(ctx, orm.Set{"balance": 0})
		if err != nil || m != 10 || accts[0].Balance != 0 || s2.IsDirty(accts[0]) {
			t.Fatal(m, err, accts[0])
		}
		raw, err := orm.Raw[Account](s2, "SELECT id, owner FROM accounts WHERE owner = ?", "o9").All(ctx)
		if err != nil || len(raw) != 1 || raw[0] != accts[0] {
			t.Fatal(raw, err)
		}
		_, err = orm.Query[Account](s2).OrderBy("id; DROP TABLE x").All(ctx)
		if err == nil {
			t.Fatal("order by accepted")
		}
		if _, err := orm.Query[Entry](s2).AllRows().DeleteAll(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s2.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatal(st.InUse)
		}
	})
}
