package dialect

import (
	"reflect"
)

// SQLite is the dialect of SQLite through modernc's pure-Go driver
// (registered by package dialect/sqlite), which is recent enough (3.35 or
// later) for INSERT ... RETURNING.
var SQLite Dialect = sqliteDialect{}

var _ Dialect = sqliteDialect{}

type sqliteDialect struct{}

func (sqliteDialect) Name() string { return "sqlite" }

func (sqliteDialect) Quote(ident string) string { return quote(ident, '"') }

func (sqliteDialect) AppendPlaceholder(b []byte, _ int) []byte { return append(b, '?') }

func (sqliteDialect) Rebind(query string) string { return sqliteSyntax.rebind(query) }

func (sqliteDialect) syntax() *syntax { return &sqliteSyntax }

// sqliteCaps: SQLite locks the whole database, so it has no FOR UPDATE and
// begins transactions deferred or immediate. MaxParams is
// SQLITE_MAX_VARIABLE_NUMBER, 32766 since SQLite 3.32.
var sqliteCaps = standardSavepoints(Capabilities{
	Returning:              true,
	CreateIndexIfNotExists: true,
	EmptyInsert:            "DEFAULT VALUES",
	Begin:                  BeginDeferredOrImmediate,
	MaxParams:              32766,
	Upsert:                 UpsertOnConflict,
})

func (sqliteDialect) Capabilities() Capabilities { return sqliteCaps }

func (sqliteDialect) Returning() bool { return sqliteCaps.Returning }

func (sqliteDialect) MaxParams() int { return sqliteCaps.MaxParams }

func (sqliteDialect) ColumnType(c Column) (string, error) {
	if c.SQLType != "" {
		return c.SQLType, nil
	}
	k, err := kindOf("sqlite", c)
	if err != nil {
		return "", err
	}
	return sqliteTypes[k], nil
}

// SQLite stores by type affinity, so every integer is INTEGER (a signed
// 64-bit value) and sizes are not enforced.
var sqliteTypes = [numKinds]string{
	kindBool:    "BOOLEAN",
	kindInt8:    "INTEGER",
	kindInt16:   "INTEGER",
	kindInt32:   "INTEGER",
	kindInt64:   "INTEGER",
	kindUint8:   "INTEGER",
	kindUint16:  "INTEGER",
	kindUint32:  "INTEGER",
	kindUint64:  "INTEGER",
	kindFloat32: "REAL",
	kindFloat64: "REAL",
	kindString:  "TEXT",
	kindBytes:   "BLOB",
	// modernc's SQLite driver parses columns declared DATETIME, TIMESTAMP or
	// DATE back into time.Time; under any other name a time reads as text.
	kindTime: "DATETIME",
	// SQLite has no decimal type: NUMERIC affinity would turn
	// "12345.6789" into a float of 15 digits, so decimals are kept as text.
	kindDecimal: "TEXT",
	kindUUID:    "BLOB",
	kindJSON:    "TEXT",
}

// AutoIncrement declares the rowid alias: only "INTEGER PRIMARY KEY", spelled
// exactly so, makes the column the rowid, so the key is part of the clause.
// AUTOINCREMENT keeps the ids of deleted rows from being handed out again.
func (sqliteDialect) AutoIncrement(quotedName string, _ reflect.Type) (string, bool) {
	return quotedName + " INTEGER PRIMARY KEY AUTOINCREMENT", true
}

func (sqliteDialect) Classify(err error) Class { return classifyVia("sqlite", err) }

func (sqliteDialect) ServerError(err error) (string, bool) { return serverErrorVia("sqlite", err) }
