package dbtest

import (
	"net/url"
	"strings"

	tallymysql "github.com/tallyorm/tally/dialect/mysql"
)

// hidden stands in for a password in every message this package prints,
// as url.URL.Redacted does.
const hidden = "xxxxx"

// redact returns dsn fit for a message: a PostgreSQL URL or a MySQL DSN
// with its password replaced by xxxxx. A DSN that does not parse is not
// shown at all, since nothing says where its password is.
func redact(dsn string) string {
	if isPostgresURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "[unparseable postgres DSN, not shown]"
		}
		// pgx also takes the password as a query parameter.
		if q := u.Query(); q.Has("password") {
			q.Set("password", hidden)
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.HasPrefix(dsn, "file:") && !strings.Contains(dsn, "@") {
		return dsn // a SQLite file: no password to hide
	}
	cfg, err := tallymysql.ParseDSN(dsn)
	if err != nil {
		return "[unparseable DSN, not shown]"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = hidden
	}
	return cfg.FormatDSN()
}

// scrub returns err's text with dsn's password, if any, replaced. The
// drivers do not echo passwords, but an error passes through more code
// than theirs; this is the last line of defence.
func scrub(err error, dsn string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, pw := range passwords(dsn) {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, hidden)
		}
	}
	return msg
}

// passwords returns the passwords dsn carries.
func passwords(dsn string) []string {
	if isPostgresURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil
		}
		pw, _ := u.User.Password()
		return []string{pw, u.Query().Get("password")}
	}
	if cfg, err := tallymysql.ParseDSN(dsn); err == nil {
		return []string{cfg.Passwd}
	}
	return nil
}

func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}
