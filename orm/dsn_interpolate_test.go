package orm

import (
	"testing"

	"github.com/go-sql-driver/mysql"
)

// Open turns on go-sql-driver's client-side interpolation (one round trip
// per statement instead of prepare + execute) unless the DSN sets it.
func TestPrepareDSNMySQLInterpolatesUnlessTold(t *testing.T) {
	for _, tt := range []struct {
		dsn  string
		want bool
	}{
		{"root@tcp(127.0.0.1:3306)/app", true},
		{"root@tcp(127.0.0.1:3306)/app?interpolateParams=true", true},
		{"root@tcp(127.0.0.1:3306)/app?interpolateParams=false", false},
	} {
		_, out, _, err := prepareDSN("mysql", tt.dsn)
		if err != nil {
			t.Fatalf("%s: %v", tt.dsn, err)
		}
		cfg, err := mysql.ParseDSN(out)
		if err != nil {
			t.Fatalf("prepared DSN of %s does not parse: %v", tt.dsn, err)
		}
		if cfg.InterpolateParams != tt.want {
			t.Errorf("%s: InterpolateParams %v, want %v", tt.dsn, cfg.InterpolateParams, tt.want)
		}
	}
}
