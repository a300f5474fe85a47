package sqlite

import (
	"strings"
	"testing"

	"github.com/tallyorm/tally/dialect"
)

// A database file that cannot be written or opened (a full disk, a
// read-only file or mount, an I/O error) is a connection error whose hint
// says what to fix; BUSY stays retryable.
func TestClassifyUnwritableDatabaseAsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		code int
		hint string
	}{
		{13, "full"},        // SQLITE_FULL
		{8, "read-only"},    // SQLITE_READONLY
		{1032, "read-only"}, // SQLITE_READONLY_DBMOVED
		{10, "I/O error"},   // SQLITE_IOERR
		{3338, "I/O error"}, // SQLITE_IOERR_WRITE
		{14, "cannot be opened"},
	} {
		err := wrapped(testCode(tc.code))
		if got := dialect.SQLite.Classify(err); got != dialect.ClassConnection {
			t.Errorf("Classify(code %d) = %v, want connection", tc.code, got)
		}
		if got := dialect.ConnectionHint(dialect.SQLite, err); !strings.Contains(got, "database unavailable") || !strings.Contains(got, tc.hint) {
			t.Errorf("ConnectionHint(code %d) = %q, want database unavailable and %q", tc.code, got, tc.hint)
		}
	}
	if got := dialect.SQLite.Classify(testCode(5)); got != dialect.ClassRetryable {
		t.Errorf("Classify(SQLITE_BUSY) = %v, want retryable", got)
	}
}
