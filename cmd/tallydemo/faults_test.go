package main

import (
	"strings"
	"testing"
)

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		in        string
		kill, cut bool
		bad       bool
	}{
		{"", false, false, false},
		{"none", false, false, false},
		{"kill", true, false, false},
		{"kill,cut", true, true, false},
		{" cut , kill ", true, true, false},
		{"stop", false, false, true},
	} {
		f, err := parseFaults(tc.in)
		if (err != nil) != tc.bad || f.Kill != tc.kill || f.Cut != tc.cut {
			t.Errorf("parseFaults(%q) = %+v, %v", tc.in, f, err)
		}
	}
	if _, err := parseFlags([]string{"-faults", "kill"}, new(strings.Builder)); err == nil || !strings.Contains(err.Error(), "mysql or postgres") {
		t.Errorf("-faults kill on SQLite: %v, want refused: SQLite has no connection to kill", err)
	}
}

// The fault injector finds the demo's PostgreSQL backends by their
// application_name, set in either DSN form; a DSN that names one keeps it.
func TestWithApplicationName(t *testing.T) {
	u := withApplicationName("postgres://postgres@127.0.0.1:5432/db?sslmode=disable&search_path=s1")
	if !strings.Contains(u, "application_name=tallydemo-") || !strings.Contains(u, "search_path=s1") || !strings.Contains(u, "sslmode=disable") {
		t.Errorf("URL form: %s", u)
	}
	if kv := withApplicationName("host=127.0.0.1 dbname=db"); !strings.HasPrefix(kv, "host=127.0.0.1 dbname=db application_name=tallydemo-") {
		t.Errorf("key=value form: %s", kv)
	}
	if got := withApplicationName("postgres://h/db?application_name=mine"); got != "postgres://h/db?application_name=mine" {
		t.Errorf("a DSN that names itself: %s", got)
	}
}
