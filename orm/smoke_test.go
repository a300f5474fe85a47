package orm_test

import (
	"context"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

type Account = testmodels.Account
type Entry = testmodels.Entry

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestSmoke(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		var log []string
		eng := openEngine(t, tg, &log)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := &Account{Owner: "ann", Balance: 100, Created: time.Now()}
		a.Entries = []*Entry{{Amount: 1}, {Amount: 2}}
		if err := s.Add(a); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if a.ID == 0 || a.Version != 1 || a.Entries[1].AccountID != a.ID || a.Entries[0].ID == 0 {
			t.Fatalf("after insert: %+v %+v", a, a.Entries[1])
		}
		log = nil
		got, err := orm.Get[Account](ctx, s, a.ID)
		if err != nil || got != a || len(log) != 0 {
			t.Fatalf("get: %v %v %v", got, err, log)
		}
		a.Balance = 0
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		t.Log(log)
		s2 := eng.NewSession()
		defer s2.Close()
		b, err := orm.Get[Account](ctx, s2, a.ID)
		if err != nil || b.Balance != 0 || b.Version != 2 {
			t.Fatalf("s2 get: %+v %v", b, err)
		}
		for _, e := range a.Entries {
			e2, err := orm.Get[Entry](ctx, s2, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			s2.Delete(e2)
		}
		if err := s2.Delete(b); err != nil {
			t.Fatal(err)
		}
		log = nil
		if err := s2.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		t.Log(log)
		if st := eng.DB().Stats(); st.InUse != 0 {
			t.Fatalf("in use %d", st.InUse)
		}
	})
}
