package orm_test

import (
	"context"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// A model with a composite primary key is updated by its whole key and
// deleted in one batched statement; Get refuses keys of the wrong shape.
func TestCompositeKeyUpdateAndBatchedDelete(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := openEngine(t, tg, nil)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		tags := []*testmodels.Tag{{Kind: "a", Name: "x"}, {Kind: "a", Name: "y"}, {Kind: "b", Name: "x"}}
		for _, tag := range tags {
			if err := s.Add(tag); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		tags[2].Uses = 9
		if err := s.Delete(tags[0], tags[1]); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		all, err := orm.Query[testmodels.Tag](s2).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0].Kind != "b" || all[0].Uses != 9 {
			t.Fatalf("rows: got %+v, want one: {Kind: b, Name: x, Uses: 9}", all)
		}
		if _, err := orm.Get[testmodels.Tag](ctx, s2, "b", nil); err == nil {
			t.Fatal("Get with a nil key part: got nil error, want an error")
		}
		if _, err := orm.Get[Account](ctx, s2, struct{}{}); err == nil {
			t.Fatal("Get with a struct key: got nil error, want an error")
		}
		if _, err := orm.Get[testmodels.Tag](ctx, s2, "b"); err == nil {
			t.Fatal("Get with too few key parts: got nil error, want an error")
		}
	})
}
