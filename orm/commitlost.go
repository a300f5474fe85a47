package orm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
)

// commitUnknownError is the error of a commit whose outcome Tally cannot
// know: COMMIT (or the statement of a single-statement commit) was sent
// and no reply came. Its message says what is known, which is rarely
// "the connection was lost during COMMIT": a connection the server closed
// while the transaction sat idle (a KILL, wait_timeout,
// idle_in_transaction_session_timeout) is only found lost when COMMIT is
// sent, and the client cannot tell that from a loss while COMMIT ran.
type commitUnknownError struct {
	msg string
	err error
}

// Error says what is known of the lost commit, then the cause.
func (e *commitUnknownError) Error() string { return e.msg + ": " + e.err.Error() }

// Unwrap returns the cause.
func (e *commitUnknownError) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrCommitUnknown) true.
func (e *commitUnknownError) Is(target error) bool { return target == ErrCommitUnknown }

// commitLost describes err, the failure of a COMMIT for which no reply
// came (alone: of the one statement of a single-statement commit, sent
// in autocommit), as an error matching ErrCommitUnknown that says what is
// known.
func (e *Engine) commitLost(err error, alone bool) error {
	what := "COMMIT"
	if alone {
		what = "the commit's one statement (sent alone, in autocommit)"
	}
	msg := "orm: commit outcome unknown: no reply to " + what
	if errors.Is(err, driver.ErrBadConn) {
		// A driver returns ErrBadConn only when it sent nothing
		// (database/sql's contract), so the COMMIT most likely never
		// left: the server had closed the connection, ending its
		// transaction. The class stays ErrCommitUnknown, the one Do never
		// reruns: a driver that breaks the contract must not get work
		// committed twice.
		return &commitUnknownError{msg: "orm: commit outcome unknown: the driver found the connection closed before it sent " + what + " (the server had closed it: a KILL, wait_timeout, an idle-in-transaction timeout, a restart), so the server should have rolled the transaction back", err: err}
	}
	code, fromServer := e.dialect.ServerError(err)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// First: a driver that gives up on a ctx also reports the
		// connection it closed, which is not what happened.
		msg = "orm: commit outcome unknown: the context ended after " + what + " was sent, before its reply (a stalled server or network?)"
	case fromServer && code == "SQLSTATE 25P03":
		// The server ends a session for this timeout only while it sits
		// idle in its transaction, rolling the transaction back: the
		// COMMIT came after. The class stays ErrCommitUnknown, as for
		// every COMMIT without a reply, so Do does not rerun it on the
		// strength of a message.
		msg = "orm: commit outcome unknown: before " + what + " was read, the server had ended the session for idle_in_transaction_session_timeout (SQLSTATE 25P03), which rolls the transaction back; no reply to COMMIT confirms it"
	case fromServer && errors.Is(err, ErrConnection):
		msg = fmt.Sprintf("orm: commit outcome unknown: the server ended the connection (%s) when %s was sent: it may have done so before the COMMIT reached it (pg_terminate_backend, a shutdown, a timeout) or while it ran", code, what)
	case errors.Is(err, ErrConnection):
		msg = "orm: commit outcome unknown: the connection was found lost when " + what + " was sent: it may have been closed before (a server KILL, wait_timeout, an idle-in-transaction timeout, a restart, a network failure) or while the server ran it"
	}
	return &commitUnknownError{msg: msg, err: err}
}
