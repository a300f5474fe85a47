package dialect

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// MySQL is the dialect of MySQL 8 and of MariaDB before 10.5, which cannot
// return generated keys from an INSERT: the caller reads LastInsertId per
// row instead. It assumes the server's default sql_mode (no ANSI_QUOTES, no
// NO_BACKSLASH_ESCAPES).
var MySQL Dialect = mysqlDialect{}

// MariaDB is [MySQL] for MariaDB 10.5 and later, which accepts INSERT ...
// RETURNING. Its Name is still "mysql": it speaks the same protocol, through
// the same driver. [ForMySQLServer] picks between the two.
var MariaDB Dialect = mysqlDialect{mariadb: true}

var _ Dialect = mysqlDialect{}

// mysqlDialect is a comparable value, so MySQL and MariaDB can be told apart
// with ==.
type mysqlDialect struct {
	mariadb bool
}

func (mysqlDialect) Name() string { return "mysql" }

func (mysqlDialect) Quote(ident string) string { return quote(ident, '`') }

func (mysqlDialect) AppendPlaceholder(b []byte, _ int) []byte { return append(b, '?') }

func (mysqlDialect) Rebind(query string) string { return mysqlSyntax.rebind(query) }

func (mysqlDialect) syntax() *syntax { return &mysqlSyntax }

// mysqlCaps: MaxParams is the protocol's limit (a prepared statement counts
// its parameters in 16 bits); there is no CREATE INDEX IF NOT EXISTS.
var mysqlCaps = standardSavepoints(Capabilities{
	ForUpdate:      true,
	EmptyInsert:    "() VALUES ()",
	DropForeignKey: "DROP FOREIGN KEY ",
	Begin:          BeginPlain,
	MaxParams:      65535,
	Uint64:         true,
	Upsert:         UpsertOnDuplicateKey,
})

func (d mysqlDialect) Capabilities() Capabilities {
	c := mysqlCaps
	c.Returning = d.mariadb
	return c
}

func (d mysqlDialect) Returning() bool { return d.mariadb }

func (mysqlDialect) MaxParams() int { return mysqlCaps.MaxParams }

func (mysqlDialect) ColumnType(c Column) (string, error) {
	if c.SQLType != "" {
		if t := strings.ToUpper(strings.TrimSpace(c.SQLType)); t == "NUMERIC" || t == "DECIMAL" {
			return "", fmt.Errorf("dialect: mysql reads a bare %s as DECIMAL(10,0), which rounds every value to a whole number; "+
				"declare the digits with precision=P,scale=S (or type=DECIMAL(P,S))", t)
		}
		return c.SQLType, nil
	}
	k, err := kindOf("mysql", c)
	if err != nil {
		return "", err
	}
	switch k {
	case kindDecimal:
		if c.Precision == 0 {
			return "", errors.New("dialect: mysql needs the digits of a decimal column: its DECIMAL without them is DECIMAL(10,0), " +
				"which rounds every value to a whole number; add precision=P,scale=S to the tag (e.g. precision=20,scale=4)")
		}
		return "DECIMAL" + decimalArgs(c), nil
	case kindString:
		// TEXT cannot be a key without a prefix length, so keys get a
		// bounded VARCHAR: 255 characters fit an index on every row format.
		if c.Size > 0 || c.Key {
			return "VARCHAR(" + strconv.Itoa(sizeOr255(c.Size)) + ")", nil
		}
	case kindBytes:
		if c.Size > 0 || c.Key {
			return "VARBINARY(" + strconv.Itoa(sizeOr255(c.Size)) + ")", nil
		}
	}
	return mysqlTypes[k], nil
}

var mysqlTypes = [numKinds]string{
	kindBool:    "BOOLEAN",
	kindInt8:    "TINYINT",
	kindInt16:   "SMALLINT",
	kindInt32:   "INT",
	kindInt64:   "BIGINT",
	kindUint8:   "TINYINT UNSIGNED",
	kindUint16:  "SMALLINT UNSIGNED",
	kindUint32:  "INT UNSIGNED",
	kindUint64:  "BIGINT UNSIGNED",
	kindFloat32: "FLOAT",
	kindFloat64: "DOUBLE",
	kindString:  "LONGTEXT", // holds any string; size=N asks for a VARCHAR(N)
	kindBytes:   "LONGBLOB",
	// DATETIME keeps the value as given, unlike TIMESTAMP, which the server
	// shifts by its time zone and limits to 2038; (6) keeps microseconds.
	kindTime: "DATETIME(6)",
	kindUUID: "BINARY(16)",
	kindJSON: "JSON", // MariaDB: LONGTEXT checked by JSON_VALID, so the text is kept as written
}

func sizeOr255(size int) int {
	if size > 0 {
		return size
	}
	return 255
}

func (mysqlDialect) AutoIncrement(quotedName string, t reflect.Type) (string, bool) {
	size, unsigned := intWidth(t)
	typ := "BIGINT"
	if size <= 4 {
		typ = "INT"
	}
	if unsigned {
		typ += " UNSIGNED"
	}
	return quotedName + " " + typ + " NOT NULL AUTO_INCREMENT", false
}

func (mysqlDialect) Classify(err error) Class { return classifyVia("mysql", err) }

func (mysqlDialect) ServerError(err error) (string, bool) { return serverErrorVia("mysql", err) }

// ForMySQLServer returns the dialect for a server that answered version to
// SELECT VERSION(): [MariaDB] for MariaDB 10.5 or later, whose INSERT ...
// RETURNING saves a round trip per row, and [MySQL] for anything else,
// including versions it cannot read.
//
// MariaDB may report itself behind a "5.5.5-" prefix, which older clients
// needed to accept it ("5.5.5-10.6.12-MariaDB"); the prefix is skipped.
func ForMySQLServer(version string) Dialect {
	if !strings.Contains(strings.ToLower(version), "mariadb") {
		return MySQL
	}
	v := strings.TrimPrefix(version, "5.5.5-")
	major, rest, ok := leadingInt(v)
	if !ok {
		return MySQL
	}
	minor := 0
	if rest, ok = strings.CutPrefix(rest, "."); ok {
		if minor, _, ok = leadingInt(rest); !ok {
			return MySQL
		}
	}
	if major > 10 || major == 10 && minor >= 5 {
		return MariaDB
	}
	return MySQL
}

// leadingInt parses the decimal number at the start of s.
func leadingInt(s string) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	n, err := strconv.Atoi(s[:i])
	return n, s[i:], err == nil
}
