package orm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// A session's transaction runs in a context of its own, which no
// statement's ctx ends (a ctx that ends cancels a statement; it must not
// silently roll back the session's transaction: see Session.begin). But
// BEGIN and COMMIT run in that context too, in database/sql and in the
// drivers: pgx sends both with the transaction's context, and Tally's
// MySQL connector ends a COMMIT when it ends (dialect/mysql). A server or
// network that stalls during BEGIN or COMMIT would then hold the caller
// past its deadline, for good. So while BEGIN or COMMIT runs, the
// caller's ctx ending ends the transaction's context, and the driver
// stops waiting (closing the connection, which the pool discards).

// beginUntil begins a transaction in txCtx, which cancelTx ends, and ends
// it when ctx ends before BEGIN's reply came.
func beginUntil(ctx context.Context, db *sql.DB, txCtx context.Context, cancelTx context.CancelCauseFunc, opts *sql.TxOptions) (*sql.Tx, error) {
	if ctx.Done() == nil {
		return db.BeginTx(txCtx, opts)
	}
	stop := context.AfterFunc(ctx, func() { cancelTx(context.Cause(ctx)) })
	tx, err := db.BeginTx(txCtx, opts)
	if !stop() {
		// ctx ended during BEGIN, or just after: database/sql rolls back
		// a transaction whose context ended.
		if err == nil {
			_ = tx.Rollback()
			err = txCtx.Err()
		}
		if !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
	return tx, err
}

// commitUntil runs commit, the COMMIT of a transaction begun in a context
// that cancelTx ends, and ends that context when ctx ends before COMMIT's
// reply came.
//
// The error of an interrupted COMMIT matches ctx's error; the caller
// reports it as ErrCommitUnknown, since the COMMIT was sent. A ctx that
// has already ended does not interrupt the COMMIT: it is sent and its
// reply awaited, as when there is no deadline.
func commitUntil(ctx context.Context, cancelTx context.CancelCauseFunc, commit func() error) error {
	if ctx.Done() == nil || ctx.Err() != nil || cancelTx == nil {
		return commit()
	}
	stop := context.AfterFunc(ctx, func() { cancelTx(context.Cause(ctx)) })
	err := commit()
	if !stop() && err != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}
