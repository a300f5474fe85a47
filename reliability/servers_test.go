package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/servers"
	"github.com/tallyorm/tally/orm"
)

// kinds are the servers the tests start their own instances of.
var kinds = []string{servers.KindMySQL, servers.KindPostgres}

// startServer starts a throwaway server of kind with extra args.
func startServer(t *testing.T, kind string, args ...string) *servers.Server {
	t.Helper()
	if kind == servers.KindMySQL {
		return servers.MariaDB(t, servers.Options{Args: args})
	}
	return servers.Postgres(t, servers.Options{Args: args})
}

// userDSN is the DSN a user would write for database db on srv: no
// connect or read timeouts of the test harness's own, so that the test
// sees Tally's defaults.
func userDSN(srv *servers.Server, db string) string {
	if srv.Kind == servers.KindMySQL {
		return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", srv.Port, db)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", srv.Port, db)
}

// openBank creates database db on srv and opens an engine and a bank on
// it; the test's cleanup closes the engine.
func openBank(t *testing.T, srv *servers.Server, db string, opts ...orm.Option) *bank {
	t.Helper()
	return openBankWith(t, srv, db, "", opts...)
}

// openBankWith is openBank with session settings added to the DSN:
// params is "name=value&..." (MySQL system variables, PostgreSQL run-time
// parameters), set on every connection of the engine.
func openBankWith(t *testing.T, srv *servers.Server, db, params string, opts ...orm.Option) *bank {
	t.Helper()
	srv.Exec(t, "CREATE DATABASE "+db)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := userDSN(srv, db)
	if params != "" {
		if strings.Contains(dsn, "?") {
			dsn += "&" + params
		} else {
			dsn += "?" + params
		}
	}
	eng, err := orm.Open(ctx, srv.Kind, dsn, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", srv, err)
	}
	t.Cleanup(func() { eng.Close() })
	return newBank(t, eng)
}
