package orm

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// prepareDSN returns the database/sql driver name and the DSN with Tally's
// defaults applied, plus the DSN's password (for redacting errors).
func prepareDSN(driverName, dsn string) (sqlDriver, out, password string, err error) {
	switch driverName {
	case "mysql":
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "", "", "", fmt.Errorf("orm: bad mysql DSN: %w", err)
		}
		// parseTime: DATETIME columns scan into time.Time.
		cfg.ParseTime = true
		// clientFoundRows: MySQL otherwise reports changed rows, and a
		// version-checked UPDATE that writes identical values would look
		// stale (0 rows) though it matched.
		cfg.ClientFoundRows = true
		// interpolateParams, unless the DSN says: one round trip per statement,
		// not prepare + execute (the driver refuses unsafe charsets). README.
		cfg.InterpolateParams = cfg.InterpolateParams || !strings.Contains(dsn, "interpolateParams=")
		return "mysql", cfg.FormatDSN(), cfg.Passwd, nil
	case "postgres", "postgresql", "pgx":
		// pgx parses both URLs and key=value strings; it only reads it here
		// to learn the password.
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			// Not wrapped: pgx's ParseConfigError keeps the raw DSN,
			// password included, in an exported field.
			return "", "", "", fmt.Errorf("orm: bad postgres DSN: %s", err.Error())
		}
		return "pgx", dsn, cfg.Password, nil
	case "sqlite", "sqlite3":
		return "sqlite", sqliteDSN(dsn), "", nil
	}
	return "", "", "", fmt.Errorf("orm: unknown driver %q (want mysql, postgres or sqlite)", driverName)
}

// sqliteDSN adds the pragmas Tally relies on unless the DSN sets them:
//   - WAL, so readers never block the writer nor each other;
//   - busy_timeout, so a writer waits for the lock instead of failing at once;
//   - foreign_keys, off by default in SQLite, on in every other database;
//   - _txlock=immediate: a write transaction takes the write lock at BEGIN,
//     so it cannot fail halfway when it later upgrades a read lock. The
//     session begins read-only work with a plain (deferred) BEGIN instead;
//     see Session for the strategy.
func sqliteDSN(dsn string) string {
	if dsn == ":memory:" || dsn == "file::memory:" {
		// Every pooled connection would open its own empty database; a
		// named shared-cache memory database is one database for the pool.
		dsn = fmt.Sprintf("file:tally-mem-%d?mode=memory&cache=shared", memSeq.Add(1))
	}
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	path, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return dsn // let the driver report it
	}
	has := func(pragma string) bool {
		for _, p := range q["_pragma"] {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), pragma) {
				return true
			}
		}
		return false
	}
	if !has("journal_mode") {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	if !has("busy_timeout") {
		q.Add("_pragma", "busy_timeout(10000)")
	}
	if !has("foreign_keys") {
		q.Add("_pragma", "foreign_keys(1)")
	}
	if !has("synchronous") {
		// NORMAL is durable across application crashes in WAL mode and
		// saves an fsync per commit; only a power loss can drop the last
		// transactions.
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	if q.Get("_time_format") == "" {
		// The driver's default, time.Time.String(), does not parse back
		// with a numeric zone and does not sort as text; SQLite's own
		// format in UTC does both.
		q.Set("_time_format", "sqlite")
	}
	if q.Get("_timezone") == "" {
		q.Set("_timezone", "UTC")
	}
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

var memSeq atomic.Int64

// redactedError hides a password that an underlying error message may
// contain (net/url errors quote the whole DSN, for one).
type redactedError struct {
	msg string
	err error // nil when its text contained the password
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), password, "xxxxx")
	// The original error still carries the password in its text, so it must
	// not be reachable; keep only what errors.Is can use.
	var inner error
	switch {
	case errors.Is(err, ErrConnection):
		inner = ErrConnection
	}
	return &redactedError{msg: msg, err: inner}
}
