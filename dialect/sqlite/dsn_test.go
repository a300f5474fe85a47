package sqlite

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// sqlitePragmas returns the _pragma values and the other parameters of a
// prepared SQLite DSN.
func sqlitePragmas(t *testing.T, dsn string) (path string, pragmas []string, q url.Values) {
	t.Helper()
	path, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("%q: %v", dsn, err)
	}
	pragmas = q["_pragma"]
	delete(q, "_pragma")
	return path, pragmas, q
}

// DSN adds the pragmas Tally relies on, keeps the DSN's own, and is
// idempotent.
func TestDSNAddsPragmas(t *testing.T) {
	defaults := []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)"}
	tests := []struct {
		in          string
		wantPath    string
		wantPragmas []string
		wantParams  url.Values
	}{
		{"app.db", "file:app.db", defaults, url.Values{"_txlock": {"immediate"}}},
		{"file:app.db", "file:app.db", defaults, url.Values{"_txlock": {"immediate"}}},
		{"/abs/dir/app.db", "file:/abs/dir/app.db", defaults, url.Values{"_txlock": {"immediate"}}},
		// Each pooled connection would get its own empty :memory:
		// database; it becomes one named shared-cache memory database.
		{":memory:", "file:tally-mem-", defaults, url.Values{"_txlock": {"immediate"}, "mode": {"memory"}, "cache": {"shared"}}},
		{"file:/a%23b.db?mode=ro&cache=shared", "file:/a%23b.db", defaults,
			url.Values{"_txlock": {"immediate"}, "mode": {"ro"}, "cache": {"shared"}}},
		// The DSN's own pragmas and _txlock win, whatever their spelling.
		{"file:x.db?_pragma=busy_timeout(5)&_txlock=deferred", "file:x.db",
			[]string{"busy_timeout(5)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"},
			url.Values{"_txlock": {"deferred"}}},
		{"file:x.db?_pragma=Journal_Mode%3DDELETE&_pragma=+foreign_keys(0)&_pragma=synchronous(FULL)", "file:x.db",
			[]string{"Journal_Mode=DELETE", " foreign_keys(0)", "synchronous(FULL)", "busy_timeout(10000)"},
			url.Values{"_txlock": {"immediate"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			out := DSN(tt.in)
			path, pragmas, params := sqlitePragmas(t, out)
			if path != tt.wantPath && !(tt.in == ":memory:" && strings.HasPrefix(path, tt.wantPath)) {
				t.Errorf("path %q, want %q", path, tt.wantPath)
			}
			// Times are stored in SQLite's own format, in UTC, unless the
			// DSN says otherwise.
			want := url.Values{"_time_format": {"sqlite"}, "_timezone": {"UTC"}}
			for k, v := range tt.wantParams {
				want[k] = v
			}
			tt.wantParams = want
			if !slices.Equal(pragmas, tt.wantPragmas) {
				t.Errorf("pragmas %q, want %q", pragmas, tt.wantPragmas)
			}
			if fmt.Sprint(params) != fmt.Sprint(tt.wantParams) {
				t.Errorf("params %v, want %v", params, tt.wantParams)
			}
			// Prepared twice is prepared once (":memory:" aside, which
			// becomes the equivalent URI "file::memory:").
			if again := DSN(out); again != out && tt.in != ":memory:" {
				t.Errorf("not idempotent:\n%s\n%s", out, again)
			}
		})
	}
	// A query that does not parse is left for the driver to report.
	if got := DSN("file:x.db?%zz"); got != "file:x.db?%zz" {
		t.Errorf("DSN(bad query) = %q, want it unchanged", got)
	}
}

// FuzzDSN: on any input no panic, and a file: DSN prepared twice is the
// same as once.
func FuzzDSN(f *testing.F) {
	for _, s := range []string{
		"file:x.db?_pragma=busy_timeout(5)&_txlock=deferred",
		":memory:",
		"app.db",
		"file:x.db?%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		out := DSN(dsn)
		if again := DSN(out); again != out && strings.HasPrefix(out, "file:") {
			t.Fatalf("DSN not idempotent on %q:\n%q\n%q", dsn, out, again)
		}
	})
}
