package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"
)

// Classification looks through wrapping (errors.AsType, errors.Is), so an
// error the ORM has annotated classifies as the driver's error did. The
// driver's own error types are known to its dialect/<db> package, which
// registers a [Driver]; what is left here is common to every driver.

// classifyConnection recognises an error that means the connection is
// broken or could not be made, whatever the driver.
func classifyConnection(err error) Class {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The caller gave up: not the connection's fault, and not to be
		// retried. (context.DeadlineExceeded is also a net.Error.)
		return ClassOther
	case errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE):
		return ClassConnection
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return ClassConnection
	}
	return ClassOther
}
