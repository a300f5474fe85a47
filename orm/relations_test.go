package orm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/mapper"
	"github.com/tallyorm/tally/orm"
)

// The relation models of these tests: a library (authors, their profile
// and books, the books' reviews) and a blog (posts tagged through a join
// table). Every relation kind appears: has-many (Books, Reviews),
// belongs-to (Book.Author, Review.Book), has-one (Profile) and
// many-to-many (Post.Tags, Book.Labels).

// RelAuthor has books (has-many) and a profile (has-one).
type RelAuthor struct {
	ID      int64       `db:"id,pk,auto"`
	Name    string      `db:"name,size=64"`
	Books   []*RelBook  `rel:"author_id,cascade"`
	Profile *RelProfile `rel:"author_id,hasone,cascade"`
}

// TableName names the table plainly, for readable SQL in failures.
func (RelAuthor) TableName() string { return "authors" }

// RelProfile is an author's has-one: its author_id is the foreign key.
type RelProfile struct {
	ID       int64  `db:"id,pk,auto"`
	AuthorID int64  `db:"author_id,unique"`
	Bio      string `db:"bio,size=200"`
}

// TableName names the table plainly.
func (RelProfile) TableName() string { return "profiles" }

// RelBook belongs to an author and has reviews and labels (m2m).
type RelBook struct {
	ID       int64        `db:"id,pk,auto"`
	AuthorID int64        `db:"author_id,index"`
	Author   *RelAuthor   `rel:"author_id"`
	Title    string       `db:"title,size=64"`
	Reviews  []*RelReview `rel:"book_id,cascade"`
	Labels   []*RelLabel  `rel:"m2m=book_labels(book_id,label_id)"`
}

// TableName names the table plainly.
func (RelBook) TableName() string { return "books" }

// RelReview belongs to a book.
type RelReview struct {
	ID     int64    `db:"id,pk,auto"`
	BookID int64    `db:"book_id,index"`
	Book   *RelBook `rel:"book_id"`
	Stars  int64    `db:"stars"`
}

// TableName names the table plainly.
func (RelReview) TableName() string { return "reviews" }

// RelLabel is the other side of RelBook.Labels.
type RelLabel struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,size=64"`
}

// TableName names the table plainly.
func (RelLabel) TableName() string { return "labels" }

// RelPost is tagged through the join table post_tags.
type RelPost struct {
	ID    int64     `db:"id,pk,auto"`
	Title string    `db:"title,size=64"`
	Tags  []*RelTag `rel:"m2m=post_tags(post_id,tag_id)"`
}

// TableName names the table plainly.
func (RelPost) TableName() string { return "posts" }

// RelTag has a natural (client-set) string key, so the join table pairs
// an integer key with a string one. It declares the relation from its side
// too, through the same join table.
type RelTag struct {
	Name  string     `db:"name,pk,size=32"`
	Posts []*RelPost `rel:"m2m=post_tags(tag_id,post_id)"`
}

// TableName names the table plainly.
func (RelTag) TableName() string { return "tags" }

var relModels = []any{RelAuthor{}, RelProfile{}, RelBook{}, RelReview{}, RelLabel{}, RelPost{}, RelTag{}}

// relEngine opens tg with the relation models' tables and a statement log
// (BEGIN, COMMIT and ROLLBACK left out); the log starts empty.
func relEngine(t *testing.T, tg dbtest.Target) (*orm.Engine, *[]string) {
	t.Helper()
	var log []string
	eng := mustOpen(t, tg.Driver, tg.DSN, orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
		switch strings.ToUpper(ev.SQL) {
		case "BEGIN", "COMMIT", "ROLLBACK":
			return
		}
		log = append(log, ev.SQL)
	}))
	if err := eng.CreateTables(context.Background(), relModels...); err != nil {
		t.Fatal(err)
	}
	log = nil
	return eng, &log
}

// joinRows returns the committed post_tags rows as "post_id:tag" strings,
// sorted.
func joinRows(t *testing.T, eng *orm.Engine) []string {
	t.Helper()
	rows, err := eng.DB().QueryContext(context.Background(), "SELECT post_id, tag_id FROM post_tags")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var tag string
		if err := rows.Scan(&id, &tag); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s", id, tag))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// pairs renders post→tag pairs as joinRows does.
func pairs(ps ...any) []string {
	var out []string
	for i := 0; i < len(ps); i += 2 {
		out = append(out, fmt.Sprintf("%d:%s", ps[i], ps[i+1]))
	}
	slices.Sort(out)
	return out
}

func tagNames(p *RelPost) []string {
	var out []string
	for _, t := range p.Tags {
		out = append(out, t.Name)
	}
	return out
}

// countPrefix counts the statements of log that start with prefix.
func countPrefix(log []string, prefix string) int {
	n := 0
	for _, q := range log {
		if strings.HasPrefix(q, prefix) {
			n++
		}
	}
	return n
}

// seedPosts commits three posts: go (tags db, go), sql (tag db), empty.
// The tags have client-set keys, so they are added explicitly: Add takes
// an untracked object with a key that it reaches through a relation for an
// existing row.
func seedPosts(t *testing.T, eng *orm.Engine) (goPost, sqlPost, empty *RelPost) {
	t.Helper()
	db, golang := &RelTag{Name: "db"}, &RelTag{Name: "go"}
	goPost = &RelPost{Title: "go", Tags: []*RelTag{db, golang}}
	sqlPost = &RelPost{Title: "sql", Tags: []*RelTag{db}}
	empty = &RelPost{Title: "empty"}
	seedObjects(t, eng, goPost, sqlPost, empty, db, golang)
	return goPost, sqlPost, empty
}

// Adding new posts with new tags inserts the posts, the tags and then the
// join rows, each in one batched statement, in that order.
func TestManyToManyAddInsertsJoinRowsAfterBothSides(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		goPost, sqlPost, _ := seedPosts(t, eng)
		want := pairs(goPost.ID, "db", goPost.ID, "go", sqlPost.ID, "db")
		if got := joinRows(t, eng); !slices.Equal(got, want) {
			t.Fatalf("join rows = %v, want %v", got, want)
		}
		var kinds []string
		for _, q := range *log {
			switch {
			case strings.Contains(q, "post_tags"):
				kinds = append(kinds, "join")
			case strings.Contains(q, "tags"):
				kinds = append(kinds, "tags")
			case strings.Contains(q, "posts"):
				kinds = append(kinds, "posts")
			}
		}
		// MySQL without RETURNING would insert posts row by row; MariaDB,
		// PostgreSQL and SQLite batch them.
		kinds = slices.Compact(kinds)
		if want := []string{"posts", "tags", "join"}; !slices.Equal(kinds, want) {
			t.Errorf("statement order %v (%q), want %v", kinds, *log, want)
		}
		if n := countPrefix(*log, "INSERT INTO "+eng.Dialect().Quote("post_tags")); n != 1 {
			t.Errorf("%d join-row INSERTs, want 1 multi-row: %q", n, *log)
		}
	})
}

// Load of an m2m relation is one query for all the posts; a tag shared by
// posts is one tracked object; a post without tags gets an empty slice.
func TestManyToManyLoadIsOneQuery(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		seedPosts(t, eng)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		*log = nil
		posts, err := orm.Query[RelPost](s).OrderBy("id").Load("Tags").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(*log) != 2 {
			t.Fatalf("Load(Tags) sent %d statements, want 2: %q", len(*log), *log)
		}
		if len(posts) != 3 {
			t.Fatalf("got %d posts, want 3", len(posts))
		}
		for i, want := range [][]string{{"db", "go"}, {"db"}, nil} {
			if got := tagNames(posts[i]); !slices.Equal(got, want) {
				t.Errorf("post %q tags = %v, want %v", posts[i].Title, got, want)
			}
		}
		if posts[0].Tags[0] != posts[1].Tags[0] {
			t.Errorf("the db tag of two posts is two objects, want the one tracked object")
		}
		if posts[2].Tags == nil {
			t.Errorf("a post without tags has a nil slice, want an empty one (loaded, none)")
		}
		db, err := orm.Get[RelTag](ctx, s, "db")
		if err != nil || db != posts[0].Tags[0] {
			t.Errorf("Get(db) = %p, %v; want the loaded tag %p", db, err, posts[0].Tags[0])
		}
		// Loading changes nothing: the next commit writes nothing.
		*log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if len(*log) != 0 {
			t.Errorf("commit after a Load sent %q, want nothing", *log)
		}
	})
}

// Removing and adding elements of a loaded m2m slice deletes and inserts
// exactly those join rows, batched: one DELETE and one INSERT for changes
// to several posts.
func TestManyToManyAddRemoveBatchesJoinRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		goPost, sqlPost, empty := seedPosts(t, eng)
		seedObjects(t, eng, &RelTag{Name: "web"})
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		posts, err := orm.Query[RelPost](s).OrderBy("id").Load("Tags").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		web, err := orm.Get[RelTag](ctx, s, "web")
		if err != nil {
			t.Fatal(err)
		}
		p0, p1, p2 := posts[0], posts[1], posts[2]
		p0.Tags = p0.Tags[1:]    // go post: drop db
		p1.Tags = []*RelTag{web} // sql post: db → web
		fresh := &RelTag{Name: "new"}
		p2.Tags = append(p2.Tags, web, fresh) // empty post: + web, + a new tag
		if err := s.Add(fresh); err != nil {
			t.Fatal(err)
		}
		*log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		q := eng.Dialect().Quote("post_tags")
		if d, i := countPrefix(*log, "DELETE FROM "+q), countPrefix(*log, "INSERT INTO "+q); d != 1 || i != 1 {
			t.Errorf("%d join DELETEs and %d join INSERTs, want 1 and 1: %q", d, i, *log)
		}
		if n := countPrefix(*log, "INSERT INTO "+eng.Dialect().Quote("tags")); n != 1 {
			t.Errorf("the new tag was inserted by %d statements, want 1: %q", n, *log)
		}
		want := pairs(goPost.ID, "go", sqlPost.ID, "web", empty.ID, "web", empty.ID, "new")
		if got := joinRows(t, eng); !slices.Equal(got, want) {
			t.Fatalf("join rows = %v, want %v", got, want)
		}
		// The flushed state is the new baseline: another commit writes nothing.
		*log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if len(*log) != 0 {
			t.Errorf("a second commit sent %q, want nothing", *log)
		}
		// And a removal after the flush is seen against it.
		p2.Tags = slices.DeleteFunc(p2.Tags, func(t *RelTag) bool { return t.Name == "web" })
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		want = pairs(goPost.ID, "go", sqlPost.ID, "web", empty.ID, "new")
		if got := joinRows(t, eng); !slices.Equal(got, want) {
			t.Fatalf("after removing web from %q: join rows = %v, want %v", p2.Title, got, want)
		}
	})
}

// Deleting a post deletes its join rows before the post (the tags stay);
// deleting a tag deletes the join rows that name it.
func TestManyToManyDeleteEitherSideDeletesJoinRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		goPost, sqlPost, _ := seedPosts(t, eng)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Get[RelPost](ctx, s, goPost.ID) // Tags not loaded
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(p); err != nil {
			t.Fatal(err)
		}
		*log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		joinAt := slices.IndexFunc(*log, func(q string) bool { return strings.HasPrefix(q, "DELETE FROM "+eng.Dialect().Quote("post_tags")) })
		postAt := slices.IndexFunc(*log, func(q string) bool { return strings.HasPrefix(q, "DELETE FROM "+eng.Dialect().Quote("posts")) })
		if joinAt < 0 || postAt < 0 || joinAt > postAt {
			t.Errorf("statements %q: want the join rows deleted before the post", *log)
		}
		if got, want := joinRows(t, eng), pairs(sqlPost.ID, "db"); !slices.Equal(got, want) {
			t.Errorf("join rows after deleting post go = %v, want %v", got, want)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM tags"); n != 2 {
			t.Errorf("%d tags left, want 2 (deleting a post keeps its tags)", n)
		}

		// The tag side: its join rows go too, with sessions that know the
		// posts' model.
		db, err := orm.Get[RelTag](ctx, s, "db")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := orm.Get[RelPost](ctx, s, sqlPost.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(db); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := joinRows(t, eng); len(got) != 0 {
			t.Errorf("join rows after deleting tag db = %v, want none", got)
		}
	})
}

// A failed commit puts the join-row snapshots back exactly: the changes
// that the rolled-back flush wrote are written again by the next commit.
func TestManyToManyFailedCommitRestoresJoinSnapshots(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		goPost, sqlPost, _ := seedPosts(t, eng)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		posts, err := orm.Query[RelPost](s).Where("id = ?", goPost.ID).Load("Tags").All(ctx)
		if err != nil || len(posts) != 1 {
			t.Fatalf("load go post: %v, %v", posts, err)
		}
		p := posts[0]
		golang := p.Tags[1]
		p.Tags = []*RelTag{golang} // remove db: a DELETE that runs, then is rolled back
		// The sql post is loaded without its tags; giving it db again, a
		// pair the join table holds, makes the join INSERT fail.
		other, err := orm.Get[RelPost](ctx, s, sqlPost.ID)
		if err != nil {
			t.Fatal(err)
		}
		db, err := orm.Get[RelTag](ctx, s, "db")
		if err != nil {
			t.Fatal(err)
		}
		other.Tags = []*RelTag{db}
		err = s.Commit(ctx)
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit = %v, want a unique violation on post_tags", err)
		}
		var fe *orm.FlushError
		if !errors.As(err, &fe) || fe.Op != "INSERT" || fe.Table != "post_tags" {
			t.Errorf("Commit error %v: want a FlushError for INSERT post_tags", err)
		}
		if got, want := joinRows(t, eng), pairs(goPost.ID, "db", goPost.ID, "go", sqlPost.ID, "db"); !slices.Equal(got, want) {
			t.Fatalf("after the failed commit the join rows are %v, want the seeded %v", got, want)
		}
		// Fix the cause; the go post's removal must still be written.
		other.Tags = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := joinRows(t, eng), pairs(goPost.ID, "go", sqlPost.ID, "db"); !slices.Equal(got, want) {
			t.Errorf("after fixing and committing again the join rows are %v, want %v", got, want)
		}
	})
}

// A savepoint rolled back after flushing join rows puts their snapshots
// back too: the pair it wrote, still in the slice, is written again by the
// commit.
func TestManyToManySavepointRollbackRestoresJoinSnapshots(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		goPost, sqlPost, _ := seedPosts(t, eng)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		posts, err := orm.Query[RelPost](s).Where("id = ?", sqlPost.ID).Load("Tags").All(ctx)
		if err != nil || len(posts) != 1 {
			t.Fatalf("load sql post: %v, %v", posts, err)
		}
		golang, err := orm.Get[RelTag](ctx, s, "go")
		if err != nil {
			t.Fatal(err)
		}
		err = s.Savepoint(ctx, func() error {
			posts[0].Tags = append(posts[0].Tags, golang)
			if err := s.Flush(ctx); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Savepoint = %v, want errBoom", err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		want := pairs(goPost.ID, "db", goPost.ID, "go", sqlPost.ID, "db", sqlPost.ID, "go")
		if got := joinRows(t, eng); !slices.Equal(got, want) {
			t.Errorf("join rows = %v, want %v (the pair rolled back with the savepoint, then committed)", got, want)
		}
	})
}

// A relation declared on both sides is one join table: loading from
// either side reads it, and a pair added on both sides is inserted once.
func TestManyToManyDeclaredOnBothSides(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		goPost, sqlPost, empty := seedPosts(t, eng)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		*log = nil
		tags, err := orm.Query[RelTag](s).OrderBy("name").Load("Posts.Tags").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(*log) != 3 {
			t.Errorf("Load(Posts.Tags) sent %d statements, want 3: %q", len(*log), *log)
		}
		if len(tags) != 2 || len(tags[0].Posts) != 2 || len(tags[1].Posts) != 1 || tags[1].Posts[0].ID != goPost.ID {
			t.Fatalf("tags loaded from their side: %+v", tags)
		}
		p, err := orm.Get[RelPost](ctx, s, empty.ID)
		if err != nil {
			t.Fatal(err)
		}
		golang := tags[1]
		p.Tags = []*RelTag{golang} // the empty post, never loaded: a new pair
		golang.Posts = append(golang.Posts, p)
		*log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countPrefix(*log, "INSERT INTO "+eng.Dialect().Quote("post_tags")); n != 1 {
			t.Errorf("%d join INSERTs, want 1: %q", n, *log)
		}
		want := pairs(goPost.ID, "db", goPost.ID, "go", sqlPost.ID, "db", empty.ID, "go")
		if got := joinRows(t, eng); !slices.Equal(got, want) {
			t.Errorf("join rows = %v, want %v", got, want)
		}
	})
}

// More pairs and keys than one statement takes (1000) are split into
// chunks: join rows inserted and deleted in two statements each, and Load
// in two queries, with every post getting its tag.
func TestManyToManyChunksLargeBatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		ctx := context.Background()
		const n = 1005
		tag := &RelTag{Name: "bulk"}
		objs := []any{tag}
		for i := range n {
			objs = append(objs, &RelPost{Title: fmt.Sprint("p", i), Tags: []*RelTag{tag}})
		}
		seedObjects(t, eng, objs...)
		join := eng.Dialect().Quote("post_tags")
		if got := countPrefix(*log, "INSERT INTO "+join); got != 2 {
			t.Errorf("%d join INSERTs for %d pairs, want 2", got, n)
		}
		if got := countRows(t, eng, "SELECT COUNT(*) FROM post_tags"); got != n {
			t.Fatalf("%d join rows, want %d", got, n)
		}

		s := eng.NewSession()
		defer s.Close()
		*log = nil
		posts, err := orm.Query[RelPost](s).Load("Tags").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(*log) != 3 {
			t.Errorf("Load of %d posts' tags sent %d statements, want 3 (posts, two chunks)", n, len(*log))
		}
		if len(posts) != n || len(posts[0].Tags) != 1 {
			t.Fatalf("loaded %d posts, the first with %d tags; want %d, 1", len(posts), len(posts[0].Tags), n)
		}
		bulk := posts[0].Tags[0]
		for _, p := range posts {
			if len(p.Tags) != 1 || p.Tags[0] != bulk {
				t.Fatalf("post %s has tags %v, want the one bulk tag", p.Title, tagNames(p))
			}
			p.Tags = p.Tags[:0]
		}
		*log = nil
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := countPrefix(*log, "DELETE FROM "+join); got != 2 {
			t.Errorf("%d join DELETEs for %d pairs, want 2", got, n)
		}
		if got := countRows(t, eng, "SELECT COUNT(*) FROM post_tags"); got != 0 {
			t.Errorf("%d join rows left, want 0", got)
		}
	})
}

// RelPerson's friends are people too: a many-to-many relation of a table
// with itself.
type RelPerson struct {
	ID      int64        `db:"id,pk,auto"`
	Name    string       `db:"name,size=64"`
	Friends []*RelPerson `rel:"m2m=friendships(person_id,friend_id)"`
}

// TableName names the table plainly.
func (RelPerson) TableName() string { return "people" }

// A table related to itself through a join table loads and writes its
// pairs like any other, and nested Load follows it level by level.
func TestManyToManyWithItself(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		ctx := context.Background()
		if err := eng.CreateTables(ctx, RelPerson{}); err != nil {
			t.Fatal(err)
		}
		ann, bob, cid := &RelPerson{Name: "ann"}, &RelPerson{Name: "bob"}, &RelPerson{Name: "cid"}
		ann.Friends = []*RelPerson{bob}
		bob.Friends = []*RelPerson{cid}
		seedObjects(t, eng, ann, bob, cid)

		s := eng.NewSession()
		defer s.Close()
		*log = nil
		people, err := orm.Query[RelPerson](s).OrderBy("id").Load("Friends.Friends").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(*log) != 3 {
			t.Errorf("Load(Friends.Friends) sent %d statements, want 3: %q", len(*log), *log)
		}
		a := people[0]
		if len(a.Friends) != 1 || a.Friends[0] != people[1] || len(a.Friends[0].Friends) != 1 || a.Friends[0].Friends[0] != people[2] {
			t.Fatalf("ann's friends of friends are not bob then cid: %+v", a.Friends)
		}
		c := people[2]
		c.Friends = append(c.Friends, a) // cid befriends ann
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM friendships WHERE person_id = ? AND friend_id = ?", c.ID, a.ID); n != 1 {
			t.Errorf("cid→ann pairs: %d, want 1", n)
		}
		if err := s.Delete(people[1]); err != nil { // bob: his pairs go both ways
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM friendships"); n != 1 {
			t.Errorf("%d friendships left after deleting bob, want 1 (cid→ann)", n)
		}
	})
}

// CreateTables makes the join table with a composite primary key and two
// foreign keys that cascade on delete.
func TestCreateTablesMakesJoinTable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		goPost, _, _ := seedPosts(t, eng)
		ctx := context.Background()
		db := eng.DB()
		_, err := db.ExecContext(ctx, eng.Dialect().Rebind("INSERT INTO post_tags (post_id, tag_id) VALUES (?, ?)"), goPost.ID, "go")
		if err == nil {
			t.Errorf("inserting a pair twice succeeded; want the composite primary key to refuse it")
		}
		_, err = db.ExecContext(ctx, eng.Dialect().Rebind("INSERT INTO post_tags (post_id, tag_id) VALUES (?, ?)"), goPost.ID, "nope")
		if err == nil {
			t.Errorf("inserting a pair with an unknown tag succeeded; want a foreign-key violation")
		}
		if _, err := db.ExecContext(ctx, eng.Dialect().Rebind("DELETE FROM tags WHERE name = ?"), "go"); err != nil {
			t.Fatalf("deleting a tagged tag: %v (want the join rows to cascade)", err)
		}
		if _, err := db.ExecContext(ctx, eng.Dialect().Rebind("DELETE FROM posts WHERE id = ?"), goPost.ID); err != nil {
			t.Fatalf("deleting a tagged post: %v (want the join rows to cascade)", err)
		}
		if got := joinRows(t, eng); len(got) != 1 {
			t.Errorf("join rows after the deletes = %v, want only the sql post's", got)
		}
		// Dropping works with the join table in place, and twice.
		for range 2 {
			if err := eng.DropTables(ctx, relModels...); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A has-one loads in one query for all authors; an author without one
// gets nil. Adding an author with a new profile inserts both, the
// profile's foreign key taken from the author's new key.
func TestHasOneLoadAndAdd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		ctx := context.Background()
		ann := &RelAuthor{Name: "ann", Profile: &RelProfile{Bio: "poet"}}
		bob := &RelAuthor{Name: "bob"}
		seedObjects(t, eng, ann, bob)
		if ann.ID == 0 || ann.Profile.ID == 0 || ann.Profile.AuthorID != ann.ID {
			t.Fatalf("after Add and Commit: author %d, profile %+v; want the profile inserted with author_id = %d", ann.ID, ann.Profile, ann.ID)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM profiles WHERE author_id = ?", ann.ID); n != 1 {
			t.Fatalf("%d profile rows for ann, want 1", n)
		}

		s := eng.NewSession()
		defer s.Close()
		*log = nil
		authors, err := orm.Query[RelAuthor](s).OrderBy("id").Load("Profile").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(*log) != 2 {
			t.Errorf("Load(Profile) sent %d statements, want 2: %q", len(*log), *log)
		}
		if len(authors) != 2 || authors[0].Profile == nil || authors[0].Profile.Bio != "poet" || authors[1].Profile != nil {
			t.Fatalf("loaded %+v; want ann with her profile and bob without", authors)
		}

		// Giving an existing author a new profile: the key flows into it.
		authors[1].Profile = &RelProfile{Bio: "critic"}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := authors[1].Profile.AuthorID; got != authors[1].ID {
			t.Errorf("bob's new profile has author_id %d, want %d", got, authors[1].ID)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM profiles WHERE author_id = ? AND bio = ?", authors[1].ID, "critic"); n != 1 {
			t.Errorf("%d rows for bob's new profile, want 1", n)
		}
	})
}

// Deleting an author deletes the has-one profile the session tracks with
// it (cascade): the session does not keep a profile the database removed.
func TestHasOneCascadeDeleteMarksTrackedChild(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		ctx := context.Background()
		ann := &RelAuthor{Name: "ann", Profile: &RelProfile{Bio: "poet"}}
		seedObjects(t, eng, ann)
		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Query[RelAuthor](s).Load("Profile").One(ctx)
		if err != nil || a.Profile == nil {
			t.Fatalf("load ann with profile: %+v, %v", a, err)
		}
		if err := s.Delete(a); err != nil {
			t.Fatal(err)
		}
		if _, err := orm.Get[RelProfile](ctx, s, a.Profile.ID); !errors.Is(err, orm.ErrNotFound) {
			t.Errorf("Get of the deleted author's profile = %v, want ErrNotFound", err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM profiles"); n != 0 {
			t.Errorf("%d profiles left, want 0", n)
		}
	})
}

// Nested Load sends one query per level, whatever the number of objects,
// through every relation kind.
func TestNestedLoadIsOneQueryPerLevel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		ctx := context.Background()
		short, long := &RelLabel{Name: "short"}, &RelLabel{Name: "long"}
		var authors []*RelAuthor
		for a := range 3 {
			au := &RelAuthor{Name: fmt.Sprintf("author%d", a), Profile: &RelProfile{Bio: fmt.Sprintf("bio%d", a)}}
			for b := range 4 {
				bk := &RelBook{Title: fmt.Sprintf("a%db%d", a, b), Labels: []*RelLabel{short}}
				if b%2 == 1 {
					bk.Labels = append(bk.Labels, long)
				}
				for r := range b {
					bk.Reviews = append(bk.Reviews, &RelReview{Stars: int64(r + 1)})
				}
				au.Books = append(au.Books, bk)
			}
			authors = append(authors, au)
		}
		seedObjects(t, eng, anys(authors)...)

		s := eng.NewSession()
		defer s.Close()
		*log = nil
		got, err := orm.Query[RelAuthor](s).OrderBy("id").Load("Books.Reviews", "Books.Labels", "Profile", "Books").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// authors, books, reviews, labels (joined), profiles.
		if len(*log) != 5 {
			t.Errorf("nested Load sent %d statements, want 5 (one per relation): %q", len(*log), *log)
		}
		if len(got) != 3 {
			t.Fatalf("%d authors, want 3", len(got))
		}
		for a, au := range got {
			if au.Profile == nil || au.Profile.Bio != fmt.Sprintf("bio%d", a) {
				t.Errorf("author %d profile = %+v", a, au.Profile)
			}
			if len(au.Books) != 4 {
				t.Fatalf("author %d has %d books, want 4", a, len(au.Books))
			}
			for b, bk := range au.Books {
				if bk.Title != fmt.Sprintf("a%db%d", a, b) || len(bk.Reviews) != b {
					t.Errorf("author %d book %d = %q with %d reviews, want a%db%d with %d", a, b, bk.Title, len(bk.Reviews), a, b, b)
				}
				wantLabels := 1 + b%2
				if len(bk.Labels) != wantLabels || bk.Labels[0].Name != "short" {
					t.Errorf("book %q labels %v, want %d starting with short", bk.Title, bk.Labels, wantLabels)
				}
			}
		}
		if got[0].Books[1].Labels[1] != got[1].Books[3].Labels[1] {
			t.Errorf("the long label is loaded as two objects, want one")
		}

		// Upwards through belongs-to, then down a has-one: one query each.
		s2 := eng.NewSession()
		defer s2.Close()
		*log = nil
		reviews, err := orm.Query[RelReview](s2).OrderBy("id").Load("Book.Author.Profile").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(*log) != 4 {
			t.Errorf("Load(Book.Author.Profile) sent %d statements, want 4: %q", len(*log), *log)
		}
		if len(reviews) != 18 {
			t.Fatalf("%d reviews, want 18", len(reviews))
		}
		for _, r := range reviews {
			if r.Book == nil || r.Book.Author == nil || r.Book.Author.Profile == nil ||
				!strings.HasPrefix(r.Book.Title, "a"+strings.TrimPrefix(r.Book.Author.Name, "author")) {
				t.Fatalf("review %d loaded as %+v", r.ID, r.Book)
			}
		}

		// A bad step anywhere in a path fails before any SQL, naming it.
		*log = nil
		for _, path := range []string{"Books.Nope", "Books.Reviews.Book.Oops", "Books.", ".Books", "Books.Title"} {
			_, err := orm.Query[RelAuthor](s).Load(path).All(ctx)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
				t.Errorf("Load(%q) = %v; want an error naming the path", path, err)
			}
		}
		if len(*log) != 0 {
			t.Errorf("bad Load paths sent %q", *log)
		}
	})
}

// NoTrack with Load returns loaded objects the session does not track.
func TestNoTrackLoadDoesNotTrack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := relEngine(t, tg)
		seedPosts(t, eng)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		posts, err := orm.Query[RelPost](s).NoTrack().OrderBy("id").Load("Tags").All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(posts) != 3 || len(posts[0].Tags) != 2 || posts[0].Tags[0] != posts[1].Tags[0] {
			t.Fatalf("NoTrack Load: %d posts, first with %d tags; want 3, 2, and the db tag once", len(posts), len(posts[0].Tags))
		}
		if n := s.Stats().Tracked; n != 0 {
			t.Errorf("NoTrack Load tracks %d objects, want 0", n)
		}
	})
}

// RelBadM2M declares a many-to-many relation on a pointer field.
type RelBadM2M struct {
	ID  int64   `db:"id,pk,auto"`
	Tag *RelTag `rel:"m2m=bad_tags(bad_id,tag_id)"`
}

// RelBadHasOne puts a has-one column that its target does not have.
type RelBadHasOne struct {
	ID      int64       `db:"id,pk,auto"`
	Profile *RelProfile `rel:"owner_id,hasone"`
}

// A bad relation definition fails the query, CreateTables and Add with a
// *mapper.DefinitionError naming the model, the field and the reason,
// before any SQL.
func TestBadRelationTagIsDefinitionError(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := relEngine(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		check := func(what string, err error, field, reason string) {
			t.Helper()
			var de *mapper.DefinitionError
			if !errors.As(err, &de) || de.Field != field || !strings.Contains(de.Reason, reason) {
				t.Errorf("%s = %v; want a *mapper.DefinitionError for field %s saying %q", what, err, field, reason)
			}
		}
		_, err := orm.Query[RelBadM2M](s).All(ctx)
		check("Query[RelBadM2M].All", err, "Tag", "an m2m relation needs a []*Struct field")
		check("CreateTables(RelBadM2M)", eng.CreateTables(ctx, RelBadM2M{}), "Tag", "an m2m relation needs a []*Struct field")
		check("Add(RelBadHasOne)", s.Add(&RelBadHasOne{}), "Profile", `rel column "owner_id" does not exist in table profiles`)
		if len(*log) != 0 {
			t.Errorf("bad definitions sent %q", *log)
		}
	})
}
