// Package dbtest runs tests against real databases: SQLite always, and the
// MariaDB/MySQL and PostgreSQL servers that can be reached.
//
// A test package wires it in once, in TestMain, so that whatever the
// package creates on a server is dropped when its tests end:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
// and a test runs its body once per database with [Each]:
//
//	func TestInsert(t *testing.T) {
//		dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
//			db := dbtest.Open(t, tg) // or orm.Open(ctx, tg.Driver, tg.DSN)
//			...
//		})
//	}
//
// # Isolation
//
// Every call of [Each] or [Targets] hands out empty databases: a new SQLite
// file in the test's temp dir, a new MySQL database, and a new schema in
// PostgreSQL (in a database this test package created; the DSN sets
// search_path to it, so unqualified names land there — do not hard-code
// "public"). Tests therefore see the same empty start on all three
// targets, and may run in parallel. A test's databases are dropped when
// it ends; Main drops whatever is left when the package's tests end, and
// the first test of a later run drops leftovers of a run that died
// (older than two hours).
//
// # Which servers
//
// The servers are found through TALLY_MYSQL_DSN (default
// root@tcp(127.0.0.1:3306)/) and TALLY_POSTGRES_DSN (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). A server
// that cannot be reached is left out: its subtests are skipped with a
// message saying so — unless TALLY_REQUIRE (a comma list of "mysql",
// "postgres") names it, then the test fails. A server that answers but
// cannot be used (refused login, no right to create a database) always
// fails the test: that is a misconfiguration, not an absent server.
//
// No message of this package contains a password.
//
// # Concurrency
//
// All functions are safe for concurrent use by parallel tests. The state
// behind them (which servers answered, what was created) is per test
// process, which is what a test binary is: one per package.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	// The three databases: each registers its database/sql driver (under
	// the name a Target carries) and its Tally driver, so that every test
	// package using dbtest can orm.Open and classify errors on all three.
	_ "github.com/tallyorm/tally/dialect/mysql"
	_ "github.com/tallyorm/tally/dialect/postgres"
	_ "github.com/tallyorm/tally/dialect/sqlite"
)

// Target names, exported so that a test which must branch on the database
// (an error code, a type that differs) compares against a constant.
const (
	SQLite   = "sqlite"
	MySQL    = "mysql"
	Postgres = "postgres"
)

// Target is one database a test can run against.
type Target struct {
	Name   string // "sqlite", "mysql", "postgres" — also the subtest name
	Driver string // database/sql driver name: "sqlite", "mysql", "pgx"
	// DSN of an empty database made for this call of Each or Targets: a
	// SQLite file in the test's temp dir, a MySQL database, a PostgreSQL
	// schema (the DSN's search_path) in this test package's database.
	// It carries any password of TALLY_*_DSN: do not print it.
	DSN string
}

// mainCalled is set by Main. Without Main nothing would drop the databases
// a package creates on the servers, so Targets and Each refuse to run.
var mainCalled atomic.Bool

// Main is for TestMain: it runs the tests, then drops every database this
// test process created on the servers, and exits with m.Run's code.
//
// A failed drop is reported on stderr but does not change the exit code:
// the tests' verdict stands, and a later run removes leftovers older than
// two hours.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	for _, s := range servers {
		if err := s.dropOwn(); err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// Targets returns the available targets, each an empty database made for
// this call: SQLite always, then MySQL and PostgreSQL when they can be
// reached.
//
// An unreachable server is logged once per test process and left out —
// unless TALLY_REQUIRE names it, then Targets fails the test, as it does
// for a server that answers but cannot be used.
func Targets(t testing.TB) []Target {
	t.Helper()
	req := mustSetUp(t)
	tgs := []Target{sqliteTarget(t)}
	for _, s := range servers {
		if why := s.unavailable(t, req); why != "" {
			s.logOnce.Do(func() { t.Log(why) })
			continue
		}
		tgs = append(tgs, s.target(t))
	}
	return tgs
}

// Each runs fn as a subtest per target, named by Target.Name, always in
// the order sqlite, mysql, postgres. A server that cannot be reached (and
// is not required) still gets its subtest, skipped with the reason, so
// that `go test -v` shows what did not run. A target's database is made
// inside its subtest, so -run filters such as TestX/sqlite create nothing
// on the servers.
func Each(t *testing.T, fn func(t *testing.T, tg Target)) {
	t.Helper()
	req := mustSetUp(t)
	t.Run(SQLite, func(t *testing.T) { fn(t, sqliteTarget(t)) })
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			if why := s.unavailable(t, req); why != "" {
				t.Skip(why)
			}
			fn(t, s.target(t))
		})
	}
}

// Open opens tg with database/sql and pings it; the pool is closed when
// the test ends. Any failure fails the test.
func Open(t testing.TB, tg Target) *sql.DB {
	t.Helper()
	db, err := sql.Open(tg.Driver, tg.DSN)
	if err != nil {
		t.Fatalf("dbtest: open %s at %s: %v", tg.Name, redact(tg.DSN), scrub(err, tg.DSN))
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("dbtest: ping %s at %s: %v", tg.Name, redact(tg.DSN), scrub(err, tg.DSN))
	}
	return db
}

// mustSetUp checks what every entry point needs, failing t otherwise: that
// TestMain calls Main, and that TALLY_REQUIRE parses. It returns the
// required server names.
func mustSetUp(t testing.TB) map[string]bool {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("dbtest: this test package has no TestMain calling dbtest.Main, so the databases it creates would never be dropped; add:\n\tfunc TestMain(m *testing.M) { dbtest.Main(m) }")
	}
	req, err := parseRequire(os.Getenv(requireEnv))
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return req
}

// sqliteTarget returns a SQLite target on a new file in a new temp dir of t.
func sqliteTarget(t testing.TB) Target {
	path := filepath.Join(t.TempDir(), "tally.db")
	// t.TempDir keeps characters such as '#' and '%' from the test name,
	// and a file: DSN is a URI to SQLite, so escape what a URI path cannot
	// hold literally (SQLite decodes %HH).
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return Target{Name: SQLite, Driver: "sqlite", DSN: "file:" + esc}
}
