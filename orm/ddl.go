package orm

import (
	"context"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"

	"github.com/tallyorm/tally/dialect"
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
		q := e.dialect.Quote
		for _, fk := range broken {
			if !created[fk.Child] {
				continue
			}
			s := "ALTER TABLE " + q(fk.Child.Name) + " ADD CONSTRAINT " + q(fkName(fk)) + " " + fkClause(q, fk)
			if _, err := e.exec(ctx, e.db, s, nil); err != nil {
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

// fkClause is FOREIGN KEY (col) REFERENCES parent (pk) [ON DELETE CASCADE].
func fkClause(q func(string) string, fk mapper.ForeignKey) string {
	def := "FOREIGN KEY (" + q(fk.Column.Name) + ") REFERENCES " + q(fk.Parent.Name) + " (" + q(fk.Parent.PK[0].Name) + ")"
	if fk.Cascade {
		def += " ON DELETE CASCADE"
	}
	return def
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
		if _, err := e.exec(ctx, e.db, "DROP TABLE IF EXISTS "+e.dialect.Quote(j.Name), nil); err != nil {
			return fmt.Errorf("orm: drop join table %s: %w", j.Name, err)
		}
	}
	q := e.dialect.Quote
	for _, fk := range broken {
		if _, err := e.exec(ctx, e.db, probeSQL(e.dialect, fk.Child.Name), nil); err != nil {
			continue // no such table
		}
		s := "ALTER TABLE " + q(fk.Child.Name) + " " + e.dialect.Capabilities().DropForeignKey + q(fkName(fk))
		if e.dialect.Capabilities().DropForeignKey == "" {
			// The constraint is inline and cannot be dropped; DROP TABLE
			// deletes the rows first (SQLite), which the key would refuse.
			s = "UPDATE " + q(fk.Child.Name) + " SET " + q(fk.Column.Name) + " = NULL"
		}
		if _, err := e.exec(ctx, e.db, s, nil); err != nil {
			return fmt.Errorf("orm: drop table %s: %w", fk.Child.Name, err)
		}
	}
	for i := len(tables) - 1; i >= 0; i-- {
		s := "DROP TABLE IF EXISTS " + e.dialect.Quote(tables[i].Name)
		if _, err := e.exec(ctx, e.db, s, nil); err != nil {
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

// createTableSQL returns the CREATE TABLE statement of t and, where the
// dialect cannot declare indexes inline, its CREATE INDEX statements.
func createTableSQL(d dialect.Dialect, t *mapper.Table, fks []mapper.ForeignKey) ([]string, error) {
	q := d.Quote
	var defs []string
	inlinePK := false
	for _, c := range t.Columns {
		if c.Auto && c.PK && c.SQLType == "" {
			ddl, inline := d.AutoIncrement(q(c.Name), c.Type)
			inlinePK = inlinePK || inline
			defs = append(defs, ddl)
			continue
		}
		sqlType := c.SQLType
		if own := c.SQLTypes.For(d.Name()); own != "" {
			sqlType = own // type.<dialect>= wins over type= on its database
		}
		typ, err := d.ColumnType(dialect.Column{Type: c.Type, Size: c.Size, SQLType: sqlType,
			Key:       c.PK || c.Unique || c.Indexed || isFKColumn(t, c, fks),
			Precision: c.Precision, Scale: c.Scale, JSON: c.JSON})
		if err != nil {
			return nil, &mapper.DefinitionError{Type: t.Type, Field: c.Field, Reason: err.Error(), Err: err}
		}
		def := q(c.Name) + " " + typ
		if !c.Nullable {
			def += " NOT NULL"
			if c.ReadOnly && c.SQLType == "" {
				// The session never writes a readonly column, so an INSERT
				// must be able to leave it out.
				def += zeroDefault(c)
			}
		}
		defs = append(defs, def)
	}
	if !inlinePK {
		defs = append(defs, "PRIMARY KEY ("+quoteList(d, t.PK)+")")
	}
	for _, c := range t.Columns {
		if c.Unique {
			defs = append(defs, "UNIQUE ("+q(c.Name)+")")
		}
	}
	var after []string
	for _, c := range t.Columns {
		if !c.Indexed {
			continue
		}
		name := indexName(t.Name, c.Name)
		if d.Capabilities().CreateIndexIfNotExists {
			after = append(after, "CREATE INDEX IF NOT EXISTS "+q(name)+" ON "+q(t.Name)+" ("+q(c.Name)+")")
		} else {
			// Inside CREATE TABLE IF NOT EXISTS the index comes and goes
			// with the table.
			defs = append(defs, "INDEX "+q(name)+" ("+q(c.Name)+")")
		}
	}
	for _, fk := range fks {
		if fk.Child != t {
			continue
		}
		defs = append(defs, fkClause(q, fk))
	}
	stmt := "CREATE TABLE IF NOT EXISTS " + q(t.Name) + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"
	return append([]string{stmt}, after...), nil
}

// joinTableSQL returns the CREATE TABLE statement of a many-to-many join
// table — its two key columns, typed like the keys they refer to, as a
// composite primary key, each a foreign key that cascades on delete (a
// pair goes with either of its rows) — and an index on the second column,
// which the primary key's index does not serve (loading or deleting from
// the other side).
func joinTableSQL(d dialect.Dialect, j mapper.Join) ([]string, error) {
	q := d.Quote
	sides := []struct {
		col string
		t   *mapper.Table
	}{{j.JoinTable.Left, j.Left}, {j.JoinTable.Right, j.Right}}
	var defs, fks []string
	for _, sd := range sides {
		pk := sd.t.PK[0]
		typ, err := d.ColumnType(dialect.Column{Type: pk.Type, Size: pk.Size, SQLType: pk.SQLType, Key: true})
		if err != nil {
			return nil, &mapper.DefinitionError{Type: sd.t.Type, Field: pk.Field, Reason: "join table " + j.Name + ": " + err.Error(), Err: err}
		}
		defs = append(defs, q(sd.col)+" "+typ+" NOT NULL")
		fks = append(fks, "FOREIGN KEY ("+q(sd.col)+") REFERENCES "+q(sd.t.Name)+" ("+q(pk.Name)+") ON DELETE CASCADE")
	}
	defs = append(defs, "PRIMARY KEY ("+q(j.JoinTable.Left)+", "+q(j.JoinTable.Right)+")")
	defs = append(defs, fks...)
	idx := indexName(j.Name, j.JoinTable.Right)
	var after []string
	if d.Capabilities().CreateIndexIfNotExists {
		after = append(after, "CREATE INDEX IF NOT EXISTS "+q(idx)+" ON "+q(j.Name)+" ("+q(j.JoinTable.Right)+")")
	} else {
		defs = append(defs, "INDEX "+q(idx)+" ("+q(j.JoinTable.Right)+")")
	}
	stmt := "CREATE TABLE IF NOT EXISTS " + q(j.Name) + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"
	return append([]string{stmt}, after...), nil
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

// zeroDefault is the DEFAULT clause of a NOT NULL readonly column: its Go
// zero value, for the kinds that have a portable literal.
func zeroDefault(c *mapper.Column) string {
	switch c.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return " DEFAULT 0"
	case reflect.Bool:
		return " DEFAULT FALSE"
	case reflect.String:
		return " DEFAULT ''"
	}
	return ""
}

func isFKColumn(t *mapper.Table, c *mapper.Column, fks []mapper.ForeignKey) bool {
	for _, fk := range fks {
		if fk.Child == t && fk.Column == c {
			return true
		}
	}
	return false
}
