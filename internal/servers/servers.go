// Package servers starts throwaway MariaDB and PostgreSQL servers for the
// tests that stop, kill, pause or replicate a server. Each server lives in
// its own temporary directory, listens on its own loopback port and is torn
// down by the test's cleanup: the shared servers on 3306 and 5432 are never
// touched.
//
//	srv := servers.MariaDB(t, servers.Options{})
//	db := srv.DB(t, "")            // a *sql.DB on the new server
//	srv.Kill(t)                    // SIGKILL, as a crash
//	srv.Start(t)                   // the same data directory, the same port
//
// The binaries are Debian's: /usr/sbin/mariadbd and mariadb-install-db, and
// PostgreSQL's server binaries in /usr/lib/postgresql/<version>/bin. When
// they are missing the test is skipped with a message, unless TALLY_REQUIRE
// names the database, as for the shared servers (internal/dbtest).
package servers

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	// The drivers, registered with database/sql for DB.
	_ "github.com/tallyorm/tally/dialect/mysql"
	_ "github.com/tallyorm/tally/dialect/postgres"
)

// Kinds of server, named as internal/dbtest and TALLY_REQUIRE name them.
const (
	KindMySQL    = "mysql"
	KindPostgres = "postgres"
)

// startTimeout bounds a server's start (initialisation aside): long enough
// for InnoDB crash recovery or a Galera node joining, short enough that a
// server that cannot start fails the test instead of hanging it.
const startTimeout = 90 * time.Second

// Options configure a server. The zero value is a plain server.
type Options struct {
	// Name labels the server in messages and its directory ("primary",
	// "node2"); empty is the kind.
	Name string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Args are extra server options: mariadbd options such as
	// "--server-id=2" or "--log-bin", or PostgreSQL settings as
	// "name=value" (passed as -c name=value).
	Args []string
	// Init, when set, fills the empty data directory instead of
	// mariadb-install-db or initdb: a replica made by pg_basebackup, for
	// example. It runs as root; the directory is then given to the
	// server's user.
	Init func(s *Server, dataDir string) error
	// NoStart leaves the server initialised but stopped; call Start.
	NoStart bool
}

// Server is one throwaway database server.
type Server struct {
	Kind    string // KindMySQL or KindPostgres
	Name    string
	Port    int
	Dir     string // the server's own directory: data, socket, log
	DataDir string

	opts   Options
	binDir string
	uid    int
	gid    int
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	// lastPids are the processes last signalled, which may outlive the
	// main process by a moment.
	lastPids []int
}

// MariaDB initialises and starts a MariaDB server, or skips the test when
// the binaries are not installed (fails when TALLY_REQUIRE names mysql).
func MariaDB(t testing.TB, opts Options) *Server {
	t.Helper()
	for _, bin := range []string{"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db"} {
		if _, err := os.Stat(bin); err != nil {
			unavailable(t, KindMySQL, fmt.Sprintf("%s is not installed (Debian package mariadb-server)", bin))
		}
	}
	return start(t, KindMySQL, "/usr/sbin", "mysql", opts)
}

// Postgres initialises and starts a PostgreSQL server, or skips the test
// when the binaries are not installed (fails when TALLY_REQUIRE names
// postgres). The server runs as the postgres OS user: PostgreSQL refuses
// to run as root.
func Postgres(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := PostgresBinDir()
	if err != nil {
		unavailable(t, KindPostgres, err.Error())
	}
	return start(t, KindPostgres, bin, "postgres", opts)
}

// PostgresBinDir finds Debian's PostgreSQL server binaries (initdb,
// pg_ctl, pg_basebackup, postgres), the newest version installed.
func PostgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian package postgresql)")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// unavailable skips the test, or fails it when TALLY_REQUIRE names kind.
func unavailable(t testing.TB, kind, why string) {
	t.Helper()
	for f := range strings.SplitSeq(os.Getenv("TALLY_REQUIRE"), ",") {
		if strings.EqualFold(strings.TrimSpace(f), kind) {
			t.Fatalf("servers: %s required by TALLY_REQUIRE but cannot start a throwaway server: %s", kind, why)
		}
	}
	t.Skipf("servers: skipping: cannot start a throwaway %s server: %s (set TALLY_REQUIRE=%s to make this a failure)", kind, why, kind)
}

func start(t testing.TB, kind, binDir, osUser string, opts Options) *Server {
	t.Helper()
	u, err := user.Lookup(osUser)
	if err != nil {
		unavailable(t, kind, fmt.Sprintf("no %s OS user: %v", osUser, err))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	name := opts.Name
	if name == "" {
		name = kind
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as its own OS user.
	dir, err := os.MkdirTemp("", "tally-"+kind+"-"+sanitize(name)+"-")
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	s := &Server{Kind: kind, Name: name, Port: opts.Port, Dir: dir, DataDir: filepath.Join(dir, "data"),
		opts: opts, binDir: binDir, uid: uid, gid: gid}
	t.Cleanup(func() { s.destroy(t) })
	if s.Port == 0 {
		s.Port = FreePort(t)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("servers: %v", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("servers: %v", err)
	}
	if err := s.init(); err != nil {
		t.Fatalf("servers: initialising %s: %v", s, err)
	}
	if !opts.NoStart {
		s.Start(t)
	}
	return s
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// String names the server for messages: "mysql primary on 127.0.0.1:40123".
func (s *Server) String() string {
	return fmt.Sprintf("%s %s on 127.0.0.1:%d", s.Kind, s.Name, s.Port)
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("servers: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) init() error {
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return err
	}
	if s.opts.Init != nil {
		if err := s.opts.Init(s, s.DataDir); err != nil {
			return err
		}
		return s.chownAll()
	}
	if err := s.chownAll(); err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch s.Kind {
	case KindMySQL:
		cmd = exec.Command("/usr/bin/mariadb-install-db", "--no-defaults", "--datadir="+s.DataDir,
			"--user=mysql", "--auth-root-authentication-method=normal", "--skip-test-db")
	default:
		cmd = s.Command("initdb", "-D", s.DataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	}
	return run(cmd)
}

// chownAll gives the server's directory to its OS user.
func (s *Server) chownAll() error {
	return filepath.Walk(s.Dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, s.uid, s.gid)
	})
}

// Command returns a command for one of the server's binaries (PostgreSQL:
// pg_basebackup, psql, ...) that runs as the server's OS user. A name with
// no slash is looked up in the server's binary directory, then on PATH.
func (s *Server) Command(name string, args ...string) *exec.Cmd {
	path := name
	if !strings.Contains(name, "/") {
		if p := filepath.Join(s.binDir, name); fileExists(p) {
			path = p
		} else if p, err := exec.LookPath(name); err == nil {
			path = p
		}
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)}}
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// run runs cmd and returns an error carrying its output when it fails.
func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// serverCommand is the server process itself, in a process group of its
// own so that a signal meant for the test binary (a ^C) does not reach it
// first: the cleanup shuts it down.
func (s *Server) serverCommand() *exec.Cmd {
	var cmd *exec.Cmd
	switch s.Kind {
	case KindMySQL:
		args := []string{"--no-defaults", "--datadir=" + s.DataDir, "--user=mysql",
			"--port=" + strconv.Itoa(s.Port), "--bind-address=127.0.0.1",
			"--socket=" + filepath.Join(s.Dir, "mysqld.sock"), "--pid-file=" + filepath.Join(s.Dir, "mysqld.pid"),
			"--log-error=" + s.logPath(), "--skip-name-resolve",
			// Small and fast: these servers hold test data only.
			"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
			"--innodb-flush-log-at-trx-commit=2", "--performance-schema=OFF"}
		args = append(args, s.opts.Args...)
		cmd = exec.Command("/usr/sbin/mariadbd", args...)
	default:
		args := []string{"-D", s.DataDir, "-p", strconv.Itoa(s.Port), "-k", s.Dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "logging_collector=off"}
		for _, a := range s.opts.Args {
			args = append(args, "-c", a)
		}
		cmd = s.Command("postgres", args...)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Dir = s.Dir
	return cmd
}

func (s *Server) logPath() string { return filepath.Join(s.Dir, "server.log") }

// Start starts the server (again: same data directory, same port) and
// waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.StartErr(); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

// StartErr is Start returning its error, for a goroutine of a load test
// that restarts a server while the test goroutine waits.
func (s *Server) StartErr() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return fmt.Errorf("%s: already running", s)
	}
	cmd := s.serverCommand()
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return fmt.Errorf("starting %s: %v", s, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		s.mu.Lock()
		if s.cmd == cmd {
			s.cmd = nil
		}
		s.mu.Unlock()
		close(exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting; log:\n%s", s, s.LogTail(40))
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s: %v; log:\n%s", s, startTimeout, err, s.LogTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) ping() error {
	db, err := sql.Open(s.driver(), s.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func (s *Server) driver() string {
	if s.Kind == KindMySQL {
		return "mysql"
	}
	return "pgx"
}

// DSN is a data source name for database db on the server ("" is the
// server's default: no database on MariaDB, postgres on PostgreSQL), as
// root or postgres, with a short connect timeout so that a test against
// a stopped server fails fast.
func (s *Server) DSN(db string) string {
	if s.Kind == KindMySQL {
		return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s?timeout=3s", s.Port, db)
	}
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=3", s.Port, db)
}

// DB opens database db (see DSN) with database/sql; the test's cleanup
// closes it.
func (s *Server) DB(t testing.TB, db string) *sql.DB {
	t.Helper()
	d, err := sql.Open(s.driver(), s.DSN(db))
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Exec runs statements on the server's default database, failing the test
// on the first error: setup such as CREATE DATABASE or CHANGE MASTER.
func (s *Server) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	db, err := sql.Open(s.driver(), s.DSN(""))
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("servers: %s: %s: %v", s, q, err)
		}
	}
}

// PID is the server's main process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool { return s.PID() != 0 }

// signal sends sig to the server's main process and every process it
// forked. Not a process-group signal: PostgreSQL's backends each call
// setsid and so leave the postmaster's group.
func (s *Server) signal(sig syscall.Signal) (chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil, fmt.Errorf("%s is not running", s)
	}
	pids := descendants(s.cmd.Process.Pid)
	if sig == syscall.SIGCONT {
		// Parents last: a resumed postmaster must not see its children
		// still stopped.
		slices.Reverse(pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("signal %v to %s (pid %d): %v", sig, s, pid, err)
		}
	}
	s.lastPids = pids
	return s.exited, nil
}

// descendants returns pid and every live process descended from it, each
// parent before its children, read from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so parse
		// after its closing parenthesis.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// Stop shuts the server down cleanly (MariaDB: SIGTERM; PostgreSQL: fast
// shutdown, SIGINT, which ends open sessions) and waits for it to exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.StopErr(); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

// StopErr is Stop returning its error.
func (s *Server) StopErr() error {
	sig := syscall.SIGTERM
	if s.Kind == KindPostgres {
		sig = syscall.SIGINT
	}
	// Signal the main process only: a clean shutdown is the server's own.
	s.mu.Lock()
	if s.cmd == nil {
		s.mu.Unlock()
		return fmt.Errorf("%s is not running", s)
	}
	s.mu.Unlock()
	_, _ = s.signal(syscall.SIGCONT) // a paused server cannot shut down
	s.mu.Lock()
	err := s.cmd.Process.Signal(sig)
	exited := s.exited
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("stopping %s: %v", s, err)
	}
	return wait(s, exited, startTimeout)
}

// Kill ends the server and everything it forked with SIGKILL, as a crash
// or a pulled plug, and waits for the processes to go.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.KillErr(); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

// KillErr is Kill returning its error.
func (s *Server) KillErr() error {
	exited, err := s.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	if err := wait(s, exited, 30*time.Second); err != nil {
		return err
	}
	// The forked processes (PostgreSQL's backends) were killed too but
	// may be reaped a moment after the main one; a restart must not find
	// them holding the shared memory.
	s.mu.Lock()
	pids := s.lastPids
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil && !zombie(pid) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// zombie reports whether pid has exited and awaits its parent's wait.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// Pause stops every process of the server with SIGSTOP: the server keeps
// its connections open and answers nothing, as a stalled network or host.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if _, err := s.signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if _, err := s.signal(syscall.SIGCONT); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

func wait(s *Server, exited chan struct{}, d time.Duration) error {
	select {
	case <-exited:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s did not exit within %s", s, d)
	}
}

// LogTail returns the last n lines of the server's log, for failure
// messages.
func (s *Server) LogTail(n int) string {
	b, _ := os.ReadFile(s.logPath())
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// destroy kills whatever is left and removes the directory.
func (s *Server) destroy(t testing.TB) {
	if s.Running() {
		_, _ = s.signal(syscall.SIGCONT)
		_ = s.KillErr()
	}
	if t.Failed() {
		t.Logf("servers: %s log (tail):\n%s", s, s.LogTail(30))
	}
	_ = os.RemoveAll(s.Dir)
}
