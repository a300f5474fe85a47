package orm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/mapper"
)

// Engine is the process-wide entry point for one database: a connection
// pool, its dialect and the model metadata. Create one per database with
// [Open] or [New] and share it; an Engine is safe for concurrent use by
// multiple goroutines. Work happens in a [Session], one per request or job.
type Engine struct {
	db        *sqlx.DB
	dialect   dialect.Dialect
	caps      dialect.Capabilities // the dialect's, asked often
	reg       *mapper.Registry
	cfg       config
	stmts     stmtCache
	autoCols  sync.Map  // *mapper.Table → its generated columns (insertShape)
	updateAll planCache // UpdateAll's statements, per table and shape (sqlcache.go)
	owners    owners    // objects added to a session, and which one: see owners
	nodes     *balancer // WithPrimaries: the nodes the pool connects to; else nil

	replicas *replicaSet // nil without WithReplicas
	direct   directReads // whether reads can go to the driver directly: see directread.go
}

// Open connects to a database and pings it. driverName is "mysql" (also
// for MariaDB), "postgres" or "sqlite" (or an alias: "postgresql", "pgx",
// "sqlite3"), whose package the program must import for its side effect,
// as with database/sql drivers:
//
//	import _ "github.com/tallyorm/tally/dialect/postgres"
//
// Without it Open returns an error naming that import. dsn is the driver's
// data source name, to which Open adds the settings Tally relies on:
// parseTime, clientFoundRows, and interpolateParams and multiStatements (unless the DSN sets
// them: a commit's statements go in one query) for MySQL; WAL, a busy timeout, foreign keys
// and immediate write transactions for SQLite. On MySQL it asks the
// server's version to use RETURNING on MariaDB 10.5 and later. ctx governs
// only the connecting, the ping and that question (and, with WithReplicas,
// the wait for the replicas' first check).
//
// Errors never contain the DSN's password.
func Open(ctx context.Context, driverName, dsn string, opts ...Option) (*Engine, error) {
	drv, err := dialect.Lookup(driverName)
	if err != nil {
		return nil, fmt.Errorf("orm: %w", err)
	}
	// The options are read here for the connector's settings; New applies
	// them again, to the engine it makes.
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	oo := dialect.OpenOptions{SQLiteStatementCache: cfg.sqliteStmts, MySQLStatementCache: cfg.mysqlStmts, Logger: cfg.logger}
	var (
		db        *sql.DB
		nodes     *balancer // WithPrimaries
		passwords []string  // kept out of errors
	)
	if len(cfg.primaries) > 0 {
		if db, nodes, passwords, err = openPrimaries(drv, append([]string{dsn}, cfg.primaries...), oo); err != nil {
			return nil, err
		}
	} else {
		var password string
		db, password, err = drv.Open(dsn, oo)
		passwords = []string{password}
		if err != nil {
			return nil, redact(fmt.Errorf("orm: %w", err), password)
		}
	}
	d := drv.Dialect
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, redactAll(fmt.Errorf("orm: connect to %s: %w", driverName, classify(d, err)), passwords)
	}
	if drv.Probe != nil {
		if d, err = drv.Probe(ctx, db); err != nil {
			db.Close()
			return nil, redactAll(fmt.Errorf("orm: %w", classify(drv.Dialect, err)), passwords)
		}
	}
	if len(cfg.repl.dsns) == 0 {
		e := New(db, d, opts...)
		e.nodes = nodes
		return e, nil
	}
	pools, masked, err := openReplicas(drv, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	e := New(db, d, append(opts[:len(opts):len(opts)], withReplicaPools(pools, masked))...)
	e.nodes = nodes
	e.replicas.waitFirst(ctx)
	return e, nil
}

// New wraps an existing pool. It does not connect; the first statement
// does. It applies the pool settings of opts, and Tally's defaults for those
// not given (32 open, idle equal to open), replacing the pool's own.
//
// Errors are classified (ErrUniqueViolation, retryable, ...) by the
// dialect's dialect/<db> package, which the program must import, as it does
// for Open: without it only connection failures are recognised.
func New(db *sql.DB, d dialect.Dialect, opts ...Option) *Engine {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	poolSettings(db, cfg)
	var regOpts []mapper.RegistryOption
	if cfg.reflective {
		regOpts = append(regOpts, mapper.Reflective())
	}
	e := &Engine{
		// sqlx picks its bind style by this name, and knows each dialect's.
		db:      sqlx.NewDb(db, d.Name()),
		dialect: d,
		caps:    d.Capabilities(),
		reg:     mapper.NewRegistry(regOpts...),
		cfg:     cfg,
	}
	e.replicas = newReplicaSet(e, cfg)
	return e
}

// poolSettings applies cfg's pool settings to db (the primary's pool and
// each replica's).
func poolSettings(db *sql.DB, cfg config) {
	db.SetMaxOpenConns(cfg.maxOpen)
	idle := cfg.maxIdle
	if idle < 0 {
		idle = cfg.maxOpen
		if idle <= 0 {
			idle = 64 // unlimited open: still keep a generous idle set
		}
	}
	db.SetMaxIdleConns(idle)
	db.SetConnMaxLifetime(cfg.maxLifetime)
	db.SetConnMaxIdleTime(cfg.maxIdleTime)
}

// deferredReads reports whether transactions that start with reads begin
// deferred and writes immediate (SQLite; see dialect.BeginDeferredOrImmediate).
func (e *Engine) deferredReads() bool { return e.caps.Begin == dialect.BeginDeferredOrImmediate }

// DB returns the engine's pool, for work outside sessions.
func (e *Engine) DB() *sqlx.DB { return e.db }

// Dialect returns the engine's dialect.
func (e *Engine) Dialect() dialect.Dialect { return e.dialect }

// Close closes the pool, and with replicas stops their checker and closes
// their pools. Sessions still open fail afterwards.
func (e *Engine) Close() error {
	if e.replicas == nil {
		return e.db.Close()
	}
	rerr := e.replicas.stop()
	return errors.Join(e.db.Close(), rerr)
}

// Register validates models up front, so that a bad definition fails at
// start-up instead of on first use. Each model is a struct value or pointer.
func (e *Engine) Register(models ...any) error {
	for _, m := range models {
		if _, err := e.table(m); err != nil {
			return err
		}
	}
	return nil
}

// table returns the metadata of a model value, pointer or reflect.Type.
func (e *Engine) table(m any) (*mapper.Table, error) {
	return e.fits(e.reg.TableOf(m))
}

// tableFor returns the metadata of T.
func tableFor[T any](e *Engine) (*mapper.Table, error) {
	return e.fits(e.reg.Table(reflect.TypeFor[T]()))
}
