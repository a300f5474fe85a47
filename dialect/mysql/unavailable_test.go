package mysql

import (
	"context"
	"database/sql"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/dialect"
)

// A server that is not there, or is shutting down, is named as
// "database unavailable" in the hint the error carries, so that a log
// reader sees at once that nothing reached the database.
func TestConnectionHintSaysUnavailableWhenTheServerIsDown(t *testing.T) {
	db, err := sql.Open("mysql", "u:p@tcp("+refusedAddr(t)+")/db?timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	refused := db.PingContext(context.Background())
	if refused == nil {
		t.Fatal("mysql ping succeeded")
	}
	for _, err := range []error{refused, wrapped(refused), &mysql.MySQLError{Number: 1053}} {
		if got := dialect.ConnectionHint(dialect.MariaDB, err); !strings.Contains(got, "database unavailable") {
			t.Errorf("ConnectionHint(%v) = %q, want it to say database unavailable", err, got)
		}
	}
	if got := dialect.ConnectionHint(dialect.MariaDB, mysql.ErrInvalidConn); strings.Contains(got, "unavailable") {
		t.Errorf("ConnectionHint(invalid connection) = %q: a lost connection is not an unavailable server", got)
	}
}

// A server that accepts the connection and never sends its greeting
// (stalled) fails the connect at the DSN's timeout, handshake included
// (the driver bounds only the dial by it), as unavailable; and the
// connection's error is a connection error, not the caller's deadline.
func TestConnectTimeoutBoundsTheHandshake(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no local TCP:", err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the listener closes
		}
	}()
	db, _, err := open("u:p@tcp("+l.Addr().String()+")/db?timeout=1s", dialect.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	err = db.PingContext(context.Background())
	if took := time.Since(start); err == nil || took > 4*time.Second {
		t.Fatalf("ping of a silent server: %v after %v, want an error after about 1s", err, took)
	}
	if got := dialect.MariaDB.Classify(err); got != dialect.ClassConnection {
		t.Errorf("Classify(%v) = %v, want connection", err, got)
	}
	if got := dialect.ConnectionHint(dialect.MariaDB, err); !strings.Contains(got, "database unavailable") {
		t.Errorf("ConnectionHint(%v) = %q, want it to say database unavailable", err, got)
	}
}
