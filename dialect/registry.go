package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
)

// A Driver connects Tally to one database through its database/sql driver.
// The packages dialect/mysql, dialect/postgres and dialect/sqlite each
// register one when they are imported, the way database/sql drivers do:
//
//	import _ "github.com/tallyorm/tally/dialect/postgres"
//
// so that a program compiles only the drivers of the databases it uses.
// [github.com/tallyorm/tally/orm.Open] finds the Driver by name, and the
// dialects of this package classify errors through it.
type Driver struct {
	// Name is the name Open takes: "mysql", "postgres" or "sqlite". It is
	// also the Name of the dialects the Driver serves.
	Name string

	// Aliases are other names Open accepts for it ("postgresql", "pgx").
	// (MariaDB is opened as "mysql"; the version probe tells it apart.)
	Aliases []string

	// Dialect is the dialect to use when Probe is nil.
	Dialect Dialect

	// Open opens a pool for dsn, with the driver settings Tally relies on
	// added, and returns the DSN's password so that the caller can keep it
	// out of errors (err must not contain it either). It does not connect.
	Open func(dsn string, o OpenOptions) (db *sql.DB, password string, err error)

	// Connector, if not nil, returns a connector for dsn with the same
	// settings Open adds, and o.Dial making its network connections. It
	// is for code that wraps the driver (a tracing or fault-injecting
	// driver.Connector, handed to orm.New as sql.OpenDB(wrapper)) without
	// importing it; Tally itself opens through Open.
	Connector func(dsn string, o OpenOptions) (driver.Connector, error)

	// Probe, if not nil, asks the server which dialect fits it (MariaDB
	// 10.5 and later can return keys from INSERT; MySQL cannot).
	Probe func(ctx context.Context, db *sql.DB) (Dialect, error)

	// Classify sorts the driver's own errors (its server errors and its
	// connection failures) into a [Class]; anything else is [ClassOther].
	// Failures common to every driver (io.EOF, a reset connection,
	// driver.ErrBadConn, a net.Error) are recognised by the dialect itself.
	Classify func(err error) Class

	// ServerError reports whether err carries an error the database sent
	// (for SQLite: the engine returned), as opposed to a failure to reach
	// it, and that error's code for logs, e.g. "mysql error 1062",
	// "SQLSTATE 23505" or "sqlite code 2067". The code names no value.
	ServerError func(err error) (code string, ok bool)

	// Batch, if not nil, is what the dialect's [Batcher] sends through:
	// stmts in one round trip on c (see Batcher.Pipeline).
	Batch func(ctx context.Context, c *sql.Conn, stmts []BatchStmt) (rows []int64, ok bool, err error)

	// DirectScan, if not nil, is what the dialect's [DirectReader] asks:
	// whether Batch's DBScan fills dest as database/sql would.
	DirectScan func(dest any) bool

	// ConnectionHint, if not nil, names the likely causes of a connection
	// error whose own message does not ("invalid connection" after a
	// server KILL or wait_timeout), for the error Tally returns; "" when
	// it has nothing to add.
	ConnectionHint func(err error) string

	// NodeReady, if not nil, checks a connection just made to one node of
	// a multi-primary cluster (orm.WithPrimaries) before the pool uses it:
	// a MariaDB Galera node that is joining, or has lost the cluster's
	// primary component, accepts connections but refuses work on tables.
	// A server that is no cluster member is ready.
	NodeReady func(ctx context.Context, c driver.Conn) error
}

// OpenOptions are the settings of Open that a Driver may use.
type OpenOptions struct {
	// SQLiteStatementCache is how many statements each SQLite connection
	// keeps compiled; 0 turns the cache off. Other drivers ignore it.
	SQLiteStatementCache int

	// MySQLStatementCache is how many statements with arguments each MySQL
	// connection keeps prepared; 0 turns the cache off (the driver then
	// interpolates). Other drivers ignore it.
	MySQLStatementCache int

	// Logger receives what the driver itself would log (the MySQL
	// driver's "packets.go: unexpected EOF" when the server closed a
	// connection), at Warn level, instead of its writing it to stderr.
	// Nil discards it: the errors Tally returns carry the cause.
	Logger *slog.Logger

	// Dial, if not nil, opens the network connections of a connector that
	// [Driver.Connector] returns (MySQL and PostgreSQL; SQLite has none),
	// so that a test can hold, slow or cut the socket. Open ignores it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// The registry is the one global of the package, filled by init functions
// and read afterwards: a database/sql-style registry, safe for concurrent
// use.
var (
	driversMu sync.RWMutex
	drivers   = map[string]*Driver{} // by Name and by each alias
)

// Register makes a Driver available by its Name and Aliases. It is meant to
// be called from the init function of a dialect/<db> package, and panics,
// like sql.Register, if a name is registered twice or d lacks Open or
// Dialect: both are programming errors found at start-up.
func Register(d *Driver) {
	if d == nil || d.Name == "" || d.Open == nil || d.Dialect == nil {
		panic("dialect: Register needs a Driver with Name, Dialect and Open")
	}
	driversMu.Lock()
	defer driversMu.Unlock()
	names := append([]string{d.Name}, d.Aliases...)
	for _, name := range names {
		if _, dup := drivers[name]; dup {
			panic("dialect: Register called twice for " + name)
		}
	}
	for _, name := range names {
		drivers[name] = d
	}
}

// packageFor names the package that registers each known database name, for
// the error of a lookup that finds none.
var packageFor = map[string]string{
	"mysql":    "mysql",
	"postgres": "postgres", "postgresql": "postgres", "pgx": "postgres",
	"sqlite": "sqlite", "sqlite3": "sqlite",
}

// Lookup returns the Driver registered as name. When there is none it
// returns an error naming the import that registers it.
func Lookup(name string) (*Driver, error) {
	driversMu.RLock()
	defer driversMu.RUnlock()
	return lookupIn(drivers, name)
}

// lookupIn is Lookup in the registry m.
func lookupIn(m map[string]*Driver, name string) (*Driver, error) {
	if d := m[name]; d != nil {
		return d, nil
	}
	if pkg, ok := packageFor[name]; ok {
		return nil, fmt.Errorf("dialect: no %s driver registered; add import _ %q to your program",
			name, "github.com/tallyorm/tally/dialect/"+pkg)
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, fmt.Errorf("dialect: unknown driver %q; registered: [%s]", name, strings.Join(names, ", "))
}

// Drivers returns the sorted names (aliases included) that Lookup finds.
func Drivers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for name := range drivers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// registered returns the Driver of name, or nil: the dialects' Classify and
// ServerError work without one, only knowing less.
func registered(name string) *Driver {
	driversMu.RLock()
	defer driversMu.RUnlock()
	return drivers[name]
}

// classifyVia classifies err with the driver registered as name, then as a
// connection failure any driver may report.
func classifyVia(name string, err error) Class {
	if err == nil {
		return ClassOther
	}
	if d := registered(name); d != nil && d.Classify != nil {
		if c := d.Classify(err); c != ClassOther {
			return c
		}
	}
	return classifyConnection(err)
}

// serverErrorVia is [Dialect.ServerError] through the driver registered as
// name.
func serverErrorVia(name string, err error) (string, bool) {
	if err == nil {
		return "", false
	}
	if d := registered(name); d != nil && d.ServerError != nil {
		return d.ServerError(err)
	}
	return "", false
}

// ConnectionHint returns the likely causes of err, a connection error, as
// the driver registered for d names them; [HintUnavailable] when no
// network connection could be made at all (refused, timed out); or "".
func ConnectionHint(d Dialect, err error) string {
	if err == nil || d == nil {
		return ""
	}
	if drv := registered(d.Name()); drv != nil && drv.ConnectionHint != nil {
		if h := drv.ConnectionHint(err); h != "" {
			return h
		}
	}
	if dialFailed(err) {
		return HintUnavailable
	}
	return ""
}
