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
