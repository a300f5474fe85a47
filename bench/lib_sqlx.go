package bench

import (
	"context"

	"github.com/jmoiron/sqlx"
)

var sqlxLib = Library{
	Name:  "sqlx",
	About: "github.com/jmoiron/sqlx on the shared pool: Get/Select into structs, named inserts (a slice for the batch), BeginTxx",
	Steps: sqlxSteps,
}

// sqlxDriverName picks the name sqlx derives its placeholder style from.
var sqlxDriverName = map[string]string{"postgres": "pgx", "mysql": "mysql", "sqlite": "sqlite3"}

func sqlxSteps(_ context.Context, e *Env) (map[Op]Step, error) {
	db := sqlx.NewDb(e.DB, sqlxDriverName[e.Kind])
	mysql := e.Kind == "mysql"
	var (
		named     = e.SQL(`INSERT INTO models (` + modelCols + `) VALUES (:name, :title, :fax, :web, :age, :right, :counter)`)
		namedRet  = named + ` RETURNING id`
		noteRet   = `INSERT INTO notes (model_id, body) VALUES (:model_id, :body) RETURNING id`
		update    = e.SQL(`UPDATE models SET counter = ? WHERE id = ?`)
		byKey     = e.SQL(modelSel + ` WHERE id = ?`)
		slice     = e.SQL(modelSel + ` WHERE id > ? ORDER BY id LIMIT 100`)
		window    = e.SQL(modelSel + ` WHERE id >= ? AND id < ? ORDER BY id`)
		delNote   = e.SQL(`DELETE FROM notes WHERE id = ?`)
		scanNamed = func(rows *sqlx.Rows, err error, ids ...*int64) error {
			if err != nil {
				return err
			}
			defer rows.Close()
			i := 0
			for ; rows.Next() && i < len(ids); i++ {
				if err := rows.Scan(ids[i]); err != nil {
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			return want("keys returned", i, len(ids))
		}
	)
	update1 := func(ctx context.Context, q sqlx.ExecerContext, m *Model) error {
		res, err := q.ExecContext(ctx, update, m.Counter, m.ID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		return want64("update", n, err, 1)
	}
	return map[Op]Step{
		UnitOfWork: func(ctx context.Context) error {
			tx, err := db.BeginTxx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			lo := e.Window(10)
			var ms []Model
			if err := tx.SelectContext(ctx, &ms, window, lo, lo+10); err != nil {
				return err
			}
			if err := want("window", len(ms), 10); err != nil {
				return err
			}
			for _, k := range []int{0, 4, 8} {
				ms[k].Counter = e.Value()
				if err := update1(ctx, tx, &ms[k]); err != nil {
					return err
				}
			}
			notes := []Note{{ModelID: ms[1].ID, Body: "a note"}, {ModelID: ms[2].ID, Body: "a note"}}
			rows, err := sqlx.NamedQueryContext(ctx, tx, noteRet, notes)
			if err := scanNamed(rows, err, &notes[0].ID, &notes[1].ID); err != nil {
				return err
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
			tx, err := db.BeginTxx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			lo := e.Window(100)
			var ms []Model
			if err := tx.SelectContext(ctx, &ms, window, lo, lo+100); err != nil {
				return err
			}
			if err := want("window", len(ms), 100); err != nil {
				return err
			}
			for i := range ms {
				ms[i].Counter = e.Value()
				if err := update1(ctx, tx, &ms[i]); err != nil {
					return err
				}
			}
			return tx.Commit()
		},
		Insert: func(ctx context.Context) error {
			m := NewModel()
			if mysql {
				res, err := db.NamedExecContext(ctx, named, m)
				if err != nil {
					return err
				}
				m.ID, err = res.LastInsertId()
				return err
			}
			rows, err := db.NamedQueryContext(ctx, namedRet, m)
			return scanNamed(rows, err, &m.ID)
		},
		InsertMulti: func(ctx context.Context) error {
			ms := make([]Model, 100)
			ids := make([]*int64, len(ms))
			for i := range ms {
				ms[i] = *NewModel()
				ids[i] = &ms[i].ID
			}
			rows, err := db.NamedQueryContext(ctx, namedRet, ms)
			return scanNamed(rows, err, ids...)
		},
		Update: func(ctx context.Context) error {
			return update1(ctx, db, &Model{ID: e.Key(), Counter: e.Value()})
		},
		GetChangeSave: func(ctx context.Context) error {
			var m Model
			if err := db.GetContext(ctx, &m, byKey, e.Key()); err != nil {
				return err
			}
			m.Counter = e.Value()
			return update1(ctx, db, &m)
		},
		Read: func(ctx context.Context) error {
			var m Model
			return db.GetContext(ctx, &m, byKey, e.Key())
		},
		ReadSlice: func(ctx context.Context) error {
			var ms []Model
			if err := db.SelectContext(ctx, &ms, slice, 0); err != nil {
				return err
			}
			return want("rows", len(ms), 100)
		},
	}, nil
}
