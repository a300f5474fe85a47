package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{
		ClassOther:      "other",
		ClassUnique:     "unique violation",
		ClassForeignKey: "foreign key violation",
		ClassRetryable:  "retryable",
		ClassConnection: "connection",
		Class(99):       "other",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

// wrapped wraps err twice, as the ORM and a caller might.
func wrapped(err error) error {
	return fmt.Errorf("orm: insert users: %w", fmt.Errorf("exec: %w", err))
}

// The connection errors are the same for every dialect.
func TestClassifyConnection(t *testing.T) {
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"bad conn", driver.ErrBadConn, ClassConnection},
		{"bad conn, wrapped", wrapped(driver.ErrBadConn), ClassConnection},
		{"EOF", io.EOF, ClassConnection},
		{"unexpected EOF", wrapped(io.ErrUnexpectedEOF), ClassConnection},
		{"reset", wrapped(syscall.ECONNRESET), ClassConnection},
		{"refused", &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}, ClassConnection},
		{"broken pipe", wrapped(&os.SyscallError{Syscall: "write", Err: syscall.EPIPE}), ClassConnection},
		{"net.OpError", wrapped(opErr), ClassConnection},
		{"DNS", &net.DNSError{Err: "no such host", Name: "db"}, ClassConnection},
		{"net timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, ClassConnection},
		{"context deadline", context.DeadlineExceeded, ClassOther},
		{"context deadline, wrapped", wrapped(context.DeadlineExceeded), ClassOther},
		{"context canceled", wrapped(context.Canceled), ClassOther},
		{"canceled while the connection broke", errors.Join(context.Canceled, io.ErrUnexpectedEOF), ClassOther},
		{"no rows", sql.ErrNoRows, ClassOther},
		{"tx done", sql.ErrTxDone, ClassOther},
		{"plain", errors.New("boom"), ClassOther},
		{"nil", nil, ClassOther},
	}
	for _, tt := range tests {
		for _, d := range allDialects {
			if got := d.d.Classify(tt.err); got != tt.want {
				t.Errorf("%s: %s.Classify(%v) = %v, want %v", tt.name, d.name, tt.err, got, tt.want)
			}
		}
	}
}
