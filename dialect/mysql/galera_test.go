package mysql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/orm"
)

// commitConnector makes connections that run every statement and answer
// the first COMMIT with the error its test sets, as a Galera node does;
// later COMMITs succeed.
type commitConnector struct {
	commitErr error
	commits   atomic.Int64
}

func (c *commitConnector) Connect(context.Context) (driver.Conn, error) { return &commitConn{c}, nil }
func (c *commitConnector) Driver() driver.Driver                        { return nil }

type commitConn struct{ c *commitConnector }

func (c *commitConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("commitConn: no prepared statements")
}
func (c *commitConn) Close() error              { return nil }
func (c *commitConn) Begin() (driver.Tx, error) { return c, nil }
func (c *commitConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}
func (c *commitConn) Commit() error {
	if c.c.commits.Add(1) == 1 {
		return c.c.commitErr
	}
	return nil
}
func (c *commitConn) Rollback() error { return nil }

// doWithCommitError runs one eng.Do of an UPDATE whose first COMMIT fails
// with commitErr; it returns how often fn ran and Do's error.
func doWithCommitError(t *testing.T, commitErr error) (int, error) {
	t.Helper()
	eng := orm.New(sql.OpenDB(&commitConnector{commitErr: commitErr}), dialect.MariaDB)
	defer eng.Close()
	runs := 0
	err := eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
		runs++
		_, err := s.Exec(ctx, "UPDATE accounts SET balance = balance - 1 WHERE id = ?", 1)
		return err
	}, orm.RetryBackoff(0, 0))
	return runs, err
}

// A COMMIT that Galera answers with a certification failure (1213) or
// "not ready" (1047) committed nothing: Do runs the work again. A COMMIT
// answered "Got error 6 during COMMIT" (1180: the node lost the cluster
// while it replicated) may have committed elsewhere: ErrCommitUnknown,
// never run again.
func TestGaleraCommitErrorsRetriedOnlyWhenNothingCommitted(t *testing.T) {
	tests := []struct {
		name     string
		err      *mysql.MySQLError
		wantRuns int
		unknown  bool
	}{
		{"certification failure", &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}, 2, false},
		{"node not ready", &mysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}, 2, false},
		{"replication failed during COMMIT", &mysql.MySQLError{Number: 1180, Message: "Got error 6 \"No such device or address\" during COMMIT"}, 1, true},
		{"Group Replication rollback at COMMIT", &mysql.MySQLError{Number: 3101, Message: "Plugin instructed the server to rollback the current transaction."}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := doWithCommitError(t, tt.err)
			if runs != tt.wantRuns {
				t.Errorf("fn ran %d times, want %d (Do error: %v)", runs, tt.wantRuns, err)
			}
			if got := errors.Is(err, orm.ErrCommitUnknown); got != tt.unknown {
				t.Errorf("errors.Is(%v, ErrCommitUnknown) = %v, want %v", err, got, tt.unknown)
			}
			if !tt.unknown && err != nil {
				t.Errorf("Do = %v; want the retry to commit", err)
			}
		})
	}
}

// Opening over several primaries none of which answers fails at Open,
// with every node's error and no node's password.
func TestOpenWithPrimariesUnreachableHidesPasswords(t *testing.T) {
	addr1, addr2 := closedAddr(t), closedAddr(t)
	ctx := context.Background()
	_, err := orm.Open(ctx, "mysql", "u:sekrit-one@tcp("+addr1+")/db?timeout=2s",
		orm.WithPrimaries("u:sekrit-two@tcp("+addr2+")/db?timeout=2s"))
	if err == nil {
		t.Fatal("Open over two unreachable nodes succeeded")
	}
	if !errors.Is(err, orm.ErrConnection) {
		t.Errorf("Open = %v; want an error matching ErrConnection", err)
	}
	for _, s := range []string{"sekrit-one", "sekrit-two"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("Open's error shows a password: %v", err)
		}
	}
	for _, a := range []string{addr1, addr2} {
		if !strings.Contains(err.Error(), a) {
			t.Errorf("Open's error does not name node %s: %v", a, err)
		}
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no local TCP:", err)
	}
	defer l.Close()
	return l.Addr().String()
}
