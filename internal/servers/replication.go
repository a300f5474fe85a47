package servers

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// This file sets up replication between throwaway servers:
//
//	primary := servers.MariaDB(t, servers.Options{Name: "primary", Args: servers.MariaDBPrimaryArgs()})
//	replica := servers.MariaDBReplica(t, primary, servers.Options{})
//
//	primary := servers.Postgres(t, servers.Options{Name: "primary"})
//	standby := servers.PostgresStandby(t, primary, servers.Options{})

// MariaDBPrimaryArgs are the mariadbd options of a primary that replicas
// follow by GTID: a row-based binary log and server id 1.
func MariaDBPrimaryArgs() []string {
	return []string{"--log-bin=mariadb-bin", "--server-id=1", "--binlog-format=ROW"}
}

// replicaIDs numbers the MariaDB replicas of a test binary: server ids
// must differ within a replication topology, and 1 is the primary's.
var replicaIDs atomic.Int32

// MariaDBReplica starts a MariaDB server replicating from primary (which
// must run with MariaDBPrimaryArgs) by GTID, as root over loopback, and
// waits until both replication threads run. opts.Args are added to the
// replica's own (a --server-id there replaces the one it picks).
func MariaDBReplica(t testing.TB, primary *Server, opts Options) *Server {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "replica"
	}
	args := []string{"--server-id=" + strconv.Itoa(int(2+replicaIDs.Add(1)))}
	opts.Args = append(args, opts.Args...)
	r := MariaDB(t, opts)
	r.Exec(t,
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='root', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", primary.Port),
		"START SLAVE")
	r.WaitReplicating(t)
	return r
}

// WaitReplicating waits until a MariaDB replica's IO and SQL threads both
// run (after START SLAVE), failing the test after a minute.
func (s *Server) WaitReplicating(t testing.TB) {
	t.Helper()
	s.waitFor(t, "start replicating", func(db *sql.DB) (bool, string) {
		io, sqlThread, lastErr, err := slaveStatus(db)
		return err == nil && io == "Yes" && sqlThread == "Yes",
			fmt.Sprintf("IO %q, SQL %q, error %q, %v", io, sqlThread, lastErr, err)
	})
}

// waitFor polls check on a connection to the server until it reports
// true; after a minute it fails the test, saying the server did not do
// what, with check's last state and the server's log.
func (s *Server) waitFor(t testing.TB, what string, check func(db *sql.DB) (ok bool, state string)) {
	t.Helper()
	db, err := sql.Open(s.driver(), s.DSN(""))
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	defer db.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, state := check(db)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers: %s did not %s within a minute: %s; log:\n%s", s, what, state, s.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slaveStatus reads SHOW SLAVE STATUS's thread states and last error.
func slaveStatus(db *sql.DB) (io, sqlThread, lastErr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return "", "", "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", "", "", err
	}
	if !rows.Next() {
		return "", "", "", fmt.Errorf("no replication configured")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", "", "", err
	}
	for i, c := range cols {
		switch c {
		case "Slave_IO_Running":
			io = vals[i].String
		case "Slave_SQL_Running":
			sqlThread = vals[i].String
		case "Last_Error", "Last_IO_Error":
			if vals[i].String != "" {
				lastErr = vals[i].String
			}
		}
	}
	return io, sqlThread, lastErr, rows.Err()
}

// PostgresStandby starts a PostgreSQL hot standby of primary: a base
// backup taken with pg_basebackup -R (which writes primary_conninfo and
// standby.signal), streaming WAL from it over loopback. PostgreSQL's
// defaults suffice on the primary (wal_level=replica, WAL senders, and
// initdb's trust entries for replication from 127.0.0.1). opts.Init is
// replaced. It returns once the standby streams.
func PostgresStandby(t testing.TB, primary *Server, opts Options) *Server {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "standby"
	}
	opts.Args = append([]string{"hot_standby=on"}, opts.Args...)
	opts.Init = func(s *Server, dataDir string) error {
		if err := os.Chown(dataDir, s.uid, s.gid); err != nil {
			return err
		}
		return run(s.Command("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
			"-D", dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync"))
	}
	s := Postgres(t, opts)
	s.WaitStreaming(t)
	return s
}

// WaitStreaming waits until a PostgreSQL standby's WAL receiver streams
// from its primary, failing the test after a minute.
func (s *Server) WaitStreaming(t testing.TB) {
	t.Helper()
	s.waitFor(t, "stream from its primary", func(db *sql.DB) (bool, string) {
		var status string
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := db.QueryRowContext(ctx, "SELECT COALESCE((SELECT status FROM pg_stat_wal_receiver), '')").Scan(&status)
		return err == nil && strings.EqualFold(status, "streaming"), fmt.Sprintf("status %q, %v", status, err)
	})
}
