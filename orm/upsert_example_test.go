package orm_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tallyorm/tally/orm"
)

// exampleEngine opens a SQLite database in a temporary directory with
// the tables of models; cleanup closes it and removes the directory.
func exampleEngine(models ...any) (eng *orm.Engine, cleanup func()) {
	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	eng, err = orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	if err := eng.CreateTables(ctx, models...); err != nil {
		log.Fatal(err)
	}
	return eng, func() { eng.Close(); os.RemoveAll(dir) }
}

type exMember struct {
	ID    int64  `db:"id,pk,auto"`
	Email string `db:"email,unique,size=64"`
	Name  string `db:"name,size=64"`
	Posts int    `db:"posts"`
}

// Load a feed of members: new emails are inserted, known ones get the
// feed's name and keep their other columns. Every object comes back
// holding its row, key included, and tracked.
func ExampleUpsert() {
	eng, cleanup := exampleEngine(exMember{})
	defer cleanup()
	ctx := context.Background()
	err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		return s.Add(&exMember{Email: "ann@example.com", Name: "Ann", Posts: 12})
	})
	if err != nil {
		log.Fatal(err)
	}

	feed := []*exMember{{Email: "ann@example.com", Name: "Ann Smith"}, {Email: "bob@example.com", Name: "Bob"}}
	err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		return orm.Upsert(ctx, s, feed, orm.OnConflict("email").DoUpdate("name"))
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range feed {
		fmt.Println(m.Email, m.Name, m.Posts, "key set:", m.ID != 0)
	}
	// Output:
	// ann@example.com Ann Smith 12 key set: true
	// bob@example.com Bob 0 key set: true
}

// Read a join into a struct made for the response: checked column names,
// a trusted join clause, rows that are never tracked.
func ExampleProject() {
	type author struct {
		ID   int64  `db:"id,pk,auto"`
		Name string `db:"name,size=64"`
	}
	type book struct {
		ID       int64  `db:"id,pk,auto"`
		AuthorID int64  `db:"author_id"`
		Title    string `db:"title,size=64"`
	}
	eng, cleanup := exampleEngine(author{}, book{})
	defer cleanup()
	ctx := context.Background()
	s := eng.NewSession()
	defer s.Close()
	a := &author{Name: "Le Guin"}
	if err := s.Add(a); err != nil {
		log.Fatal(err)
	}
	if err := s.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	if err := s.Add(&book{AuthorID: a.ID, Title: "Lavinia"}, &book{AuthorID: a.ID, Title: "Always Coming Home"}); err != nil {
		log.Fatal(err)
	}

	type bookRow struct {
		Title  string `db:"title"`
		Author string `db:"author"`
	}
	// The pending books are flushed first, as before any query.
	q := orm.Query[book](s).OrderBy("title")
	rows, err := orm.Project[bookRow](q).
		Join("JOIN authors a ON a.id = books.author_id").
		Select("title", "a.name AS author").
		All(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rows)
	// Output: [{Always Coming Home Le Guin} {Lavinia Le Guin}]
}

// A report that must add up: one read-only REPEATABLE READ transaction
// from its first read, which never blocks a writer.
func ExampleReadOnly() {
	eng, cleanup := exampleEngine(exMember{})
	defer cleanup()
	ctx := context.Background()
	err := eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		return s.Add(&exMember{Email: "ann@example.com", Posts: 3}, &exMember{Email: "bob@example.com", Posts: 4})
	})
	if err != nil {
		log.Fatal(err)
	}
	err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		members, err := orm.Query[exMember](s).All(ctx)
		if err != nil {
			return err
		}
		n, err := orm.Query[exMember](s).Count(ctx) // same snapshot as the rows above
		if err != nil {
			return err
		}
		total := 0
		for _, m := range members {
			total += m.Posts
		}
		fmt.Println(n, "members,", total, "posts")
		members[0].Posts = 0
		return s.Commit(ctx) // refused: orm.ErrReadOnly, nothing sent
	}, orm.ReadOnly(), orm.Isolation(sql.LevelRepeatableRead))
	fmt.Println(err)
	// Output:
	// 2 members, 7 posts
	// orm: read-only session cannot write: the session has pending, changed or deleted objects
}
