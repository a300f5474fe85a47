package mysql

import (
	"context"
	"database/sql"
	"strings"
	"testing"

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
