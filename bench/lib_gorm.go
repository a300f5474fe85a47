package bench

import (
	"context"
	"fmt"

	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	gormsqlite "gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

var gormLib = Library{
	Name:  "gorm",
	About: "gorm.io/gorm handed the shared pool (its dialector's Conn), SkipDefaultTransaction and a silent logger as GORM's performance guide recommends",
	Steps: func(ctx context.Context, e *Env) (map[Op]Step, error) { return gormSteps(ctx, e, false) },
}

var gormPrepLib = Library{
	Name:  "gorm-prep",
	About: "as gorm, plus PrepareStmt: prepared statements cached and reused",
	Steps: func(ctx context.Context, e *Env) (map[Op]Step, error) { return gormSteps(ctx, e, true) },
}

// GModel is Model as GORM declares it.
type GModel struct {
	ID      int64 `gorm:"primaryKey"`
	Name    string
	Title   string
	Fax     string
	Web     string
	Age     int
	Right   bool
	Counter int64
}

// TableName names GModel's table.
func (GModel) TableName() string { return "models" }

// GNote is Note as GORM declares it.
type GNote struct {
	ID      int64 `gorm:"primaryKey"`
	ModelID int64
	Body    string
}

// TableName names GNote's table.
func (GNote) TableName() string { return "notes" }

func newGModel() GModel {
	m := NewModel()
	return GModel{Name: m.Name, Title: m.Title, Fax: m.Fax, Web: m.Web, Age: m.Age, Right: m.Right, Counter: m.Counter}
}

func gormSteps(_ context.Context, e *Env, prepare bool) (map[Op]Step, error) {
	var dial gorm.Dialector
	switch e.Kind {
	case "postgres":
		dial = gormpostgres.New(gormpostgres.Config{Conn: e.DB})
	case "mysql":
		dial = gormmysql.New(gormmysql.Config{Conn: e.DB})
	case "sqlite":
		// Conn set: the modernc pool, never the cgo driver the package imports.
		dial = gormsqlite.Dialector{Conn: e.DB}
	}
	db, err := gorm.Open(dial, &gorm.Config{
		SkipDefaultTransaction: true,
		PrepareStmt:            prepare,
		Logger:                 logger.Discard,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: gorm: %w", err)
	}
	if prepare {
		// The statement cache closes its statements; the pool is the env's.
		e.OnClose(func() error {
			if p, ok := db.ConnPool.(*gorm.PreparedStmtDB); ok {
				p.Close()
			}
			return nil
		})
	}
	rows1 := func(tx *gorm.DB) error { return want64("rows", tx.RowsAffected, tx.Error, 1) }
	return map[Op]Step{
		UnitOfWork: func(ctx context.Context) error {
			return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				lo := e.Window(10)
				var ms []GModel
				if err := tx.Where("id >= ? AND id < ?", lo, lo+10).Order("id").Find(&ms).Error; err != nil {
					return err
				}
				if err := want("window", len(ms), 10); err != nil {
					return err
				}
				for _, k := range []int{0, 4, 8} {
					if err := rows1(tx.Model(&ms[k]).Update("counter", e.Value())); err != nil {
						return err
					}
				}
				notes := []GNote{{ModelID: ms[1].ID, Body: "a note"}, {ModelID: ms[2].ID, Body: "a note"}}
				if err := tx.Create(&notes).Error; err != nil {
					return err
				}
				return rows1(tx.Delete(&GNote{}, e.NoteToDelete()))
			})
		},
		LoadChangeSave: func(ctx context.Context) error {
			return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				lo := e.Window(100)
				var ms []GModel
				if err := tx.Where("id >= ? AND id < ?", lo, lo+100).Order("id").Find(&ms).Error; err != nil {
					return err
				}
				if err := want("window", len(ms), 100); err != nil {
					return err
				}
				for i := range ms {
					ms[i].Counter = e.Value()
				}
				// Save of a slice is one upsert of every row.
				return tx.Save(&ms).Error
			})
		},
		Insert: func(ctx context.Context) error {
			m := newGModel()
			return db.WithContext(ctx).Create(&m).Error
		},
		InsertMulti: func(ctx context.Context) error {
			ms := make([]GModel, 100)
			for i := range ms {
				ms[i] = newGModel()
			}
			if err := db.WithContext(ctx).Create(&ms).Error; err != nil {
				return err
			}
			if ms[99].ID == 0 {
				return fmt.Errorf("bench: gorm: no key read back")
			}
			return nil
		},
		Update: func(ctx context.Context) error {
			return rows1(db.WithContext(ctx).Model(&GModel{ID: e.Key()}).Update("counter", e.Value()))
		},
		GetChangeSave: func(ctx context.Context) error {
			var m GModel
			tx := db.WithContext(ctx)
			if err := tx.First(&m, e.Key()).Error; err != nil {
				return err
			}
			m.Counter = e.Value()
			return tx.Save(&m).Error
		},
		Read: func(ctx context.Context) error {
			var m GModel
			return db.WithContext(ctx).First(&m, e.Key()).Error
		},
		ReadSlice: func(ctx context.Context) error {
			var ms []GModel
			if err := db.WithContext(ctx).Where("id > ?", 0).Order("id").Limit(100).Find(&ms).Error; err != nil {
				return err
			}
			return want("rows", len(ms), 100)
		},
	}, nil
}
