package orm_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tallyorm/tally/orm"
)

// Open a SQLite database, create the tables of two related models, and
// write and read an object graph in a session.
func ExampleOpen() {
	type Book struct {
		ID       int64  `db:"id,pk,auto"`
		AuthorID int64  `db:"author_id"`
		Title    string `db:"title"`
	}
	type Author struct {
		ID    int64   `db:"id,pk,auto"`
		Name  string  `db:"name,unique"`
		Books []*Book `rel:"author_id"` // has-many: books.author_id → authors.id
	}

	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	// Also "mysql" and "postgres", with their drivers' DSNs.
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, Author{}, Book{}); err != nil {
		log.Fatal(err)
	}

	s := eng.NewSession()
	defer s.Close()
	ann := &Author{Name: "Ann", Books: []*Book{{Title: "Go"}, {Title: "SQL"}}}
	if err := s.Add(ann); err != nil { // the books come along
		log.Fatal(err)
	}
	if err := s.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("author", ann.ID, "books", ann.Books[0].ID, ann.Books[1].ID, "of author", ann.Books[1].AuthorID)

	// Another session reads from the database.
	s2 := eng.NewSession()
	defer s2.Close()
	b, err := orm.Get[Book](ctx, s2, ann.Books[1].ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.Title)
	// Output:
	// author 1 books 1 2 of author 1
	// SQL
}

// CreateTables creates parents before children, with the foreign keys that
// rel tags declare; tables that exist are left alone.
func ExampleEngine_CreateTables() {
	type Item struct {
		ID      int64  `db:"id,pk,auto"`
		OwnerID int64  `db:"owner_id,index"`
		Label   string `db:"label,size=40"`
	}
	type Owner struct {
		ID    int64   `db:"id,pk,auto"`
		Items []*Item `rel:"owner_id,cascade"` // ON DELETE CASCADE
	}

	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"),
		orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) { fmt.Println(ev.SQL) }))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	// The child is listed first; CreateTables still creates the parent first.
	if err := eng.CreateTables(ctx, Item{}, Owner{}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// CREATE TABLE IF NOT EXISTS "owners" (
	//   "id" INTEGER PRIMARY KEY AUTOINCREMENT
	// )
	// CREATE TABLE IF NOT EXISTS "items" (
	//   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
	//   "owner_id" INTEGER NOT NULL,
	//   "label" TEXT NOT NULL,
	//   FOREIGN KEY ("owner_id") REFERENCES "owners" ("id") ON DELETE CASCADE
	// )
	// CREATE INDEX IF NOT EXISTS "ix_items_owner_id_47d0033c" ON "items" ("owner_id")
}

// Register validates models at start-up, so that a bad definition fails
// there, with the type, field and reason, instead of in a request.
func ExampleEngine_Register() {
	type Note struct {
		Text string `db:"text"` // no primary key
	}
	eng, err := orm.Open(context.Background(), "sqlite", ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	fmt.Println(eng.Register(Note{}))
	// Output:
	// mapper: model orm_test.Note: no primary key: tag one field db:"...,pk"
}

// A query hook sees every statement: its SQL as sent, its arguments, how
// long it took, the rows it touched and its error.
func ExampleWithQueryHook() {
	type Tag struct {
		Name string `db:"name,pk"`
		Uses int    `db:"uses"`
	}
	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	var trace []string
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"),
		orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
			trace = append(trace, fmt.Sprintf("%s %q %v rows=%d err=%v", ev.Op, ev.SQL, ev.Args, ev.Rows, ev.Err))
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, Tag{}); err != nil {
		log.Fatal(err)
	}
	trace = nil

	s := eng.NewSession()
	defer s.Close()
	if err := s.Add(&Tag{Name: "go", Uses: 3}); err != nil {
		log.Fatal(err)
	}
	// One statement to send: it runs alone, in autocommit, with no BEGIN
	// and no COMMIT.
	if err := s.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Join(trace, "\n"))
	// Output:
	// exec "INSERT INTO \"tags\" (\"name\", \"uses\") VALUES (?, ?)" [go 3] rows=1 err=<nil>
}

// WithLogger logs each statement at Debug level, with its SQL and the
// number of arguments, never their values.
func ExampleWithLogger() {
	type Tag struct {
		Name string `db:"name,pk"`
	}
	// Leave out what changes from run to run, for the example's output.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{}
			}
			return a
		},
	}))
	dir, err := os.MkdirTemp("", "tally-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", filepath.Join(dir, "app.db"), orm.WithLogger(logger))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, Tag{}); err != nil {
		log.Fatal(err)
	}
	s := eng.NewSession()
	defer s.Close()
	if err := s.Add(&Tag{Name: "private value"}); err != nil {
		log.Fatal(err)
	}
	if err := s.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// level=DEBUG msg="tally: statement" op=exec sql="CREATE TABLE IF NOT EXISTS \"tags\" (\n  \"name\" TEXT NOT NULL,\n  PRIMARY KEY (\"name\")\n)" args=0 rows=0
	// level=DEBUG msg="tally: statement" op=exec sql="INSERT INTO \"tags\" (\"name\") VALUES (?)" args=1 rows=1
}
