// Package orm is Tally's unit of work: declare plain structs with db tags,
// open a [Session] per request or job, read and change objects, and
// [Session.Commit]; the session works out the INSERT, UPDATE and DELETE
// statements, orders and batches them, and runs them in one transaction.
//
// # Opening a database
//
// An [Engine] is the process-wide entry point for one database: a pool,
// its dialect and the model metadata. A program imports the package of each
// database it uses for its side effect, as with database/sql drivers, and
// opens an engine by that database's name:
//
//	import _ "github.com/tallyorm/tally/dialect/postgres" // or dialect/mysql, dialect/sqlite
//
//	eng, err := orm.Open(ctx, "postgres", dsn, orm.WithMaxOpenConns(32))
//	defer eng.Close()
//
// [New] wraps a *sql.DB the program opened itself. [Engine.CreateTables]
// creates the tables of models (for tests and demos; use a migration tool
// in production).
//
// # Models
//
// A model is a struct. Its db tags name columns and mark the primary key
// (pk), database-generated keys (auto), an optimistic-lock counter
// (version), unique and indexed columns; rel tags declare relations:
//
//	type Account struct {
//		ID      int64    `db:"id,pk,auto"`
//		Owner   string   `db:"owner,unique"`
//		Balance int64    `db:"balance"`
//		Version int64    `db:"version,version"`
//		Entries []*Entry `rel:"account_id"` // has-many: entries.account_id → accounts.id
//	}
//
// The tags are parsed by package [github.com/tallyorm/tally/mapper];
// [Engine.Register] checks models at start-up.
//
// # Sessions
//
// [Engine.NewSession] starts a unit of work. [Session.Add] makes objects
// pending, [Get] and [Query] load them, and every loaded object is tracked:
// at most one object per row (the identity map), compared at flush with a
// snapshot of its columns, so that an UPDATE writes only what changed.
// A Commit with one statement sends it alone, in autocommit; with more,
// on PostgreSQL, it pipelines them (BEGIN, the statements and COMMIT in
// one round trip, one more per INSERT whose keys a later statement
// needs); elsewhere it sends them one by one in a transaction.
// [Session.Commit] flushes and commits; a failed Commit rolls back and
// leaves the session as it was before, so the caller can fix the cause and
// commit again, or [Session.Rollback]. [Session.Savepoint] runs part of the
// work so that it can fail alone. Always [Session.Close] a session: it
// rolls back what is uncommitted and returns the connection.
//
// # Queries
//
// [Query] builds a SELECT for a model ([Q]): Where takes SQL with ?
// placeholders, whose values are always bound; OrderBy takes column names,
// checked against the model, so a sort key from a URL cannot inject SQL.
// All, One, First, Count, Exists and Iter run it; ForUpdate locks the rows,
// Load fetches relations without N+1 queries, UpdateAll and DeleteAll
// change rows in bulk — only with a Where, or after [Q.AllRows] says every
// row is meant; otherwise they return [ErrMissingWhere] before any SQL.
// A bulk statement that is a plain session's first work (no transaction,
// nothing to flush, no tracked object of its table; not a WithSnapshot
// session, nor one of [Engine.Do] or [Engine.Middleware]) runs alone in
// autocommit and is committed when it returns, like EF Core's
// ExecuteUpdate: a later Rollback or failed Commit does not undo it. In
// every other case it runs in the session's transaction and commits or
// rolls back with it. A
// list bound to one ? (id IN (?)) expands to one parameter per value, up to
// the database's limit. [Raw] maps a hand-written query, [Session.Exec] runs
// a statement.
//
// # Values
//
// Times are written in UTC truncated to microseconds (the object's field
// too) and loaded in UTC; an empty []byte is not NULL; 16-byte arrays
// (UUIDs) are stored as 16 bytes; decimals, uint64 and json columns are
// described in the README's "Column types" section.
//
// # One session per request
//
// [Engine.Do] runs a function in a new session and commits when it
// returns nil, rolls back on an error or a panic, and runs it again when
// the error is retryable (a deadlock, a lock timeout, SQLite busy).
// [Engine.Middleware] gives each HTTP request a session in its context
// ([SessionFrom]) and commits it before the response's first byte. A
// session travels in a [context.Context] ([NewContext]), never in a global.
//
// # Options
//
// Three option types configure three things, each a function value passed
// last: [Option] the [Engine] (to [Open] and [New]), [SessionOption] a
// [Session] (to [Engine.NewSession]), [DoOption] one [Engine.Do] call.
// Their names follow one vocabulary:
//
//   - With<Thing> sets or turns on something that is off or defaulted
//     otherwise: [WithMaxOpenConns], [WithLogger], [WithQueryHook],
//     [WithSnapshot], [WithSessionOptions].
//   - Without<Thing> turns off a default: [WithoutAutoflush].
//   - A DoOption about retries names the policy without a prefix, so that
//     a call reads as a sentence: eng.Do(ctx, fn, orm.MaxAttempts(3),
//     orm.RetryOnStale(), orm.RetryBackoff(min, max)). [Snapshot] is the
//     DoOption for WithSessionOptions(WithSnapshot()).
//
// An option with an out-of-range value clamps it ([MaxAttempts] below 1 is
// 1) rather than failing, since options cannot return errors.
//
// # Errors
//
// Errors are prefixed "orm:" and typed. Database errors are classified
// into [ErrUniqueViolation], [ErrForeignKeyViolation], [ErrRetryable] and
// [ErrConnection], usable with [errors.Is], while the driver's own error
// stays reachable with [errors.As] through [*DBError]. A version check that
// fails is [ErrStaleData] ([*StaleDataError]); a flush that fails is a
// [*FlushError]; a COMMIT whose outcome is unknown is [ErrCommitUnknown].
// Their Op fields and [QueryEvent.Op] share one vocabulary, the [Op]
// constants: lower case for how a statement was sent (OpExec, OpQuery,
// OpBegin, ...), upper case for the SQL verb that failed (OpInsert,
// OpUpdate, OpDelete, OpMerge).
//
// # Concurrency
//
// An [Engine] is safe for concurrent use by multiple goroutines; share
// one. A [Session] is not: a call that overlaps another on the same session
// returns [ErrConcurrentUse] and changes nothing. Give each goroutine its
// own session.
//
// # Observing
//
// [WithQueryHook] sees every statement as a [QueryEvent] (SQL, arguments,
// duration, rows, error); [WithLogger] logs statements at Debug level
// without their argument values.
package orm
