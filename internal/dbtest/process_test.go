package dbtest

import (
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	tallymysql "github.com/tallyorm/tally/dialect/mysql"
)

// The tests in this file run this test binary again, as a child process
// with a chosen environment, to check what a whole test process does:
// which targets it skips or fails, what it prints, what Main drops.

// childEnv makes TestChild run; it is set only for the child.
const childEnv = "DBTEST_CHILD"

// secret is the password the children's DSNs carry; it must appear in no
// output.
const secret = "s3cretpw"

// TestChild is the child's test: a round trip on every target, logging
// the database each one used. With DBTEST_CHILD=leak it also leaves a
// transaction open, holding locks in its database, as a buggy test would.
func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("runs only as the child of the TestProcess tests")
	}
	Each(t, func(t *testing.T, tg Target) {
		roundTrip(t, tg)
		t.Logf("MADE %s %s", tg.Name, databaseOf(tg))
		if mode == "leak" {
			leakTx(t, tg)
		}
	})
}

// leakTx opens a pool that is never closed and leaves a transaction open
// on it, with a row of notes locked.
func leakTx(t *testing.T, tg Target) {
	db, err := sql.Open(tg.Driver, tg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE notes SET body = 'locked'"); err != nil {
		t.Fatal(err)
	}
}

// runChild runs TestChild in a child process with env added to this
// process's environment, and returns its output and whether it passed.
func runChild(t *testing.T, env ...string) (string, bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestChild$", "-test.v", "-test.count=1")
	// Later entries win; TALLY_REQUIRE is always set, as CI sets it here.
	cmd.Env = append(os.Environ(), childEnv+"=1", requireEnv+"=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("running the child: %v", err)
	}
	if strings.Contains(string(out), secret) {
		t.Errorf("the child's output shows the password:\n%s", out)
	}
	return string(out), err == nil
}

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// unreachableEnv points both servers at a closed port, with a password.
func unreachableEnv(t *testing.T) []string {
	addr := closedPort(t)
	return []string{
		mysqlEnv + "=root:" + secret + "@tcp(" + addr + ")/",
		postgresEnv + "=postgres://postgres:" + secret + "@" + addr + "/postgres?sslmode=disable",
	}
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("child output lacks %q:\n%s", w, out)
		}
	}
}

func TestProcessSkipsUnreachable(t *testing.T) {
	out, passed := runChild(t, unreachableEnv(t)...)
	if !passed {
		t.Fatalf("child failed; want unreachable servers skipped:\n%s", out)
	}
	wantLines(t, out,
		"--- PASS: TestChild/sqlite",
		"--- SKIP: TestChild/mysql",
		"--- SKIP: TestChild/postgres",
		"mysql unreachable at root:xxxxx@tcp(",
		"mysql tests SKIPPED; set TALLY_REQUIRE=mysql to make this a failure",
		"postgres unreachable at postgres://postgres:xxxxx@",
		"postgres tests SKIPPED; set TALLY_REQUIRE=postgres to make this a failure",
	)
}

func TestProcessRequiredFails(t *testing.T) {
	env := append(unreachableEnv(t), requireEnv+"=mysql")
	out, passed := runChild(t, env...)
	if passed {
		t.Fatalf("child passed; want a failure for the required, unreachable mysql:\n%s", out)
	}
	wantLines(t, out,
		"--- PASS: TestChild/sqlite",
		"--- FAIL: TestChild/mysql",
		"--- SKIP: TestChild/postgres",
		"and TALLY_REQUIRE=mysql requires it",
	)
}

func TestProcessBadRequireFails(t *testing.T) {
	out, passed := runChild(t, requireEnv+"=mysql,postgress")
	if passed {
		t.Fatalf("child passed with a misspelt TALLY_REQUIRE:\n%s", out)
	}
	wantLines(t, out, `names "postgress"`)
}

// A server that answers but refuses the harness fails the test even when
// not required: skipping would hide a misconfiguration.
func TestProcessAnsweredButUnusableFails(t *testing.T) {
	var env []string
	for _, s := range servers {
		if s.unavailable(t, nil) != "" {
			continue // the server is not here: nothing to misconfigure
		}
		switch s.name {
		case MySQL:
			cfg, _ := tallymysql.ParseDSN(s.base)
			cfg.Passwd = "wrong-" + secret
			env = append(env, mysqlEnv+"="+cfg.FormatDSN())
		case Postgres:
			env = append(env, postgresEnv+"="+withDatabase(s.base, "tally_no_such_database", ""))
		}
	}
	if env == nil {
		t.Skip("no server reachable")
	}
	out, passed := runChild(t, env...)
	if passed {
		t.Fatalf("child passed; want a failure for servers that answer but refuse:\n%s", out)
	}
	wantLines(t, out, "cannot be used", "a server that answers is never skipped")
	for _, s := range servers {
		if s.unavailable(t, nil) == "" {
			wantLines(t, out, "--- FAIL: TestChild/"+s.name)
		}
	}
}

// Everything the child created on the servers is gone once it exits,
// even when a test left a transaction open in it.
func TestProcessDropsItsDatabases(t *testing.T) {
	for _, mode := range []string{"clean", "leak"} {
		t.Run(mode, func(t *testing.T) { testDropsDatabases(t, mode) })
	}
}

func testDropsDatabases(t *testing.T, mode string) {
	out, passed := runChild(t, childEnv+"="+mode)
	if !passed {
		t.Fatalf("child failed:\n%s", out)
	}
	if strings.Contains(out, "dropping this package's test databases") {
		t.Errorf("child could not drop its databases:\n%s", out)
	}
	for _, s := range servers {
		if s.unavailable(t, nil) != "" {
			continue
		}
		made := madeBy(out, s.name)
		if made == "" {
			t.Errorf("child logged no database for %s:\n%s", s.name, out)
			continue
		}
		err := withDB(s.driver, s.admin, func(db *sql.DB) error {
			names, err := s.flavor.databases(t.Context(), db)
			if slices.Contains(names, made) {
				t.Errorf("%s: database %s of the child is still there", s.name, made)
			}
			return err
		})
		if err != nil {
			t.Errorf("%s: listing databases: %v", s.name, err)
		}
	}
}

// madeBy returns the database the child logged for target name.
func madeBy(out, name string) string {
	for line := range strings.Lines(out) {
		if _, rest, ok := strings.Cut(line, "MADE "+name+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// databaseOf returns the database of tg's DSN.
func databaseOf(tg Target) string {
	switch tg.Name {
	case MySQL:
		cfg, err := tallymysql.ParseDSN(tg.DSN)
		if err != nil {
			return fmt.Sprint(err)
		}
		return cfg.DBName
	case Postgres:
		u, err := url.Parse(tg.DSN)
		if err != nil {
			return fmt.Sprint(err)
		}
		return strings.TrimPrefix(u.Path, "/")
	}
	return tg.DSN
}
