package dbtest

import (
	"errors"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"root@tcp(127.0.0.1:3306)/", "root@tcp(127.0.0.1:3306)/"},
		{"root:s3cret@tcp(127.0.0.1:3306)/app?parseTime=true", "root:xxxxx@tcp(127.0.0.1:3306)/app?parseTime=true"},
		{"u:p@ss:w@rd@unix(/run/mysqld/mysqld.sock)/", "u:xxxxx@unix(/run/mysqld/mysqld.sock)/"},
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
		{"postgres://ann:s3cret@db:5432/app?sslmode=disable", "postgres://ann:xxxxx@db:5432/app?sslmode=disable"},
		{"postgresql://ann@db/app?password=s3cret", "postgresql://ann@db/app?password=xxxxx"},
		{"postgres://ann:s3cret@db/%zz", "[unparseable postgres DSN, not shown]"},
		{"file:/tmp/x/tally.db", "file:/tmp/x/tally.db"},
		{"ann:s3cret@tcp(unterminated", "[unparseable DSN, not shown]"},
	}
	for _, tt := range tests {
		got := redact(tt.dsn)
		if got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("redact(%q) = %q shows the password", tt.dsn, got)
		}
	}
}

func TestScrub(t *testing.T) {
	err := errors.New("auth failed for s3cret and hunter2")
	for dsn, want := range map[string]string{
		"root:s3cret@tcp(h:3306)/":           "auth failed for xxxxx and hunter2",
		"postgres://u:s3cret@h/db":           "auth failed for xxxxx and hunter2",
		"postgres://u@h/db?password=hunter2": "auth failed for s3cret and xxxxx",
		"root@tcp(h:3306)/":                  "auth failed for s3cret and hunter2",
	} {
		if got := scrub(err, dsn); got != want {
			t.Errorf("scrub(_, %q) = %q, want %q", dsn, got, want)
		}
	}
	if got := scrub(nil, "root:s3cret@tcp(h)/"); got != "" {
		t.Errorf("scrub(nil) = %q", got)
	}
}

func TestParseRequire(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"mysql", []string{"mysql"}, false},
		{"mysql,postgres", []string{"mysql", "postgres"}, false},
		{" MySQL , postgres ,", []string{"mysql", "postgres"}, false},
		{"sqlite", []string{"sqlite"}, false},
		{"mysql,postgresql", nil, true},
		{"mariadb", nil, true},
	}
	for _, tt := range tests {
		got, err := parseRequire(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseRequire(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "TALLY_REQUIRE") {
				t.Errorf("parseRequire(%q) error %q does not name TALLY_REQUIRE", tt.in, err)
			}
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("parseRequire(%q) = %v, want %v", tt.in, got, tt.want)
		}
		for _, name := range tt.want {
			if !got[name] {
				t.Errorf("parseRequire(%q) = %v, lacks %s", tt.in, got, name)
			}
		}
	}
}
