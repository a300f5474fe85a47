// Package mysql connects Tally to MySQL and MariaDB through
// github.com/go-sql-driver/mysql. Import it for its side effect, which
// registers the "mysql" [dialect.Driver], for MariaDB too:
//
//	import _ "github.com/tallyorm/tally/dialect/mysql"
//
// It owns what Tally knows of this driver: the DSN settings Tally relies on
// (parseTime, clientFoundRows), the version probe that picks
// [dialect.MariaDB] on MariaDB 10.5 and later, and the classification of the
// driver's errors. The SQL dialect itself is [dialect.MySQL].
package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/dialect"
)

func init() {
	dialect.Register(&dialect.Driver{
		Name:           "mysql",
		Dialect:        dialect.MySQL,
		Open:           open,
		Connector:      connector,
		Probe:          probe,
		Classify:       classify,
		ServerError:    serverError,
		ConnectionHint: connectionHint,
		NodeReady:      nodeReady,
		Batch:          pipeline,
	})
}

// open opens a pool for dsn with Tally's settings; it does not connect.
// The driver's own log lines go to o.Logger (or nowhere), never to stderr.
func open(dsn string, o dialect.OpenOptions) (*sql.DB, string, error) {
	cfg, err := Config(dsn)
	if err != nil {
		return nil, "", err
	}
	cfg.Logger = driverLogger{o.Logger}
	conn, err := watchCommits(cfg, nil, o.MySQLStatementCache)
	if err != nil {
		return nil, cfg.Passwd, fmt.Errorf("mysql: open: %w", err)
	}
	return sql.OpenDB(conn), cfg.Passwd, nil
}

// connector returns a connector with Open's settings whose connections
// o.Dial makes.
func connector(dsn string, o dialect.OpenOptions) (driver.Connector, error) {
	cfg, err := Config(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Logger = driverLogger{o.Logger}
	conn, err := watchCommits(cfg, o.Dial, o.MySQLStatementCache)
	if err != nil {
		return nil, fmt.Errorf("mysql: open: %w", err)
	}
	return conn, nil
}

// ParseDSN parses dsn as the driver does, adding nothing, for tools that
// rewrite a DSN without importing the driver: a test harness pointing it
// at another database, a message hiding its password (the returned
// Config's FormatDSN writes it back). [Config] is what Open uses.
func ParseDSN(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql: bad DSN: %w", err)
	}
	return cfg, nil
}

// Config parses dsn and adds the settings Tally relies on.
func Config(dsn string) (*mysql.Config, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	// parseTime: DATETIME columns scan into time.Time.
	cfg.ParseTime = true
	// clientFoundRows: MySQL otherwise reports changed rows, and a
	// version-checked UPDATE that writes identical values would look stale
	// (0 rows) though it matched.
	cfg.ClientFoundRows = true
	// timeout, unless the DSN says: a server that cannot be reached (a
	// host that drops packets, a stalled server) fails the connect in
	// ConnectTimeout, not after the OS gives up on the dial (minutes) or
	// never (a handshake nobody answers). The connector applies it to the
	// whole connect, handshake included, as PostgreSQL's connect_timeout.
	if !strings.Contains(dsn, "?timeout=") && !strings.Contains(dsn, "&timeout=") {
		cfg.Timeout = dialect.ConnectTimeout
	}
	// interpolateParams, unless the DSN says: one round trip per statement,
	// not prepare + execute (figures in the README). The driver refuses it
	// with a collation whose multi-byte characters can hide a quote (big5,
	// sjis, ...): then statements are prepared as before.
	if !strings.Contains(dsn, "interpolateParams=") {
		cfg.InterpolateParams = true
		if _, err := mysql.NewConnector(cfg); err != nil {
			cfg.InterpolateParams = false
		}
	}
	// multiStatements, unless the DSN says: a commit's statements go in
	// one query, one round trip (pipeline.go). Tally's own statements
	// always bind their values; a DSN that sets multiStatements=false
	// (for a program that builds SQL text from input in Raw and wants the
	// server to refuse a stacked statement) sends them one at a time.
	if !strings.Contains(dsn, "multiStatements=") {
		cfg.MultiStatements = true
	}
	return cfg, nil
}

// probe asks the server's version: MariaDB 10.5 and later return generated
// keys from INSERT, which saves a round trip per row.
func probe(ctx context.Context, db *sql.DB) (dialect.Dialect, error) {
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return nil, fmt.Errorf("mysql: read server version: %w", err)
	}
	return dialect.ForMySQLServer(version), nil
}

// classify sorts the driver's errors. Numbers are from the MySQL server
// error reference; MariaDB uses the same.
func classify(err error) dialect.Class {
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch me.Number {
		case 1062, // ER_DUP_ENTRY
			1586: // ER_DUP_ENTRY_WITH_KEY_NAME
			return dialect.ClassUnique
		case 1451, // ER_ROW_IS_REFERENCED_2: deleting a referenced parent
			1452, // ER_NO_REFERENCED_ROW_2: child without a parent
			1216, // ER_NO_REFERENCED_ROW (before the _2 variants)
			1217: // ER_ROW_IS_REFERENCED
			return dialect.ClassForeignKey
		case 1927, // ER_CONNECTION_KILLED: MariaDB, a KILL while a statement ran
			4031, // ER_CLIENT_INTERACTION_TIMEOUT: MySQL 8, wait_timeout
			1053: // ER_SERVER_SHUTDOWN
			return dialect.ClassConnection
		case 1969, // ER_STATEMENT_TIMEOUT: MariaDB's max_statement_time
			3024: // ER_QUERY_TIMEOUT: MySQL's max_execution_time
			return dialect.ClassTimeout
		case 1213, // ER_LOCK_DEADLOCK; also Galera's certification failure, at COMMIT
			1205, // ER_LOCK_WAIT_TIMEOUT
			3572, // ER_LOCK_NOWAIT: FOR UPDATE NOWAIT, as PostgreSQL's 55P03
			1047, // ER_UNKNOWN_COM_ERROR: see galera.go
			3101: // ER_TRANSACTION_ROLLBACK_DURING_COMMIT: see galera.go
			return dialect.ClassRetryable
		case 8002, 8005, 8022, 8028, 9007: // TiDB's conflicts: see galera.go
			return dialect.ClassRetryable
		case 1180: // ER_ERROR_DURING_COMMIT: see galera.go
			return dialect.ClassConnection
		}
		return dialect.ClassOther
	}
	if errors.Is(err, mysql.ErrInvalidConn) {
		return dialect.ClassConnection
	}
	return dialect.ClassOther
}

// serverError recognises an error the server sent.
func serverError(err error) (string, bool) {
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		return "mysql error " + strconv.Itoa(int(me.Number)), true
	}
	return "", false
}

// connectionHint names the likely causes of a connection the server
// closed: the driver reports them all alike, as "invalid connection" (the
// reply ended early) or driver.ErrBadConn.
func connectionHint(err error) string {
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch me.Number {
		case 4031:
			return "the server closed the connection after wait_timeout"
		case 1053:
			return "database unavailable: the server is shutting down; retry later"
		}
		return ""
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "the server closed the connection: likely a KILL CONNECTION, wait_timeout (or interactive_timeout) running out, a server restart or a network failure"
	}
	return ""
}

// driverLogger passes the driver's log lines to a slog.Logger at Warn
// level, or drops them when there is none.
type driverLogger struct{ l *slog.Logger }

// Print logs v as the driver's message.
func (d driverLogger) Print(v ...any) {
	if d.l == nil {
		return
	}
	d.l.Warn("tally: mysql driver: "+strings.TrimSpace(fmt.Sprint(v...)), slog.String("driver", "mysql"))
}
