package orm

// White-box tests of DSN preparation and password redaction.

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/dialect"
)

func TestPrepareDSNMySQL(t *testing.T) {
	tests := []struct {
		dsn      string
		password string
		check    func(t *testing.T, cfg *mysql.Config)
	}{
		{"root@tcp(127.0.0.1:3306)/app", "", func(t *testing.T, cfg *mysql.Config) {
			if cfg.User != "root" || cfg.Addr != "127.0.0.1:3306" || cfg.DBName != "app" {
				t.Errorf("user/addr/db = %q %q %q", cfg.User, cfg.Addr, cfg.DBName)
			}
		}},
		{"u:pw@tcp(h:3306)/db?parseTime=false&clientFoundRows=false", "pw", nil},
		{"u:p@ss:w0rd@unix(/run/mysqld.sock)/db", "p@ss:w0rd", func(t *testing.T, cfg *mysql.Config) {
			if cfg.Net != "unix" || cfg.Addr != "/run/mysqld.sock" {
				t.Errorf("net/addr = %q %q", cfg.Net, cfg.Addr)
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
			drv, out, pw, err := prepareDSN("mysql", tt.dsn)
			if err != nil {
				t.Fatal(err)
			}
			if drv != "mysql" || pw != tt.password {
				t.Errorf("driver %q password %q, want mysql %q", drv, pw, tt.password)
			}
			if !strings.Contains(out, "parseTime=true") || !strings.Contains(out, "clientFoundRows=true") {
				t.Errorf("DSN %q lacks parseTime=true or clientFoundRows=true", out)
			}
			cfg, err := mysql.ParseDSN(out)
			if err != nil {
				t.Fatalf("prepared DSN %q does not parse: %v", out, err)
			}
			if !cfg.ParseTime || !cfg.ClientFoundRows {
				t.Errorf("ParseTime %v ClientFoundRows %v", cfg.ParseTime, cfg.ClientFoundRows)
			}
			if cfg.Passwd != tt.password {
				t.Errorf("password became %q", cfg.Passwd)
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}

func TestPrepareDSNPostgres(t *testing.T) {
	tests := []struct{ dsn, password string }{
		{"postgres://u:pw@127.0.0.1:5432/db?sslmode=disable", "pw"},
		{"postgresql://u:p%40ss@127.0.0.1/db", "p@ss"},
		{"postgres://u@127.0.0.1/db?password=qpw", "qpw"},
		{"host=127.0.0.1 user=u password=kvpw dbname=db", "kvpw"},
		{"host=127.0.0.1 user=u password='quoted pw' dbname=db", "quoted pw"},
	}
	t.Setenv("PGPASSWORD", "") // the DSNs alone decide
	for _, name := range []string{"postgres", "postgresql", "pgx"} {
		for _, tt := range tests {
			t.Run(name+" "+tt.dsn, func(t *testing.T) {
				drv, out, pw, err := prepareDSN(name, tt.dsn)
				if err != nil {
					t.Fatal(err)
				}
				if drv != "pgx" || out != tt.dsn || pw != tt.password {
					t.Errorf("got (%q, %q, %q), want (pgx, the DSN unchanged, %q)", drv, out, pw, tt.password)
				}
			})
		}
	}
}

func TestPrepareDSNErrors(t *testing.T) {
	tests := []struct{ driver, dsn, want string }{
		{"mysql", "u:pw@tcp(127.0.0.1:3306/x", "orm: bad mysql DSN"},
		{"postgres", "postgres://u:pw@127.0.0.1:bad/x", "orm: bad postgres DSN"},
		{"oracle", "x", `orm: unknown driver "oracle"`},
		{"", "x", `orm: unknown driver ""`},
	}
	for _, tt := range tests {
		_, _, _, err := prepareDSN(tt.driver, tt.dsn)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("prepareDSN(%q, %q) = %v, want %q...", tt.driver, tt.dsn, err, tt.want)
		}
	}
}

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

func TestSQLiteDSN(t *testing.T) {
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
			out := sqliteDSN(tt.in)
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
			if again := sqliteDSN(out); again != out && tt.in != ":memory:" {
				t.Errorf("not idempotent:\n%s\n%s", out, again)
			}
		})
	}
	// A query that does not parse is left for the driver to report.
	if got := sqliteDSN("file:x.db?%zz"); got != "file:x.db?%zz" {
		t.Errorf("bad query: %q", got)
	}
	if drv, out, pw, err := prepareDSN("sqlite3", "x.db"); err != nil || drv != "sqlite" || out != sqliteDSN("x.db") || pw != "" {
		t.Errorf("prepareDSN(sqlite3) = %q %q %q %v", drv, out, pw, err)
	}
}

func TestRedact(t *testing.T) {
	const pw = "S3cretPw"
	plain := errors.New("dial tcp 127.0.0.1:1: connection refused")
	if got := redact(plain, pw); got != plain {
		t.Errorf("an error without the password was changed: %v", got)
	}
	if got := redact(plain, ""); got != plain {
		t.Errorf("an empty password changed the error: %v", got)
	}
	if redact(nil, pw) != nil {
		t.Error("redact(nil) != nil")
	}

	driverErr := errors.New(`parse "postgres://u:S3cretPw@h/x": invalid port`)
	got := redact(fmt.Errorf("orm: open: %w", driverErr), pw)
	if strings.Contains(got.Error(), pw) {
		t.Errorf("message still has the password: %v", got)
	}
	if got.Error() != `orm: open: parse "postgres://u:xxxxx@h/x": invalid port` {
		t.Errorf("message %q", got)
	}
	engWalk(got, func(e error) {
		if strings.Contains(e.Error(), pw) {
			t.Errorf("%T reachable through Unwrap has the password: %v", e, e)
		}
	})
	if errors.Is(got, driverErr) {
		t.Error("the original error, whose text has the password, is still reachable")
	}

	// A connection error stays a connection error.
	conn := &DBError{Class: dialect.ClassConnection, Err: errors.New("dial u:S3cretPw@h: refused")}
	got = redact(fmt.Errorf("orm: connect: %w", conn), pw)
	if !errors.Is(got, ErrConnection) {
		t.Errorf("redacted connection error does not match ErrConnection: %v", got)
	}
	engWalk(got, func(e error) {
		if strings.Contains(e.Error(), pw) {
			t.Errorf("%T reachable through Unwrap has the password: %v", e, e)
		}
	})
}

func engWalk(err error, fn func(error)) {
	for err != nil {
		fn(err)
		err = errors.Unwrap(err)
	}
}

// FuzzPrepareDSN checks invariants of DSN preparation on any input: no
// panic; a MySQL DSN that parses always gets the two settings and keeps its
// password; a SQLite file: DSN prepared twice is the same as once.
func FuzzPrepareDSN(f *testing.F) {
	for _, s := range []string{
		"root@tcp(127.0.0.1:3306)/app",
		"u:pw@tcp(h:3306)/db?parseTime=false&loc=Local",
		"u:p@ss@unix(/tmp/sock)/db",
		"postgres://u:pw@127.0.0.1:5432/db?sslmode=disable",
		"host=h user=u password='a b' dbname=d",
		"file:x.db?_pragma=busy_timeout(5)&_txlock=deferred",
		":memory:",
		"app.db",
		"file:x.db?%zz",
		"postgres://u:pw@h:bad/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		if _, out, pw, err := prepareDSN("mysql", dsn); err == nil {
			cfg, err := mysql.ParseDSN(out)
			if err != nil {
				t.Fatalf("prepared %q → %q, which does not parse: %v", dsn, out, err)
			}
			// (The driver's FormatDSN drops a password that has no user.)
			if !cfg.ParseTime || !cfg.ClientFoundRows || cfg.User != "" && cfg.Passwd != pw {
				t.Fatalf("prepared %q → %q: %+v", dsn, out, cfg)
			}
		}
		prepareDSN("postgres", dsn)
		_, out, _, err := prepareDSN("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if again := sqliteDSN(out); again != out && strings.HasPrefix(out, "file:") {
			t.Fatalf("sqliteDSN not idempotent on %q:\n%q\n%q", dsn, out, again)
		}
	})
}
