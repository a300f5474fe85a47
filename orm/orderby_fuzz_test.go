package orm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// FuzzOrderBy checks OrderBy's contract on every database: a key that is
// exactly a column of the model, optionally prefixed by one "-", runs; any
// other string fails with an *orm.OrderByError naming it before any SQL is
// sent; nothing panics. The key is tried alone and after a valid one.
//
// Seeds live in testdata/fuzz/FuzzOrderBy; run the fuzzer with
//
//	go test -run '^$' -fuzz FuzzOrderBy ./orm/
func FuzzOrderBy(f *testing.F) {
	for _, k := range []string{"id", "-created_at", "owner desc", "id; DROP TABLE x", "", "-", "--id", "Owner"} {
		f.Add(k)
	}
	type target struct {
		name string
		eng  *orm.Engine
		sent *atomic.Int64
	}
	var targets []target
	ctx := context.Background()
	for _, tg := range dbtest.Targets(f) {
		sent := new(atomic.Int64)
		eng := openEngine(f, tg, nil, orm.WithQueryHook(func(context.Context, orm.QueryEvent) { sent.Add(1) }))
		seedObjects(f, eng, newAccount("ann", 0), newAccount("bob", 0))
		targets = append(targets, target{tg.Name, eng, sent})
	}
	columns := []string{"id", "owner", "balance", "version", "note", "created_at"}

	f.Fuzz(func(t *testing.T, key string) {
		name, _ := strings.CutPrefix(key, "-")
		valid := slices.Contains(columns, name)
		for _, tg := range targets {
			s := tg.eng.NewSession()
			for _, keys := range [][]string{{key}, {"id", key}} {
				before := tg.sent.Load()
				got, err := orm.Query[Account](s).OrderBy(keys...).All(ctx)
				sent := tg.sent.Load() - before
				if valid {
					if err != nil || len(got) != 2 {
						t.Errorf("%s: OrderBy(%q) of a column: %d rows, %v", tg.name, keys, len(got), err)
					}
					continue
				}
				var oe *orm.OrderByError
				if !errors.As(err, &oe) || oe.Key != key {
					t.Errorf("%s: OrderBy(%q) = %d rows, %v; want an *orm.OrderByError for %q", tg.name, keys, len(got), err, key)
				}
				if sent != 0 {
					t.Errorf("%s: OrderBy(%q) sent %d statements before failing", tg.name, keys, sent)
				}
			}
			s.Close()
		}
	})
}
