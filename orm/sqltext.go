package orm

import (
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
// functions favour clarity over speed. (Q's SELECT, UpdateAll and DeleteAll
// build their text from the query's clauses in query.go; the DDL of
// CreateTables and DropTables lives in ddl.go.)

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
	for r := range rows {
		if r > 0 {
			b = append(b, ", "...)
		}
		if width > 1 {
			b = append(b, '(')
		}
		b = appendPlaceholders(b, d, r*width+1, width)
		if width > 1 {
			b = append(b, ')')
		}
	}
	return b
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
	if len(t.PK) == 1 {
		b = append(b, d.Quote(t.PK[0].Name)...)
	} else {
		b = append(b, '(')
		b = appendList(b, d, "", t.PK)
		b = append(b, ')')
	}
	b = append(b, " IN ("...)
	b = appendTuples(b, d, n, len(t.PK))
	return string(append(b, ')'))
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
	b = append(b, ") ORDER BY "...)
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
