package orm_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Tests of how separately built features meet: soft delete, hooks and
// timestamps in a (pipelined, on PostgreSQL) commit that fails and is
// retried, bulk statements sent alone on soft-delete models, Upsert in
// read-only sessions, and the identity map's recycled buffers.

// A commit that soft-deletes a versioned row someone changed meanwhile
// fails with ErrStaleData and leaves every object as it was (no deletion
// time, no version bump, still tracked), and the database unchanged; the
// retry without the stale object writes exactly the rest.
func TestStaleSoftDeleteFailsTheCommitAndTheRetryWritesExactlyTheRest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := sdOpen(t, tg)
		ctx := context.Background()
		d1, d2 := &sdDoc{Body: "one"}, &sdDoc{Body: "two"}
		seedObjects(t, eng, d1, d2)
		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[sdDoc](ctx, s, d1.ID)
		uowMust(t, err)
		b, err := orm.Get[sdDoc](ctx, s, d2.ID)
		uowMust(t, err)
		other := eng.NewSession()
		o, err := orm.Get[sdDoc](ctx, other, d2.ID)
		uowMust(t, err)
		o.Body = "two'"
		uowMust(t, other.Commit(ctx))
		uowMust(t, other.Close())

		uowMust(t, s.Delete(a))
		uowMust(t, s.Delete(b))
		n := &sdNote{Body: "new"}
		uowMust(t, s.Add(&sdOwner{Name: "o", Notes: []*sdNote{n}}))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("Commit = %v; want ErrStaleData", err)
		}
		if a.Deleted.Valid || b.Deleted.Valid || a.Version != 1 || b.Version != 1 || n.ID != 0 {
			t.Fatalf("after the failure: a %+v, b %+v, note id %d; want both undeleted at version 1, the note pending", *a, *b, n.ID)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_docs WHERE deleted_at IS NOT NULL"); c != 0 {
			t.Fatalf("%d docs soft-deleted after the failed commit; want 0", c)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes"); c != 0 {
			t.Fatalf("%d notes after the failed commit; want 0", c)
		}
		// Give up on b; a's soft delete and the note go through.
		uowMust(t, s.Expunge(b))
		uowMust(t, s.Commit(ctx))
		if !a.Deleted.Valid || a.Version != 2 || n.ID == 0 {
			t.Fatalf("after the retry: a %+v, note id %d; want a soft-deleted at version 2 and the note inserted", *a, n.ID)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_docs WHERE deleted_at IS NOT NULL AND id = ? AND version = 2", a.ID); c != 1 {
			t.Fatalf("doc a not soft-deleted at version 2 in the database")
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_docs WHERE deleted_at IS NULL AND id = ? AND version = 2 AND body = ?", b.ID, "two'"); c != 1 {
			t.Fatalf("doc b is not the other session's version")
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes"); c != 1 {
			t.Fatalf("%d notes after the retry; want 1", c)
		}
	})
}

// A commit whose hooks and timestamps changed fields and that then fails
// on a unique key in the middle puts every such field back; fixing the
// cause and committing again runs the hooks and stamps once more and
// writes exactly the rows asked for.
func TestUniqueViolationRestoresHookAndTimestampFieldsAndTheRetryWritesThem(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, tsPost{}, hkAuthor{}, hkBook{}))
		p1, p2 := &tsPost{Title: "p1"}, &tsPost{Title: "p2"}
		seedObjects(t, eng, p1, p2)
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Get[tsPost](ctx, s, p1.ID)
		uowMust(t, err)
		before := *p
		before.Updated = new(*p.Updated)
		p.Title = "p1'"
		au := &hkAuthor{Name: "Zed", Books: []*hkBook{{Title: "b"}}}
		uowMust(t, s.Add(au))
		dup := &tsPost{Title: "p2"}
		uowMust(t, s.Add(dup))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit = %v; want ErrUniqueViolation", err)
		}
		if !p.Updated.Equal(*before.Updated) || p.Touched != before.Touched || p.Title != "p1'" {
			t.Fatalf("post after the failure: %+v; want its stamps as before (%v, %v)", *p, *before.Updated, before.Touched)
		}
		if au.ID != 0 || au.Slug != "" || au.Books[0].ID != 0 || au.Books[0].AuthorID != 0 {
			t.Fatalf("author after the failure: %+v book %+v; want as added", *au, *au.Books[0])
		}
		if !dup.Created.IsZero() || dup.Updated != nil || dup.ID != 0 {
			t.Fatalf("duplicate post after the failure: %+v; want as added", *dup)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM hk_authors"); c != 0 {
			t.Fatalf("%d authors after the failed commit", c)
		}
		dup.Title = "p3"
		uowMust(t, s.Commit(ctx))
		if au.Slug != "zed" || au.ID == 0 || au.Books[0].AuthorID != au.ID || dup.ID == 0 || dup.Created.IsZero() {
			t.Fatalf("after the retry: author %+v, book %+v, post %+v", *au, *au.Books[0], *dup)
		}
		if !p.Updated.After(*before.Updated) && !p.Updated.Equal(*before.Updated) {
			t.Fatalf("post's updated stamp went back: %v before %v", *p.Updated, *before.Updated)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM hk_authors WHERE slug = ?", "zed"); c != 1 {
			t.Fatalf("%d authors with slug zed", c)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM ts_posts"); c != 3 {
			t.Fatalf("%d posts; want 3", c)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM ts_posts WHERE title = ?", "p1'"); c != 1 {
			t.Fatalf("p1 not renamed")
		}
	})
}

// A bulk statement sent alone (a plain session's first work) skips
// soft-deleted rows, as in a transaction: DeleteAll does not stamp them
// again and UpdateAll does not change them.
func TestBulkStatementAloneSkipsSoftDeletedRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := sdOpen(t, tg)
		ctx := context.Background()
		owner, _, gone := sdSeed(t, eng)
		var was string
		q := eng.Dialect().Rebind("SELECT deleted_at FROM sd_notes WHERE id = ?")
		var at any
		uowMust(t, eng.DB().QueryRowContext(ctx, q, gone.ID).Scan(&at))
		was = fmt.Sprint(at)

		s := eng.NewSession()
		defer s.Close()
		log.Reset()
		n, err := orm.Query[sdNote](s).Where("owner_id = ?", owner.ID).UpdateAll(ctx, orm.Set{"body": "x"})
		uowMust(t, err)
		if n != 1 {
			t.Fatalf("UpdateAll alone matched %d rows; want 1 (the live one)", n)
		}
		if got := log.Matching("BEGIN"); len(got) != 0 {
			t.Fatalf("UpdateAll was not sent alone: %v", log.SQL())
		}
		s2 := eng.NewSession()
		defer s2.Close()
		n, err = orm.Query[sdNote](s2).Where("owner_id = ?", owner.ID).DeleteAll(ctx)
		uowMust(t, err)
		if n != 1 {
			t.Fatalf("DeleteAll alone matched %d rows; want 1 (the live one)", n)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes WHERE body = ?", "gone"); c != 1 {
			t.Fatalf("the soft-deleted note was changed by UpdateAll")
		}
		uowMust(t, eng.DB().QueryRowContext(ctx, q, gone.ID).Scan(&at))
		if fmt.Sprint(at) != was {
			t.Fatalf("the soft-deleted note's time changed from %s to %v", was, at)
		}
	})
}

// Upsert in a read-only session is refused with ErrReadOnly before any
// SQL, and leaves the objects untouched.
func TestUpsertInAReadOnlySessionIsRefusedBeforeSQL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := upOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession(orm.WithReadOnly())
		defer s.Close()
		m := &upMember{Email: "ann@x", Name: "Ann"}
		err := orm.Upsert(ctx, s, []*upMember{m}, orm.OnConflict("email").DoUpdate("name"))
		if !errors.Is(err, orm.ErrReadOnly) {
			t.Fatalf("Upsert = %v; want ErrReadOnly", err)
		}
		if len(log.SQL()) != 0 || m.ID != 0 || m.Version != 0 {
			t.Fatalf("Upsert sent %v and left %+v; want nothing", log.SQL(), *m)
		}
	})
}

// A session's identity map, emptied by Rollback and Close, gives its
// buffers to the next maps: sessions that load, roll back, load again and
// close concurrently each keep exactly their own objects.
func TestRecycledIdentityBuffersAreNotSharedBetweenSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		var seed []any
		for i := range 60 {
			seed = append(seed, newAccount(fmt.Sprintf("u%02d", i), int64(i)))
		}
		seedObjects(t, eng, seed...)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 5 {
					s := eng.NewSession()
					first, err := orm.Query[Account](s).All(ctx)
					if err != nil {
						errs <- err
						s.Close()
						return
					}
					_ = s.Rollback(ctx)
					again, err := orm.Query[Account](s).All(ctx)
					if err != nil {
						errs <- err
						s.Close()
						return
					}
					for i, a := range again {
						if a == first[i] {
							errs <- fmt.Errorf("goroutine %d round %d: a rolled-back object came back", g, round)
							break
						}
						got, err := orm.Get[Account](ctx, s, a.ID)
						if err != nil || got != a {
							errs <- fmt.Errorf("goroutine %d round %d: Get(%d) = %p, %v; want %p", g, round, a.ID, got, err, a)
							break
						}
						a.Balance += 1000
					}
					if d := len(s.Pending()); d != 0 {
						errs <- fmt.Errorf("pending %d", d)
					}
					for _, a := range first {
						if s.IsDirty(a) {
							errs <- fmt.Errorf("a detached object is dirty")
							break
						}
					}
					if err := s.Close(); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance >= 1000"); c != 0 {
			t.Fatalf("%d accounts changed by sessions that never committed", c)
		}
	})
}

// Upsert of a row whose tracked object this session deleted and flushed
// (the check before any SQL lets it through, as an insert of that key
// after the DELETE is allowed) writes the row anew and tracks the new
// object; the deleted one still leaves at commit. A failed commit then
// restores both: the old object deleted-not-flushed, the new one as it
// was before Upsert.
func TestUpsertOfAKeyDeletedAndFlushedInTheSessionWritesTheRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upCountry{Code: "fr", Name: "France", Pop: 1}, &upCountry{Code: "de", Name: "Germany", Pop: 1})

		t.Run("commit", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			old, err := orm.Get[upCountry](ctx, s, "fr")
			uowMust(t, err)
			uowMust(t, s.Delete(old))
			uowMust(t, s.Flush(ctx))
			fr := &upCountry{Code: "fr", Name: "France 2", Pop: 2}
			uowMust(t, orm.Upsert(ctx, s, []*upCountry{fr}, orm.OnConflict().DoUpdate()))
			uowMust(t, s.Commit(ctx))
			got, err := orm.Get[upCountry](ctx, s, "fr")
			if err != nil || got != fr {
				t.Fatalf("Get after commit = %p, %v; want the upserted object %p", got, err, fr)
			}
			if c := countRows(t, eng, "SELECT COUNT(*) FROM up_countries WHERE code = ? AND name = ? AND pop = 2", "fr", "France 2"); c != 1 {
				t.Fatalf("the upserted row is not in the database")
			}
		})

		t.Run("failed commit", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			old, err := orm.Get[upCountry](ctx, s, "fr")
			uowMust(t, err)
			uowMust(t, s.Delete(old))
			uowMust(t, s.Flush(ctx))
			fr := &upCountry{Code: "fr", Name: "France 3", Pop: 3}
			uowMust(t, orm.Upsert(ctx, s, []*upCountry{fr}, orm.OnConflict().DoUpdate()))
			// A new object with the key of an existing row fails the commit.
			uowMust(t, s.Add(&upCountry{Code: "de", Name: "x"}))
			if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
				t.Fatalf("Commit = %v; want ErrUniqueViolation", err)
			}
			if *fr != (upCountry{Code: "fr", Name: "France 3", Pop: 3}) || s.IsDirty(fr) {
				t.Fatalf("upserted object after the failed commit: %+v; want as before Upsert, untracked", *fr)
			}
			if c := countRows(t, eng, "SELECT COUNT(*) FROM up_countries WHERE code = ? AND name = ?", "fr", "France 2"); c != 1 {
				t.Fatalf("the row was changed by a failed commit")
			}
			// The delete is pending again: the retry without the
			// duplicate deletes the row, as the caller asked before Upsert.
			p := s.Pending()
			uowMust(t, s.Expunge(p...))
			uowMust(t, s.Commit(ctx))
			if c := countRows(t, eng, "SELECT COUNT(*) FROM up_countries WHERE code = ?", "fr"); c != 0 {
				t.Fatalf("the deleted row is still there after the retry")
			}
		})
	})
}

// One commit of new rows with m2m links (to an existing and a new tag),
// a self-referencing m2m pair, a delete-orphan and a new child, failed by
// a unique key in the middle, leaves the database and every object as
// before; the retry with the cause fixed writes exactly the rows asked
// for. On PostgreSQL this is the pipelined commit.
func TestFailedCommitOfLinksOrphansAndSelfReferencesRestoresAndTheRetryWritesExactly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, caParent{}, caChild{}, RelPerson{}))
		seedObjects(t, eng, &RelTag{Name: "go"})
		caSeed(t, eng, "p", "c1", "c2")
		caSeed(t, eng, "taken")
		ann := &RelPerson{Name: "ann"}
		seedObjects(t, eng, ann)

		s := eng.NewSession()
		defer s.Close()
		goTag, err := orm.Get[RelTag](ctx, s, "go")
		uowMust(t, err)
		fresh := &RelTag{Name: "db"}
		post := &RelPost{Title: "t", Tags: []*RelTag{goTag, fresh}}
		uowMust(t, s.Add(post, fresh))
		p, err := orm.Query[caParent](s).Where("name = ?", "p").Load("Children").One(ctx)
		uowMust(t, err)
		c1 := p.Children[0]
		c3 := &caChild{Name: "c3"}
		p.Children = append(p.Children[1:], c3)
		a, err := orm.Query[RelPerson](s).Where("name = ?", "ann").Load("Friends").One(ctx)
		uowMust(t, err)
		bob := &RelPerson{Name: "bob"}
		a.Friends = append(a.Friends, bob)
		bob.Friends = []*RelPerson{a}
		uowMust(t, s.Add(bob))
		bad := &caParent{Name: "taken"}
		uowMust(t, s.Add(bad))

		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit = %v; want ErrUniqueViolation", err)
		}
		if post.ID != 0 || bob.ID != 0 || c3.ID != 0 || c3.ParentID != 0 || s.IsDirty(c1) || bad.ID != 0 {
			t.Fatalf("after the failure: post %d, bob %d, c3 %+v, c1 dirty %v, bad %d; want all as before",
				post.ID, bob.ID, *c3, s.IsDirty(c1), bad.ID)
		}
		for q, want := range map[string]int64{
			"SELECT COUNT(*) FROM posts":       0,
			"SELECT COUNT(*) FROM post_tags":   0,
			"SELECT COUNT(*) FROM tags":        1,
			"SELECT COUNT(*) FROM people":      1,
			"SELECT COUNT(*) FROM friendships": 0,
			"SELECT COUNT(*) FROM ca_children": 2,
			"SELECT COUNT(*) FROM ca_parents":  2,
		} {
			if n := countRows(t, eng, q); n != want {
				t.Fatalf("after the failed commit %s = %d; want %d", q, n, want)
			}
		}
		bad.Name = "free"
		uowMust(t, s.Commit(ctx))
		if post.ID == 0 || bob.ID == 0 || c3.ParentID != p.ID || bad.ID == 0 {
			t.Fatalf("after the retry: post %d, bob %d, c3 %+v, bad %d", post.ID, bob.ID, *c3, bad.ID)
		}
		for q, want := range map[string]int64{
			"SELECT COUNT(*) FROM posts":                                  1,
			"SELECT COUNT(*) FROM post_tags":                              2,
			"SELECT COUNT(*) FROM tags":                                   2,
			"SELECT COUNT(*) FROM people":                                 2,
			"SELECT COUNT(*) FROM friendships":                            2,
			"SELECT COUNT(*) FROM ca_children WHERE name IN ('c2', 'c3')": 2,
			"SELECT COUNT(*) FROM ca_children":                            2,
			"SELECT COUNT(*) FROM ca_parents WHERE name IN ('free', 'p')": 2,
		} {
			if n := countRows(t, eng, q); n != want {
				t.Fatalf("after the retry %s = %d; want %d", q, n, want)
			}
		}
	})
}

// Merge of an object decoded without its created and updated times (a
// form, a JSON body: the zero time, nil, an invalid NullTime) keeps the
// row's creation time, and the UPDATE it leads to stamps the updated
// columns as every UPDATE does: it never writes a zero time over them.
func TestMergeOfAnObjectWithoutTimesKeepsTheCreatedTimeAndStampsUpdated(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := tsOpen(t, tg)
		ctx := context.Background()
		p := &tsPost{Title: "a"}
		seedObjects(t, eng, p)
		created, updated := p.Created, *p.Updated

		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Merge(ctx, s, &tsPost{ID: p.ID, Title: "b"})
		uowMust(t, err)
		if !got.Created.Equal(created) || got.Updated == nil || !got.Updated.Equal(updated) || !got.Touched.Valid {
			t.Fatalf("merged object %+v; want the row's times kept (created %v, updated %v)", *got, created, updated)
		}
		uowMust(t, s.Commit(ctx))
		s2 := eng.NewSession()
		defer s2.Close()
		row, err := orm.Get[tsPost](ctx, s2, p.ID)
		uowMust(t, err)
		if row.Title != "b" || !row.Created.Equal(created) || row.Updated == nil || row.Updated.Before(updated) || !row.Touched.Valid {
			t.Fatalf("row after Merge and Commit: %+v; want title b, created %v kept, updated stamped", *row, created)
		}
	})
}

// Expunge (which compacts a table's entry list), Merge of copies of the
// expunged objects, Refresh, Rollback (which recycles the map's buffers)
// and a reload, in sessions running concurrently, keep one object per row
// in each session and never bring a detached object back.
func TestExpungeMergeRefreshAndRollbackKeepOneObjectPerRowAcrossRecycledBuffers(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		var seed []any
		for i := range 80 {
			seed = append(seed, newAccount(fmt.Sprintf("u%02d", i), int64(i)))
		}
		seedObjects(t, eng, seed...)
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 8 {
					s := eng.NewSession()
					all, err := orm.Query[Account](s).OrderBy("id").All(ctx)
					if err != nil {
						errs <- err
						s.Close()
						return
					}
					// Expunge 60: the order list compacts.
					for _, a := range all[:60] {
						if err := s.Expunge(a); err != nil {
							errs <- err
						}
					}
					// Merge copies of the expunged back, Refresh some.
					var merged []*Account
					for _, a := range all[:60] {
						cp := *a
						cp.Balance = int64(g*1000 + round)
						m, err := orm.Merge(ctx, s, &cp)
						if err != nil {
							errs <- err
							continue
						}
						if m == a || m == &cp {
							errs <- fmt.Errorf("merge returned %p (a %p cp %p)", m, a, &cp)
						}
						merged = append(merged, m)
					}
					for _, m := range merged[:10] {
						if err := s.Refresh(ctx, m); err != nil {
							errs <- err
						}
					}
					for i, m := range merged {
						got, err := orm.Get[Account](ctx, s, m.ID)
						if err != nil || got != m {
							errs <- fmt.Errorf("g%d r%d: Get(%d) = %p %v; want %p", g, round, m.ID, got, err, m)
							break
						}
						if want := i >= 10; s.IsDirty(m) != want {
							errs <- fmt.Errorf("g%d r%d: merged %d dirty %v; want %v", g, round, i, s.IsDirty(m), want)
							break
						}
					}
					for _, a := range all[60:] {
						got, err := orm.Get[Account](ctx, s, a.ID)
						if err != nil || got != a {
							errs <- fmt.Errorf("g%d r%d: Get(kept %d) = %p %v; want %p", g, round, a.ID, got, err, a)
							break
						}
					}
					if err := s.Rollback(ctx); err != nil {
						errs <- err
					}
					again, err := orm.Query[Account](s).OrderBy("id").All(ctx)
					if err != nil || len(again) != 80 {
						errs <- fmt.Errorf("reload: %d %v", len(again), err)
					}
					for i, a := range again {
						if a == all[i] || (i < 60 && a == merged[i]) {
							errs <- fmt.Errorf("a detached object came back after Rollback")
							break
						}
					}
					if err := s.Close(); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		n := 0
		for err := range errs {
			if n++; n < 10 {
				t.Error(err)
			}
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM accounts WHERE balance >= 80"); c != 0 {
			t.Fatalf("%d accounts changed by sessions that never committed", c)
		}
	})
}

// A new object linked to new objects of a model without relations of its
// own (labels a book lists) gets one join row per pair, with both
// generated keys, in one attempt: on PostgreSQL the labels' INSERT is
// queued in the pipeline, and the join rows were built before its keys
// came back (label_id 0), which only a foreign key on the join table
// caught — without one, a wrong join row was committed and the real ones
// lost.
func TestJoinRowsOfNewObjectsGetTheKeysOfBothSidesInOneAttempt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		ctx := context.Background()
		// A join table as a migration tool might make it: no foreign keys.
		for _, q := range []string{
			"DROP TABLE book_labels",
			"CREATE TABLE book_labels (book_id BIGINT NOT NULL, label_id BIGINT NOT NULL, PRIMARY KEY (book_id, label_id))",
		} {
			if _, err := eng.DB().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		au := &RelAuthor{Name: "a"}
		seedObjects(t, eng, au)
		s := eng.NewSession()
		defer s.Close()
		l1, l2 := &RelLabel{Name: "l1"}, &RelLabel{Name: "l2"}
		b := &RelBook{AuthorID: au.ID, Title: "b", Labels: []*RelLabel{l1, l2}}
		uowMust(t, s.Add(b, l1, l2))
		*log = nil
		uowMust(t, s.Commit(ctx))
		if n := countPrefix(*log, "INSERT INTO "+eng.Dialect().Quote("labels")); n != 1 {
			t.Errorf("labels inserted %d times; want once: %q", n, *log)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM book_labels"); n != 2 {
			t.Fatalf("%d join rows; want 2", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM book_labels WHERE book_id = ? AND label_id IN (?, ?)", b.ID, l1.ID, l2.ID); n != 2 {
			t.Fatalf("join rows do not pair book %d with labels %d and %d", b.ID, l1.ID, l2.ID)
		}
	})
}

// Delete of a versioned object whose row was read soft-deleted already
// (WithDeleted) is no stale-data error: nobody changed the row. It keeps
// the time of the first deletion, in the row and in the object, and still
// checks and bumps the version, so that a concurrent change is caught.
func TestDeleteOfAVersionedRowReadSoftDeletedKeepsItsTimeWithoutStaleData(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := sdOpen(t, tg)
		ctx := context.Background()
		d := &sdDoc{Body: "x"}
		seedObjects(t, eng, d)
		s := eng.NewSession()
		defer s.Close()
		x, err := orm.Get[sdDoc](ctx, s, d.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(x))
		uowMust(t, s.Commit(ctx))
		first := x.Deleted.Time

		s2 := eng.NewSession()
		defer s2.Close()
		y, err := orm.Query[sdDoc](s2).WithDeleted().Where("id = ?", d.ID).One(ctx)
		uowMust(t, err)
		uowMust(t, s2.Delete(y))
		uowMust(t, s2.Commit(ctx))
		if !y.Deleted.Valid || !y.Deleted.Time.Equal(first) || y.Version != 3 {
			t.Fatalf("object after the second delete: %+v; want the first deletion's time %v, version 3", *y, first)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM sd_docs WHERE id = ? AND version = 3", d.ID); c != 1 {
			t.Fatal("the row's version was not bumped")
		}
		z, err := orm.Query[sdDoc](s2).WithDeleted().Where("id = ?", d.ID).One(ctx)
		uowMust(t, err)
		if !z.Deleted.Time.Equal(first) {
			t.Fatalf("the row's deletion time is %v; want the first one, %v", z.Deleted.Time, first)
		}

		// A concurrent change to the deleted row is still stale data.
		s3 := eng.NewSession()
		defer s3.Close()
		w, err := orm.Query[sdDoc](s3).WithDeleted().Where("id = ?", d.ID).One(ctx)
		uowMust(t, err)
		o := eng.NewSession()
		ow, err := orm.Query[sdDoc](o).WithDeleted().Where("id = ?", d.ID).One(ctx)
		uowMust(t, err)
		ow.Body = "changed"
		uowMust(t, o.Commit(ctx))
		uowMust(t, o.Close())
		uowMust(t, s3.Delete(w))
		if err := s3.Commit(ctx); !errors.Is(err, orm.ErrStaleData) {
			t.Fatalf("Commit after a concurrent change = %v; want ErrStaleData", err)
		}
	})
}

// An Upsert inside a savepoint that then fails is undone with it: the
// rows as before, the objects as before Upsert and untracked, and the
// work outside the savepoint commits.
func TestUpsertInsideAFailedSavepointIsUndoneWithIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := upOpen(t, tg)
		ctx := context.Background()
		seedObjects(t, eng, &upMember{Email: "ann@x", Name: "Ann"})
		s := eng.NewSession()
		defer s.Close()
		kept := &upMember{Email: "kept@x", Name: "Kept"}
		uowMust(t, s.Add(kept))
		a := &upMember{Email: "ann@x", Name: "Ann B"}
		n := &upMember{Email: "new@x", Name: "New"}
		err := s.Savepoint(ctx, func() error {
			if err := orm.Upsert(ctx, s, []*upMember{a, n}, orm.OnConflict("email").DoUpdate("name")); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Savepoint = %v; want errBoom", err)
		}
		if a.ID != 0 || a.Version != 0 || n.ID != 0 || n.Version != 0 || s.IsDirty(a) {
			t.Fatalf("after the savepoint: %+v %+v; want both as before Upsert", *a, *n)
		}
		uowMust(t, s.Commit(ctx))
		if _, name, _, _ := upRow(t, eng, "ann@x"); name != "Ann" {
			t.Fatalf("ann's row is %q; want Ann", name)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM up_members"); c != 2 || kept.ID == 0 {
			t.Fatalf("%d members (kept id %d); want ann and kept", c, kept.ID)
		}
		// The objects can be upserted again in a new session.
		s2 := eng.NewSession()
		defer s2.Close()
		uowMust(t, orm.Upsert(ctx, s2, []*upMember{a, n}, orm.OnConflict("email").DoUpdate("name")))
		uowMust(t, s2.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM up_members"); c != 3 {
			t.Fatalf("%d members after the second Upsert; want 3", c)
		}
	})
}

// A BeforeDelete hook that fails after the commit has sent inserts (on
// PostgreSQL, a pipelined round trip that began the transaction) fails
// the commit with a *HookError and rolls those inserts back; the session
// is as before, and the next commit writes everything once.
func TestHookErrorAfterInsertsWereSentRollsThemBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := hkOpen(t, tg)
		ctx, _ := hkContext()
		old := &hkAuthor{Name: "Old", Books: []*hkBook{{Title: "fail"}, {Title: "ok"}}}
		seedObjects(t, eng, old)
		s := eng.NewSession()
		defer s.Close()
		doomed, err := orm.Get[hkBook](ctx, s, old.Books[0].ID)
		uowMust(t, err)
		au := &hkAuthor{Name: "New", Books: []*hkBook{{Title: "n1"}, {Title: "n2"}}}
		uowMust(t, s.Add(au))
		uowMust(t, s.Delete(doomed))
		err = s.Commit(ctx)
		var he *orm.HookError
		if !errors.As(err, &he) || !errors.Is(err, errBoom) {
			t.Fatalf("Commit = %v; want a *HookError wrapping errBoom", err)
		}
		if au.ID != 0 || au.Slug != "" || au.Books[0].ID != 0 || au.Books[0].AuthorID != 0 || !s.IsDirty(doomed) {
			t.Fatalf("after the failure: author %+v, book %+v, doomed dirty %v; want as before", *au, *au.Books[0], s.IsDirty(doomed))
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM hk_authors"); c != 1 {
			t.Fatalf("%d authors after the failed commit; want 1", c)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM hk_books"); c != 2 {
			t.Fatalf("%d books after the failed commit; want 2", c)
		}
		uowMust(t, s.Expunge(doomed)) // give up on the delete its hook refuses
		uowMust(t, s.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM hk_books"); c != 4 {
			t.Fatalf("%d books after the retry; want 4", c)
		}
		if c := countRows(t, eng, "SELECT COUNT(*) FROM hk_authors WHERE slug = ?", "new"); c != 1 {
			t.Fatalf("%d authors with slug new; want 1", c)
		}
	})
}

// rvNote's AfterLoad changes its body, then fails for the body "bad".
type rvNote struct {
	ID   int64  `db:"id,pk,auto"`
	Body string `db:"body,size=32"`
}

func (rvNote) TableName() string { return "rv_notes" }

func (n *rvNote) AfterLoad(context.Context, *orm.Session) error {
	bad := n.Body == "bad"
	n.Body = "decoded " + n.Body
	if bad {
		return errBoom
	}
	return nil
}

// An AfterLoad hook that changes an object and then fails leaves no
// change behind: the read fails, the caller never gets the object, and
// the next commit must not write what the hook half did.
func TestFailedAfterLoadLeavesNoChangeForTheNextCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, rvNote{}))
		bad := &rvNote{Body: "bad"}
		seedObjects(t, eng, bad)
		s := eng.NewSession()
		defer s.Close()
		if _, err := orm.Query[rvNote](s).All(ctx); !errors.Is(err, errBoom) {
			t.Fatalf("Query = %v; want errBoom", err)
		}
		// Tracked already, Get returns the object without its hook.
		got, err := orm.Get[rvNote](ctx, s, bad.ID)
		uowMust(t, err)
		if got.Body != "bad" || s.IsDirty(got) {
			t.Fatalf("the object whose AfterLoad failed: %+v, dirty %v; want the row's values", *got, s.IsDirty(got))
		}
		uowMust(t, s.Commit(ctx))
		if c := countRows(t, eng, "SELECT COUNT(*) FROM rv_notes WHERE body = ?", "bad"); c != 1 {
			t.Fatal("the commit wrote what a failed AfterLoad half did")
		}
	})
}
