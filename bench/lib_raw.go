package bench

import (
	"context"
	"database/sql"
	"strings"
)

var rawLib = Library{
	Name:  "raw",
	About: "database/sql by hand on the shared pool: one statement per call, autocommit except where the job needs a transaction, which it sends one statement at a time",
	Steps: rawSteps,
}

// rawAgainLib is raw's code measured as another library: an A/A control.
// Its ratio to raw is 1 but for the machine's noise, so the spread of its
// ratios tells how far this run can tell two libraries apart.
var rawAgainLib = Library{
	Name:  "raw-again",
	About: "raw's code once more, measured as a library of its own: an A/A control whose ratio to raw shows the run's noise (see the targets)",
	Steps: rawSteps,
}

const (
	modelCols  = `name, title, fax, web, age, "right", counter`
	modelSel   = `SELECT id, ` + modelCols + ` FROM models`
	modelVals  = `(?, ?, ?, ?, ?, ?, ?)`
	insertNote = `INSERT INTO notes (model_id, body) VALUES (?, ?)`
)

func scanModel(sc interface{ Scan(...any) error }, m *Model) error {
	return sc.Scan(&m.ID, &m.Name, &m.Title, &m.Fax, &m.Web, &m.Age, &m.Right, &m.Counter)
}

// rawQuerier is what *sql.DB and *sql.Tx have in common.
type rawQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func rawSteps(_ context.Context, e *Env) (map[Op]Step, error) {
	db := e.DB
	mysql := e.Kind == "mysql"
	var (
		insert     = e.SQL(`INSERT INTO models (` + modelCols + `) VALUES ` + modelVals)
		insertRet  = e.SQL(`INSERT INTO models (` + modelCols + `) VALUES ` + modelVals + ` RETURNING id`)
		insertNote = e.SQL(insertNote)
		noteRet    = e.SQL(`INSERT INTO notes (model_id, body) VALUES (?, ?) RETURNING id`)
		update     = e.SQL(`UPDATE models SET counter = ? WHERE id = ?`)
		byKey      = e.SQL(modelSel + ` WHERE id = ?`)
		slice      = e.SQL(modelSel + ` WHERE id > ? ORDER BY id LIMIT 100`)
		window     = e.SQL(modelSel + ` WHERE id >= ? AND id < ? ORDER BY id`)
		delNote    = e.SQL(`DELETE FROM notes WHERE id = ?`)
	)
	// MariaDB has RETURNING too, but LastInsertId is how single inserts
	// are written for MySQL; the multi-row insert needs RETURNING for
	// every key (consecutive auto-increment keys are not guaranteed).
	multi := func() string {
		var b strings.Builder
		b.WriteString(`INSERT INTO models (` + modelCols + `) VALUES `)
		for i := range 100 {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(modelVals)
		}
		b.WriteString(` RETURNING id`)
		return e.SQL(b.String())
	}()
	insertOne := func(ctx context.Context, q rawQuerier, m *Model) error {
		if mysql {
			res, err := q.ExecContext(ctx, insert, m.Name, m.Title, m.Fax, m.Web, m.Age, m.Right, m.Counter)
			if err != nil {
				return err
			}
			m.ID, err = res.LastInsertId()
			return err
		}
		return q.QueryRowContext(ctx, insertRet, m.Name, m.Title, m.Fax, m.Web, m.Age, m.Right, m.Counter).Scan(&m.ID)
	}
	addNote := func(ctx context.Context, tx *sql.Tx, n *Note) error {
		if mysql {
			res, err := tx.ExecContext(ctx, insertNote, n.ModelID, n.Body)
			if err != nil {
				return err
			}
			n.ID, err = res.LastInsertId()
			return err
		}
		return tx.QueryRowContext(ctx, noteRet, n.ModelID, n.Body).Scan(&n.ID)
	}
	readWindow := func(ctx context.Context, tx *sql.Tx, n int) ([]Model, error) {
		lo := e.Window(n)
		rows, err := tx.QueryContext(ctx, window, lo, lo+int64(n))
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		ms := make([]Model, 0, n)
		for rows.Next() {
			ms = append(ms, Model{})
			if err := scanModel(rows, &ms[len(ms)-1]); err != nil {
				return nil, err
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return ms, want("window", len(ms), n)
	}
	updateOne := func(ctx context.Context, q rawQuerier, m *Model) error {
		res, err := q.ExecContext(ctx, update, m.Counter, m.ID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		return want64("update", n, err, 1)
	}
	return map[Op]Step{
		UnitOfWork: func(ctx context.Context) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			ms, err := readWindow(ctx, tx, 10)
			if err != nil {
				return err
			}
			for _, k := range []int{0, 4, 8} {
				ms[k].Counter = e.Value()
				if err := updateOne(ctx, tx, &ms[k]); err != nil {
					return err
				}
			}
			for _, k := range []int{1, 2} {
				n := Note{ModelID: ms[k].ID, Body: "a note"}
				if err := addNote(ctx, tx, &n); err != nil {
					return err
				}
			}
			res, err := tx.ExecContext(ctx, delNote, e.NoteToDelete())
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return want64("delete", n, err, 1)
			}
			return tx.Commit()
		},
		LoadChangeSave: func(ctx context.Context) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			ms, err := readWindow(ctx, tx, 100)
			if err != nil {
				return err
			}
			for i := range ms {
				ms[i].Counter = e.Value()
				if err := updateOne(ctx, tx, &ms[i]); err != nil {
					return err
				}
			}
			return tx.Commit()
		},
		Insert: func(ctx context.Context) error {
			return insertOne(ctx, db, NewModel())
		},
		InsertMulti: func(ctx context.Context) error {
			ms := make([]*Model, 100)
			args := make([]any, 0, 7*len(ms))
			for i := range ms {
				m := NewModel()
				ms[i] = m
				args = append(args, m.Name, m.Title, m.Fax, m.Web, m.Age, m.Right, m.Counter)
			}
			rows, err := db.QueryContext(ctx, multi, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			i := 0
			for ; rows.Next() && i < len(ms); i++ {
				if err := rows.Scan(&ms[i].ID); err != nil {
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			return want("keys returned", i, len(ms))
		},
		Update: func(ctx context.Context) error {
			return updateOne(ctx, db, &Model{ID: e.Key(), Counter: e.Value()})
		},
		GetChangeSave: func(ctx context.Context) error {
			var m Model
			if err := scanModel(db.QueryRowContext(ctx, byKey, e.Key()), &m); err != nil {
				return err
			}
			m.Counter = e.Value()
			return updateOne(ctx, db, &m)
		},
		Read: func(ctx context.Context) error {
			var m Model
			return scanModel(db.QueryRowContext(ctx, byKey, e.Key()), &m)
		},
		ReadSlice: func(ctx context.Context) error {
			rows, err := db.QueryContext(ctx, slice, 0)
			if err != nil {
				return err
			}
			defer rows.Close()
			ms := make([]Model, 0, 100)
			for rows.Next() {
				ms = append(ms, Model{})
				if err := scanModel(rows, &ms[len(ms)-1]); err != nil {
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			return want("rows", len(ms), 100)
		},
	}, nil
}
