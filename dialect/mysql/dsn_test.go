package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Config keeps what the DSN says and adds the two settings a version check
// needs: parseTime and clientFoundRows, even over the DSN's own.
func TestConfigAddsTallySettings(t *testing.T) {
	tests := []struct {
		dsn      string
		password string
		check    func(t *testing.T, cfg *mysql.Config)
	}{
		{"root@tcp(127.0.0.1:3306)/app", "", func(t *testing.T, cfg *mysql.Config) {
			if cfg.User != "root" || cfg.Addr != "127.0.0.1:3306" || cfg.DBName != "app" {
				t.Errorf("user/addr/db = %q %q %q, want root 127.0.0.1:3306 app", cfg.User, cfg.Addr, cfg.DBName)
			}
		}},
		{"u:pw@tcp(h:3306)/db?parseTime=false&clientFoundRows=false", "pw", nil},
		{"u:p@ss:w0rd@unix(/run/mysqld.sock)/db", "p@ss:w0rd", func(t *testing.T, cfg *mysql.Config) {
			if cfg.Net != "unix" || cfg.Addr != "/run/mysqld.sock" {
				t.Errorf("net/addr = %q %q, want unix /run/mysqld.sock", cfg.Net, cfg.Addr)
			}
		}},
		{"u:pw@tcp(h:3306)/db?charset=utf8mb4&loc=Local&timeout=5s&multiStatements=true", "pw", func(t *testing.T, cfg *mysql.Config) {
			if !strings.Contains(cfg.FormatDSN(), "charset=utf8mb4") || cfg.Loc != time.Local || cfg.Timeout != 5*time.Second || !cfg.MultiStatements {
				t.Errorf("the DSN's own settings were lost: %+v", cfg)
			}
		}},
		{"/db", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			prepared, err := Config(tt.dsn)
			if err != nil {
				t.Fatal(err)
			}
			if pw := prepared.Passwd; pw != tt.password {
				t.Errorf("password %q, want %q", pw, tt.password)
			}
			out := prepared.FormatDSN()
			if !strings.Contains(out, "parseTime=true") || !strings.Contains(out, "clientFoundRows=true") {
				t.Errorf("DSN %q lacks parseTime=true or clientFoundRows=true", out)
			}
			cfg, err := mysql.ParseDSN(out)
			if err != nil {
				t.Fatalf("prepared DSN %q does not parse: %v", out, err)
			}
			if !cfg.ParseTime || !cfg.ClientFoundRows {
				t.Errorf("ParseTime %v ClientFoundRows %v, want true true", cfg.ParseTime, cfg.ClientFoundRows)
			}
			if cfg.Passwd != tt.password {
				t.Errorf("password became %q, want %q", cfg.Passwd, tt.password)
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}

func TestConfigBadDSN(t *testing.T) {
	_, err := Config("u:pw@tcp(127.0.0.1:3306/x")
	if want := "mysql: bad DSN"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Config(bad DSN) = %v, want %q...", err, want)
	}
}

// FuzzConfig: on any input no panic, and a DSN that parses always gets the
// two settings and keeps its password.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"root@tcp(127.0.0.1:3306)/app",
		"u:pw@tcp(h:3306)/db?parseTime=false&loc=Local",
		"u:p@ss@unix(/tmp/sock)/db",
		"postgres://u:pw@h:bad/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		prepared, err := Config(dsn)
		if err != nil {
			return
		}
		out := prepared.FormatDSN()
		cfg, err := mysql.ParseDSN(out)
		if err != nil {
			t.Fatalf("prepared %q → %q, which does not parse: %v", dsn, out, err)
		}
		// (The driver's FormatDSN drops a password that has no user.)
		if !cfg.ParseTime || !cfg.ClientFoundRows || cfg.User != "" && cfg.Passwd != prepared.Passwd {
			t.Fatalf("prepared %q → %q: %+v, want parseTime, clientFoundRows and password %q", dsn, out, cfg, prepared.Passwd)
		}
	})
}

// Config turns on go-sql-driver's client-side interpolation (one round
// trip per statement instead of prepare + execute) unless the DSN sets it,
// and leaves it off where the driver refuses it: a collation whose
// multi-byte characters can hide a quote.
func TestConfigInterpolatesUnlessToldOrUnsafe(t *testing.T) {
	for _, tt := range []struct {
		dsn  string
		want bool
	}{
		{"root@tcp(127.0.0.1:3306)/app", true},
		{"root@tcp(127.0.0.1:3306)/app?interpolateParams=true", true},
		{"root@tcp(127.0.0.1:3306)/app?interpolateParams=false", false},
		{"root@tcp(127.0.0.1:3306)/app?collation=big5_chinese_ci", false},
	} {
		cfg, err := Config(tt.dsn)
		if err != nil {
			t.Fatalf("Config(%s): %v", tt.dsn, err)
		}
		if cfg.InterpolateParams != tt.want {
			t.Errorf("Config(%s).InterpolateParams = %v, want %v", tt.dsn, cfg.InterpolateParams, tt.want)
		}
	}
}

// ParseDSN adds none of Config's settings, so that a DSN rewritten through
// it (by a test harness, or to hide its password) says what it said.
func TestParseDSNAddsNothing(t *testing.T) {
	const dsn = "u:pw@tcp(h:3306)/db?charset=utf8mb4"
	cfg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ParseTime || cfg.ClientFoundRows || cfg.InterpolateParams {
		t.Errorf("ParseDSN(%q): parseTime, clientFoundRows, interpolateParams = %v, %v, %v; want all false",
			dsn, cfg.ParseTime, cfg.ClientFoundRows, cfg.InterpolateParams)
	}
	if cfg.Passwd != "pw" || cfg.DBName != "db" {
		t.Errorf("ParseDSN(%q): password, database = %q, %q; want pw, db", dsn, cfg.Passwd, cfg.DBName)
	}
	if got := cfg.FormatDSN(); got != dsn {
		t.Errorf("ParseDSN(%q).FormatDSN() = %q, want the DSN back", dsn, got)
	}
	if _, err := ParseDSN("u:secret@tcp(h:3306)db"); err == nil || !strings.HasPrefix(err.Error(), "mysql: bad DSN: ") || strings.Contains(err.Error(), "secret") {
		t.Errorf("ParseDSN of a DSN without its slash: err = %v, want mysql: bad DSN: ..., without the password", err)
	}
}
