// Package dialect describes the SQL differences between the databases Tally
// supports: MySQL/MariaDB, PostgreSQL and SQLite.
//
// A [Dialect] is a small immutable value: it quotes identifiers, turns the
// portable `?` placeholder into the database's own, knows whether a multi-row
// INSERT can return generated keys (RETURNING), how many parameters one
// statement may bind, which DDL type stores a Go type, and how to classify a
// driver error. Dialect values are safe for concurrent use.
//
// What each database can do is data, its [Capabilities]: the ORM asks them
// and never compares names. The drivers live apart, one package per
// database (dialect/mysql, dialect/postgres, dialect/sqlite), each of which
// registers a [Driver] when imported; only those packages import a
// database/sql driver, so a program links only the databases it names:
//
//	import _ "github.com/tallyorm/tally/dialect/postgres"
//
// Users normally only name a dialect, for [github.com/tallyorm/tally/orm.New]:
//
//	eng := orm.New(db, dialect.PostgreSQL)
//
// [ByName] and [ForMySQLServer] pick a dialect from configuration or from
// the server itself. [Expand] rebinds a query and expands list arguments, so
// that `id IN (?)` can take a slice.
//
// The package knows nothing of objects or sessions.
package dialect

import (
	"fmt"
	"reflect"
	"strings"
)

// Dialect is the SQL flavour of one database. Implementations are immutable
// and safe for concurrent use.
type Dialect interface {
	// Name is "mysql", "postgres" or "sqlite".
	Name() string

	// Quote returns ident quoted as an identifier, doubling any quote
	// character inside it, so that any string is a safe identifier.
	Quote(ident string) string

	// AppendPlaceholder appends the placeholder for the n-th bound value
	// (n counts from 1) to b: "?" or "$n".
	AppendPlaceholder(b []byte, n int) []byte

	// Rebind rewrites the portable `?` placeholders of query into the
	// dialect's own. A `?` inside a quoted string, a quoted identifier or a
	// comment is left alone, and so is PostgreSQL's `??` escape, which
	// becomes a literal `?`.
	//
	// `??` is that escape on every dialect of this package, so one query
	// text serves them all; on MySQL and SQLite the `?` it leaves is still a
	// placeholder to the server, so only PostgreSQL has a use for it (jsonb's
	// `?`, `?|` and `?&` operators). A query without `?` is returned as is,
	// without allocating.
	Rebind(query string) string

	// Capabilities describes what the database can do.
	Capabilities() Capabilities

	// Returning is Capabilities().Returning: INSERT (single- or multi-row)
	// accepts a RETURNING clause that yields one row per inserted row, in
	// order.
	Returning() bool

	// MaxParams is Capabilities().MaxParams: the most bound parameters one
	// statement may carry.
	MaxParams() int

	// ColumnType returns the DDL type that stores values of Go type t for
	// a column described by c.
	ColumnType(c Column) (string, error)

	// AutoIncrement returns the full DDL for a database-generated integer
	// primary-key column (name already quoted), e.g. "`id` BIGINT NOT NULL
	// AUTO_INCREMENT". inlinePK reports whether the clause already declares
	// the primary key (SQLite's INTEGER PRIMARY KEY), so the table must not
	// add a PRIMARY KEY constraint of its own.
	AutoIncrement(quotedName string, t reflect.Type) (ddl string, inlinePK bool)

	// Classify says which [Class] a driver error belongs to. An error it
	// does not recognise is [ClassOther]. The dialects of this package
	// know a driver's own errors (a duplicate key, a deadlock) only when
	// its dialect/<db> package is imported, which registers its [Driver];
	// without it they recognise only connection failures.
	Classify(err error) Class

	// ServerError reports whether err carries an error the database sent,
	// as opposed to a failure to reach it, and its code ("mysql error
	// 1062", "SQLSTATE 23505", "sqlite code 2067") for logs, which must not
	// quote values. Like Classify it needs the dialect/<db> package.
	ServerError(err error) (code string, ok bool)
}

// Column is what [Dialect.ColumnType] needs to know of a column.
type Column struct {
	Type    reflect.Type // the Go field type (pointer and sql.Null* unwrapped by the caller are also accepted)
	Size    int          // size=N from the tag; 0 if none
	Key     bool         // part of a primary key, unique or indexed: MySQL needs a bounded VARCHAR
	SQLType string       // type=... override from the tag; when set it is returned as is

	// Precision and Scale are the tag's precision=P,scale=S: the column is
	// an exact decimal. 0 when absent.
	Precision, Scale int
	// JSON is the tag's json option: the value is stored as JSON text.
	JSON bool
}

// Class is the category of a database error that callers act on.
type Class int

// The error classes. Retryable errors are those after which the whole
// transaction may be run again with a fair chance of success.
const (
	ClassOther      Class = iota
	ClassUnique           // a unique or primary-key constraint was violated
	ClassForeignKey       // a foreign-key constraint was violated
	ClassRetryable        // deadlock, lock wait timeout, serialization failure, SQLite busy
	ClassConnection       // the connection is broken or could not be made
	ClassTimeout          // the server cancelled a statement that ran past its statement timeout
)

// String names the class.
func (c Class) String() string {
	switch c {
	case ClassUnique:
		return "unique violation"
	case ClassForeignKey:
		return "foreign key violation"
	case ClassRetryable:
		return "retryable"
	case ClassConnection:
		return "connection"
	case ClassTimeout:
		return "statement timeout"
	}
	return "other"
}

// ByName returns the dialect for a database/sql driver or database name, so
// that configuration can name a database as a string: "mysql" ([MySQL]),
// "mariadb" ([MariaDB]), "postgres", "postgresql" or "pgx" ([PostgreSQL]),
// "sqlite" or "sqlite3" ([SQLite]). For a MySQL server whose kind is not
// known in advance, prefer [ForMySQLServer].
func ByName(name string) (Dialect, error) {
	switch name {
	case "mysql":
		return MySQL, nil
	case "mariadb":
		return MariaDB, nil
	case "postgres", "postgresql", "pgx":
		return PostgreSQL, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	}
	return nil, fmt.Errorf("dialect: unknown dialect %q; use mysql, mariadb, postgres or sqlite", name)
}

// quote quotes ident with q, doubling any q inside it.
func quote(ident string, q byte) string {
	var b strings.Builder
	b.Grow(len(ident) + 2 + strings.Count(ident, string(q)))
	b.WriteByte(q)
	for {
		i := strings.IndexByte(ident, q)
		if i < 0 {
			break
		}
		b.WriteString(ident[:i+1])
		b.WriteByte(q)
		ident = ident[i+1:]
	}
	b.WriteString(ident)
	b.WriteByte(q)
	return b.String()
}
