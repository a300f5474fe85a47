package orm_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/tallyorm/tally/orm"
)

// Load a has-many relation and, one level down, a many-to-many relation:
// one query per level. Changing the many-to-many slice writes its join
// rows at the next commit.
func ExampleQ_Load() {
	type Tag struct {
		ID   int64  `db:"id,pk,auto"`
		Name string `db:"name,unique"`
	}
	type Post struct {
		ID       int64  `db:"id,pk,auto"`
		AuthorID int64  `db:"author_id"`
		Title    string `db:"title"`
		Tags     []*Tag `rel:"m2m=post_tags(post_id,tag_id)"` // many-to-many through post_tags
	}
	type Author struct {
		ID    int64   `db:"id,pk,auto"`
		Name  string  `db:"name"`
		Posts []*Post `rel:"author_id"` // has-many
	}

	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	selects := 0
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"), orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
		if strings.HasPrefix(ev.SQL, "SELECT") {
			selects++
		}
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, Author{}, Post{}, Tag{}); err != nil { // and post_tags
		log.Fatal(err)
	}

	golang, sql := &Tag{Name: "go"}, &Tag{Name: "sql"}
	err = eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		return s.Add(
			&Author{Name: "ann", Posts: []*Post{{Title: "Generics", Tags: []*Tag{golang}}, {Title: "Joins", Tags: []*Tag{sql}}}},
			&Author{Name: "bob", Posts: []*Post{{Title: "Both", Tags: []*Tag{golang, sql}}}},
		)
	})
	if err != nil {
		log.Fatal(err)
	}

	s := eng.NewSession()
	defer s.Close()
	selects = 0
	authors, err := orm.Query[Author](s).OrderBy("id").Load("Posts.Tags").All(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("queries:", selects)
	for _, a := range authors {
		for _, p := range a.Posts {
			var names []string
			for _, t := range p.Tags {
				names = append(names, t.Name)
			}
			fmt.Printf("%s: %s %v\n", a.Name, p.Title, names)
		}
	}

	// Untag "Both" from go: one DELETE of its post_tags row at commit.
	both := authors[1].Posts[0]
	both.Tags = both.Tags[1:]
	if err := s.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	var n int
	if err := eng.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM post_tags").Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("pairs left:", n)
	// Output:
	// queries: 3
	// ann: Generics [go]
	// ann: Joins [sql]
	// bob: Both [go sql]
	// pairs left: 3
}
