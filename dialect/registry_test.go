package dialect

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
)

func noOpen(string, OpenOptions) (*sql.DB, string, error) {
	return nil, "", errors.New("not for opening")
}

// A database whose package is not imported is an error that names the
// import to add; an unknown name lists what is registered.
func TestLookupNamesMissingImport(t *testing.T) {
	pg := &Driver{Name: "postgres", Dialect: PostgreSQL}
	reg := map[string]*Driver{"postgres": pg, "pgx": pg}
	tests := []struct {
		name string
		want string // "" for success
	}{
		{"postgres", ""},
		{"pgx", ""},
		{"mysql", `dialect: no mysql driver registered; add import _ "github.com/tallyorm/tally/dialect/mysql" to your program`},
		{"mariadb", `dialect: unknown driver "mariadb"`}, // opened as "mysql"
		{"sqlite3", `add import _ "github.com/tallyorm/tally/dialect/sqlite"`},
		{"oracle", `dialect: unknown driver "oracle"; registered: [pgx, postgres]`},
		{"", `dialect: unknown driver ""`},
	}
	for _, tt := range tests {
		d, err := lookupIn(reg, tt.name)
		if tt.want == "" {
			if err != nil || d != pg {
				t.Errorf("lookup(%q) = %v, %v; want the postgres driver", tt.name, d, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("lookup(%q) error = %v; want it to contain %q", tt.name, err, tt.want)
		}
	}
}

// Register refuses a name registered twice and a Driver it cannot use: both
// are mistakes in a dialect/<db> package, found at start-up.
func TestRegisterRefusesDuplicatesAndIncompleteDrivers(t *testing.T) {
	for name, d := range map[string]*Driver{
		"nil":        nil,
		"no name":    {Dialect: SQLite, Open: nil},
		"no open":    {Name: "x-test", Dialect: SQLite},
		"no dialect": {Name: "x-test"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%s): got no panic, want one", name)
				}
			}()
			Register(d)
		}()
	}
	// (This test's binary keeps the name registered; nothing else uses it.)
	dup := &Driver{Name: "x-dup-test", Dialect: SQLite, Open: noOpen}
	Register(dup)
	defer func() {
		if recover() == nil {
			t.Error("Register of a name registered before: got no panic, want one")
		}
	}()
	Register(&Driver{Name: "x-other-test", Aliases: []string{"x-dup-test"}, Dialect: SQLite, Open: noOpen})
}
