package postgres

import (
	"strings"
	"testing"
)

// Password finds the password of URL and key=value DSNs, so that Open can
// keep it out of errors.
func TestPassword(t *testing.T) {
	tests := []struct{ dsn, password string }{
		{"postgres://u:pw@127.0.0.1:5432/db?sslmode=disable", "pw"},
		{"postgresql://u:p%40ss@127.0.0.1/db", "p@ss"},
		{"postgres://u@127.0.0.1/db?password=qpw", "qpw"},
		{"host=127.0.0.1 user=u password=kvpw dbname=db", "kvpw"},
		{"host=127.0.0.1 user=u password='quoted pw' dbname=db", "quoted pw"},
	}
	t.Setenv("PGPASSWORD", "") // the DSNs alone decide
	for _, tt := range tests {
		pw, err := Password(tt.dsn)
		if err != nil {
			t.Errorf("Password(%q): %v", tt.dsn, err)
			continue
		}
		if pw != tt.password {
			t.Errorf("Password(%q) = %q, want %q", tt.dsn, pw, tt.password)
		}
	}
}

// A DSN pgx cannot parse is an error that does not quote the password,
// which pgx's own error keeps.
func TestPasswordBadDSN(t *testing.T) {
	_, err := Password("postgres://u:S3cretPw@127.0.0.1:bad/x")
	if want := "postgres: bad DSN"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Password(bad DSN) = %v, want %q...", err, want)
	}
	if strings.Contains(err.Error(), "S3cretPw") {
		t.Errorf("error %q contains the password", err)
	}
}
