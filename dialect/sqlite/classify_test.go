package sqlite

import (
	"fmt"
	"testing"

	"github.com/tallyorm/tally/dialect"
)

// wrapped wraps err twice, as the ORM and a caller might.
func wrapped(err error) error {
	return fmt.Errorf("orm: insert users: %w", fmt.Errorf("exec: %w", err))
}

// codeError stands for modernc.org/sqlite's *Error, whose fields are
// unexported, for codes a test cannot easily provoke.
type testCode int

func (e testCode) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e testCode) Code() int     { return int(e) }

func TestClassifySQLiteCodes(t *testing.T) {
	tests := []struct {
		code int
		want dialect.Class
	}{
		{2067, dialect.ClassUnique},    // SQLITE_CONSTRAINT_UNIQUE
		{1555, dialect.ClassUnique},    // SQLITE_CONSTRAINT_PRIMARYKEY
		{2579, dialect.ClassUnique},    // SQLITE_CONSTRAINT_ROWID
		{787, dialect.ClassForeignKey}, // SQLITE_CONSTRAINT_FOREIGNKEY
		{5, dialect.ClassRetryable},    // SQLITE_BUSY
		{261, dialect.ClassRetryable},  // SQLITE_BUSY_RECOVERY
		{517, dialect.ClassRetryable},  // SQLITE_BUSY_SNAPSHOT
		{773, dialect.ClassRetryable},  // SQLITE_BUSY_TIMEOUT
		{6, dialect.ClassRetryable},    // SQLITE_LOCKED
		{262, dialect.ClassRetryable},  // SQLITE_LOCKED_SHAREDCACHE
		{518, dialect.ClassRetryable},  // SQLITE_LOCKED_VTAB
		{19, dialect.ClassOther},       // SQLITE_CONSTRAINT without extended codes: cannot tell
		{1299, dialect.ClassOther},     // SQLITE_CONSTRAINT_NOTNULL
		{275, dialect.ClassOther},      // SQLITE_CONSTRAINT_CHECK
		{1, dialect.ClassOther},        // SQLITE_ERROR
		{8, dialect.ClassConnection},   // SQLITE_READONLY: the file cannot be written (unavailable_test.go)
		{13, dialect.ClassConnection},  // SQLITE_FULL
	}
	for _, tt := range tests {
		for _, err := range []error{testCode(tt.code), wrapped(testCode(tt.code))} {
			if got := dialect.SQLite.Classify(err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.want)
			}
		}
	}
	if got := dialect.SQLite.Classify(nil); got != dialect.ClassOther {
		t.Errorf("Classify(nil) = %v", got)
	}
}

func BenchmarkClassify(b *testing.B) {
	err := wrapped(testCode(5))
	b.ReportAllocs()
	for b.Loop() {
		dialect.SQLite.Classify(err)
	}
}
