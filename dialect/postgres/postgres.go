// Package postgres connects Tally to PostgreSQL through pgx's database/sql
// driver (github.com/jackc/pgx/v5/stdlib). Import it for its side effect,
// which registers the "postgres" (aliases "postgresql", "pgx")
// [dialect.Driver]:
//
//	import _ "github.com/tallyorm/tally/dialect/postgres"
//
// It owns what Tally knows of pgx: reading the DSN (to keep its password
// out of errors) and classifying pgx's errors by SQLSTATE. The SQL dialect
// itself is [dialect.PostgreSQL].
package postgres

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/tallyorm/tally/dialect"
)

func init() {
	dialect.Register(&dialect.Driver{
		Name:           "postgres",
		Aliases:        []string{"postgresql", "pgx"},
		Dialect:        dialect.PostgreSQL,
		Open:           open,
		Connector:      connector,
		Classify:       classify,
		ServerError:    serverError,
		Batch:          pipeline,
		DirectScan:     canScan,
		ConnectionHint: connectionHint,
	})
}

// open opens a pool for dsn; it does not connect.
func open(dsn string, _ dialect.OpenOptions) (*sql.DB, string, error) {
	password, err := Password(dsn)
	if err != nil {
		return nil, "", err
	}
	// Through the registered driver name, so that whatever the program
	// registered on it (pgx's stdlib options) applies.
	db, err := sql.Open("pgx", WithConnectTimeout(dsn))
	if err != nil {
		return nil, password, fmt.Errorf("postgres: open: %w", err)
	}
	return db, password, nil
}

// connector returns a connector for dsn whose connections o.Dial makes.
func connector(dsn string, o dialect.OpenOptions) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(WithConnectTimeout(dsn))
	if err != nil {
		// Not wrapped, as in Password: the error keeps the raw DSN.
		return nil, fmt.Errorf("postgres: bad DSN: %s", err.Error())
	}
	if o.Dial != nil {
		cfg.DialFunc = o.Dial
	}
	return stdlib.GetConnector(*cfg), nil
}

// Password returns the password of dsn, a URL or key=value string, checking
// that pgx can parse it.
func Password(dsn string) (string, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		// Not wrapped: pgx's ParseConfigError keeps the raw DSN, password
		// included, in an exported field.
		return "", fmt.Errorf("postgres: bad DSN: %s", err.Error())
	}
	return cfg.Password, nil
}

// classify sorts pgx's errors by SQLSTATE. An error of severity FATAL or
// PANIC is a connection error whatever its code: the server ends the
// session after sending it (pg_terminate_backend's 57P01,
// idle_in_transaction_session_timeout's 25P03, idle_session_timeout's
// 57P05, a shutdown, a crash), and the transaction ends with it.
func classify(err error) dialect.Class {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		if endsSession(pe) {
			return dialect.ClassConnection
		}
		switch code := pe.Code; code {
		case "23505": // unique_violation
			return dialect.ClassUnique
		case "23503": // foreign_key_violation
			return dialect.ClassForeignKey
		case "57014": // query_canceled: statement_timeout, or a cancel request
			if strings.Contains(pe.Message, "statement timeout") {
				return dialect.ClassTimeout
			}
			return dialect.ClassOther
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03": // lock_not_available
			return dialect.ClassRetryable
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"57P05", // idle_session_timeout
			"25P03", // idle_in_transaction_session_timeout
			// statement_completion_unknown: CockroachDB's ambiguous
			// result (the node lost contact during COMMIT; the
			// transaction may have committed). As a connection lost at
			// COMMIT, Tally reports it as ErrCommitUnknown there.
			"40003":
			return dialect.ClassConnection
		default:
			if len(code) == 5 && code[:2] == "08" { // class 08: connection exception
				return dialect.ClassConnection
			}
		}
		return dialect.ClassOther
	}
	if errors.Is(err, pgconn.ErrConnClosed) { // after its socket failed mid-statement
		return dialect.ClassConnection
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return dialect.ClassConnection // whatever the cause, no connection was made
	}
	return dialect.ClassOther
}

// serverError recognises an error the server sent.
func serverError(err error) (string, bool) {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return "SQLSTATE " + pe.Code, true
	}
	return "", false
}

// endsSession reports whether the server ends the session with pe: its
// severity is FATAL or PANIC (the unlocalized severity when the server
// sent one, PostgreSQL 9.6 and later).
func endsSession(pe *pgconn.PgError) bool {
	sev := pe.SeverityUnlocalized
	if sev == "" {
		sev = pe.Severity
	}
	return sev == "FATAL" || sev == "PANIC"
}

// connectionHint says "database unavailable" when no connection could be
// made (the network failed, or connect_timeout ran out) or the server
// refused the session because it is starting up, shutting down or full:
// the request reached no transaction, and a later one may succeed.
func connectionHint(err error) string {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
			// No server error: the connect failed on the network, or
			// timed out (connect_timeout) waiting for a stalled server.
			return dialect.HintUnavailable
		}
		return ""
	}
	switch pe.Code {
	case "57P03": // cannot_connect_now: starting up, shutting down, in recovery
		return "database unavailable: the server is starting up or shutting down; retry later"
	case "57P02": // crash_shutdown (57P01 is also pg_terminate_backend's: no hint)
		return "database unavailable: the server is restarting after one of its processes crashed; retry later"
	case "53300": // too_many_connections
		return "database unavailable: the server has no connection slot free (max_connections); retry later or lower the pool size"
	}
	return ""
}

// WithConnectTimeout returns dsn (a URL or key=value string) with
// connect_timeout set to [dialect.ConnectTimeout], unless dsn or the
// PGCONNECT_TIMEOUT environment variable sets one: pgx otherwise waits for
// a connection as long as the operating system does (two minutes for a
// host that drops packets) or, with a stalled server, for good.
func WithConnectTimeout(dsn string) string {
	if strings.Contains(dsn, "connect_timeout") || os.Getenv("PGCONNECT_TIMEOUT") != "" {
		return dsn
	}
	setting := "connect_timeout=" + strconv.Itoa(int(dialect.ConnectTimeout/time.Second))
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if strings.Contains(dsn, "?") {
			return dsn + "&" + setting
		}
		return dsn + "?" + setting
	}
	if strings.TrimSpace(dsn) == "" {
		return setting
	}
	return dsn + " " + setting
}
