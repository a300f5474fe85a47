package orm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the bulk statement sent alone: an UpdateAll or
// DeleteAll that a plain session runs before it has anything else to do
// goes to the database in autocommit, one round trip, committed when it
// returns (the rule EF Core's ExecuteUpdate and ExecuteDelete follow).

// inUnitOfWork marks a session that Engine.Do or Engine.Middleware made:
// their promise is that the work of fn, or of the handler, commits whole
// or not at all (and Do may run it again), so a bulk statement there
// waits for the commit in the session's transaction like everything else.
func inUnitOfWork() SessionOption { return func(s *Session) { s.scoped = true } }

// bulkAlone reports whether a bulk UpdateAll or DeleteAll on t can run
// alone in autocommit: the session has no transaction (nor a reason to
// open one at its first statement: a snapshot, a locking retry, Do or
// Middleware), nothing to flush, and no tracked object of t whose
// values the statement could change (learning which ones needs the
// SELECT ... FOR UPDATE of the transactional path). The statement is
// then the session's only work so far; the session's state cannot
// disagree with it whatever happens later.
func (s *Session) bulkAlone(t *mapper.Table) bool {
	if s.tx != nil || s.rec != nil || s.alone.armed || s.lost != nil ||
		s.snapshot || s.lockReads || s.scoped || len(s.sps) > 0 ||
		s.isolation != sql.LevelDefault { // its writes run at that level, in a transaction

		return false
	}
	tracked := false
	s.idmap.EachIn(t, func(*identity.Entry) bool { tracked = true; return false })
	if tracked || len(s.pending) > 0 || len(s.deletes) > 0 {
		return false
	}
	return s.flushSize() == 0
}

// execBulkAlone runs a bulk statement alone on a pooled connection, in
// autocommit, and returns the rows it affected. Its outcome is known
// unless the connection failed after the statement was sent: that error
// matches ErrCommitUnknown (and ErrConnection), as a commit's would.
func (s *Session) execBulkAlone(ctx context.Context, query string, args []any) (int64, error) {
	// Failures before anything is sent are known not to have written.
	args, err := valuerArgs(args)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.primary = true // read-your-writes: see replicas.go
	s.stats.Statements++
	s.stats.Execs++
	res, err := s.e.exec(ctx, s.e.db, query, args)
	if err != nil {
		if !s.e.serverReply(err) && !errors.Is(err, driver.ErrBadConn) {
			return 0, &commitUnknownError{msg: "orm: bulk statement outcome unknown: the connection failed after it was sent, in autocommit", err: err}
		}
		return 0, err
	}
	return res.RowsAffected()
}
