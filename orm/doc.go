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
// on PostgreSQL and MySQL/MariaDB, it pipelines them (BEGIN, the
// statements and COMMIT in one round trip, one more per INSERT whose keys
// a later statement needs); on SQLite, in process, it runs them one by
// one in a transaction.
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
// [Project] reads a query's rows into another struct type (a DTO) with
// joins ([P]): P.Select's names and P.OrderBy's keys are checked (a
// column of the model, or an identifier of a joined table; a field of the
// DTO as result name) and a bad one is a [*ColumnError] before any SQL;
// P.Join clauses and P.SelectExpr expressions are trusted SQL, like
// Where's. Projected rows are plain values, never tracked.
//
// # Bulk loading: Upsert
//
// [Upsert] inserts many objects and resolves those whose row exists by
// an [OnConflict] target: DoUpdate(cols...) overwrites those columns,
// DoNothing keeps the row (ON CONFLICT ... DO UPDATE / DO NOTHING on
// PostgreSQL and SQLite, ON DUPLICATE KEY UPDATE on MySQL/MariaDB, which
// resolves a duplicate of any unique key). Unlike [Merge], which queues
// its change for the next flush, Upsert runs at once in the session's
// transaction, batched under the parameter limit, because what each
// object becomes depends on the row the statement met. Afterwards every
// object is tracked and persistent and holds its row exactly (generated
// key, the existing row's values in the columns not updated), read back
// with RETURNING or, where a row is not returned, by the conflict target
// with SELECT ... FOR UPDATE. A row the session tracks as another object
// is [ErrIdentityConflict], refused before any SQL; a failed statement or
// a later failed Commit rolls back and restores the objects.
//
// # Transactions
//
// A session begins its transaction when it first writes or locks; reads
// before that run in autocommit (see [Session]). [WithSnapshot] makes its
// reads one REPEATABLE READ snapshot from the first statement.
// [WithIsolation] sets the level: REPEATABLE READ and SERIALIZABLE also
// begin the transaction at the first statement, read or write, since the
// level is about what the reads see; READ COMMITTED keeps "begin when
// needed". With any level, writes run in a transaction at that level,
// never alone in autocommit. [WithReadOnly] refuses every write with [ErrReadOnly] before
// any SQL, turns autoflush off, and makes any transaction it holds READ
// ONLY (on SQLite a deferred one that never takes the write lock). For
// [Engine.Do], [Isolation], [ReadOnly] and [Snapshot] pass the same
// options.
//
// # Values
//
// Times are written in UTC truncated to microseconds (the object's field
// too) and loaded in UTC; an empty []byte is not NULL; 16-byte arrays
// (UUIDs) are stored as 16 bytes; decimals, uint64 and json columns are
// described in the README's "Column types" section.
//
// # Hooks, timestamps and soft delete
//
// A model may have lifecycle hooks: methods on its pointer matching
// [BeforeInserter], [BeforeUpdater], [BeforeDeleter] and [AfterLoader],
// each func(ctx context.Context, s *Session) error. The Before hooks run
// inside the flush, in its order (table by table, parents' inserts first,
// children's deletes first), each just before its object's statement is
// built: what BeforeInsert or BeforeUpdate sets in a column field is
// written in that statement. BeforeUpdate runs only for an object with a
// change to write. A hook's error fails the commit like a statement's,
// wrapped in a [*HookError]: the session is restored, and so are the
// fields the hooks changed, so hooks run again, on the object as the
// caller left it, at the next flush. They can run more than once for one
// object for that reason: keep their effects to the object. AfterLoad runs
// for each object made from a row (Query, Get, Load, Raw, Refresh, Merge),
// not for a row whose object the session tracked already; what it changes
// in column fields is an ordinary change, written by the next flush
// (unless it fails: the read fails, and the object keeps its row's values). A
// hook must not call its session: the call fails with [ErrHookReentry].
// Bulk statements (UpdateAll, DeleteAll, Upsert) and Exec run no hooks. A model
// without hooks costs nothing: the check is once per table and flush.
//
// The tag options created and updated mark time columns (time.Time,
// *time.Time or sql.NullTime) that Tally sets: both at the INSERT, where
// the field holds no time yet; updated again in every UPDATE that writes a
// column (a soft delete aside, below), in that UPDATE (not when nothing changed, nor where the caller
// set the column); UpdateAll sets them too, unless its Set names them,
// and so does Upsert (a conflict's DoUpdate sets updated, keeps created).
// The times are UTC in microseconds, like every time Tally writes, and a
// failed commit puts the old values back.
//
// The option softdelete marks a nullable time column (*time.Time or
// sql.NullTime). [Session.Delete] of such a model sets it (UPDATE ...
// SET deleted_at = ?, checking and bumping the version if the model has
// one) instead of deleting the row; the object is then a deleted object,
// detached at commit. Queries, Count, Exists, Load, UpdateAll and
// DeleteAll skip soft-deleted rows unless [Q.WithDeleted]; [Get] does not
// find them, even tracked ones. DeleteAll soft-deletes too;
// [Session.HardDelete] and [Q.HardDeleteAll] delete rows for good. [Raw]
// and Exec are not filtered, and soft delete does not cascade in the
// database (ON DELETE CASCADE fires only on a real DELETE). A soft delete
// sets only its column (and the version): it does not stamp the updated
// columns, as GORM does not, so updated_at keeps the last real change.
// [Merge] of a soft-deleted row is [ErrNotFound] (it would copy the
// decoded object's empty column and undelete the row). [Upsert] does not
// filter: its conflict target meets a soft-deleted row like any other,
// and DoUpdate writes only the columns it names, so the row stays
// soft-deleted unless they include the softdelete column (DoUpdate()
// with no names writes every column, the empty softdelete column too,
// and so brings the row back).
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
// # Read replicas
//
// [WithReplicas] adds read replicas to an engine. A session reads from a
// replica until its first write, lock or transaction, and from then on
// runs everything on the primary until it is closed, so it always reads
// its own writes; [OnPrimary] and [WithPrimaryReads] send reads to the
// primary. Replicas that are down or lag more than [WithReplicaMaxLag]
// are skipped, measured by one goroutine per engine from replication
// positions; a read that fails on a replica with a connection error runs
// again on the primary. [Engine.Stats] reports each replica. See
// [Session] and the README's "Scaling out".
// # Several primaries
//
// [WithPrimaries] opens one pool over the nodes of a multi-primary cluster
// (MariaDB Galera): each new connection goes to the next node in turn, and
// a node that fails or is not ready is left out until a background probe
// finds it back. The rules that keep the unit of work's promise there:
//
//   - A session's transaction runs on one node. Its reads before the first
//     write, and the next session, may run on another: for read-your-writes
//     ask the cluster for causal reads on every connection (Galera:
//     wsrep_sync_wait=1 in each DSN).
//   - A conflict with another node's transaction is refused at COMMIT
//     (Galera's certification failure is a deadlock, 1213): the server's
//     reply proves nothing committed, so [Engine.Do] runs the work again.
//   - A COMMIT with no reply, or one the cluster says may have been applied
//     elsewhere (Galera's 1180), is [ErrCommitUnknown], never retried: make
//     such work idempotent (a request id under a unique key) and retry it
//     with the same id.
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
//     [WithSnapshot], [WithIsolation], [WithReadOnly], [WithSessionOptions].
//   - Without<Thing> turns off a default: [WithoutAutoflush].
//   - A DoOption about retries names the policy without a prefix, so that
//     a call reads as a sentence: eng.Do(ctx, fn, orm.MaxAttempts(3),
//     orm.RetryOnStale(), orm.RetryBackoff(min, max)). [Snapshot] is the
//     DoOption for WithSessionOptions(WithSnapshot()), and likewise
//     [Isolation] and [ReadOnly] for WithIsolation and WithReadOnly.
//
// An option with an out-of-range value clamps it ([MaxAttempts] below 1 is
// 1) rather than failing, since options cannot return errors.
//
// # Errors
//
// Errors are prefixed "orm:" and typed. Database errors are classified
// into [ErrUniqueViolation], [ErrForeignKeyViolation], [ErrRetryable],
// [ErrStatementTimeout] and [ErrConnection] (whose message says "database
// unavailable" when no connection could be made), usable with
// [errors.Is], while the driver's own error
// stays reachable with [errors.As] through [*DBError]. A version check that
// fails is [ErrStaleData] ([*StaleDataError]); a flush that fails is a
// [*FlushError]; a COMMIT whose outcome is unknown is [ErrCommitUnknown].
// A write asked of a read-only session is [ErrReadOnly]; a column name
// that Upsert or Project cannot use is a [*ColumnError].
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
