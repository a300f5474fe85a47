package orm

import (
	"reflect"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/mapper"
)

// The SQL text of the statements the session writes itself — Get, Refresh,
// Merge, Load, the unit of work's INSERT, UPDATE and DELETE, join-table
// rows — is built here, in one style: appending to a []byte, with the
// dialect quoting names and numbering placeholders. Values are never
// spliced: every function returns text with placeholders, and the caller
// binds the values in the order the text numbers them. Most results are
// cached per table and row count by the engine's statement cache, so the
// functions favour clarity over speed.
//
// Q's statements (its SELECT, Count, Exists, UpdateAll and DeleteAll) are
// built here too, from the query's clauses; they keep "?" as placeholder,
// because the Where fragments the caller wrote use it, and Q runs the
// whole text through dialect.Expand. So do the DDL statements of
// CreateTables and DropTables, which bind nothing.

// appendList appends the quoted names of cols, comma-separated, each
// prefixed with qual (a quoted table name and a dot, or "").
func appendList(b []byte, d dialect.Dialect, qual string, cols []*mapper.Column) []byte {
	for i, c := range cols {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, qual...)
		b = append(b, d.Quote(c.Name)...)
	}
	return b
}

// appendPlaceholders appends n placeholders numbered from first,
// comma-separated.
func appendPlaceholders(b []byte, d dialect.Dialect, first, n int) []byte {
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = d.AppendPlaceholder(b, first+i)
	}
	return b
}

// appendTuples appends rows groups of width placeholders, numbered from 1:
// "(?, ?), (?, ?)"; with width 1, bare placeholders: "?, ?".
func appendTuples(b []byte, d dialect.Dialect, rows, width int) []byte {
	return appendTuplesFrom(b, d, 1, rows, width)
}

// appendTuplesFrom is appendTuples with placeholders numbered from first.
func appendTuplesFrom(b []byte, d dialect.Dialect, first, rows, width int) []byte {
	for r := range rows {
		if r > 0 {
			b = append(b, ", "...)
		}
		if width > 1 {
			b = append(b, '(')
		}
		b = appendPlaceholders(b, d, first+r*width, width)
		if width > 1 {
			b = append(b, ')')
		}
	}
	return b
}

// appendKeyIn appends "pk IN (?, ...)" for n keys of t ("(pk1, pk2) IN
// ((?, ?), ...)" for a composite key), placeholders numbered from first.
func appendKeyIn(b []byte, d dialect.Dialect, t *mapper.Table, first, n int) []byte {
	if len(t.PK) == 1 {
		b = append(b, d.Quote(t.PK[0].Name)...)
	} else {
		b = append(b, '(')
		b = appendList(b, d, "", t.PK)
		b = append(b, ')')
	}
	b = append(b, " IN ("...)
	b = appendTuplesFrom(b, d, first, n, len(t.PK))
	return append(b, ')')
}

// appendKeyWhere appends "pk1 = ? AND pk2 = ?" for t's key, with
// placeholders numbered from first.
func appendKeyWhere(b []byte, d dialect.Dialect, t *mapper.Table, first int) []byte {
	for i, c := range t.PK {
		if i > 0 {
			b = append(b, " AND "...)
		}
		b = append(b, d.Quote(c.Name)...)
		b = append(b, " = "...)
		b = d.AppendPlaceholder(b, first+i)
	}
	return b
}

// quoteList is the quoted, comma-separated names of cols. Q builds it for
// every query: its buffer is sized once, for names quoted with one
// character each side (longer quoting grows it).
func quoteList(d dialect.Dialect, cols []*mapper.Column) string {
	n := 0
	for _, c := range cols {
		n += len(c.Name) + 4
	}
	return string(appendList(make([]byte, 0, n), d, "", cols))
}

// selectList is the quoted column list of t, the select list of Q.
func selectList(d dialect.Dialect, t *mapper.Table) string {
	if t == nil {
		return ""
	}
	return quoteList(d, t.Columns)
}

// selectByKeySQL builds SELECT cols FROM t WHERE pk = ?: the row of one key
// (Get, Refresh, Merge, and reading back generated columns).
func selectByKeySQL(d dialect.Dialect, t *mapper.Table, cols []*mapper.Column) string {
	b := append([]byte("SELECT "), appendList(nil, d, "", cols)...)
	b = append(b, " FROM "...)
	b = append(b, d.Quote(t.Name)...)
	b = append(b, " WHERE "...)
	return string(appendKeyWhere(b, d, t, 1))
}

// insertSQL builds INSERT INTO t (cols) VALUES (...), ... for rows rows,
// followed by RETURNING ret when returning is set and ret is not empty.
// A row without columns uses the dialect's empty-insert form.
func insertSQL(d dialect.Dialect, t *mapper.Table, cols, ret []*mapper.Column, rows int, returning bool) string {
	b := append([]byte("INSERT INTO "), d.Quote(t.Name)...)
	if len(cols) == 0 {
		b = append(append(b, ' '), d.Capabilities().EmptyInsert...)
	} else {
		b = append(b, " ("...)
		b = appendList(b, d, "", cols)
		b = append(b, ") VALUES "...)
		for r := range rows {
			if r > 0 {
				b = append(b, ", "...)
			}
			// Always parenthesized, even one column: a VALUES row.
			b = append(b, '(')
			b = appendPlaceholders(b, d, r*len(cols)+1, len(cols))
			b = append(b, ')')
		}
	}
	if returning && len(ret) > 0 {
		b = append(b, " RETURNING "...)
		b = appendList(b, d, "", ret)
	}
	return string(b)
}

// updateSet reports whether an UPDATE of a changed column c sets it: a
// read-only column is never written, and the version column is set by the
// version check, not as a change.
func updateSet(c *mapper.Column) bool { return !c.ReadOnly && !c.Version }

// updateSQL builds UPDATE t SET c = ?, ... WHERE pk = ? for the columns of
// cols that updateSet accepts, in order. With a version column it also
// sets the version (the next placeholder) and checks the old one (the
// last): UPDATE t SET c = ?, v = ? WHERE pk = ? AND v = ?.
func updateSQL(d dialect.Dialect, t *mapper.Table, cols []*mapper.Column) string {
	b := append([]byte("UPDATE "), d.Quote(t.Name)...)
	b = append(b, " SET "...)
	n := 0
	set := func(c *mapper.Column) {
		if n > 0 {
			b = append(b, ", "...)
		}
		n++
		b = append(b, d.Quote(c.Name)...)
		b = append(b, " = "...)
		b = d.AppendPlaceholder(b, n)
	}
	for _, c := range cols {
		if updateSet(c) {
			set(c)
		}
	}
	v := t.Version
	if v != nil {
		set(v)
	}
	b = append(b, " WHERE "...)
	b = appendKeyWhere(b, d, t, n+1)
	if v != nil {
		b = append(b, " AND "...)
		b = append(b, d.Quote(v.Name)...)
		b = append(b, " = "...)
		b = d.AppendPlaceholder(b, n+len(t.PK)+1)
	}
	return string(b)
}

// deleteVersionSQL builds DELETE FROM t WHERE pk = ? AND version = ?: one
// row, checked against the version it was read with.
func deleteVersionSQL(d dialect.Dialect, t *mapper.Table) string {
	b := append([]byte("DELETE FROM "), d.Quote(t.Name)...)
	b = append(b, " WHERE "...)
	b = appendKeyWhere(b, d, t, 1)
	b = append(b, " AND "...)
	b = append(b, d.Quote(t.Version.Name)...)
	b = append(b, " = "...)
	return string(d.AppendPlaceholder(b, len(t.PK)+1))
}

// deleteInSQL builds DELETE FROM t WHERE pk IN (...) for n rows; a
// composite key uses row values, (a, b) IN ((?, ?), ...).
func deleteInSQL(d dialect.Dialect, t *mapper.Table, n int) string {
	b := append([]byte("DELETE FROM "), d.Quote(t.Name)...)
	b = append(b, " WHERE "...)
	return string(appendKeyIn(b, d, t, 1, n))
}

// nullColumnSQL builds UPDATE t SET col = NULL for the rows of n keys: WHERE
// pk IN (?, ...) for a single-column key; for a composite key, n must be 1
// and the row is matched column by column.
func nullColumnSQL(d dialect.Dialect, t *mapper.Table, col *mapper.Column, n int) string {
	b := append([]byte("UPDATE "), d.Quote(t.Name)...)
	b = append(b, " SET "...)
	b = append(b, d.Quote(col.Name)...)
	b = append(b, " = NULL WHERE "...)
	if len(t.PK) > 1 {
		return string(appendKeyWhere(b, d, t, 1))
	}
	b = append(b, d.Quote(t.PK[0].Name)...)
	b = append(b, " IN ("...)
	b = appendPlaceholders(b, d, 1, n)
	return string(append(b, ')'))
}

// probeSQL builds SELECT 1 FROM table WHERE 1 = 0: it fails exactly when
// the table does not exist, and reads nothing.
func probeSQL(d dialect.Dialect, table string) string {
	return string(append(append([]byte("SELECT 1 FROM "), d.Quote(table)...), " WHERE 1 = 0"...))
}

// joinDeleteSQL builds DELETE FROM join WHERE col IN (?, ...) for n keys:
// the join rows of n deleted objects of one side.
func joinDeleteSQL(d dialect.Dialect, join, col string, n int) string {
	b := append([]byte("DELETE FROM "), d.Quote(join)...)
	b = append(b, " WHERE "...)
	b = append(b, d.Quote(col)...)
	b = append(b, " IN ("...)
	b = appendPlaceholders(b, d, 1, n)
	return string(append(b, ')'))
}

// joinPairsDeleteSQL builds DELETE FROM join WHERE (left, right) IN ((?,
// ?), ...) for n pairs; the arguments are the pairs in order.
func joinPairsDeleteSQL(d dialect.Dialect, join, left, right string, n int) string {
	b := append([]byte("DELETE FROM "), d.Quote(join)...)
	b = append(b, " WHERE ("...)
	b = append(b, d.Quote(left)+", "+d.Quote(right)...)
	b = append(b, ") IN ("...)
	b = appendTuples(b, d, n, 2)
	return string(append(b, ')'))
}

// joinInsertSQL builds INSERT INTO join (left, right) VALUES (?, ?), ...
// for n pairs.
func joinInsertSQL(d dialect.Dialect, join, left, right string, n int) string {
	b := append([]byte("INSERT INTO "), d.Quote(join)...)
	b = append(b, " ("...)
	b = append(b, d.Quote(left)+", "+d.Quote(right)...)
	b = append(b, ") VALUES "...)
	return string(appendTuples(b, d, n, 2))
}

// loadSQL builds the query loading relation r for n keys, ordered by the
// matched key and then the target's key, so that each parent's children
// come in key order. A many-to-many relation selects the join row's key of
// this side first, then the target's columns.
func loadSQL(d dialect.Dialect, r *mapper.Relation, target *mapper.Table, n int) string {
	q := d.Quote
	tq := q(target.Name) + "."
	b := []byte("SELECT ")
	var match string
	if j := r.Join; j != nil {
		match = q(j.Name) + "." + q(j.Left)
		b = append(b, match+", "...)
		b = appendList(b, d, tq, target.Columns)
		b = append(b, " FROM "+q(target.Name)+" JOIN "+q(j.Name)+" ON "+q(j.Name)+"."+q(j.Right)+" = "+tq+q(target.PK[0].Name)...)
	} else {
		b = appendList(b, d, "", target.Columns)
		b = append(b, " FROM "+q(target.Name)...)
		mcol := target.PK[0].Name
		if !r.BelongsTo() {
			mcol = r.Column
		}
		match = q(mcol)
	}
	b = append(b, " WHERE "+match+" IN ("...)
	b = appendPlaceholders(b, d, 1, n)
	b = append(appendLive(append(b, ')'), d, tq, target), " ORDER BY "...)
	if r.Join != nil {
		b = append(b, match+", "...)
	}
	return string(appendList(b, d, tq, target.PK))
}

// noopWriteSQL builds DELETE FROM table WHERE 0 = 1: a write that changes
// nothing, which makes SQLite's deferred transaction take the write lock.
func noopWriteSQL(d dialect.Dialect, table string) string {
	return string(append(append([]byte("DELETE FROM "), d.Quote(table)...), " WHERE 0 = 1"...))
}

// selectForUpdateSQL builds Get's statement with FOR UPDATE where the
// dialect has row locks: the locked Get of a locking retry. Elsewhere
// (SQLite) it is Get's own statement, run in a transaction that holds the
// database's write lock.
func selectForUpdateSQL(d dialect.Dialect, t *mapper.Table) string {
	b := []byte(selectByKeySQL(d, t, t.Columns))
	if d.Capabilities().ForUpdate {
		b = append(b, " FOR UPDATE"...)
	}
	return string(b)
}

// selectText is the shape of one of Q's SELECT statements.
type selectText struct {
	what      string   // the select list: quoted columns, "COUNT(*)", "1"
	where     []string // conditions with "?" placeholders, ANDed, each parenthesized
	order     []string // ORDER BY terms, already quoted
	limit     bool     // LIMIT ?
	offset    bool     // OFFSET ? after the LIMIT; only with limit
	forUpdate bool     // FOR UPDATE, where the dialect has row locks
}

// querySQL builds SELECT what FROM table WHERE (w1) AND (w2) ... ORDER BY
// ... LIMIT ? OFFSET ? FOR UPDATE, each clause only when st asks for it,
// with "?" placeholders for dialect.Expand.
func querySQL(d dialect.Dialect, table string, st selectText) string {
	// Q builds its text on every run (it is not cached), so the buffer is
	// sized once: the fixed words, and names quoted one character each side.
	n := len("SELECT  FROM ''") + len(st.what) + len(table) + len(" ORDER BY  LIMIT ? OFFSET ? FOR UPDATE")
	for _, w := range st.where {
		n += len(" WHERE ()") + len(w)
	}
	for _, o := range st.order {
		n += len(", ") + len(o)
	}
	b := append(make([]byte, 0, n), "SELECT "...)
	b = append(b, st.what...)
	b = append(b, " FROM "...)
	b = append(b, d.Quote(table)...)
	return string(appendSelectTail(b, d, st))
}

// appendWhere appends " WHERE (w1) AND (w2) ...": each condition in
// parentheses, so that an OR inside one cannot escape it.
func appendWhere(b []byte, where []string) []byte {
	for i, w := range where {
		if i == 0 {
			b = append(b, " WHERE ("...)
		} else {
			b = append(b, " AND ("...)
		}
		b = append(b, w...)
		b = append(b, ')')
	}
	return b
}

// updateAllSQL builds UpdateAll's UPDATE t SET a = ?, b = ? WHERE (...),
// setting the named columns in the given order and, with a version column,
// incrementing it: v = v + 1.
func updateAllSQL(d dialect.Dialect, t *mapper.Table, names, where []string) string {
	b := append([]byte("UPDATE "), d.Quote(t.Name)...)
	b = append(b, " SET "...)
	for i, name := range names {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, d.Quote(name)...)
		b = append(b, " = ?"...)
	}
	if v := t.Version; v != nil {
		b = append(b, ", "...)
		b = append(b, d.Quote(v.Name)...)
		b = append(b, " = "...)
		b = append(b, d.Quote(v.Name)...)
		b = append(b, " + 1"...)
	}
	return string(appendWhere(b, where))
}

// deleteAllSQL builds DeleteAll's DELETE FROM table WHERE (...).
func deleteAllSQL(d dialect.Dialect, table string, where []string) string {
	b := append([]byte("DELETE FROM "), d.Quote(table)...)
	return string(appendWhere(b, where))
}

// The DDL of CreateTables and DropTables. A CREATE TABLE lists one
// definition a line, so that a failing statement in a log reads easily.

// createTableSQL returns the CREATE TABLE statement of t and, where the
// dialect cannot declare indexes inline, its CREATE INDEX statements; fks
// are the foreign keys declared inline (those of t as child are used).
func createTableSQL(d dialect.Dialect, t *mapper.Table, fks []mapper.ForeignKey) ([]string, error) {
	b := append([]byte("CREATE TABLE IF NOT EXISTS "), d.Quote(t.Name)...)
	b = append(b, " ("...)
	n := 0
	def := func() {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, "\n  "...)
	}
	inlinePK := false
	for _, c := range t.Columns {
		def()
		if c.Auto && c.PK && c.SQLType == "" {
			ddl, inline := d.AutoIncrement(d.Quote(c.Name), c.Type)
			inlinePK = inlinePK || inline
			b = append(b, ddl...)
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
		b = append(b, d.Quote(c.Name)...)
		b = append(b, ' ')
		b = append(b, typ...)
		if !c.Nullable {
			b = append(b, " NOT NULL"...)
			if c.ReadOnly && c.SQLType == "" {
				// The session never writes a readonly column, so an INSERT
				// must be able to leave it out.
				b = append(b, zeroDefault(c)...)
			}
		}
	}
	if !inlinePK {
		def()
		b = append(b, "PRIMARY KEY ("...)
		b = appendList(b, d, "", t.PK)
		b = append(b, ')')
	}
	for _, c := range t.Columns {
		if c.Unique {
			def()
			b = append(b, "UNIQUE ("...)
			b = append(b, d.Quote(c.Name)...)
			b = append(b, ')')
		}
	}
	var after []string
	for _, c := range t.Columns {
		if !c.Indexed {
			continue
		}
		name := indexName(t.Name, c.Name)
		if d.Capabilities().CreateIndexIfNotExists {
			after = append(after, createIndexSQL(d, name, t.Name, c.Name))
		} else {
			// Inside CREATE TABLE IF NOT EXISTS the index comes and goes
			// with the table.
			def()
			b = appendInlineIndex(b, d, name, c.Name)
		}
	}
	for _, fk := range fks {
		if fk.Child != t {
			continue
		}
		def()
		b = appendFKClause(b, d, fk.Column.Name, fk.Parent.Name, fk.Parent.PK[0].Name, fk.Cascade)
	}
	b = append(b, "\n)"...)
	return append([]string{string(b)}, after...), nil
}

// joinTableSQL returns the CREATE TABLE statement of a many-to-many join
// table — its two key columns, typed like the keys they refer to, as a
// composite primary key, each a foreign key that cascades on delete (a
// pair goes with either of its rows) — and an index on the second column,
// which the primary key's index does not serve (loading or deleting from
// the other side).
func joinTableSQL(d dialect.Dialect, j mapper.Join) ([]string, error) {
	sides := []struct {
		col string
		t   *mapper.Table
	}{{j.JoinTable.Left, j.Left}, {j.JoinTable.Right, j.Right}}
	b := append([]byte("CREATE TABLE IF NOT EXISTS "), d.Quote(j.Name)...)
	b = append(b, " ("...)
	for i, sd := range sides {
		pk := sd.t.PK[0]
		typ, err := d.ColumnType(dialect.Column{Type: pk.Type, Size: pk.Size, SQLType: pk.SQLType, Key: true})
		if err != nil {
			return nil, &mapper.DefinitionError{Type: sd.t.Type, Field: pk.Field, Reason: "join table " + j.Name + ": " + err.Error(), Err: err}
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n  "...)
		b = append(b, d.Quote(sd.col)...)
		b = append(b, ' ')
		b = append(b, typ...)
		b = append(b, " NOT NULL"...)
	}
	b = append(b, ",\n  PRIMARY KEY ("...)
	b = append(b, d.Quote(j.JoinTable.Left)...)
	b = append(b, ", "...)
	b = append(b, d.Quote(j.JoinTable.Right)...)
	b = append(b, ')')
	for _, sd := range sides {
		b = append(b, ",\n  "...)
		b = appendFKClause(b, d, sd.col, sd.t.Name, sd.t.PK[0].Name, true)
	}
	idx := indexName(j.Name, j.JoinTable.Right)
	var after []string
	if d.Capabilities().CreateIndexIfNotExists {
		after = append(after, createIndexSQL(d, idx, j.Name, j.JoinTable.Right))
	} else {
		b = append(b, ",\n  "...)
		b = appendInlineIndex(b, d, idx, j.JoinTable.Right)
	}
	b = append(b, "\n)"...)
	return append([]string{string(b)}, after...), nil
}

// createIndexSQL builds CREATE INDEX IF NOT EXISTS name ON table (col).
func createIndexSQL(d dialect.Dialect, name, table, col string) string {
	b := append([]byte("CREATE INDEX IF NOT EXISTS "), d.Quote(name)...)
	b = append(b, " ON "...)
	b = append(b, d.Quote(table)...)
	b = append(b, " ("...)
	b = append(b, d.Quote(col)...)
	return string(append(b, ')'))
}

// appendInlineIndex appends INDEX name (col), an index declared inside
// CREATE TABLE (MySQL).
func appendInlineIndex(b []byte, d dialect.Dialect, name, col string) []byte {
	b = append(b, "INDEX "...)
	b = append(b, d.Quote(name)...)
	b = append(b, " ("...)
	b = append(b, d.Quote(col)...)
	return append(b, ')')
}

// appendFKClause appends FOREIGN KEY (col) REFERENCES parent (pk), with
// ON DELETE CASCADE when cascade is set.
func appendFKClause(b []byte, d dialect.Dialect, col, parent, pk string, cascade bool) []byte {
	b = append(b, "FOREIGN KEY ("...)
	b = append(b, d.Quote(col)...)
	b = append(b, ") REFERENCES "...)
	b = append(b, d.Quote(parent)...)
	b = append(b, " ("...)
	b = append(b, d.Quote(pk)...)
	b = append(b, ')')
	if cascade {
		b = append(b, " ON DELETE CASCADE"...)
	}
	return b
}

// addForeignKeySQL builds ALTER TABLE child ADD CONSTRAINT name FOREIGN KEY
// ...: the constraint CreateTables adds once both tables of a cycle exist.
func addForeignKeySQL(d dialect.Dialect, fk mapper.ForeignKey) string {
	b := append([]byte("ALTER TABLE "), d.Quote(fk.Child.Name)...)
	b = append(b, " ADD CONSTRAINT "...)
	b = append(b, d.Quote(fkName(fk))...)
	b = append(b, ' ')
	return string(appendFKClause(b, d, fk.Column.Name, fk.Parent.Name, fk.Parent.PK[0].Name, fk.Cascade))
}

// dropForeignKeySQL builds ALTER TABLE child DROP FOREIGN KEY name (MySQL)
// or DROP CONSTRAINT name (PostgreSQL), in the dialect's words; only for a
// dialect whose Capabilities().DropForeignKey is set.
func dropForeignKeySQL(d dialect.Dialect, fk mapper.ForeignKey) string {
	b := append([]byte("ALTER TABLE "), d.Quote(fk.Child.Name)...)
	b = append(b, ' ')
	b = append(b, d.Capabilities().DropForeignKey...)
	return string(append(b, d.Quote(fkName(fk))...))
}

// clearForeignKeySQL builds UPDATE child SET col = NULL: on a dialect that
// cannot drop an inline constraint (SQLite), it lets DROP TABLE delete the
// rows the key would otherwise refuse.
func clearForeignKeySQL(d dialect.Dialect, fk mapper.ForeignKey) string {
	b := append([]byte("UPDATE "), d.Quote(fk.Child.Name)...)
	b = append(b, " SET "...)
	b = append(b, d.Quote(fk.Column.Name)...)
	return string(append(b, " = NULL"...))
}

// dropTableSQL builds DROP TABLE IF EXISTS table.
func dropTableSQL(d dialect.Dialect, table string) string {
	return string(append([]byte("DROP TABLE IF EXISTS "), d.Quote(table)...))
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

// upsertSQL builds Upsert's statement for rows rows: insertSQL's INSERT
// of cols followed by the dialect's conflict clause. With set empty the
// existing row is kept: ON CONFLICT (target) DO NOTHING, or on MySQL the
// no-op ON DUPLICATE KEY UPDATE pk = pk (INSERT IGNORE would also turn
// other errors into warnings). With set, those columns take the new row's
// values and a version column is bumped. RETURNING ret follows when ret
// is not empty.
func upsertSQL(d dialect.Dialect, t *mapper.Table, cols []*mapper.Column, rows int, target, set, ret []*mapper.Column) string {
	b := []byte(insertSQL(d, t, cols, nil, rows, false))
	onDup := d.Capabilities().Upsert == dialect.UpsertOnDuplicateKey
	if onDup {
		b = append(b, " ON DUPLICATE KEY UPDATE "...)
		if len(set) == 0 {
			pk := d.Quote(t.PK[0].Name)
			b = append(append(append(b, pk...), " = "...), pk...)
		}
	} else {
		b = append(b, " ON CONFLICT ("...)
		b = appendList(b, d, "", target)
		b = append(b, ") DO "...)
		if len(set) == 0 {
			b = append(b, "NOTHING"...)
		} else {
			b = append(b, "UPDATE SET "...)
		}
	}
	for i, c := range set {
		if i > 0 {
			b = append(b, ", "...)
		}
		q := d.Quote(c.Name)
		b = append(append(b, q...), " = "...)
		if onDup {
			b = append(append(append(b, "VALUES("...), q...), ')')
		} else {
			b = append(append(b, "EXCLUDED."...), q...)
		}
	}
	if v := t.Version; v != nil && len(set) > 0 {
		// The existing row's version, qualified: inside ON CONFLICT DO
		// UPDATE a bare name could be read as the new row's.
		q := d.Quote(v.Name)
		b = append(append(append(b, ", "...), q...), " = "...)
		if !onDup {
			b = append(append(b, d.Quote(t.Name)...), '.')
		}
		b = append(append(b, q...), " + 1"...)
	}
	if len(ret) > 0 {
		b = append(b, " RETURNING "...)
		b = appendList(b, d, "", ret)
	}
	return string(b)
}

// upsertReselectSQL builds SELECT every column FROM t WHERE the target
// columns equal one of rows tuples — c IN (?, ...) for one column, (a = ?
// AND b = ?) OR ... for more — locking the rows where the dialect can, so
// that on MySQL the read sees the latest committed row, the one the
// INSERT met, and not the transaction's older snapshot.
func upsertReselectSQL(d dialect.Dialect, t *mapper.Table, target []*mapper.Column, rows int) string {
	b := append([]byte("SELECT "), appendList(nil, d, "", t.Columns)...)
	b = append(b, " FROM "...)
	b = append(b, d.Quote(t.Name)...)
	b = append(b, " WHERE "...)
	if len(target) == 1 {
		b = append(b, d.Quote(target[0].Name)...)
		b = append(b, " IN ("...)
		b = appendPlaceholders(b, d, 1, rows)
		b = append(b, ')')
	} else {
		for r := range rows {
			if r > 0 {
				b = append(b, " OR "...)
			}
			b = append(b, '(')
			for i, c := range target {
				if i > 0 {
					b = append(b, " AND "...)
				}
				b = append(b, d.Quote(c.Name)...)
				b = append(b, " = "...)
				b = d.AppendPlaceholder(b, r*len(target)+i+1)
			}
			b = append(b, ')')
		}
	}
	if d.Capabilities().ForUpdate {
		b = append(b, " FOR UPDATE"...)
	}
	return string(b)
}

// projectSQL builds a projection's SELECT what FROM table JOIN ... WHERE
// ... ORDER BY ... LIMIT ? OFFSET ? FOR UPDATE: querySQL's statement with
// the (trusted) join clauses after FROM, "?" placeholders for
// dialect.Expand.
// appendSelectTail appends what follows FROM's table (and a projection's
// joins) in a SELECT: WHERE, ORDER BY, LIMIT/OFFSET, FOR UPDATE.
func appendSelectTail(b []byte, d dialect.Dialect, st selectText) []byte {
	b = appendWhere(b, st.where)
	for i, o := range st.order {
		if i == 0 {
			b = append(b, " ORDER BY "...)
		} else {
			b = append(b, ", "...)
		}
		b = append(b, o...)
	}
	if st.limit {
		b = append(b, " LIMIT ?"...)
		if st.offset {
			b = append(b, " OFFSET ?"...)
		}
	}
	if st.forUpdate && d.Capabilities().ForUpdate {
		b = append(b, " FOR UPDATE"...)
	}
	return b
}

func projectSQL(d dialect.Dialect, table string, joins []string, st selectText) string {
	b := append([]byte("SELECT "), st.what...)
	b = append(b, " FROM "...)
	b = append(b, d.Quote(table)...)
	for _, j := range joins {
		b = append(append(b, ' '), j...)
	}
	return string(appendSelectTail(b, d, st))
}
