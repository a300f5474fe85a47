package dialect

// Capabilities is what a database can do, as data. The ORM core asks these,
// never a dialect's name, so that a database's behaviour changes in its own
// dialect and a new database is described by filling them in.
type Capabilities struct {
	// Returning: INSERT accepts a RETURNING clause that yields one row per
	// inserted row, in order, for single- and multi-row INSERTs (PostgreSQL,
	// SQLite 3.35+, MariaDB 10.5+). Without it (MySQL) the caller inserts one
	// row at a time and reads LastInsertId.
	Returning bool

	// ForUpdate: SELECT ... FOR UPDATE locks the rows it reads. Without it
	// (SQLite, which locks the whole database), the transaction takes the
	// database's write lock before reading rows it means to update.
	ForUpdate bool

	// CreateIndexIfNotExists: CREATE INDEX IF NOT EXISTS is valid. Without
	// it (MySQL), indexes are declared inside CREATE TABLE IF NOT EXISTS, so
	// they come and go with the table.
	CreateIndexIfNotExists bool

	// EmptyInsert is what follows "INSERT INTO t" for a row that lists no
	// column, every value being the column's default: "DEFAULT VALUES" in
	// standard SQL, "() VALUES ()" on MySQL.
	EmptyInsert string

	// DropForeignKey is the ALTER TABLE clause that drops a named foreign
	// key, the name following it: "DROP FOREIGN KEY " on MySQL, "DROP
	// CONSTRAINT IF EXISTS " in standard SQL. Empty (SQLite): foreign keys
	// cannot be added or dropped after CREATE TABLE, and need none, as
	// they may name a table created later (they are checked when rows
	// change). CreateTables adds, and DropTables drops, the foreign key
	// that breaks a cycle of tables with it.
	DropForeignKey string

	// Begin is how transactions begin; see [BeginStrategy].
	Begin BeginStrategy

	// MaxParams is the most bound parameters one statement may carry.
	MaxParams int

	// ArrayParams: a Go slice binds as one array parameter, so a list
	// longer than MaxParams can be sent as = ANY(?) (PostgreSQL).
	ArrayParams bool

	// Uint64: every uint64 can be stored (MySQL BIGINT UNSIGNED, PostgreSQL
	// NUMERIC(20)). Without it (SQLite, whose integers are signed 64-bit)
	// a model with a uint64 column is refused when it is registered.
	Uint64 bool

	// Upsert is how an INSERT says what to do with a row whose key exists
	// already; see [UpsertStyle].
	Upsert UpsertStyle

	// Savepoint, ReleaseSavepoint and RollbackToSavepoint are the
	// statements that open, release and roll back to a savepoint; the
	// (unquoted, generated) savepoint name follows them.
	Savepoint, ReleaseSavepoint, RollbackToSavepoint string
}

// BeginStrategy is how a database's transactions begin.
type BeginStrategy int

const (
	// BeginPlain: one kind of BEGIN; the server locks rows as statements
	// need them (MySQL, PostgreSQL).
	BeginPlain BeginStrategy = iota

	// BeginDeferredOrImmediate: the database has one writer at a time
	// (SQLite). A transaction whose first statement writes begins
	// IMMEDIATE, taking the write lock at BEGIN so that it cannot fail
	// halfway when a read lock would have to be upgraded; one that starts
	// with reads begins deferred (database/sql's ReadOnly option, which the
	// sqlite package's connections turn into a plain BEGIN); and a unit of
	// work retried after a lock conflict begins IMMEDIATE from the start.
	BeginDeferredOrImmediate
)

// UpsertStyle is the SQL a database speaks for "insert, or on a key
// conflict update or keep the existing row".
type UpsertStyle int

const (
	// UpsertOnConflict: INSERT ... ON CONFLICT (cols) DO UPDATE SET c =
	// EXCLUDED.c, or DO NOTHING (PostgreSQL, SQLite 3.24+). The conflict
	// target names the unique key that decides.
	UpsertOnConflict UpsertStyle = iota

	// UpsertOnDuplicateKey: INSERT ... ON DUPLICATE KEY UPDATE c =
	// VALUES(c) (MySQL, MariaDB). There is no conflict target: a
	// duplicate in any unique key of the table updates the row, and there
	// is no DO NOTHING (INSERT IGNORE would also hide other errors, so a
	// no-op assignment such as pk = pk stands for it). VALUES(c) rather
	// than MySQL 8.0.19's row alias, which MariaDB does not have.
	UpsertOnDuplicateKey
)

// standardSavepoints are the savepoint statements of SQL:1999, which every
// database of this package speaks.
func standardSavepoints(c Capabilities) Capabilities {
	c.Savepoint, c.ReleaseSavepoint, c.RollbackToSavepoint = "SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT "
	return c
}
