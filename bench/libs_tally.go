package bench

// Everything Tally-specific lives in this file, written against Tally's
// public API, so that changes to how programs open an engine touch only it.

import (
	"context"
	"fmt"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/orm"

	// The databases the benchmarks open, as any program names them.
	_ "github.com/tallyorm/tally/dialect/mysql"
	_ "github.com/tallyorm/tally/dialect/postgres"
	_ "github.com/tallyorm/tally/dialect/sqlite"
)

var tallyLib = Library{
	Name:  "tally",
	About: "Tally's Session, a fresh one per operation, flush and commit inside the timed loop; Update is UpdateAll by key, GetChangeSave is Get, change, Commit. On SQLite, orm.Open keeps each connection's recent statements compiled, and on MariaDB prepared (as gorm-prep does), which the other libraries' plain pool does not; on MariaDB a commit of several statements is one multi-statement query, as on PostgreSQL one pgx pipeline",
	Steps: tallySteps,
}

// TModel is Model as Tally declares it.
type TModel struct {
	ID      int64  `db:"id,pk,auto"`
	Name    string `db:"name"`
	Title   string `db:"title"`
	Fax     string `db:"fax"`
	Web     string `db:"web"`
	Age     int    `db:"age"`
	Right   bool   `db:"right"`
	Counter int64  `db:"counter"`
}

// TableName names TModel's table.
func (TModel) TableName() string { return "models" }

// TNote is Note as Tally declares it.
type TNote struct {
	ID      int64  `db:"id,pk,auto"`
	ModelID int64  `db:"model_id"`
	Body    string `db:"body"`
}

// TableName names TNote's table.
func (TNote) TableName() string { return "notes" }

func newTModel() *TModel {
	m := NewModel()
	return &TModel{Name: m.Name, Title: m.Title, Fax: m.Fax, Web: m.Web, Age: m.Age, Right: m.Right, Counter: m.Counter}
}

// openTally opens an engine on e the way a program would. On PostgreSQL
// it wraps the shared pool with orm.New (orm.Open has no dial hook to
// count round trips through; it adds no setting there either). On MariaDB
// and SQLite it calls orm.Open with the env's DSN, which reaches the same
// database through the same counting dialer and adds what Tally relies on
// (parseTime and clientFoundRows, RETURNING, the per-connection prepared
// statements and the multi-statement commit on MariaDB; its SQLite
// statement cache). Its pool settings are Tally's defaults, which are the
// settings every library runs with ([ApplyPool]).
func openTally(ctx context.Context, e *Env) (*orm.Engine, error) {
	if e.Kind == "postgres" {
		d, err := dialect.ByName("postgres")
		if err != nil {
			return nil, err
		}
		return orm.New(e.DB, d), nil // closed with the env's pool
	}
	eng, err := orm.Open(ctx, e.Kind, e.DSN)
	if err != nil {
		return nil, err
	}
	e.OnClose(eng.Close)
	return eng, nil
}

// tallyDo runs fn in a fresh session and commits, as a request handler
// does; a session that only read is closed without a commit.
func tallyDo(ctx context.Context, eng *orm.Engine, commit bool, fn func(s *orm.Session) error) (err error) {
	s := eng.NewSession()
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	if err := fn(s); err != nil {
		return err
	}
	if commit {
		return s.Commit(ctx)
	}
	return nil
}

func tallySteps(ctx context.Context, e *Env) (map[Op]Step, error) {
	return tallyStepsOf(ctx, e, tallyModels[TModel, TNote]{
		newModel: newTModel,
		counter:  func(m *TModel) *int64 { return &m.Counter },
		id:       func(m *TModel) int64 { return m.ID },
		newNote:  func(id int64) *TNote { return &TNote{ModelID: id, Body: "a note"} },
		noteByID: func(id int64) *TNote { return &TNote{ID: id} },
	})
}

// tallyModels tells tallyStepsOf how to make and reach the models of one
// Tally variant (reflective or generated mappers: two copies of the same
// structs, so that each uses its own mapper).
type tallyModels[M, N any] struct {
	newModel func() *M
	counter  func(*M) *int64
	id       func(*M) int64
	newNote  func(modelID int64) *N
	noteByID func(id int64) *N
}

func tallyStepsOf[M, N any](ctx context.Context, e *Env, tm tallyModels[M, N]) (map[Op]Step, error) {
	eng, err := openTally(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("bench: tally: %w", err)
	}
	if err := eng.Register(*new(M), *new(N)); err != nil {
		return nil, err
	}
	window := func(ctx context.Context, s *orm.Session, n int) ([]*M, error) {
		lo := e.Window(n)
		ms, err := orm.Query[M](s).Where("id >= ? AND id < ?", lo, lo+int64(n)).OrderBy("id").All(ctx)
		if err != nil {
			return nil, err
		}
		return ms, want("window", len(ms), n)
	}
	return map[Op]Step{
		UnitOfWork: func(ctx context.Context) error {
			return tallyDo(ctx, eng, true, func(s *orm.Session) error {
				ms, err := window(ctx, s, 10)
				if err != nil {
					return err
				}
				for _, k := range []int{0, 4, 8} {
					*tm.counter(ms[k]) = e.Value()
				}
				if err := s.Add(tm.newNote(tm.id(ms[1])), tm.newNote(tm.id(ms[2]))); err != nil {
					return err
				}
				return s.Delete(tm.noteByID(e.NoteToDelete()))
			})
		},
		LoadChangeSave: func(ctx context.Context) error {
			return tallyDo(ctx, eng, true, func(s *orm.Session) error {
				ms, err := window(ctx, s, 100)
				if err != nil {
					return err
				}
				for _, m := range ms {
					*tm.counter(m) = e.Value()
				}
				return nil
			})
		},
		Insert: func(ctx context.Context) error {
			return tallyDo(ctx, eng, true, func(s *orm.Session) error { return s.Add(tm.newModel()) })
		},
		InsertMulti: func(ctx context.Context) error {
			objs := make([]any, 100)
			for i := range objs {
				objs[i] = tm.newModel()
			}
			return tallyDo(ctx, eng, true, func(s *orm.Session) error { return s.Add(objs...) })
		},
		Update: func(ctx context.Context) error {
			return tallyDo(ctx, eng, true, func(s *orm.Session) error {
				n, err := orm.Query[M](s).Where("id = ?", e.Key()).UpdateAll(ctx, orm.Set{"counter": e.Value()})
				return want64("update", n, err, 1)
			})
		},
		GetChangeSave: func(ctx context.Context) error {
			return tallyDo(ctx, eng, true, func(s *orm.Session) error {
				m, err := orm.Get[M](ctx, s, e.Key())
				if err != nil {
					return err
				}
				*tm.counter(m) = e.Value()
				return nil
			})
		},
		Read: func(ctx context.Context) error {
			return tallyDo(ctx, eng, false, func(s *orm.Session) error {
				_, err := orm.Get[M](ctx, s, e.Key())
				return err
			})
		},
		ReadSlice: func(ctx context.Context) error {
			return tallyDo(ctx, eng, false, func(s *orm.Session) error {
				ms, err := orm.Query[M](s).Where("id > ?", 0).OrderBy("id").Limit(100).All(ctx)
				if err != nil {
					return err
				}
				return want("rows", len(ms), 100)
			})
		},
	}, nil
}
