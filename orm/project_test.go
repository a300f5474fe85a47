package orm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of Project: a query's rows read into another struct,
// with joins and checked column names, never tracked. Helpers carry a pj
// prefix.

type pjAuthor struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,size=64"`
}

func (pjAuthor) TableName() string { return "pj_authors" }

type pjBook struct {
	ID       int64     `db:"id,pk,auto"`
	AuthorID int64     `db:"author_id"`
	Title    string    `db:"title,size=64"`
	Year     int       `db:"year"`
	Added    time.Time `db:"added_at"`
}

func (pjBook) TableName() string { return "pj_books" }

// pjRow is the DTO of the join.
type pjRow struct {
	Title  string `db:"title"`
	Author string `db:"author"`
	Year   int    // no tag: "year"
	Note   string `db:"-"`
}

func pjOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	ctx := context.Background()
	if err := eng.CreateTables(ctx, pjAuthor{}, pjBook{}); err != nil {
		t.Fatal(err)
	}
	le, ursula := &pjAuthor{Name: "Le Guin"}, &pjAuthor{Name: "Pratchett"}
	seedObjects(t, eng, le, ursula)
	seedObjects(t, eng,
		&pjBook{AuthorID: le.ID, Title: "The Dispossessed", Year: 1974, Added: baseTime},
		&pjBook{AuthorID: ursula.ID, Title: "Night Watch", Year: 2002, Added: baseTime},
		&pjBook{AuthorID: le.ID, Title: "Lavinia", Year: 2008, Added: baseTime},
	)
	log.Reset()
	return eng, log
}

func pjBooks(s *orm.Session) *orm.P[pjRow] {
	return orm.Project[pjRow](orm.Query[pjBook](s).Where("pj_books.year > ?", 2000).OrderBy("title")).
		Join("JOIN pj_authors a ON a.id = pj_books.author_id").
		Select("title", "a.name AS author", "pj_books.year")
}

func TestProjectJoinsAndSelectsIntoAnotherStructThatIsNeverTracked(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := pjOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		var le pjAuthor
		uowMust(t, eng.DB().QueryRowContext(ctx, eng.Dialect().Rebind("SELECT id FROM pj_authors WHERE name = ?"), "Le Guin").Scan(&le.ID))
		// A pending book is flushed first, as for any query.
		uowMust(t, s.Add(&pjBook{AuthorID: le.ID, Title: "Annals", Year: 2006, Added: baseTime}))
		got, err := pjBooks(s).All(ctx)
		uowMust(t, err)
		want := []pjRow{{"Annals", "Le Guin", 2006, ""}, {"Lavinia", "Le Guin", 2008, ""}, {"Night Watch", "Pratchett", 2002, ""}}
		if len(got) != len(want) {
			t.Fatalf("rows = %+v; want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("row %d = %+v; want %+v", i, got[i], want[i])
			}
		}
		if st := s.Stats(); st.Tracked != 1 {
			t.Fatalf("%d objects tracked; want 1, the added book: projected rows are never tracked", st.Tracked)
		}
		// OrderBy takes result names; SelectExpr binds its values.
		got, err = orm.Project[pjRow](orm.Query[pjBook](s)).
			Join("JOIN pj_authors a ON a.id = pj_books.author_id").
			Select("title").SelectExpr("UPPER(a.name)", "author").SelectExpr("pj_books.year + ?", "year", 1).
			OrderBy("-year").All(ctx)
		uowMust(t, err)
		if len(got) != 4 || got[0] != (pjRow{"Lavinia", "LE GUIN", 2009, ""}) || got[3].Year != 1975 {
			t.Fatalf("rows by -year = %+v", got)
		}
	})
}

// A DTO whose fields are columns of the model needs no Select; times come
// back in UTC, as a model's do.
func TestProjectWithoutSelectReadsTheModelColumnsOfTheFieldNames(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := pjOpen(t, tg)
		type titleRow struct {
			ID    int64
			Title string
			Added time.Time `db:"added_at"`
		}
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Project[titleRow](orm.Query[pjBook](s).Where("year < ?", 2000)).One(context.Background())
		uowMust(t, err)
		if got.ID == 0 || got.Title != "The Dispossessed" || !got.Added.Equal(baseTime) || got.Added.Location() != time.UTC {
			t.Fatalf("row = %+v; want The Dispossessed added %v in UTC", got, baseTime)
		}
		_, err = orm.Project[titleRow](orm.Query[pjBook](s)).One(context.Background())
		if !errors.Is(err, orm.ErrMultipleRows) {
			t.Fatalf("One of three rows = %v; want ErrMultipleRows", err)
		}
	})
}

func TestProjectIterStreamsTheRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := pjOpen(t, tg)
		s := eng.NewSession()
		defer s.Close()
		var titles []string
		for r, err := range pjBooks(s).Iter(context.Background()) {
			uowMust(t, err)
			titles = append(titles, r.Title+"/"+r.Author)
		}
		if len(titles) != 2 || titles[0] != "Lavinia/Le Guin" || titles[1] != "Night Watch/Pratchett" {
			t.Fatalf("Iter = %q", titles)
		}
	})
}

// Names a request could supply — Select's columns and OrderBy's keys —
// are checked before any SQL: a *ColumnError, nothing sent.
func TestProjectRefusesBadColumnNamesBeforeSQL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := pjOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		base := func() *orm.P[pjRow] {
			return orm.Project[pjRow](orm.Query[pjBook](s)).Join("JOIN pj_authors a ON a.id = pj_books.author_id")
		}
		for name, p := range map[string]*orm.P[pjRow]{
			"injection":          base().Select("title; DROP TABLE pj_books", "a.name AS author", "year"),
			"quoted":             base().Select(`a."name" AS author`, "title", "year"),
			"not a column":       base().Select("titel", "a.name AS author", "year"),
			"not a field":        base().Select("title", "a.name AS writer", "year"),
			"qualified, unknown": base().Select("pj_books.nope AS title", "a.name AS author", "year"),
			"selected twice":     base().Select("title", "a.name AS author", "year", "a.name AS author"),
			"not selected":       base().Select("title", "year"),
			"order by":           base().Select("title", "a.name AS author", "year").OrderBy("-id"),
			"default select":     orm.Project[pjRow](orm.Query[pjBook](s)), // author is no column of pj_books
		} {
			var ce *orm.ColumnError
			if _, err := p.All(ctx); !errors.As(err, &ce) {
				t.Fatalf("%s: All = %v; want a *ColumnError", name, err)
			}
		}
		if _, err := orm.Project[int](orm.Query[pjBook](s)).All(ctx); err == nil {
			t.Fatal("Project into an int succeeded")
		}
		if sqls := log.SQL(); len(sqls) != 0 {
			t.Fatalf("refused projections sent %q", sqls)
		}
	})
}
