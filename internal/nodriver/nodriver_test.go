// Package nodriver tests a program that imports orm and no database
// package: its test binary links no driver, as such a program does.
package nodriver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/orm"
)

// Open of a database whose package the program does not import is an error
// that names the import to add.
func TestOpenWithoutDatabasePackageNamesImport(t *testing.T) {
	for name, pkg := range map[string]string{
		"postgres": "dialect/postgres",
		"mysql":    "dialect/mysql",
		"sqlite":   "dialect/sqlite",
		"sqlite3":  "dialect/sqlite",
	} {
		eng, err := orm.Open(context.Background(), name, "x")
		if err == nil {
			eng.Close()
			t.Errorf("Open(%q) without its package: got an engine, want an error", name)
			continue
		}
		want := `import _ "github.com/tallyorm/tally/` + pkg + `"`
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "orm: ") {
			t.Errorf("Open(%q) error = %q; want an orm: error containing %s", name, err, want)
		}
	}
}

// Without a database package no driver is registered with database/sql
// either: orm itself links none.
func TestOrmRegistersNoDriver(t *testing.T) {
	if got := sql.Drivers(); len(got) != 0 {
		t.Errorf("sql.Drivers() = %q, want none", got)
	}
	if got := dialect.Drivers(); len(got) != 0 {
		t.Errorf("dialect.Drivers() = %q, want none", got)
	}
}

// Without its package a dialect classifies only what every driver reports
// the same way: connection failures. (orm.New documents the import.)
func TestDialectWithoutPackageKnowsConnectionErrors(t *testing.T) {
	for _, d := range []dialect.Dialect{dialect.MySQL, dialect.PostgreSQL, dialect.SQLite} {
		if got := d.Classify(fmt.Errorf("read: %w", io.ErrUnexpectedEOF)); got != dialect.ClassConnection {
			t.Errorf("%s.Classify(unexpected EOF) = %v, want %v", d.Name(), got, dialect.ClassConnection)
		}
		if got := d.Classify(errors.New("duplicate key")); got != dialect.ClassOther {
			t.Errorf("%s.Classify(plain error) = %v, want %v", d.Name(), got, dialect.ClassOther)
		}
		if code, ok := d.ServerError(errors.New("duplicate key")); ok {
			t.Errorf("%s.ServerError(plain error) = %q, true; want false", d.Name(), code)
		}
	}
}
