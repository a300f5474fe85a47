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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/tallyorm/tally/dialect"
)

func init() {
	dialect.Register(&dialect.Driver{
		Name:        "postgres",
		Aliases:     []string{"postgresql", "pgx"},
		Dialect:     dialect.PostgreSQL,
		Open:        open,
		Connector:   connector,
		Classify:    classify,
		ServerError: serverError,
		Batch:       pipeline,
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
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, password, fmt.Errorf("postgres: open: %w", err)
	}
	return db, password, nil
}

// connector returns a connector for dsn whose connections o.Dial makes.
func connector(dsn string, o dialect.OpenOptions) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(dsn)
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
