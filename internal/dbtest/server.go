package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	tallymysql "github.com/tallyorm/tally/dialect/mysql"
)

const (
	mysqlEnv    = "TALLY_MYSQL_DSN"
	postgresEnv = "TALLY_POSTGRES_DSN"

	defaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/"
	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

	// connectTimeout bounds the dial to a server, so that an absent one
	// (a firewalled address rather than a refused port) costs the suite a
	// few seconds, once, instead of the OS's minutes.
	connectTimeout = 3 * time.Second
	// opTimeout bounds one administrative step (probe, create, drop).
	opTimeout = 30 * time.Second

	// namePrefix starts every database the harness creates; staleAfter is
	// the age past which one is taken for a crashed run's leftover.
	namePrefix = "tally_t_"
	staleAfter = 2 * time.Hour
)

// servers are the two database servers, in subtest order. Their state is
// per process, like the databases they create: Main drops those at exit.
var servers = []*server{
	{name: MySQL, driver: "mysql", env: mysqlEnv, defaultDSN: defaultMySQLDSN, flavor: mysqlFlavor{}},
	{name: Postgres, driver: "pgx", env: postgresEnv, defaultDSN: defaultPostgresDSN, flavor: postgresFlavor{}},
}

// server is one database server the harness provisions on. The first test
// that needs it probes it (once per process); every target then gets a
// fresh namespace from target.
//
// No connection is kept open between steps: each step opens its own pool
// and closes it, so that a test checking for leaked goroutines (goleak)
// does not find the harness's.
type server struct {
	name, driver, env, defaultDSN string
	flavor                        flavor

	once sync.Once
	// Set by once, read-only afterwards.
	base  string // the DSN from the environment (or the default)
	admin string // DSN for administrative connections: short dial timeout
	err   error  // why the server cannot be used; nil when ready
	// misconfigured: err is not an absent server but one that answered
	// (refused login, failed CREATE) or a DSN that does not parse.
	misconfigured bool
	used          atomic.Bool // probe succeeded: Main has databases to drop

	logOnce sync.Once // Targets logs an unreachable server once per process
	seq     atomic.Int64
}

// flavor is what differs between MySQL and PostgreSQL: how a DSN names a
// database, and how one is made and dropped.
type flavor interface {
	// adminDSN checks base and returns the DSN administrative steps use.
	adminDSN(base string) (string, error)
	// setUp runs once, when the server first answers; PostgreSQL creates
	// the package's database there.
	setUp(ctx context.Context, admin, pkgDB string) error
	// namespace creates empty namespace number n and returns its DSN,
	// and a func that drops it.
	namespace(ctx context.Context, base, admin, pkgDB string, n int64) (dsn string, drop func(context.Context) error, err error)
	// databases lists the server's databases named namePrefix*.
	databases(ctx context.Context, db *sql.DB) ([]string, error)
	// drop drops database name, ending any session still using it.
	drop(ctx context.Context, db *sql.DB, name string) error
	// owns reports whether database name was made by this process, whose
	// package database is pkgDB.
	owns(name, pkgDB string) bool
}

// probe runs once: it pings the server, removes stale leftovers of crashed
// runs, and runs the flavor's setUp.
func (s *server) probe() {
	s.base = os.Getenv(s.env)
	if s.base == "" {
		s.base = s.defaultDSN
	}
	s.admin, s.err = s.flavor.adminDSN(s.base)
	if s.err != nil {
		s.misconfigured = true
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s.err = withDB(s.driver, s.admin, func(db *sql.DB) error {
		if err := db.PingContext(ctx); err != nil {
			return err
		}
		s.dropStale(ctx, db)
		return nil
	})
	if s.err != nil {
		s.misconfigured = serverAnswered(s.driver, s.err)
		return
	}
	if s.err = s.flavor.setUp(ctx, s.admin, packageDB()); s.err != nil {
		s.misconfigured = true
		return
	}
	s.used.Store(true)
}

// unavailable returns why tests cannot use s and should skip, or "" when
// they can. It fails t when s is required, or misconfigured.
func (s *server) unavailable(t testing.TB, req map[string]bool) string {
	t.Helper()
	s.once.Do(s.probe)
	if s.err == nil {
		return ""
	}
	where, cause := redact(s.base), scrub(s.err, s.base)
	switch {
	case s.misconfigured:
		t.Fatalf("dbtest: %s at %s cannot be used: %v\n\tfix %s or the server's grants; a server that answers is never skipped",
			s.name, where, cause, s.env)
	case req[s.name]:
		t.Fatalf("dbtest: %s unreachable at %s (%v), and %s=%s requires it\n\tstart the server, or point %s at one",
			s.name, where, cause, requireEnv, os.Getenv(requireEnv), s.env)
	}
	return fmt.Sprintf("dbtest: %s unreachable at %s (%v) — %s tests SKIPPED; set %s=%s to make this a failure",
		s.name, where, cause, s.name, requireEnv, s.name)
}

// target makes a fresh namespace on s, which unavailable has approved, and
// returns it as a Target. Failure fails t: the server answered a moment ago.
//
// The namespace is dropped when t ends, after the cleanups t registers
// later (the test's own pools). Main drops all again at exit; dropping
// early keeps the server small during a long run and leaves little behind
// when a run dies before Main (a test timeout, a kill).
func (s *server) target(t testing.TB) Target {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	dsn, drop, err := s.flavor.namespace(ctx, s.base, s.admin, packageDB(), s.seq.Add(1))
	if err != nil {
		t.Fatalf("dbtest: %s at %s: creating this test's database: %v", s.name, redact(s.base), scrub(err, s.base))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := drop(ctx); err != nil {
			// Not the test's failure: Main retries, with force.
			t.Logf("dbtest: %s: dropping this test's database (left to dbtest.Main): %v", s.name, scrub(err, s.base))
		}
	})
	return Target{Name: s.name, Driver: s.driver, DSN: dsn}
}

// dropStale drops leftovers of runs that crashed before their Main could
// (names carry their creation time). Best effort: another process may be
// dropping the same one, and a leftover costs only disk.
func (s *server) dropStale(ctx context.Context, db *sql.DB) {
	names, err := s.flavor.databases(ctx, db)
	if err != nil {
		return
	}
	for _, name := range names {
		if created, ok := createdAt(name); ok && time.Since(created) > staleAfter {
			_ = s.flavor.drop(ctx, db, name)
		}
	}
}

// dropOwn drops every database this process created on s.
func (s *server) dropOwn() error {
	if !s.used.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	err := withDB(s.driver, s.admin, func(db *sql.DB) error {
		// List rather than remember: a CREATE whose reply was lost still
		// made its database.
		names, err := s.flavor.databases(ctx, db)
		if err != nil {
			return err
		}
		var errs []error
		for _, name := range names {
			if s.flavor.owns(name, packageDB()) {
				errs = append(errs, s.flavor.drop(ctx, db, name))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("%s at %s: dropping this package's test databases: %v", s.name, redact(s.base), scrub(err, s.base))
	}
	return nil
}

// withDB runs fn with a pool of one connection on dsn, closed after.
func withDB(driver, dsn string, fn func(*sql.DB) error) error {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // session settings (MySQL's lock_wait_timeout) must stick
	return fn(db)
}

// execOn runs one statement on dsn, on a connection of its own.
func execOn(ctx context.Context, driver, dsn, query string) error {
	return withDB(driver, dsn, func(db *sql.DB) error {
		_, err := db.ExecContext(ctx, query)
		return err
	})
}

// serverAnswered reports whether err, from driverName, is the server's own
// reply (a refused login, an unknown database) rather than a failure to
// reach it.
func serverAnswered(driverName string, err error) bool {
	drv, lookupErr := dialect.Lookup(driverName)
	if lookupErr != nil || drv.ServerError == nil {
		return false
	}
	_, ok := drv.ServerError(err)
	return ok
}

// packageDB returns this process's database name: namePrefix, creation
// time (for stale cleanup), a hint of the test package, pid and a random
// part, e.g. tally_t_1795000000_dbtest_4242_9f3a1c2e. At most 52
// characters, so that suffixes fit MySQL's 64 and PostgreSQL's 63.
var packageDB = sync.OnceValue(func() string {
	return fmt.Sprintf("%s%d_%s_%d_%08x", namePrefix, time.Now().Unix(), packageHint(os.Args[0]), os.Getpid(), rand.Uint32())
})

// packageHint derives a short identifier from the test binary's path,
// which go test names after the package ("dbtest.test").
func packageHint(binary string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(binary), ".exe"), ".test")
	b := make([]byte, 0, 16)
	for _, r := range strings.ToLower(base) {
		if len(b) == cap(b) {
			break
		}
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b = append(b, byte(r))
		case len(b) > 0 && b[len(b)-1] != '_':
			b = append(b, '_')
		}
	}
	if s := strings.Trim(string(b), "_"); s != "" {
		return s
	}
	return "pkg"
}

// createdAt reads the creation time out of a name made by packageDB.
func createdAt(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return time.Time{}, false
	}
	secs, _, _ := strings.Cut(rest, "_")
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// mysqlFlavor gives each target its own database, named pkgDB_n: on MySQL
// a schema is a database, and creating one costs milliseconds.
type mysqlFlavor struct{}

var _ flavor = mysqlFlavor{}

func (mysqlFlavor) adminDSN(base string) (string, error) {
	cfg, err := tallymysql.ParseDSN(base)
	if err != nil {
		return "", fmt.Errorf("%s: %v", mysqlEnv, err) // err: "mysql: bad DSN: ..."
	}
	cfg.DBName = "" // the DSN may name a database that does not exist
	if cfg.Timeout == 0 {
		cfg.Timeout = connectTimeout
	}
	return cfg.FormatDSN(), nil
}

func (mysqlFlavor) setUp(context.Context, string, string) error { return nil }

func (f mysqlFlavor) namespace(ctx context.Context, base, admin, pkgDB string, n int64) (string, func(context.Context) error, error) {
	name := fmt.Sprintf("%s_%d", pkgDB, n)
	cfg, err := tallymysql.ParseDSN(base) // base's own params, not admin's timeout
	if err != nil {
		return "", nil, err
	}
	cfg.DBName = name
	if err := execOn(ctx, "mysql", admin, "CREATE DATABASE `"+name+"`"); err != nil {
		return "", nil, err
	}
	drop := func(ctx context.Context) error {
		return withDB("mysql", admin, func(db *sql.DB) error { return f.drop(ctx, db, name) })
	}
	return cfg.FormatDSN(), drop, nil
}

func (mysqlFlavor) databases(ctx context.Context, db *sql.DB) ([]string, error) {
	return harnessMade(queryNames(ctx, db, "SELECT schema_name FROM information_schema.schemata"))
}

func (mysqlFlavor) drop(ctx context.Context, db *sql.DB, name string) error {
	// MySQL has no DROP DATABASE ... FORCE: a session a test leaked,
	// holding a table lock, would make the drop wait (lock_wait_timeout
	// defaults to a year). Bound the wait, and end such sessions first.
	if _, err := db.ExecContext(ctx, "SET SESSION lock_wait_timeout = 10"); err != nil {
		return err
	}
	ids, err := queryNames(ctx, db,
		"SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", name)
	if err != nil {
		return err
	}
	for _, id := range ids {
		_, _ = db.ExecContext(ctx, "KILL "+id) // it may have ended meanwhile
	}
	_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
	return err
}

func (mysqlFlavor) owns(name, pkgDB string) bool { return strings.HasPrefix(name, pkgDB+"_") }

// postgresFlavor creates one database per test process and gives each
// target its own schema in it, selected by the DSN's search_path:
// CREATE DATABASE copies a template and costs a tenth of a second, a
// schema a few milliseconds.
type postgresFlavor struct{}

var _ flavor = postgresFlavor{}

func (postgresFlavor) adminDSN(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// url.Parse's error quotes the DSN, password and all.
		return "", fmt.Errorf("%s must be a postgres:// URL", postgresEnv)
	}
	q := u.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", strconv.Itoa(int(connectTimeout/time.Second)))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (postgresFlavor) setUp(ctx context.Context, admin, pkgDB string) error {
	return execOn(ctx, "pgx", admin, `CREATE DATABASE "`+pkgDB+`"`)
}

func (postgresFlavor) namespace(ctx context.Context, base, admin, pkgDB string, n int64) (string, func(context.Context) error, error) {
	schema := fmt.Sprintf("t%d", n)
	pkgAdmin := withDatabase(admin, pkgDB, "")
	if err := execOn(ctx, "pgx", pkgAdmin, `CREATE SCHEMA "`+schema+`"`); err != nil {
		return "", nil, err
	}
	drop := func(ctx context.Context) error {
		return withDB("pgx", pkgAdmin, func(db *sql.DB) error {
			// A transaction a test leaked may hold locks in the schema;
			// rather than wait for it, give up and let Main's
			// DROP DATABASE ... WITH (FORCE) end it.
			if _, err := db.ExecContext(ctx, "SET lock_timeout = '1s'"); err != nil {
				return err
			}
			_, err := db.ExecContext(ctx, `DROP SCHEMA "`+schema+`" CASCADE`)
			return err
		})
	}
	return withDatabase(base, pkgDB, schema), drop, nil
}

func (postgresFlavor) databases(ctx context.Context, db *sql.DB) ([]string, error) {
	return harnessMade(queryNames(ctx, db, "SELECT datname FROM pg_database"))
}

func (postgresFlavor) drop(ctx context.Context, db *sql.DB, name string) error {
	// FORCE (PostgreSQL 13+) ends the sessions a test leaked.
	_, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	return err
}

func (postgresFlavor) owns(name, pkgDB string) bool { return name == pkgDB }

// withDatabase returns the postgres URL dsn (already checked by adminDSN)
// pointing at database db and, when schema is set, with search_path set
// to it; its other parameters stay.
func withDatabase(dsn, db, schema string) string {
	u, _ := url.Parse(dsn)
	u.Path = "/" + db
	if schema != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// queryNames runs query and returns its single column as strings.
func queryNames(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		names = append(names, s)
	}
	return names, rows.Err()
}

// harnessMade keeps the names made by this harness (namePrefix*),
// filtered here rather than with LIKE, whose '_' is a wildcard.
func harnessMade(names []string, err error) ([]string, error) {
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, namePrefix) }), err
}
