package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/dialect"
)

// wrapped wraps err twice, as the ORM and a caller might.
func wrapped(err error) error {
	return fmt.Errorf("orm: insert users: %w", fmt.Errorf("exec: %w", err))
}

func TestClassifyMySQL(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want dialect.Class
	}{
		{"nil", nil, dialect.ClassOther},
		{"duplicate entry", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry '1' for key 'PRIMARY'"}, dialect.ClassUnique},
		{"duplicate entry, wrapped", wrapped(&mysql.MySQLError{Number: 1062}), dialect.ClassUnique},
		{"duplicate entry with key name", &mysql.MySQLError{Number: 1586}, dialect.ClassUnique},
		{"parent row referenced", &mysql.MySQLError{Number: 1451}, dialect.ClassForeignKey},
		{"no parent row", wrapped(&mysql.MySQLError{Number: 1452}), dialect.ClassForeignKey},
		{"no referenced row, old", &mysql.MySQLError{Number: 1216}, dialect.ClassForeignKey},
		{"row is referenced, old", &mysql.MySQLError{Number: 1217}, dialect.ClassForeignKey},
		{"deadlock", wrapped(&mysql.MySQLError{Number: 1213}), dialect.ClassRetryable},
		{"lock wait timeout", &mysql.MySQLError{Number: 1205}, dialect.ClassRetryable},
		{"NOWAIT", &mysql.MySQLError{Number: 3572}, dialect.ClassRetryable},
		{"joined", errors.Join(errors.New("rollback failed"), &mysql.MySQLError{Number: 1213}), dialect.ClassRetryable},
		{"Galera node not ready", wrapped(&mysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}), dialect.ClassRetryable},
		{"Galera replication failed during COMMIT: outcome unknown", &mysql.MySQLError{Number: 1180, Message: "Got error 6 \"No such device or address\" during COMMIT"}, dialect.ClassConnection},
		{"Group Replication certification failure", &mysql.MySQLError{Number: 3101}, dialect.ClassRetryable},
		{"TiDB FOR UPDATE write conflict", &mysql.MySQLError{Number: 8002}, dialect.ClassRetryable},
		{"TiDB write conflict", &mysql.MySQLError{Number: 8005}, dialect.ClassRetryable},
		{"TiDB commit failed, rolled back", &mysql.MySQLError{Number: 8022}, dialect.ClassRetryable},
		{"TiDB schema changed", &mysql.MySQLError{Number: 8028}, dialect.ClassRetryable},
		{"TiKV write conflict", &mysql.MySQLError{Number: 9007}, dialect.ClassRetryable},
		{"syntax error", &mysql.MySQLError{Number: 1064}, dialect.ClassOther},
		{"not null", &mysql.MySQLError{Number: 1048}, dialect.ClassOther},
		{"connection killed (MariaDB)", &mysql.MySQLError{Number: 1927}, dialect.ClassConnection},
		{"wait_timeout (MySQL 8)", &mysql.MySQLError{Number: 4031}, dialect.ClassConnection},
		{"server shutdown", wrapped(&mysql.MySQLError{Number: 1053}), dialect.ClassConnection},
		{"invalid connection", mysql.ErrInvalidConn, dialect.ClassConnection},
		{"invalid connection, wrapped", wrapped(mysql.ErrInvalidConn), dialect.ClassConnection},
	}
	for _, tt := range tests {
		for _, d := range []dialect.Dialect{dialect.MySQL, dialect.MariaDB} {
			if got := d.Classify(tt.err); got != tt.want {
				t.Errorf("%s: Classify(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
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

// The driver's own error for a server that is not there is a connection
// error.
func TestClassifyRefusedConnection(t *testing.T) {
	addr := refusedAddr(t)
	ctx := context.Background()

	db, err := sql.Open("mysql", "u:p@tcp("+addr+")/db?timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.PingContext(ctx)
	if err == nil {
		t.Fatal("mysql ping succeeded")
	}
	for _, d := range []dialect.Dialect{dialect.MySQL, dialect.MariaDB} {
		if got := d.Classify(err); got != dialect.ClassConnection {
			t.Errorf("MySQL.Classify(%v) = %v, want connection", err, got)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	err := wrapped(&mysql.MySQLError{Number: 1062})
	b.ReportAllocs()
	for b.Loop() {
		dialect.MySQL.Classify(err)
	}
}

// A connection the server closed reads as "invalid connection" or
// "driver: bad connection"; the hint names the likely causes.
func TestConnectionHintNamesKillAndWaitTimeout(t *testing.T) {
	for _, err := range []error{mysql.ErrInvalidConn, wrapped(driver.ErrBadConn), &mysql.MySQLError{Number: 4031}} {
		got := dialect.ConnectionHint(dialect.MariaDB, err)
		if !strings.Contains(got, "wait_timeout") {
			t.Errorf("ConnectionHint(%v) = %q, want it to name wait_timeout", err, got)
		}
		if _, ok := err.(*mysql.MySQLError); !ok && !strings.Contains(got, "KILL") {
			t.Errorf("ConnectionHint(%v) = %q, want it to name KILL", err, got)
		}
	}
	if got := dialect.ConnectionHint(dialect.MySQL, &mysql.MySQLError{Number: 1062}); got != "" {
		t.Errorf("ConnectionHint(duplicate entry) = %q, want none", got)
	}
}

// The driver's log lines go to the logger Open was given, or nowhere.
func TestDriverLoggerGoesToOpenOptionsLogger(t *testing.T) {
	var buf strings.Builder
	driverLogger{slog.New(slog.NewTextHandler(&buf, nil))}.Print("packets.go:58 ", "unexpected EOF")
	if got := buf.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "packets.go:58 unexpected EOF") {
		t.Errorf("logged: got %q, want the driver's message at WARN", got)
	}
	driverLogger{}.Print("dropped") // no logger: nothing, and no panic
}
