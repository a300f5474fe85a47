package orm

import (
	"context"
	"log/slog"
	"time"
)

// Option configures an Engine, for Open and New.
type Option func(*config)

type config struct {
	maxOpen     int
	maxIdle     int // -1: follow maxOpen
	maxLifetime time.Duration
	maxIdleTime time.Duration
	hooks       []func(context.Context, QueryEvent)
	logger      *slog.Logger
	sqliteStmts int // statements each SQLite connection keeps compiled
	mysqlStmts  int // statements each MySQL connection keeps prepared
	reflective  bool
	repl        replicaConfig // WithReplicas and its options
	primaries   []string      // WithPrimaries: the cluster's other nodes
}

func defaultConfig() config {
	return config{
		// A bounded pool, like SQLAlchemy's pool_size+max_overflow: an
		// unbounded one lets a burst of requests open more connections than
		// the server allows, and then everything fails at once.
		maxOpen: 32,
		maxIdle: -1,
		// Below MySQL's default wait_timeout (8 h) and typical proxy idle
		// limits, so the pool never hands out a connection the server closed.
		maxLifetime: 30 * time.Minute,
		maxIdleTime: 5 * time.Minute,
		sqliteStmts: 64,
		mysqlStmts:  64,
	}
}

// WithSQLiteStatementCache sets how many statements each SQLite connection
// that Open makes keeps compiled, most recently used first (default 64; 0
// turns the cache off). SQLite otherwise compiles a statement on every run,
// which costs a fifth to a third of a short one. Each connection also keeps
// at most 128 KiB of SQL text compiled and never caches a statement over
// 16 KiB, since compiled size grows with the text; a connection with
// attached databases caches nothing. Code reaching modernc's connection
// through sql.Conn.Raw gets Tally's wrapper, whose Unwrap method returns
// it. The option has no effect on MySQL and PostgreSQL (pgx keeps its own
// statement cache), nor on a pool passed to New.
func WithSQLiteStatementCache(n int) Option { return func(c *config) { c.sqliteStmts = max(n, 0) } }

// WithMySQLStatementCache sets how many statements with arguments each
// MySQL/MariaDB connection that Open makes keeps prepared on the server,
// most recently used first (default 64; 0 turns the cache off, and the
// arguments are then interpolated into the text by the driver, as
// interpolateParams does). A cached statement is one round trip, its
// values sent in the binary protocol, and the server does not parse it
// again. Every prepared statement counts against the server's
// max_prepared_stmt_count; when the server refuses one more, that
// connection interpolates from then on. The option has no effect on other
// databases, nor on a pool passed to New.
func WithMySQLStatementCache(n int) Option { return func(c *config) { c.mysqlStmts = max(n, 0) } }

// WithReflectiveMappers makes the engine map every model by reflection,
// ignoring the compiled mappers that tallygen's generated code registers.
// Both behave identically; the option exists to show that (Tally's
// equivalence tests) and to rule generated code out when hunting a bug.
func WithReflectiveMappers() Option { return func(c *config) { c.reflective = true } }

// WithMaxOpenConns bounds the pool (SQLAlchemy's pool_size + max_overflow).
// The default is 32; n <= 0 means unlimited.
func WithMaxOpenConns(n int) Option { return func(c *config) { c.maxOpen = n } }

// WithMaxIdleConns sets how many idle connections the pool keeps. The
// default equals MaxOpenConns, not database/sql's 2, which under load closes
// and reopens connections on almost every request.
func WithMaxIdleConns(n int) Option { return func(c *config) { c.maxIdle = n } }

// WithConnMaxLifetime recycles connections older than d (SQLAlchemy's
// pool_recycle). Keep it below the server's idle timeout. Default 30 min.
func WithConnMaxLifetime(d time.Duration) Option { return func(c *config) { c.maxLifetime = d } }

// WithConnMaxIdleTime closes connections idle for longer than d. Default 5 min.
func WithConnMaxIdleTime(d time.Duration) Option { return func(c *config) { c.maxIdleTime = d } }

// WithQueryHook calls fn after every statement the engine runs, from the
// goroutine that ran it. Hooks must be quick and safe for concurrent use;
// they must not keep ev.Args, which the engine may reuse.
func WithQueryHook(fn func(ctx context.Context, ev QueryEvent)) Option {
	return func(c *config) { c.hooks = append(c.hooks, fn) }
}

// WithLogger logs every statement at Debug level: its SQL, duration, rows
// and error. Argument values are not logged (they may be personal data);
// use WithQueryHook to see them. With Open, it also receives at Warn
// level what the database driver itself logs (the MySQL driver's
// "packets.go: unexpected EOF" when the server closed a connection),
// which without a logger is discarded, never printed to stderr: the
// error returned carries the cause.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// QueryEvent describes one statement, for WithQueryHook.
type QueryEvent struct {
	SQL      string        // the SQL as sent, with native placeholders
	Args     []any         // the bound values
	Duration time.Duration // from sending until the result (for queries: until the rows were closed)
	Rows     int64         // rows affected (exec) or read (query); -1 when unknown
	Err      error         // the statement's error, classified
	Op       Op            // OpExec, OpQuery, OpBegin, OpCommit, OpRollback or OpSavepoint
	// Pipelined is set on a statement sent in the same round trip as the
	// one reported before it (a batched commit on PostgreSQL), so a hook
	// can count round trips: the events without it.
	Pipelined bool
}
