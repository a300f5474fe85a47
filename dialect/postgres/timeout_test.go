package postgres

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tallyorm/tally/dialect"
)

// A connection to a server that cannot be reached fails in
// dialect.ConnectTimeout unless the DSN says otherwise, in either DSN
// form.
func TestWithConnectTimeoutBoundsTheConnectUnlessTheDSNSays(t *testing.T) {
	t.Setenv("PGCONNECT_TIMEOUT", "")
	for _, tc := range []struct {
		dsn  string
		want time.Duration
	}{
		{"postgres://u:pw@h:5432/db", dialect.ConnectTimeout},
		{"postgres://u:pw@h:5432/db?sslmode=disable", dialect.ConnectTimeout},
		{"postgresql://u@h/db?sslmode=disable&connect_timeout=2", 2 * time.Second},
		{"host=h user=u dbname=db", dialect.ConnectTimeout},
		{"host=h user=u connect_timeout=9", 9 * time.Second},
	} {
		cfg, err := pgconn.ParseConfig(WithConnectTimeout(tc.dsn))
		if err != nil {
			t.Fatalf("%q: %v", tc.dsn, err)
		}
		if cfg.ConnectTimeout != tc.want {
			t.Errorf("%q: connect timeout %v, want %v", tc.dsn, cfg.ConnectTimeout, tc.want)
		}
	}
}

// statement_timeout's cancel is a statement timeout; a cancel request
// (pg_cancel_backend, a client's) shares its SQLSTATE and is not.
func TestClassifyStatementTimeout(t *testing.T) {
	timeout := &pgconn.PgError{Severity: "ERROR", Code: "57014", Message: "canceling statement due to statement timeout"}
	if got := dialect.PostgreSQL.Classify(wrapped(timeout)); got != dialect.ClassTimeout {
		t.Errorf("Classify(%v) = %v, want statement timeout", timeout, got)
	}
	cancel := &pgconn.PgError{Severity: "ERROR", Code: "57014", Message: "canceling statement due to user request"}
	if got := dialect.PostgreSQL.Classify(cancel); got != dialect.ClassOther {
		t.Errorf("Classify(%v) = %v, want other", cancel, got)
	}
}
