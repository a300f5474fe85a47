package dialect

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDialectBasics(t *testing.T) {
	tests := []struct {
		d         Dialect
		name      string
		returning bool
		maxParams int
		ph3       string
	}{
		{MySQL, "mysql", false, 65535, "?"},
		{MariaDB, "mysql", true, 65535, "?"},
		{PostgreSQL, "postgres", true, 65535, "$3"},
		{SQLite, "sqlite", true, 32766, "?"},
	}
	for _, tt := range tests {
		if got := tt.d.Name(); got != tt.name {
			t.Errorf("Name() = %q, want %q", got, tt.name)
		}
		if got := tt.d.Returning(); got != tt.returning {
			t.Errorf("%v Returning() = %v, want %v", tt.d, got, tt.returning)
		}
		if got := tt.d.MaxParams(); got != tt.maxParams {
			t.Errorf("%s MaxParams() = %d, want %d", tt.name, got, tt.maxParams)
		}
		if got := string(tt.d.AppendPlaceholder([]byte("x="), 3)); got != "x="+tt.ph3 {
			t.Errorf("%s AppendPlaceholder(3) = %q, want %q", tt.name, got, "x="+tt.ph3)
		}
	}
	if MySQL == MariaDB {
		t.Error("MySQL == MariaDB; callers tell them apart with ==")
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		d     Dialect
		ident string
		want  string
	}{
		{MySQL, "users", "`users`"},
		{MySQL, "", "``"},
		{MySQL, "a`b", "`a``b`"},
		{MySQL, "``", "``````"},
		{MySQL, `a"b`, "`a\"b`"},
		{MySQL, "schema.table", "`schema.table`"},
		{PostgreSQL, "users", `"users"`},
		{PostgreSQL, `a"b`, `"a""b"`},
		{PostgreSQL, "a`b", "\"a`b\""},
		{PostgreSQL, `"`, `""""`},
		{PostgreSQL, "Mixed Case é", `"Mixed Case é"`},
		{SQLite, "users", `"users"`},
		{SQLite, `x"y"z`, `"x""y""z"`},
	}
	for _, tt := range tests {
		if got := tt.d.Quote(tt.ident); got != tt.want {
			t.Errorf("%s.Quote(%q) = %q, want %q", tt.d.Name(), tt.ident, got, tt.want)
		}
	}
}

func TestByName(t *testing.T) {
	tests := []struct {
		name string
		want Dialect
	}{
		{"mysql", MySQL},
		{"mariadb", MariaDB},
		{"postgres", PostgreSQL},
		{"postgresql", PostgreSQL},
		{"pgx", PostgreSQL},
		{"sqlite", SQLite},
		{"sqlite3", SQLite},
	}
	for _, tt := range tests {
		got, err := ByName(tt.name)
		if err != nil || got != tt.want {
			t.Errorf("ByName(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	for _, name := range []string{"", "oracle", "MySQL", "postgres "} {
		got, err := ByName(name)
		if err == nil || got != nil {
			t.Errorf("ByName(%q) = %v, %v; want an error", name, got, err)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "dialect: ") || !strings.Contains(msg, `"`+name+`"`) {
			t.Errorf("ByName(%q) error %q does not name it", name, msg)
		}
	}
}

func TestForMySQLServer(t *testing.T) {
	tests := []struct {
		version string
		want    Dialect
	}{
		{"8.0.36", MySQL},
		{"8.4.3-log", MySQL},
		{"9.1.0", MySQL},
		{"5.7.44-0ubuntu0.18.04.1", MySQL},
		{"10.11.19-MariaDB-0+deb12u1", MariaDB},
		{"10.5.0-MariaDB", MariaDB},
		{"10.4.3-MariaDB-log", MySQL},
		{"10.4.34-MariaDB", MySQL},
		{"5.5.5-10.6.12-MariaDB", MariaDB},
		{"5.5.5-10.4.32-MariaDB", MySQL},
		{"11.4.2-MariaDB", MariaDB},
		{"12.0.1-MariaDB-ubu2404", MariaDB},
		{"10.6.12-mariadb", MariaDB},
		{"10-MariaDB", MySQL},
		{"MariaDB", MySQL},
		{"x.y-MariaDB", MySQL},
		{"10.x-MariaDB", MySQL},
		{"", MySQL},
	}
	for _, tt := range tests {
		if got := ForMySQLServer(tt.version); got != tt.want {
			t.Errorf("ForMySQLServer(%q) returning = %v, want %v", tt.version, got.Returning(), tt.want.Returning())
		}
	}
}

// Dialects are values: comparing them, as the rows above do, must keep
// working.
func TestDialectsComparable(t *testing.T) {
	seen := map[Dialect]string{}
	for _, d := range allDialects {
		if other, dup := seen[d.d]; dup {
			t.Errorf("%s and %s are the same value", d.name, other)
		}
		seen[d.d] = d.name
	}
	if diff := cmp.Diff(4, len(seen)); diff != "" {
		t.Error(diff)
	}
}
