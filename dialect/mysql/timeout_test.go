package mysql

import (
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/dialect"
)

// A connection to a server that cannot be reached fails in
// dialect.ConnectTimeout unless the DSN sets timeout (readTimeout is
// another setting).
func TestConfigBoundsTheConnectUnlessTheDSNSays(t *testing.T) {
	for dsn, want := range map[string]time.Duration{
		"u@tcp(h:3306)/db":                           dialect.ConnectTimeout,
		"u@tcp(h:3306)/db?readTimeout=30s":           dialect.ConnectTimeout,
		"u@tcp(h:3306)/db?timeout=2s":                2 * time.Second,
		"u@tcp(h:3306)/db?parseTime=true&timeout=1m": time.Minute,
	} {
		cfg, err := Config(dsn)
		if err != nil {
			t.Fatalf("%q: %v", dsn, err)
		}
		if cfg.Timeout != want {
			t.Errorf("%q: connect timeout %v, want %v", dsn, cfg.Timeout, want)
		}
	}
}

// A statement cancelled for max_statement_time (MariaDB) or
// max_execution_time (MySQL) is a statement timeout, not retryable.
func TestClassifyStatementTimeout(t *testing.T) {
	for _, n := range []uint16{1969, 3024} {
		err := wrapped(&mysql.MySQLError{Number: n})
		for _, d := range []dialect.Dialect{dialect.MySQL, dialect.MariaDB} {
			if got := d.Classify(err); got != dialect.ClassTimeout {
				t.Errorf("Classify(mysql error %d) = %v, want statement timeout", n, got)
			}
		}
	}
}
