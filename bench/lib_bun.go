package bench

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/feature"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/schema"
)

var bunLib = Library{
	Name:  "bun",
	About: "github.com/uptrace/bun on the shared pool with its dialect for the database; RunInTx; bulk UPDATE (Bulk) where the dialect has it. bun puts arguments into the SQL text itself: one round trip per statement on MySQL, but on pgx's default statement cache every new value is a new statement to prepare",
	Steps: bunSteps,
}

// BModel is Model as bun declares it.
type BModel struct {
	bun.BaseModel `bun:"table:models,alias:m"`

	ID      int64  `bun:"id,pk,autoincrement"`
	Name    string `bun:"name,notnull"`
	Title   string `bun:"title,notnull"`
	Fax     string `bun:"fax,notnull"`
	Web     string `bun:"web,notnull"`
	Age     int    `bun:"age,notnull"`
	Right   bool   `bun:"right,notnull"`
	Counter int64  `bun:"counter,notnull"`
}

// BNote is Note as bun declares it.
type BNote struct {
	bun.BaseModel `bun:"table:notes,alias:n"`

	ID      int64  `bun:"id,pk,autoincrement"`
	ModelID int64  `bun:"model_id,notnull"`
	Body    string `bun:"body,notnull"`
}

func newBModel() BModel {
	m := NewModel()
	return BModel{Name: m.Name, Title: m.Title, Fax: m.Fax, Web: m.Web, Age: m.Age, Right: m.Right, Counter: m.Counter}
}

func bunSteps(_ context.Context, e *Env) (map[Op]Step, error) {
	var d schema.Dialect
	switch e.Kind {
	case "postgres":
		d = pgdialect.New()
	case "mysql":
		d = mysqldialect.New()
	case "sqlite":
		d = sqlitedialect.New()
	}
	db := bun.NewDB(e.DB, d)
	bulk := db.HasFeature(feature.CTE | feature.UpdateFromTable)
	rows1 := func(what string) func(res interface{ RowsAffected() (int64, error) }, err error) error {
		return func(res interface{ RowsAffected() (int64, error) }, err error) error {
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			return want64(what, n, err, 1)
		}
	}
	updated, deleted := rows1("update"), rows1("delete")
	return map[Op]Step{
		UnitOfWork: func(ctx context.Context) error {
			return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				lo := e.Window(10)
				var ms []BModel
				if err := tx.NewSelect().Model(&ms).Where("id >= ? AND id < ?", lo, lo+10).Order("id").Scan(ctx); err != nil {
					return err
				}
				if err := want("window", len(ms), 10); err != nil {
					return err
				}
				for _, k := range []int{0, 4, 8} {
					ms[k].Counter = e.Value()
					if err := updated(tx.NewUpdate().Model(&ms[k]).Column("counter").WherePK().Exec(ctx)); err != nil {
						return err
					}
				}
				notes := []BNote{{ModelID: ms[1].ID, Body: "a note"}, {ModelID: ms[2].ID, Body: "a note"}}
				if _, err := tx.NewInsert().Model(&notes).Exec(ctx); err != nil {
					return err
				}
				return deleted(tx.NewDelete().Model((*BNote)(nil)).Where("id = ?", e.NoteToDelete()).Exec(ctx))
			})
		},
		LoadChangeSave: func(ctx context.Context) error {
			return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				lo := e.Window(100)
				var ms []BModel
				if err := tx.NewSelect().Model(&ms).Where("id >= ? AND id < ?", lo, lo+100).Order("id").Scan(ctx); err != nil {
					return err
				}
				if err := want("window", len(ms), 100); err != nil {
					return err
				}
				for i := range ms {
					ms[i].Counter = e.Value()
				}
				if bulk {
					_, err := tx.NewUpdate().Model(&ms).Column("counter").Bulk().Exec(ctx)
					return err
				}
				for i := range ms {
					if err := updated(tx.NewUpdate().Model(&ms[i]).Column("counter").WherePK().Exec(ctx)); err != nil {
						return err
					}
				}
				return nil
			})
		},
		Insert: func(ctx context.Context) error {
			m := newBModel()
			_, err := db.NewInsert().Model(&m).Exec(ctx)
			return err
		},
		InsertMulti: func(ctx context.Context) error {
			ms := make([]BModel, 100)
			for i := range ms {
				ms[i] = newBModel()
			}
			if _, err := db.NewInsert().Model(&ms).Exec(ctx); err != nil {
				return err
			}
			if ms[99].ID == 0 && e.Kind != "mysql" {
				return fmt.Errorf("bench: bun: no key read back")
			}
			return nil
		},
		Update: func(ctx context.Context) error {
			return updated(db.NewUpdate().Model((*BModel)(nil)).Set("counter = ?", e.Value()).Where("id = ?", e.Key()).Exec(ctx))
		},
		GetChangeSave: func(ctx context.Context) error {
			var m BModel
			if err := db.NewSelect().Model(&m).Where("id = ?", e.Key()).Scan(ctx); err != nil {
				return err
			}
			m.Counter = e.Value()
			return updated(db.NewUpdate().Model(&m).Column("counter").WherePK().Exec(ctx))
		},
		Read: func(ctx context.Context) error {
			var m BModel
			return db.NewSelect().Model(&m).Where("id = ?", e.Key()).Scan(ctx)
		},
		ReadSlice: func(ctx context.Context) error {
			var ms []BModel
			if err := db.NewSelect().Model(&ms).Where("id > ?", 0).Order("id").Limit(100).Scan(ctx); err != nil {
				return err
			}
			return want("rows", len(ms), 100)
		},
	}, nil
}
