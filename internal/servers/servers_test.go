package servers

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

// each runs fn on a throwaway server of each kind.
func each(t *testing.T, fn func(t *testing.T, s *Server)) {
	t.Run(KindMySQL, func(t *testing.T) { t.Parallel(); fn(t, MariaDB(t, Options{})) })
	t.Run(KindPostgres, func(t *testing.T) { t.Parallel(); fn(t, Postgres(t, Options{})) })
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM kept").Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

// A killed server restarts on the same port with its committed data, and
// while it is down a connection attempt fails at once rather than hanging.
func TestKilledServerRestartsWithItsData(t *testing.T) {
	each(t, func(t *testing.T, s *Server) {
		s.Exec(t, "CREATE DATABASE keep")
		db := s.DB(t, "keep")
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, "CREATE TABLE kept (id INT PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO kept VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		s.Kill(t)
		if s.Running() {
			t.Fatal("Running after Kill")
		}
		start := time.Now()
		if err := db.PingContext(ctx); err == nil {
			t.Fatal("ping of a killed server succeeded")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("ping of a killed server took %v; want a fast failure", d)
		}
		s.Start(t)
		if n := count(t, db); n != 1 {
			t.Errorf("rows after restart = %d, want 1", n)
		}
		s.Stop(t)
		s.Start(t)
		if n := count(t, db); n != 1 {
			t.Errorf("rows after clean restart = %d, want 1", n)
		}
	})
}

// A paused server answers nothing until resumed: a query's context
// deadline ends the wait, and after Resume the server serves again.
func TestPausedServerStallsUntilResumed(t *testing.T) {
	each(t, func(t *testing.T, s *Server) {
		db := s.DB(t, "")
		if err := db.Ping(); err != nil {
			t.Fatal(err)
		}
		s.Pause(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		cancel()
		if err == nil {
			t.Fatal("query on a paused server succeeded")
		}
		s.Resume(t)
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("query after Resume: %v", err)
		}
	})
}

// DSNs never carry a password and name the server's own port.
func TestDSNNamesOwnPort(t *testing.T) {
	s := &Server{Kind: KindMySQL, Port: 40001}
	if got := s.DSN("x"); !strings.Contains(got, "127.0.0.1:40001)/x") {
		t.Errorf("mysql DSN = %q", got)
	}
	s.Kind = KindPostgres
	if got := s.DSN(""); !strings.Contains(got, "127.0.0.1:40001/postgres") {
		t.Errorf("postgres DSN = %q", got)
	}
}
