package orm

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/tallyorm/tally/mapper"
)

// CreateTables creates the tables of models that do not exist yet (CREATE
// TABLE IF NOT EXISTS), parents before children, with primary keys,
// database-generated columns, unique constraints, indexes, and the foreign
// keys that rel tags declare among the given models. It is meant for demos
// and tests; use a migration tool (goose, Atlas) for production schemas.
//
// Models whose foreign keys form a cycle through a nullable column are
// created too: that constraint is added with ALTER TABLE once both tables
// exist (SQLite, which checks foreign keys only when rows change, declares
// it inline). A cycle of NOT NULL columns is a *CycleError.
func (e *Engine) CreateTables(ctx context.Context, models ...any) error {
	tables, fks, broken, err := e.schema(models)
	if err != nil {
		return err
	}
	// A database that can alter foreign keys needs the referenced table to
	// exist; one that cannot (SQLite) resolves REFERENCES when rows change,
	// so a table may name one created after it.
	later := e.dialect.Capabilities().DropForeignKey != "" && len(broken) > 0
	inline := fks
	if later {
		inline = slices.DeleteFunc(slices.Clone(fks), func(fk mapper.ForeignKey) bool { return containsFK(broken, fk) })
	}
	created := map[*mapper.Table]bool{}
	for _, t := range tables {
		stmts, err := createTableSQL(e.dialect, t, inline)
		if err != nil {
			return err
		}
		if later && slices.ContainsFunc(broken, func(fk mapper.ForeignKey) bool { return fk.Child == t }) {
			// The deferred constraint is added only to a table made now:
			// CREATE TABLE IF NOT EXISTS leaves an existing one as it is.
			_, probe := e.exec(ctx, e.db, probeSQL(e.dialect, t.Name), nil)
			created[t] = probe != nil
		}
		for _, s := range stmts {
			if _, err := e.exec(ctx, e.db, s, nil); err != nil {
				return fmt.Errorf("orm: create table %s: %w", t.Name, err)
			}
		}
	}
	if later {
		for _, fk := range broken {
			if !created[fk.Child] {
				continue
			}
			if _, err := e.exec(ctx, e.db, addForeignKeySQL(e.dialect, fk), nil); err != nil {
				return fmt.Errorf("orm: create table %s: %w", fk.Child.Name, err)
			}
		}
	}
	// Join tables last: they refer to both sides.
	for _, j := range e.reg.JoinTables(tables) {
		stmts, err := joinTableSQL(e.dialect, j)
		if err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := e.exec(ctx, e.db, s, nil); err != nil {
				return fmt.Errorf("orm: create join table %s: %w", j.Name, err)
			}
		}
	}
	return nil
}

func containsFK(fks []mapper.ForeignKey, fk mapper.ForeignKey) bool {
	return slices.ContainsFunc(fks, func(x mapper.ForeignKey) bool { return x.Child == fk.Child && x.Column == fk.Column })
}

// fkName names a constraint added by ALTER TABLE, like indexName.
func fkName(fk mapper.ForeignKey) string {
	return "fk" + indexName(fk.Child.Name, fk.Column.Name)[2:]
}

// DropTables drops the tables of models that exist, children before parents.
// A foreign key that CreateTables added to break a cycle is dropped first.
func (e *Engine) DropTables(ctx context.Context, models ...any) error {
	tables, _, broken, err := e.schema(models)
	if err != nil {
		return err
	}
	// Join tables first: they refer to both sides.
	for _, j := range e.reg.JoinTables(tables) {
		if _, err := e.exec(ctx, e.db, dropTableSQL(e.dialect, j.Name), nil); err != nil {
			return fmt.Errorf("orm: drop join table %s: %w", j.Name, err)
		}
	}
	for _, fk := range broken {
		if _, err := e.exec(ctx, e.db, probeSQL(e.dialect, fk.Child.Name), nil); err != nil {
			continue // no such table
		}
		s := dropForeignKeySQL(e.dialect, fk)
		if e.dialect.Capabilities().DropForeignKey == "" {
			// The constraint is inline and cannot be dropped; DROP TABLE
			// deletes the rows first (SQLite), which the key would refuse.
			s = clearForeignKeySQL(e.dialect, fk)
		}
		if _, err := e.exec(ctx, e.db, s, nil); err != nil {
			return fmt.Errorf("orm: drop table %s: %w", fk.Child.Name, err)
		}
	}
	for i := len(tables) - 1; i >= 0; i-- {
		if _, err := e.exec(ctx, e.db, dropTableSQL(e.dialect, tables[i].Name), nil); err != nil {
			return fmt.Errorf("orm: drop table %s: %w", tables[i].Name, err)
		}
	}
	return nil
}

// schema resolves models to tables in dependency order, with the foreign
// keys among them and those left out of the order to break a cycle.
func (e *Engine) schema(models []any) ([]*mapper.Table, []mapper.ForeignKey, []mapper.ForeignKey, error) {
	var tables []*mapper.Table
	seen := map[*mapper.Table]bool{}
	for _, m := range models {
		t, err := e.table(m)
		if err != nil {
			return nil, nil, nil, err
		}
		if !seen[t] {
			seen[t] = true
			tables = append(tables, t)
		}
	}
	all, err := e.reg.ForeignKeys(tables)
	if err != nil {
		return nil, nil, nil, err
	}
	var fks []mapper.ForeignKey
	for _, fk := range all {
		if seen[fk.Child] && seen[fk.Parent] {
			fks = append(fks, fk)
		}
	}
	sorted, broken, err := sortTables(tables, fks)
	if err != nil {
		return nil, nil, nil, err
	}
	return sorted, fks, broken, nil
}

// indexName is ix_<table>_<column>, cut to fit the 63-byte identifier
// limit of PostgreSQL (MySQL's is 64), with a hash of both names so that
// neither cutting nor a name like a_b + c versus a + b_c can collide.
func indexName(table, col string) string {
	h := fnv.New32a()
	h.Write([]byte(table))
	h.Write([]byte{0})
	h.Write([]byte(col))
	base := "ix_" + table + "_" + col
	if len(base) > 53 {
		base = base[:53]
	}
	return fmt.Sprintf("%s_%08x", base, h.Sum32())
}

func isFKColumn(t *mapper.Table, c *mapper.Column, fks []mapper.ForeignKey) bool {
	for _, fk := range fks {
		if fk.Child == t && fk.Column == c {
			return true
		}
	}
	return false
}
