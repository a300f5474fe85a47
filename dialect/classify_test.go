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

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
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

func TestClassifyMySQL(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassOther},
		{"duplicate entry", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry '1' for key 'PRIMARY'"}, ClassUnique},
		{"duplicate entry, wrapped", wrapped(&mysql.MySQLError{Number: 1062}), ClassUnique},
		{"duplicate entry with key name", &mysql.MySQLError{Number: 1586}, ClassUnique},
		{"parent row referenced", &mysql.MySQLError{Number: 1451}, ClassForeignKey},
		{"no parent row", wrapped(&mysql.MySQLError{Number: 1452}), ClassForeignKey},
		{"no referenced row, old", &mysql.MySQLError{Number: 1216}, ClassForeignKey},
		{"row is referenced, old", &mysql.MySQLError{Number: 1217}, ClassForeignKey},
		{"deadlock", wrapped(&mysql.MySQLError{Number: 1213}), ClassRetryable},
		{"lock wait timeout", &mysql.MySQLError{Number: 1205}, ClassRetryable},
		{"NOWAIT", &mysql.MySQLError{Number: 3572}, ClassRetryable},
		{"joined", errors.Join(errors.New("rollback failed"), &mysql.MySQLError{Number: 1213}), ClassRetryable},
		{"syntax error", &mysql.MySQLError{Number: 1064}, ClassOther},
		{"not null", &mysql.MySQLError{Number: 1048}, ClassOther},
		{"invalid connection", mysql.ErrInvalidConn, ClassConnection},
		{"invalid connection, wrapped", wrapped(mysql.ErrInvalidConn), ClassConnection},
		{"PostgreSQL's unique code is not MySQL's", &pgconn.PgError{Code: "23505"}, ClassOther},
	}
	for _, tt := range tests {
		for _, d := range []Dialect{MySQL, MariaDB} {
			if got := d.Classify(tt.err); got != tt.want {
				t.Errorf("%s: Classify(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
			}
		}
	}
}

func TestClassifyPostgres(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassOther},
		{"unique", &pgconn.PgError{Code: "23505"}, ClassUnique},
		{"unique, wrapped", wrapped(&pgconn.PgError{Code: "23505"}), ClassUnique},
		{"foreign key", wrapped(&pgconn.PgError{Code: "23503"}), ClassForeignKey},
		{"serialization failure", wrapped(&pgconn.PgError{Code: "40001"}), ClassRetryable},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, ClassRetryable},
		{"lock not available", &pgconn.PgError{Code: "55P03"}, ClassRetryable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, ClassConnection},
		{"connection exception", &pgconn.PgError{Code: "08000"}, ClassConnection},
		{"cannot establish", wrapped(&pgconn.PgError{Code: "08001"}), ClassConnection},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, ClassConnection},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, ClassConnection},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, ClassConnection},
		{"query canceled", &pgconn.PgError{Code: "57014"}, ClassOther},
		{"not null", &pgconn.PgError{Code: "23502"}, ClassOther},
		{"check", &pgconn.PgError{Code: "23514"}, ClassOther},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, ClassOther},
		{"no code", &pgconn.PgError{}, ClassOther},
		{"short code in class 08", &pgconn.PgError{Code: "08"}, ClassOther},
		{"connect error", &pgconn.ConnectError{}, ClassConnection},
		{"MySQL's unique number is not PostgreSQL's", &mysql.MySQLError{Number: 1062}, ClassOther},
	}
	for _, tt := range tests {
		if got := PostgreSQL.Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// codeError stands for modernc.org/sqlite's *Error, whose fields are
// unexported, for codes a test cannot easily provoke.
type codeError int

func (e codeError) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codeError) Code() int     { return int(e) }

func TestClassifySQLiteCodes(t *testing.T) {
	tests := []struct {
		code int
		want Class
	}{
		{2067, ClassUnique},    // SQLITE_CONSTRAINT_UNIQUE
		{1555, ClassUnique},    // SQLITE_CONSTRAINT_PRIMARYKEY
		{2579, ClassUnique},    // SQLITE_CONSTRAINT_ROWID
		{787, ClassForeignKey}, // SQLITE_CONSTRAINT_FOREIGNKEY
		{5, ClassRetryable},    // SQLITE_BUSY
		{261, ClassRetryable},  // SQLITE_BUSY_RECOVERY
		{517, ClassRetryable},  // SQLITE_BUSY_SNAPSHOT
		{773, ClassRetryable},  // SQLITE_BUSY_TIMEOUT
		{6, ClassRetryable},    // SQLITE_LOCKED
		{262, ClassRetryable},  // SQLITE_LOCKED_SHAREDCACHE
		{518, ClassRetryable},  // SQLITE_LOCKED_VTAB
		{19, ClassOther},       // SQLITE_CONSTRAINT without extended codes: cannot tell
		{1299, ClassOther},     // SQLITE_CONSTRAINT_NOTNULL
		{275, ClassOther},      // SQLITE_CONSTRAINT_CHECK
		{1, ClassOther},        // SQLITE_ERROR
		{8, ClassOther},        // SQLITE_READONLY
		{13, ClassOther},       // SQLITE_FULL
	}
	for _, tt := range tests {
		for _, err := range []error{codeError(tt.code), wrapped(codeError(tt.code))} {
			if got := SQLite.Classify(err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.want)
			}
		}
	}
	if got := SQLite.Classify(nil); got != ClassOther {
		t.Errorf("Classify(nil) = %v", got)
	}
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
		{"invalid connection", mysql.ErrInvalidConn, ClassConnection},
		{"EOF", io.EOF, ClassConnection},
		{"unexpected EOF", wrapped(io.ErrUnexpectedEOF), ClassConnection},
		{"reset", wrapped(syscall.ECONNRESET), ClassConnection},
		{"refused", &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}, ClassConnection},
		{"broken pipe", wrapped(&os.SyscallError{Syscall: "write", Err: syscall.EPIPE}), ClassConnection},
		{"net.OpError", wrapped(opErr), ClassConnection},
		{"DNS", &net.DNSError{Err: "no such host", Name: "db"}, ClassConnection},
		{"net timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, ClassConnection},
		{"pgconn connect error", wrapped(&pgconn.ConnectError{}), ClassConnection},
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

// refusedAddr returns a local address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no local TCP:", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// The drivers' own errors for a server that is not there.
func TestClassifyRealConnectErrors(t *testing.T) {
	addr := refusedAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	ctx := context.Background()

	_, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://u@%s:%s/db?connect_timeout=5&sslmode=disable", host, port))
	if err == nil {
		t.Fatal("pgconn.Connect succeeded")
	}
	if got := PostgreSQL.Classify(err); got != ClassConnection {
		t.Errorf("PostgreSQL.Classify(%v) = %v, want connection", err, got)
	}

	db, err := sql.Open("mysql", "u:p@tcp("+addr+")/db?timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.PingContext(ctx)
	if err == nil {
		t.Fatal("mysql ping succeeded")
	}
	for _, d := range []Dialect{MySQL, MariaDB} {
		if got := d.Classify(err); got != ClassConnection {
			t.Errorf("MySQL.Classify(%v) = %v, want connection", err, got)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	benches := []struct {
		name string
		d    Dialect
		err  error
	}{
		{"mysql/unique", MySQL, wrapped(&mysql.MySQLError{Number: 1062})},
		{"postgres/unique", PostgreSQL, wrapped(&pgconn.PgError{Code: "23505"})},
		{"sqlite/busy", SQLite, wrapped(codeError(5))},
		{"postgres/other", PostgreSQL, wrapped(errors.New("boom"))},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bb.d.Classify(bb.err)
			}
		})
	}
}
