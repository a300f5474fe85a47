package orm

// Op names what a statement did, in one vocabulary shared by
// [QueryEvent.Op], [FlushError.Op] and [StaleDataError.Op]. Two kinds of
// value share it, told apart by case:
//
//   - lower case names the database/sql call a statement was sent with
//     (OpExec, OpQuery, and the transaction control OpBegin, OpCommit,
//     OpRollback, OpSavepoint): what a [QueryEvent] reports, for every
//     statement;
//   - upper case is the SQL verb of the statement a flush or a version
//     check was about (OpInsert, OpUpdate, OpDelete), plus OpMerge for
//     the version check of [Session.Merge], which sends no statement of
//     its own: what [FlushError] and [StaleDataError] report.
//
// Op is an alias of string, not a type of its own, so that code which
// stores, compares or passes these fields as strings (ev.Op == "exec",
// strings.ToUpper(ev.Op), a func returning string) keeps compiling; use
// the constants below instead of literals.
type Op = string

// The values of [QueryEvent.Op]: how the statement was sent.
const (
	OpExec      Op = "exec"      // a statement run without rows (ExecContext)
	OpQuery     Op = "query"     // a statement that returns rows (QueryContext)
	OpBegin     Op = "begin"     // BEGIN of the session's transaction
	OpCommit    Op = "commit"    // COMMIT
	OpRollback  Op = "rollback"  // ROLLBACK
	OpSavepoint Op = "savepoint" // SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO SAVEPOINT
)

// The values of [FlushError.Op] and [StaleDataError.Op]: the statement
// that failed or matched no row.
const (
	OpInsert Op = "INSERT"
	OpUpdate Op = "UPDATE"
	OpDelete Op = "DELETE"
	// OpMerge is StaleDataError's only: Session.Merge was given an object
	// whose version is not the row's.
	OpMerge Op = "MERGE"
)
