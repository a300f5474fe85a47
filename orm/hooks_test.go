package orm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of the lifecycle hooks. The hooks of the models below
// record their calls in the hkLog carried by ctx. Helpers carry a hk prefix.

type hkLogKey struct{}

// hkLog is what the hooks of one test ran, in order.
type hkLog struct{ calls []string }

func hkRecord(ctx context.Context, call string) {
	if l, ok := ctx.Value(hkLogKey{}).(*hkLog); ok {
		l.calls = append(l.calls, call)
	}
}

func hkContext() (context.Context, *hkLog) {
	l := &hkLog{}
	return context.WithValue(context.Background(), hkLogKey{}, l), l
}

func (l *hkLog) take() []string {
	out := l.calls
	l.calls = nil
	return out
}

type hkAuthor struct {
	ID    int64     `db:"id,pk,auto"`
	Name  string    `db:"name,size=32"`
	Slug  string    `db:"slug,size=32"`
	Books []*hkBook `rel:"author_id,cascade"`
}

func (hkAuthor) TableName() string { return "hk_authors" }

// BeforeInsert and BeforeUpdate keep the slug in step with the name; the
// name "fail" makes them fail, and "reenter" makes them call the session.
func (a *hkAuthor) BeforeInsert(ctx context.Context, s *orm.Session) error {
	hkRecord(ctx, "BeforeInsert author "+a.Name)
	return a.slugify(ctx, s)
}

func (a *hkAuthor) BeforeUpdate(ctx context.Context, s *orm.Session) error {
	hkRecord(ctx, "BeforeUpdate author "+a.Name)
	return a.slugify(ctx, s)
}

func (a *hkAuthor) slugify(ctx context.Context, s *orm.Session) error {
	a.Slug = strings.ToLower(a.Name)
	switch a.Name {
	case "fail":
		return errBoom
	case "reenter":
		_, err := orm.Query[hkAuthor](s).Count(ctx)
		return err
	}
	return nil
}

func (a *hkAuthor) BeforeDelete(ctx context.Context, _ *orm.Session) error {
	hkRecord(ctx, "BeforeDelete author "+a.Name)
	return nil
}

func (a *hkAuthor) AfterLoad(ctx context.Context, _ *orm.Session) error {
	hkRecord(ctx, "AfterLoad author "+a.Name)
	return nil
}

type hkBook struct {
	ID       int64  `db:"id,pk,auto"`
	AuthorID int64  `db:"author_id"`
	Title    string `db:"title,size=32"`
}

func (hkBook) TableName() string { return "hk_books" }

func (b *hkBook) BeforeInsert(ctx context.Context, _ *orm.Session) error {
	hkRecord(ctx, "BeforeInsert book "+b.Title)
	return nil
}

func (b *hkBook) BeforeUpdate(ctx context.Context, _ *orm.Session) error {
	hkRecord(ctx, "BeforeUpdate book "+b.Title)
	return nil
}

func (b *hkBook) BeforeDelete(ctx context.Context, _ *orm.Session) error {
	hkRecord(ctx, "BeforeDelete book "+b.Title)
	if b.Title == "fail" {
		return errBoom
	}
	return nil
}

func (b *hkBook) AfterLoad(ctx context.Context, _ *orm.Session) error {
	hkRecord(ctx, "AfterLoad book "+b.Title)
	return nil
}

func hkOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), hkAuthor{}, hkBook{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

func hkWant(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: hooks ran\n %q\nwant\n %q", what, got, want)
	}
}

// Hooks run inside the flush in its order: parents' inserts before their
// children's, updates table by table, children's deletes before their
// parents'; each Before hook just before its object's statement.
func TestHooksRunInFlushOrderAcrossTables(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := hkOpen(t, tg)
		ctx, hl := hkContext()
		s := eng.NewSession()
		defer s.Close()
		// The books are added first, yet the author's INSERT comes first.
		a := &hkAuthor{Name: "Ann", Books: []*hkBook{{Title: "one"}, {Title: "two"}}}
		uowMust(t, s.Add(a.Books[0], a.Books[1], a))
		uowMust(t, s.Commit(ctx))
		hkWant(t, "insert", hl.take(), "BeforeInsert author Ann", "BeforeInsert book one", "BeforeInsert book two")
		if a.Slug != "ann" || countRows(t, eng, "SELECT COUNT(*) FROM hk_authors WHERE slug = 'ann'") != 1 {
			t.Fatalf("BeforeInsert's slug: object %q, not stored", a.Slug)
		}

		a.Books[1].Title, a.Name = "deux", "Anna"
		uowMust(t, s.Commit(ctx))
		hkWant(t, "update", hl.take(), "BeforeUpdate author Anna", "BeforeUpdate book deux")

		uowMust(t, s.Delete(a))
		uowMust(t, s.Commit(ctx))
		hkWant(t, "delete", hl.take(), "BeforeDelete book one", "BeforeDelete book deux", "BeforeDelete author Anna")
	})
}

// A hook's error fails the commit like a statement's: nothing is written,
// pending objects stay pending, changed objects stay changed against
// their old snapshot, and what the hooks that ran had changed is undone.
// Fixed, the next commit runs the hooks again and succeeds.
func TestHookErrorRestoresSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := hkOpen(t, tg)
		ctx, hl := hkContext()
		s := eng.NewSession()
		defer s.Close()
		ok, bad := &hkAuthor{Name: "Ann"}, &hkAuthor{Name: "fail"}
		uowMust(t, s.Add(ok, bad))
		err := s.Commit(ctx)
		var he *orm.HookError
		if !errors.Is(err, errBoom) || !errors.As(err, &he) || he.Hook != "BeforeInsert" || he.Table != "hk_authors" {
			t.Fatalf("Commit = %v; want the BeforeInsert hook's error", err)
		}
		if ok.Slug != "" || bad.Slug != "" || ok.ID != 0 || len(s.Pending()) != 2 {
			t.Fatalf("after the failed commit: slugs %q %q, id %d, %d pending; want the objects as added", ok.Slug, bad.Slug, ok.ID, len(s.Pending()))
		}
		if n := len(log.Matching("INSERT")); n != 0 {
			t.Fatalf("%d INSERTs sent; a hook fails before its object's statement", n)
		}
		bad.Name = "Bob"
		hl.take()
		uowMust(t, s.Commit(ctx))
		hkWant(t, "second commit", hl.take(), "BeforeInsert author Ann", "BeforeInsert author Bob")

		// An update hook's failure: the object keeps the caller's change
		// and its old snapshot, and the hook's own change is undone.
		ok.Name = "fail"
		if err := s.Commit(ctx); !errors.Is(err, errBoom) {
			t.Fatalf("Commit = %v; want the BeforeUpdate hook's error", err)
		}
		if ok.Name != "fail" || ok.Slug != "ann" || !s.IsDirty(ok) {
			t.Fatalf("after the failed update: name %q slug %q dirty %v; want the caller's change kept, the hook's undone", ok.Name, ok.Slug, s.IsDirty(ok))
		}
		ok.Name = "Cy"
		uowMust(t, s.Commit(ctx))
		if got := countRows(t, eng, "SELECT COUNT(*) FROM hk_authors WHERE name = 'Cy' AND slug = 'cy'"); got != 1 {
			t.Fatalf("%d rows with the fixed name and its slug, want 1", got)
		}
	})
}

// What BeforeUpdate changes goes into the UPDATE the object's own change
// causes: one statement, not two; and an object with nothing to write has
// no BeforeUpdate call and no UPDATE.
func TestBeforeUpdateChangeIsWrittenInTheSameUpdate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := hkOpen(t, tg)
		ctx, hl := hkContext()
		seed := &hkAuthor{Name: "Ann"}
		seedObjects(t, eng, seed)
		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[hkAuthor](ctx, s, seed.ID)
		uowMust(t, err)
		uowMust(t, s.Commit(ctx))
		hl.take()
		log.Reset()
		uowMust(t, s.Commit(ctx)) // nothing changed
		if calls := hl.take(); len(calls) != 0 || len(log.Matching("UPDATE")) != 0 {
			t.Fatalf("a commit with no change ran hooks %q and sent %v", calls, log.SQL())
		}
		a.Name = "Bea"
		uowMust(t, s.Commit(ctx))
		ups := log.Matching("UPDATE")
		if len(ups) != 1 || !strings.Contains(ups[0].SQL, "slug") || !strings.Contains(ups[0].SQL, "name") {
			t.Fatalf("UPDATEs sent: %v; want one, setting name and slug", log.SQL())
		}
		if got := countRows(t, eng, "SELECT COUNT(*) FROM hk_authors WHERE name = 'Bea' AND slug = 'bea'"); got != 1 {
			t.Fatalf("%d rows with the new name and slug, want 1", got)
		}
		if s.IsDirty(a) {
			t.Fatal("the object is dirty after its UPDATE: the hook's change was not snapshotted")
		}
	})
}

// AfterLoad runs once for each object made from a row, by Get, a query,
// Load, Raw and Refresh; a row whose object the session tracks already
// returns that object without the hook.
func TestAfterLoadRunsForObjectsMadeFromRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := hkOpen(t, tg)
		ctx, hl := hkContext()
		ann := &hkAuthor{Name: "Ann", Books: []*hkBook{{Title: "one"}}}
		bob := &hkAuthor{Name: "Bob"}
		seedObjects(t, eng, ann, bob)
		hl.take()
		s := eng.NewSession()
		defer s.Close()

		_, err := orm.Get[hkAuthor](ctx, s, ann.ID)
		uowMust(t, err)
		hkWant(t, "Get", hl.take(), "AfterLoad author Ann")
		_, err = orm.Get[hkAuthor](ctx, s, ann.ID)
		uowMust(t, err)
		hkWant(t, "Get of a tracked object", hl.take())

		all, err := orm.Query[hkAuthor](s).OrderBy("id").Load("Books").All(ctx)
		uowMust(t, err)
		if len(all) != 2 || len(all[0].Books) != 1 {
			t.Fatalf("query loaded %d authors, the first with %d books", len(all), len(all[0].Books))
		}
		hkWant(t, "query with Load", hl.take(), "AfterLoad author Bob", "AfterLoad book one")

		fresh := eng.NewSession()
		defer fresh.Close()
		_, err = orm.Raw[hkAuthor](fresh, "SELECT id, name, slug FROM hk_authors WHERE id = ?", bob.ID).One(ctx)
		uowMust(t, err)
		hkWant(t, "Raw", hl.take(), "AfterLoad author Bob")
		uowMust(t, s.Refresh(ctx, all[0]))
		hkWant(t, "Refresh", hl.take(), "AfterLoad author Ann")
		for _, err := range orm.Query[hkBook](fresh).Iter(ctx) {
			uowMust(t, err)
		}
		hkWant(t, "Iter", hl.take(), "AfterLoad book one")
	})
}

// A hook runs in the middle of a flush or a read, with the session busy:
// calling the session from it fails with ErrHookReentry (which is also an
// ErrConcurrentUse) rather than corrupting the flush, and the commit fails
// with it.
func TestHookCallingItsSessionFails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := hkOpen(t, tg)
		ctx, _ := hkContext()
		s := eng.NewSession()
		defer s.Close()
		a := &hkAuthor{Name: "reenter"}
		uowMust(t, s.Add(a))
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrHookReentry) || !errors.Is(err, orm.ErrConcurrentUse) {
			t.Fatalf("Commit = %v; want ErrHookReentry", err)
		}
		a.Name = "Ann"
		uowMust(t, s.Commit(ctx)) // the session is usable after
	})
}

// A BeforeDelete error fails the commit before any DELETE: the rows stay,
// the objects stay marked deleted, and the next commit deletes them once
// the cause is gone.
func TestBeforeDeleteErrorKeepsTheDeletePending(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := hkOpen(t, tg)
		ctx, hl := hkContext()
		a := &hkAuthor{Name: "Ann", Books: []*hkBook{{Title: "fail"}}}
		seedObjects(t, eng, a)
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Query[hkAuthor](s).Load("Books").One(ctx)
		uowMust(t, err)
		uowMust(t, s.Delete(got.Books[0], got))
		hl.take()
		log.Reset()
		var he *orm.HookError
		if err := s.Commit(ctx); !errors.As(err, &he) || he.Hook != "BeforeDelete" || he.Table != "hk_books" {
			t.Fatalf("Commit = %v; want the book's BeforeDelete error", err)
		}
		hkWant(t, "failed delete", hl.take(), "BeforeDelete book fail")
		if len(log.Matching("DELETE")) != 0 || countRows(t, eng, "SELECT COUNT(*) FROM hk_books") != 1 {
			t.Fatalf("statements %v; want no DELETE sent", log.SQL())
		}
		got.Books[0].Title = "ok"
		uowMust(t, s.Commit(ctx))
		hkWant(t, "second commit", hl.take(), "BeforeDelete book ok", "BeforeDelete author Ann")
		if countRows(t, eng, "SELECT COUNT(*) FROM hk_books")+countRows(t, eng, "SELECT COUNT(*) FROM hk_authors") != 0 {
			t.Fatal("rows left after the second commit")
		}
	})
}

// Inside a savepoint a hook's error rolls back to the savepoint only: the
// work flushed before it stays, and the hook's change is undone.
func TestHookErrorInsideSavepointRollsBackToIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := hkOpen(t, tg)
		ctx, _ := hkContext()
		s := eng.NewSession()
		defer s.Close()
		before := &hkAuthor{Name: "Ann"}
		uowMust(t, s.Add(before))
		bad := &hkAuthor{Name: "fail"}
		err := s.Savepoint(ctx, func() error { return s.Add(bad) })
		if !errors.Is(err, errBoom) {
			t.Fatalf("Savepoint = %v; want the hook's error", err)
		}
		if bad.Slug != "" || before.Slug != "ann" {
			t.Fatalf("slugs after the savepoint: %q (failed), %q (flushed before); want \"\" and \"ann\"", bad.Slug, before.Slug)
		}
		uowMust(t, s.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM hk_authors"); c != 1 {
			t.Fatalf("%d authors committed, want the one added before the savepoint", c)
		}
	})
}
