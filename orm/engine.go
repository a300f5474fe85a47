package orm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/jmoiron/sqlx"
	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/mapper"

	// The three drivers Open supports.
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// Engine is the process-wide entry point for one database: a connection
// pool, its dialect and the model metadata. Create one per database with
// [Open] or [New] and share it; an Engine is safe for concurrent use by
// multiple goroutines. Work happens in a [Session], one per request or job.
type Engine struct {
	db      *sqlx.DB
	dialect dialect.Dialect
	reg     *mapper.Registry
	cfg     config
	stmts   stmtCache
}

// Open connects to a database and pings it. driverName is "mysql",
// "postgres" or "sqlite"; dsn is that driver's data source name. Open adds
// the driver settings Tally relies on: parseTime, clientFoundRows and
// interpolateParams (unless the DSN sets it) for MySQL; WAL, a busy
// timeout, foreign keys and immediate write transactions for SQLite. On MySQL it asks the server's version to use RETURNING on
// MariaDB 10.5 and later. ctx governs only the connecting and the ping.
//
// Errors never contain the DSN's password.
func Open(ctx context.Context, driverName, dsn string, opts ...Option) (*Engine, error) {
	sqlDriver, full, password, err := prepareDSN(driverName, dsn)
	if err != nil {
		return nil, redact(err, password)
	}
	// The options are read here for the connector's settings; New applies
	// them again, to the engine it makes.
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	var db *sql.DB
	if sqlDriver == "sqlite" {
		var drv driver.Driver
		if drv, err = sqliteDriver(); err == nil {
			db = sql.OpenDB(&stmtCacheConnector{drv: drv, dsn: full, size: cfg.sqliteStmts})
		}
	} else {
		db, err = sql.Open(sqlDriver, full)
	}
	if err != nil {
		return nil, redact(fmt.Errorf("orm: open %s: %w", driverName, err), password)
	}
	d, err := dialect.ByName(sqlDriver)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, redact(fmt.Errorf("orm: connect to %s: %w", driverName, classify(d, err)), password)
	}
	if d.Name() == "mysql" {
		var version string
		if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			db.Close()
			return nil, redact(fmt.Errorf("orm: read mysql server version: %w", classify(d, err)), password)
		}
		d = dialect.ForMySQLServer(version)
	}
	return New(db, d, opts...), nil
}

// New wraps an existing pool. It does not connect; the first statement
// does. It applies the pool settings of opts, and Tally's defaults for those
// not given (32 open, idle equal to open), replacing the pool's own.
func New(db *sql.DB, d dialect.Dialect, opts ...Option) *Engine {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
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
	driverName := d.Name()
	if driverName == "postgres" {
		driverName = "pgx"
	}
	return &Engine{
		db:      sqlx.NewDb(db, driverName),
		dialect: d,
		reg:     mapper.NewRegistry(),
		cfg:     cfg,
	}
}

// DB returns the engine's pool, for work outside sessions.
func (e *Engine) DB() *sqlx.DB { return e.db }

// Dialect returns the engine's dialect.
func (e *Engine) Dialect() dialect.Dialect { return e.dialect }

// Close closes the pool. Sessions still open fail afterwards.
func (e *Engine) Close() error { return e.db.Close() }

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
	return e.reg.TableOf(m)
}

// tableFor returns the metadata of T.
func tableFor[T any](e *Engine) (*mapper.Table, error) {
	return e.reg.Table(reflect.TypeFor[T]())
}
