package postgres

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tallyorm/tally/dialect"
)

// A server that is not there, starting up, shutting down or full is
// named as "database unavailable" in the hint the error carries;
// pg_terminate_backend's 57P01 is not.
func TestConnectionHintSaysUnavailableWhenTheServerIsDown(t *testing.T) {
	host, port, _ := net.SplitHostPort(refusedAddr(t))
	_, refused := pgconn.Connect(context.Background(), fmt.Sprintf("postgres://u@%s:%s/db?connect_timeout=5&sslmode=disable", host, port))
	if refused == nil {
		t.Fatal("pgconn.Connect succeeded")
	}
	startingUp := &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}
	full := &pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"}
	for _, err := range []error{refused, wrapped(refused), wrapped(startingUp), full} {
		if got := dialect.ConnectionHint(dialect.PostgreSQL, err); !strings.Contains(got, "database unavailable") {
			t.Errorf("ConnectionHint(%v) = %q, want it to say database unavailable", err, got)
		}
	}
	terminated := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	if got := dialect.ConnectionHint(dialect.PostgreSQL, terminated); got != "" {
		t.Errorf("ConnectionHint(57P01) = %q, want none: pg_terminate_backend sends it too", got)
	}
}

// A server that accepts the connection and never answers (stalled) fails
// the connect at connect_timeout, as unavailable.
func TestConnectionHintSaysUnavailableWhenTheServerNeverAnswers(t *testing.T) {
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
	host, port, _ := net.SplitHostPort(l.Addr().String())
	_, err = pgconn.Connect(context.Background(), fmt.Sprintf("postgres://u@%s:%s/db?connect_timeout=1&sslmode=disable", host, port))
	if err == nil {
		t.Fatal("pgconn.Connect succeeded")
	}
	if got := dialect.PostgreSQL.Classify(err); got != dialect.ClassConnection {
		t.Errorf("Classify(%v) = %v, want connection", err, got)
	}
	if got := dialect.ConnectionHint(dialect.PostgreSQL, err); !strings.Contains(got, "database unavailable") {
		t.Errorf("ConnectionHint(%v) = %q, want it to say database unavailable", err, got)
	}
}
