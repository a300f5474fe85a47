// Command tallydemo is Tally's demo service: a small bank of accounts and
// transfers, served over HTTP (JSON) and over a line-based TCP protocol,
// with a scheduled audit job. Each HTTP request gets its session from
// eng.Middleware, each TCP request line runs in its own eng.Do, and the
// audit sums the balances in a session of its own every 500 ms — many
// goroutines working at once through one engine.
//
// With no flags it drives itself: -clients goroutines (half over HTTP,
// half over TCP) make random transfers between a few accounts, so that
// they collide, for -duration, with a live progress line. Then it prints
// a report — requests per second, p50/p99 latency, commits, retries,
// conflicts, errors — and checks the invariants: no money created or lost,
// no negative balance, exactly one journal row per transfer a client was
// told was committed, and entries that reconcile every balance. It exits
// with status 1 if a check fails.
//
//	go run ./cmd/tallydemo                              # SQLite in a temp dir, 32 clients, 10 s
//	go run ./cmd/tallydemo -clients 8 -duration 3s
//	go run ./cmd/tallydemo -driver mysql -dsn 'root@tcp(127.0.0.1:3306)/tallydemo'
//	go run ./cmd/tallydemo -driver postgres -dsn 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
//
// The MySQL/MariaDB DSN must name a database that exists (create it first:
// mysql -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS tallydemo').
// On every start the demo drops and recreates its own tables — accounts,
// transfers, entries — and opens the accounts afresh, so runs repeat; do
// not point it at a database whose tables of those names you want to keep.
//
// A fraction of transfers (-unordered) lock their two accounts out of id
// order on purpose, so that real deadlocks happen and the retries that
// resolve them show in the report. MySQL/MariaDB detect a deadlock at once;
// PostgreSQL only after deadlock_timeout (1 s by default), so there each one
// stalls the transfers queued behind it for a second. To compare, run with
// -unordered 0, or let PostgreSQL look sooner (as a superuser) by adding
// &deadlock_timeout=50ms to the DSN. SQLite has no row locks: a transfer
// takes the database's write lock, and never deadlocks.
//
// With -faults it injects failures while the clients run, and the report
// counts them: kill has the server end one of the demo's own database
// connections every -fault-every on average (MariaDB/MySQL KILL
// CONNECTION, PostgreSQL pg_terminate_backend); cut has the clients cut a
// fraction (-cut) of their transfers off once sent. Every transfer carries
// a request id, and a client that cannot know its outcome retries with the
// same id, so the checks still find each transfer applied exactly once:
//
//	go run ./cmd/tallydemo -driver postgres -dsn '...' -clients 200 -duration 60s -faults kill,cut
//
// On a multi-primary cluster (MariaDB Galera) give one -dsn per node: the
// engine spreads its sessions over them (orm.WithPrimaries), and the report
// adds the transfers committed on each node and what the cluster refused
// (see cluster.go).
//
// With -serve it only serves, until interrupted: HTTP on the given address
// and the line protocol on -tcp (default: the next port).
//
//	go run ./cmd/tallydemo -serve 127.0.0.1:8080
//
// Talk to it with curl:
//
//	$ curl -si -X POST localhost:8080/transfers -d '{"from":1,"to":2,"amount":5}'
//	HTTP/1.1 201 Created
//	Content-Type: application/json
//	Location: /transfers/1
//	...
//
//	{"id":1,"from":1,"to":2,"amount":5,"created":"2025-01-02T03:04:05.678901Z","entries":[{"id":1,"transfer":1,"account":1,"amount":-5},{"id":2,"transfer":1,"account":2,"amount":5}]}
//	$ curl -s localhost:8080/accounts/1
//	{"id":1,"owner":"alice","balance":995,"version":2}
//	$ curl -s -X POST localhost:8080/transfers -d '{"from":1,"to":2,"amount":5000}'
//	{"code":"insufficient-funds","error":"account 1 has 995, transfer needs 5000"}
//
// (GET /accounts lists every account; GET /transfers/{id} shows one
// transfer.) Or with nc on the TCP port, one request per line:
//
//	$ nc localhost 8081
//	BALANCE 2
//	OK 1005
//	TRANSFER 2 3 10
//	OK 2
//	TRANSFER 2 3 5000
//	ERR insufficient-funds: account 2 has 995, transfer needs 5000
//	BALANCE 42
//	ERR not-found: unknown account: 42
//	QUIT
//	OK bye
//
// Error codes are the same in both protocols: bad-request, not-found,
// insufficient-funds, busy (a conflict with another transaction that
// retrying resolves; HTTP 503 with Retry-After) and internal.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tallyorm/tally/orm"

	// The databases the demo can run on, as a program names the ones it
	// uses: each registers its driver for orm.Open.
	_ "github.com/tallyorm/tally/dialect/mysql"
	_ "github.com/tallyorm/tally/dialect/postgres"
	_ "github.com/tallyorm/tally/dialect/sqlite"
)

// config is the command line.
type config struct {
	driver, dsn string
	primaries   []string // more -dsn flags: the other nodes of a multi-primary cluster
	serve, tcp  string

	clients   int
	duration  time.Duration
	accounts  int
	balance   int64
	maxAmount int64
	unordered float64
	audit     time.Duration
	conns     int

	faults     Faults
	faultEvery time.Duration
	cut        float64
}

func parseFlags(args []string, errOut io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("tallydemo", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&c.driver, "driver", "sqlite", "database: sqlite, mysql or postgres")
	fs.Var((*dsnFlag)(&c), "dsn", "data source name (default for sqlite: a file in a new temp dir, removed at exit); repeat it for each node of a multi-primary cluster (mysql: Galera)")
	fs.StringVar(&c.serve, "serve", "", "only serve: HTTP on this address (host:port) until interrupted")
	fs.StringVar(&c.tcp, "tcp", "", "with -serve: the line protocol's address (default: the port after -serve's)")
	fs.IntVar(&c.clients, "clients", 32, "load: concurrent clients, half HTTP and half TCP")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "load: how long the clients run")
	fs.IntVar(&c.accounts, "accounts", 8, "accounts to open; few, so that transfers collide")
	fs.Int64Var(&c.balance, "balance", 1000, "opening balance of each account")
	fs.Int64Var(&c.maxAmount, "max-amount", 200, "load: transfers move 1..max-amount")
	fs.Float64Var(&c.unordered, "unordered", 0.05, "fraction of transfers that lock their accounts out of id order, to cause deadlocks")
	fs.IntVar(&c.conns, "conns", 0, "connection pool size (0: the engine's default, 32)")
	fs.DurationVar(&c.audit, "audit", 500*time.Millisecond, "how often the audit job sums the balances")
	faults := fs.String("faults", "", "load: failures to inject, a comma list: kill (the server ends a connection; mysql, postgres), cut (clients drop requests once sent)")
	fs.DurationVar(&c.faultEvery, "fault-every", 100*time.Millisecond, "with -faults kill: mean time between kills")
	fs.Float64Var(&c.cut, "cut", 0.02, "with -faults cut: fraction of transfer attempts cut off")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.faults, err = parseFaults(*faults); err != nil {
		return c, err
	}
	c.faults.Every = c.faultEvery
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.clients < 1, c.accounts < 2, c.duration <= 0, c.balance < 0, c.maxAmount < 1, c.audit <= 0:
		return c, errors.New("need -clients ≥ 1, -accounts ≥ 2, -balance ≥ 0, and positive -duration, -max-amount and -audit")
	case c.unordered < 0 || c.unordered > 1:
		return c, errors.New("-unordered is a fraction, from 0 to 1")
	case c.driver != "sqlite" && c.dsn == "":
		return c, fmt.Errorf("-driver %s needs a -dsn", c.driver)
	case len(c.primaries) > 0 && c.driver == "sqlite":
		return c, errors.New("several -dsn flags (a cluster's nodes) need -driver mysql or postgres")
	case c.tcp != "" && c.serve == "":
		return c, errors.New("-tcp goes with -serve")
	case c.faults.Kill && dialectOf(c.driver) != "mysql" && dialectOf(c.driver) != "postgres":
		return c, errors.New("-faults kill needs -driver mysql or postgres")
	case c.faults.Kill && c.faultEvery <= 0, c.cut < 0 || c.cut > 1:
		return c, errors.New("need a positive -fault-every and a -cut from 0 to 1")
	}
	if c.serve != "" && c.tcp == "" {
		next, err := nextPort(c.serve)
		if err != nil {
			return c, err
		}
		c.tcp = next
	}
	return c, nil
}

// nextPort returns addr with its port plus one (port 0 stays 0: any).
func nextPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("-serve %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p >= 65535 {
		return "", fmt.Errorf("-serve %q: want a numeric port below 65535 to take the next one for -tcp, or set -tcp", addr)
	}
	if p > 0 {
		p++
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tallydemo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if cfg.serve != "" {
		err = serve(ctx, cfg, os.Stdout, log)
	} else {
		var rep *Report
		if rep, err = runLoad(ctx, cfg, os.Stdout, isTerminal(os.Stdout), log); err == nil {
			rep.Print(os.Stdout)
			if !rep.OK() {
				err = errors.New("a check failed")
			}
		}
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tallydemo:", err)
		os.Exit(1)
	}
}

// isTerminal reports whether f is a terminal (a character device), where
// the progress line may be rewritten in place.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// app is the wired service: engine, bank and audit job.
type app struct {
	cfg     config
	eng     *orm.Engine
	bank    *Bank
	audit   *Audit
	ids     []int64
	where   string        // the database, for messages; never holds a password
	cluster *clusterStats // several -dsn: the cluster's figures; else nil
	tmp     string        // SQLite's temp dir, removed by close
}

// open connects, resets the bank's tables and opens the accounts.
func open(ctx context.Context, cfg config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, where: cfg.driver}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	dsn := cfg.dsn
	if cfg.driver == "sqlite" && dsn == "" {
		if a.tmp, err = os.MkdirTemp("", "tallydemo-"); err != nil {
			return nil, err
		}
		dsn = filepath.Join(a.tmp, "bank.db")
		a.where = "sqlite at " + dsn
	}
	if dialectOf(cfg.driver) == "postgres" {
		// Names this process's backends in pg_stat_activity: the fault
		// injector kills only those, and a DBA can tell them apart.
		dsn = withApplicationName(dsn)
	}
	a.bank = NewBank(nil, cfg.unordered)
	// The hook counts the conflicts the database reports, including those
	// at COMMIT that no transfer function sees.
	opts := []orm.Option{orm.WithQueryHook(a.bank.Stats.countConflicts)}
	if cfg.conns > 0 {
		opts = append(opts, orm.WithMaxOpenConns(cfg.conns))
	}
	if len(cfg.primaries) > 0 {
		a.cluster = &clusterStats{}
		opts = append(opts, a.cluster.options(cfg.primaries)...)
	}
	if a.eng, err = orm.Open(ctx, cfg.driver, dsn, opts...); err != nil {
		return nil, err
	}
	a.bank.eng = a.eng
	if a.ids, err = a.bank.Reset(ctx, cfg.accounts, cfg.balance); err != nil {
		return nil, fmt.Errorf("reset the bank's tables: %w", err)
	}
	if a.cluster != nil {
		if err := a.cluster.track(ctx, a.eng); err != nil {
			return nil, fmt.Errorf("record each transfer's node: %w", err)
		}
	}
	a.audit = &Audit{Eng: a.eng, Want: int64(cfg.accounts) * cfg.balance, Every: cfg.audit, Log: log}
	return a, nil
}

func (a *app) close() error {
	var errs []error
	if a.eng != nil {
		errs = append(errs, a.eng.Close())
	}
	if a.tmp != "" {
		errs = append(errs, os.RemoveAll(a.tmp))
	}
	return errors.Join(errs...)
}

// services are the running servers and the audit job.
type services struct {
	httpAddr, tcpAddr string
	httpSrv           *http.Server
	cancel            context.CancelFunc
	wg                sync.WaitGroup
	failed            chan error // a server that stopped on its own

	stopOnce sync.Once
	stopErr  error
}

// start listens on both addresses and starts the HTTP server, the TCP
// server and the audit job.
func (a *app) start(httpAddr, tcpAddr string, log *slog.Logger) (*services, error) {
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, err
	}
	tl, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		hl.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &services{httpAddr: hl.Addr().String(), tcpAddr: tl.Addr().String(), cancel: cancel, failed: make(chan error, 2)}
	s.httpSrv = NewHTTPServer((&API{Bank: a.bank, Log: log}).Handler(), log)
	tcp := &TCPServer{Bank: a.bank, Log: log}
	s.wg.Go(func() {
		if err := s.httpSrv.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("http: %w", err)
		}
	})
	s.wg.Go(func() {
		if err := tcp.Serve(ctx, tl); err != nil {
			s.failed <- err
		}
	})
	s.wg.Go(func() { a.audit.Run(ctx) })
	return s, nil
}

// stop shuts everything down gracefully and waits for every goroutine.
// Calls after the first return the first's result.
func (s *services) stop() error {
	s.stopOnce.Do(func() {
		err := shutdownHTTP(s.httpSrv, 10*time.Second)
		s.cancel()
		s.wg.Wait()
		close(s.failed)
		errs := []error{err}
		for e := range s.failed {
			errs = append(errs, e)
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// serve runs the servers until ctx ends or one of them fails.
func serve(ctx context.Context, cfg config, out io.Writer, log *slog.Logger) (err error) {
	a, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, a.close()) }()
	s, err := a.start(cfg.serve, cfg.tcp, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "tallydemo: %d accounts (ids %d..%d) of %d on %s\n", len(a.ids), a.ids[0], a.ids[len(a.ids)-1], cfg.balance, a.where)
	fmt.Fprintf(out, "tallydemo: HTTP on http://%s, TCP on %s; Ctrl-C stops\n", s.httpAddr, s.tcpAddr)
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-s.failed:
	}
	err = errors.Join(failed, s.stop())
	fmt.Fprintf(out, "tallydemo: stopped; audit ran %d times, %d failed\n", a.audit.Runs.Load(), a.audit.Failures.Load())
	return err
}

// runLoad serves on loopback ports, runs the clients against the servers,
// shuts everything down and checks the invariants. progress receives the
// live line (nil: none).
func runLoad(ctx context.Context, cfg config, progress io.Writer, terminal bool, log *slog.Logger) (rep *Report, err error) {
	a, err := open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, a.close()) }()
	leaks := startLeakCheck()
	s, err := a.start("127.0.0.1:0", "127.0.0.1:0", log)
	if err != nil {
		return nil, err
	}
	var killer *Killer
	killDone := make(chan error, 1)
	killCtx, stopKiller := context.WithCancel(ctx)
	defer stopKiller()
	if cfg.faults.Kill {
		killer = &Killer{Eng: a.eng, Driver: cfg.driver, Every: cfg.faults.Every, Log: log}
		go func() { killDone <- killer.Run(killCtx) }()
	} else {
		killDone <- nil
	}
	if progress != nil {
		fmt.Fprintf(progress, "tallydemo: %d clients for %s, %d accounts of %d on %s\n", cfg.clients, cfg.duration, cfg.accounts, cfg.balance, a.where)
	}
	load := &Load{Clients: cfg.clients, Duration: cfg.duration, Accounts: a.ids, MaxAmount: cfg.maxAmount,
		HTTPURL: "http://" + s.httpAddr, TCPAddr: s.tcpAddr, Progress: progress, Terminal: terminal, Server: &a.bank.Stats}
	if cfg.faults.Cut {
		load.Cut = cfg.cut
	}
	res, err := load.Run(ctx)
	stopKiller()
	err = errors.Join(err, <-killDone)
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	rep = &Report{
		Driver: dialectOf(cfg.driver), Accounts: cfg.accounts, Load: res, Planned: cfg.duration, Interrupted: ctx.Err() != nil,
		BankRetries: a.bank.Stats.Retries.Load(), Conflicts: a.bank.Stats.Conflicts.Load(), Stale: a.bank.Stats.Stale.Load(),
		AuditRuns: a.audit.Runs.Load(), AuditFailures: a.audit.Failures.Load(), AuditErr: a.audit.FirstError(),
		Replays: a.bank.Stats.Replays.Load(), CommitUnknown: a.bank.Stats.CommitUnknown.Load(),
	}
	if killer != nil {
		rep.Kills, rep.KillFailures = killer.Kills.Load(), killer.Failures.Load()
	}
	// Verify runs after the servers stopped: nothing writes any more.
	vctx := context.WithoutCancel(ctx)
	if a.cluster != nil {
		if rep.Cluster, err = a.cluster.report(vctx, a.eng); err != nil {
			return nil, fmt.Errorf("count commits per node: %w", err)
		}
	}
	if rep.Checks, err = a.bank.Verify(vctx, res.Committed, res.Refused, int64(cfg.accounts)*cfg.balance); err != nil {
		return nil, fmt.Errorf("check the invariants: %w", err)
	}
	audit := Check{Name: "audits passed", OK: rep.AuditFailures == 0,
		Detail: fmt.Sprintf("%d runs, %d failed", rep.AuditRuns, rep.AuditFailures)}
	if rep.AuditErr != nil {
		audit.Detail += "; first: " + rep.AuditErr.Error()
	}
	requests := Check{Name: "no request failed", OK: res.Errors == 0,
		Detail: fmt.Sprintf("%d errors in %d requests", res.Errors, res.Requests)}
	rep.Checks = append(rep.Checks, audit, requests)
	rep.Leaks = leaks.finish(a.eng)
	rep.Checks = append(rep.Checks, rep.Leaks.checks()...)
	return rep, nil
}
