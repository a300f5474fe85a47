package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // the driver every library uses on SQLite
)

// Seeded is the number of rows each table holds before the benchmarks run,
// with keys 1..Seeded.
const Seeded = 1000

// dbName is the database the benchmarks create and use on each server.
const dbName = "tally_bench"

// Env is one database prepared for the benchmarks: the bench's own
// database on the server, fresh tables, seeded rows, and the one pool that
// raw database/sql, sqlx, GORM and bun share.
type Env struct {
	// Name is the database as the report titles it: PostgreSQL, MariaDB, SQLite.
	Name string
	// Kind is Tally's driver name for it: postgres, mysql, sqlite.
	Kind string
	// DB is the shared pool, dialled through Counter on the servers.
	DB *sql.DB
	// DSN opens the same database through the same dial hook (for
	// libraries that open their own pool, as Tally's orm.Open does).
	DSN string
	// Counter counts round trips; nil on SQLite, which has none.
	Counter *Counter
	// Server is the server's version; Conditions states its durability
	// settings.
	Server, Conditions string

	key, win, seq, del atomic.Int64
	closers            []func() error
}

// Pool settings, the same for every library: Tally's defaults.
const (
	poolMaxOpen     = 32
	poolMaxIdle     = 32
	poolMaxIdleTime = 5 * time.Minute
)

// ApplyPool gives db the pool settings every library runs with.
func ApplyPool(db *sql.DB) {
	db.SetMaxOpenConns(poolMaxOpen)
	db.SetMaxIdleConns(poolMaxIdle)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(poolMaxIdleTime)
}

// Databases lists the databases in report order.
var Databases = []string{"PostgreSQL", "MariaDB", "SQLite"}

// Open prepares the named database (one of [Databases]). A server that
// does not answer is an error wrapping [ErrUnreachable]; the caller skips it.
// The server addresses come from TALLY_BENCH_POSTGRES (a pgx URL without
// database) and TALLY_BENCH_MYSQL (a go-sql-driver DSN without database),
// defaulting to the loopback servers of the test setup.
func Open(ctx context.Context, name string) (*Env, error) {
	var (
		e   *Env
		err error
	)
	switch name {
	case "PostgreSQL":
		e, err = openPostgres(ctx)
	case "MariaDB":
		e, err = openMariaDB(ctx)
	case "SQLite":
		e, err = openSQLite()
	default:
		return nil, fmt.Errorf("bench: unknown database %q", name)
	}
	if err != nil {
		return nil, err
	}
	ApplyPool(e.DB)
	if err := e.createTables(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// ErrUnreachable marks a server that did not answer.
var ErrUnreachable = errors.New("bench: server not reachable")

// Close closes the pool and whatever the libraries opened on it.
func (e *Env) Close() error {
	var first error
	for i := len(e.closers) - 1; i >= 0; i-- {
		if err := e.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	e.closers = nil
	return first
}

// OnClose registers fn to run at Close, before the pool closes.
func (e *Env) OnClose(fn func() error) { e.closers = append(e.closers, fn) }

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func ping(ctx context.Context, db *sql.DB, what string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, what, err)
	}
	return nil
}

func openPostgres(ctx context.Context) (*Env, error) {
	base := env("TALLY_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/?sslmode=disable")
	admin, err := sql.Open("pgx", withPath(base, "postgres"))
	if err != nil {
		return nil, fmt.Errorf("bench: postgres: %w", err)
	}
	defer admin.Close()
	if err := ping(ctx, admin, "PostgreSQL"); err != nil {
		return nil, err
	}
	var exists bool
	if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dbName).Scan(&exists); err != nil {
		return nil, fmt.Errorf("bench: postgres: %w", err)
	}
	if !exists {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+dbName); err != nil {
			return nil, fmt.Errorf("bench: postgres: create database: %w", err)
		}
	}
	// Durable commits cost the same for every library and would hide the
	// libraries' own cost; this database only, the server is untouched.
	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+dbName+" SET synchronous_commit = off"); err != nil {
		return nil, fmt.Errorf("bench: postgres: %w", err)
	}
	cfg, err := pgx.ParseConfig(withPath(base, dbName))
	if err != nil {
		return nil, fmt.Errorf("bench: postgres: %w", err)
	}
	e := &Env{Name: "PostgreSQL", Kind: "postgres", Counter: new(Counter)}
	var d net.Dialer
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return e.Counter.Wrap(c), nil
	}
	e.DB = stdlib.OpenDB(*cfg)
	e.OnClose(e.DB.Close)
	if err := ping(ctx, e.DB, "PostgreSQL"); err != nil {
		e.Close()
		return nil, err
	}
	var sync string
	if err := e.DB.QueryRowContext(ctx, "SELECT current_setting('server_version'), current_setting('synchronous_commit')").Scan(&e.Server, &sync); err != nil {
		e.Close()
		return nil, fmt.Errorf("bench: postgres: %w", err)
	}
	e.Server = "PostgreSQL " + e.Server
	e.Conditions = "synchronous_commit=" + sync + " on the bench's own database"
	return e, nil
}

// withPath puts database db into a postgres URL.
func withPath(url, db string) string {
	head, query, _ := strings.Cut(url, "?")
	if i := strings.Index(head, "://"); i >= 0 {
		if j := strings.Index(head[i+3:], "/"); j >= 0 {
			head = head[:i+3+j]
		}
	}
	out := head + "/" + db
	if query != "" {
		out += "?" + query
	}
	return out
}

var (
	mysqlOnce    sync.Once
	mysqlCounter = new(Counter)
)

// mysqlNet is the network name whose dialer counts round trips: the
// driver's dial hooks are registered per name, process-wide.
const mysqlNet = "tcp+count"

func openMariaDB(ctx context.Context) (*Env, error) {
	cfg, err := mysql.ParseDSN(env("TALLY_BENCH_MYSQL", "root@tcp(127.0.0.1:3306)/"))
	if err != nil {
		return nil, fmt.Errorf("bench: mysql DSN: %w", err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("bench: mysql: %w", err)
	}
	defer admin.Close()
	if err := ping(ctx, admin, "MariaDB"); err != nil {
		return nil, err
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+dbName); err != nil {
		return nil, fmt.Errorf("bench: mysql: create database: %w", err)
	}
	mysqlOnce.Do(func() {
		var d net.Dialer
		mysql.RegisterDialContext(mysqlNet, func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return mysqlCounter.Wrap(c), nil
		})
	})
	cfg.Net = mysqlNet
	cfg.DBName = dbName
	e := &Env{Name: "MariaDB", Kind: "mysql", Counter: mysqlCounter, DSN: cfg.FormatDSN()}
	if e.DB, err = sql.Open("mysql", e.DSN); err != nil {
		return nil, fmt.Errorf("bench: mysql: %w", err)
	}
	e.OnClose(e.DB.Close)
	var flush string
	if err := e.DB.QueryRowContext(ctx, "SELECT VERSION(), @@innodb_flush_log_at_trx_commit").Scan(&e.Server, &flush); err != nil {
		e.Close()
		return nil, fmt.Errorf("bench: mysql: %w", err)
	}
	e.Conditions = "innodb_flush_log_at_trx_commit=" + flush + " (the shared server's setting, left as it is)"
	if flush == "1" {
		e.Conditions += ": every commit waits for the log to reach the disk, which dominates the time of every write whatever the library; reads are unaffected"
	}
	return e, nil
}

func openSQLite() (*Env, error) {
	dir, err := os.MkdirTemp("", "tally-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: sqlite: %w", err)
	}
	// The pragmas Tally's orm.Open adds, given to every library, plus
	// synchronous=NORMAL (WAL's usual pairing) so that fsyncs do not hide
	// the libraries' cost, as synchronous_commit=off does on PostgreSQL.
	dsn := "file:" + filepath.Join(dir, "bench.db") +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	e := &Env{Name: "SQLite", Kind: "sqlite", DSN: dsn}
	e.OnClose(func() error { return os.RemoveAll(dir) })
	if e.DB, err = sql.Open("sqlite", dsn); err != nil {
		e.Close()
		return nil, fmt.Errorf("bench: sqlite: %w", err)
	}
	e.OnClose(e.DB.Close)
	if err := e.DB.QueryRow("SELECT 'SQLite ' || sqlite_version()").Scan(&e.Server); err != nil {
		e.Close()
		return nil, fmt.Errorf("bench: sqlite: %w", err)
	}
	e.Conditions = "a temporary file, journal_mode=WAL, synchronous=NORMAL, modernc.org/sqlite (no network: no round trips)"
	return e, nil
}

// RoundTrips returns the round trips counted so far, or -1 on SQLite.
func (e *Env) RoundTrips() int64 {
	if e.Counter == nil {
		return -1
	}
	return e.Counter.Load()
}

// SQL adapts a query written with ? placeholders and "right" quoted the
// standard way to the database: $n on PostgreSQL, backquotes on MySQL.
func (e *Env) SQL(q string) string {
	switch e.Kind {
	case "postgres":
		return sqlx.Rebind(sqlx.DOLLAR, q)
	case "mysql":
		return strings.ReplaceAll(q, `"right"`, "`right`")
	}
	return q
}

// Key returns a seeded key, a different one each call.
func (e *Env) Key() int64 { return e.key.Add(1)%Seeded + 1 }

// Window returns the first key of n consecutive seeded keys, a different
// window each call.
func (e *Env) Window(n int) int64 { return (e.win.Add(1)*int64(n))%(Seeded-int64(n)) + 1 }

// Value returns a number never returned before, so that every UPDATE
// really changes its row (MySQL skips writing a row that stays the same).
func (e *Env) Value() int64 { return e.seq.Add(1) + 1_000_000 }

// NoteToDelete returns the key of a note that exists: notes are deleted in
// key order, and the unit of work inserts two for each one it deletes.
func (e *Env) NoteToDelete() int64 { return e.del.Add(1) }

func (e *Env) createTables(ctx context.Context) error {
	var ddl []string
	switch e.Kind {
	case "postgres":
		ddl = []string{
			`CREATE TABLE models (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, title TEXT NOT NULL, fax TEXT NOT NULL, web TEXT NOT NULL, age BIGINT NOT NULL, "right" BOOLEAN NOT NULL, counter BIGINT NOT NULL)`,
			`CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, model_id BIGINT NOT NULL, body TEXT NOT NULL)`,
		}
	case "mysql":
		ddl = []string{
			"CREATE TABLE models (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255) NOT NULL, title VARCHAR(255) NOT NULL, fax VARCHAR(255) NOT NULL, web VARCHAR(255) NOT NULL, age BIGINT NOT NULL, `right` BOOLEAN NOT NULL, counter BIGINT NOT NULL) ENGINE=InnoDB",
			"CREATE TABLE notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, model_id BIGINT NOT NULL, body VARCHAR(255) NOT NULL) ENGINE=InnoDB",
		}
	case "sqlite":
		ddl = []string{
			`CREATE TABLE models (id INTEGER PRIMARY KEY, name TEXT NOT NULL, title TEXT NOT NULL, fax TEXT NOT NULL, web TEXT NOT NULL, age INTEGER NOT NULL, "right" BOOLEAN NOT NULL, counter INTEGER NOT NULL)`,
			`CREATE TABLE notes (id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL, body TEXT NOT NULL)`,
		}
	}
	stmts := append([]string{"DROP TABLE IF EXISTS notes", "DROP TABLE IF EXISTS models"}, ddl...)
	for _, s := range stmts {
		if _, err := e.DB.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("bench: %s: %s: %w", e.Name, s, err)
		}
	}
	// Seed in chunks of 100 rows, in key order.
	for i := 0; i < Seeded; i += 100 {
		var m, n strings.Builder
		var margs, nargs []any
		m.WriteString(`INSERT INTO models (name, title, fax, web, age, "right", counter) VALUES `)
		n.WriteString(`INSERT INTO notes (model_id, body) VALUES `)
		for j := range 100 {
			if j > 0 {
				m.WriteString(", ")
				n.WriteString(", ")
			}
			m.WriteString("(?, ?, ?, ?, ?, ?, ?)")
			n.WriteString("(?, ?)")
			v := NewModel()
			margs = append(margs, v.Name, v.Title, v.Fax, v.Web, v.Age, v.Right, v.Counter)
			nargs = append(nargs, int64(i+j+1), "seeded note")
		}
		if _, err := e.DB.ExecContext(ctx, e.SQL(m.String()), margs...); err != nil {
			return fmt.Errorf("bench: %s: seed models: %w", e.Name, err)
		}
		if _, err := e.DB.ExecContext(ctx, e.SQL(n.String()), nargs...); err != nil {
			return fmt.Errorf("bench: %s: seed notes: %w", e.Name, err)
		}
	}
	for _, table := range []string{"models", "notes"} {
		var lo, hi, count int64
		if err := e.DB.QueryRowContext(ctx, "SELECT MIN(id), MAX(id), COUNT(*) FROM "+table).Scan(&lo, &hi, &count); err != nil {
			return fmt.Errorf("bench: %s: %w", e.Name, err)
		}
		if lo != 1 || hi != Seeded || count != Seeded {
			return fmt.Errorf("bench: %s: seeded %s have keys %d..%d (%d rows), want 1..%d", e.Name, table, lo, hi, count, Seeded)
		}
	}
	return nil
}
