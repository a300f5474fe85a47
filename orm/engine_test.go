package orm_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/mapper"
	"github.com/tallyorm/tally/orm"
)

// engPool is an engine on an unopened SQLite pool, for tests that need no
// database (model validation, options).
func engPool(t *testing.T, opts ...orm.Option) *orm.Engine {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	eng := orm.New(db, dialect.SQLite, opts...)
	t.Cleanup(func() { eng.Close() })
	return eng
}

// --- Open ---

func TestOpen(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := mustOpen(t, tg.Name, tg.DSN)
		if got := eng.Dialect().Name(); got != tg.Name {
			t.Errorf("Dialect().Name() = %q, want %q", got, tg.Name)
		}
		if err := eng.DB().PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		// The sqlx handle knows the placeholder style, so sqlx helpers on
		// eng.DB() bind as the dialect does.
		const q = "SELECT a FROM t WHERE a = ? AND b = ?"
		if got, want := eng.DB().Rebind(q), eng.Dialect().Rebind(q); got != want {
			t.Errorf("DB().Rebind = %q, Dialect().Rebind = %q", got, want)
		}
		// The database/sql driver name is accepted as well as the target's.
		alias, err := orm.Open(ctx, tg.Driver, tg.DSN)
		if err != nil {
			t.Fatalf("Open(%q): %v", tg.Driver, err)
		}
		defer alias.Close()
		if alias.Dialect() != eng.Dialect() {
			t.Errorf("Open(%q) dialect %v, Open(%q) dialect %v", tg.Driver, alias.Dialect(), tg.Name, eng.Dialect())
		}
	})
}

func TestOpenAliases(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range []string{"sqlite", "sqlite3"} {
		eng, err := orm.Open(ctx, name, dir+"/"+name+".db")
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		if eng.Dialect() != dialect.SQLite {
			t.Errorf("Open(%q): dialect %v", name, eng.Dialect().Name())
		}
		eng.Close()
	}
}

func TestOpenUnknownDriver(t *testing.T) {
	for _, name := range []string{"", "oracle", "MySQL", "sqlserver", "mariadb"} {
		eng, err := orm.Open(context.Background(), name, "u:S3cretPw!@tcp(127.0.0.1:3306)/x")
		if err == nil {
			eng.Close()
			t.Errorf("Open(%q) succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), "unknown driver") || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("Open(%q): %v; want an error naming the unknown driver", name, err)
		}
		if strings.Contains(err.Error(), "S3cretPw") {
			t.Errorf("Open(%q): error contains the password: %v", name, err)
		}
	}
}

func TestOpenCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	eng, err := orm.Open(ctx, "sqlite", t.TempDir()+"/x.db")
	if err == nil {
		eng.Close()
		t.Fatal("Open with a canceled context succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestOpenMySQLSettings(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.MySQL {
			t.Skip("MySQL only")
		}
		ctx := context.Background()
		eng := mustOpen(t, tg.Name, tg.DSN)
		db := eng.DB()

		// parseTime: DATETIME scans into time.Time.
		var at time.Time
		if err := db.QueryRowContext(ctx, "SELECT CAST('2024-01-02 03:04:05.123456' AS DATETIME(6))").Scan(&at); err != nil {
			t.Fatalf("DATETIME into time.Time: %v", err)
		}
		if want := time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC); !at.Equal(want) {
			t.Errorf("DATETIME read as %v, want %v", at, want)
		}

		// clientFoundRows: an UPDATE that matches a row but changes
		// nothing still reports it.
		if _, err := db.ExecContext(ctx, "CREATE TABLE eng_found (id INT PRIMARY KEY, v INT)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO eng_found VALUES (1, 5)"); err != nil {
			t.Fatal(err)
		}
		res, err := db.ExecContext(ctx, "UPDATE eng_found SET v = 5 WHERE id = 1")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Errorf("UPDATE writing the same value reported %d rows, want 1 (matched rows)", n)
		}

		// RETURNING on MariaDB 10.5 and later.
		var version string
		if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			t.Fatal(err)
		}
		wantReturning := dialect.ForMySQLServer(version).Returning()
		if strings.Contains(version, "MariaDB") && !wantReturning {
			t.Logf("MariaDB %s predates RETURNING", version)
		}
		if got := eng.Dialect().Returning(); got != wantReturning {
			t.Errorf("server %s: Returning() = %v, want %v", version, got, wantReturning)
		}
		if strings.Contains(version, "10.11") && !eng.Dialect().Returning() {
			t.Errorf("MariaDB %s: Returning() is false", version)
		}
	})
}

func TestOpenSQLitePragmas(t *testing.T) {
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", t.TempDir()+"/p.db")
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	pragma := func(db interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, name string) string {
		t.Helper()
		var v string
		if err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	// Every connection of the pool gets the settings, not just the first:
	// hold one and ask on a second.
	c1, err := eng.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := eng.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, c := range []*sql.Conn{c1, c2} {
		if got := pragma(c, "journal_mode"); got != "wal" {
			t.Errorf("journal_mode = %q, want wal", got)
		}
		if got := pragma(c, "busy_timeout"); got == "0" {
			t.Errorf("busy_timeout = %s, want a wait", got)
		}
		if got := pragma(c, "foreign_keys"); got != "1" {
			t.Errorf("foreign_keys = %s, want 1", got)
		}
		if got := pragma(c, "synchronous"); got != "1" {
			t.Errorf("synchronous = %s, want 1 (NORMAL)", got)
		}
	}
}

func TestOpenSQLiteUserPragmasWin(t *testing.T) {
	ctx := context.Background()
	dsn := "file:" + t.TempDir() + "/u.db?_pragma=busy_timeout(1234)&_pragma=journal_mode(DELETE)&_pragma=foreign_keys(0)"
	eng, err := orm.Open(ctx, "sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for pragma, want := range map[string]string{"busy_timeout": "1234", "journal_mode": "delete", "foreign_keys": "0"} {
		var got string
		if err := eng.DB().QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want the DSN's %s", pragma, got, want)
		}
	}
}

// TestOpenSQLiteMemory: ":memory:" is one database per connection in
// SQLite, but an engine is a pool; a table made on one connection must be
// visible to work on another.
func TestOpenSQLiteMemory(t *testing.T) {
	ctx := context.Background()
	eng, err := orm.Open(ctx, "sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, engHooked{}); err != nil {
		t.Fatal(err)
	}
	// Keep the connection that created the table busy, as a concurrent
	// request would, so that the session needs another one.
	held, err := eng.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	s := eng.NewSession()
	defer s.Close()
	if err := s.Add(&engHooked{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatalf("second connection of a \":memory:\" engine does not see the table: %v", err)
	}
}

// TestSQLiteTimeOffsets stores times as they come from RFC 3339 input
// (JSON, HTTP), with numeric offsets and no zone name, and reads them back;
// and checks that the database compares stored times as instants.
func TestTimeOffsetsRoundTrip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := mustOpen(t, tg.Name, tg.DSN)
		if err := eng.CreateTables(ctx, engEvent{}); err != nil {
			t.Fatal(err)
		}
		// Chronological order 1, 2, 3; as wall-clock text 2 < 3 < 1.
		inputs := []string{"2024-01-01T12:00:00+05:30", "2024-01-01T07:00:00Z", "2024-01-01T04:30:00-03:00"}
		s := eng.NewSession()
		defer s.Close()
		var events []*engEvent
		for i, in := range inputs {
			at, err := time.Parse(time.RFC3339, in)
			if err != nil {
				t.Fatal(err)
			}
			ev := &engEvent{ID: int64(i + 1), At: at}
			events = append(events, ev)
			if err := s.Add(ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		d := eng.Dialect()
		var ids []int64
		q := "SELECT " + d.Quote("id") + " FROM " + d.Quote("eng_events") + " ORDER BY " + d.Quote("at")
		if err := eng.DB().SelectContext(ctx, &ids, q); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids) != "[1 2 3]" {
			t.Errorf("ORDER BY at gave ids %v, want [1 2 3] (chronological)", ids)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		for i, want := range events {
			got, err := orm.Get[engEvent](ctx, s2, want.ID)
			if err != nil {
				t.Errorf("Get the time stored from %q: %v", inputs[i], err)
				continue
			}
			if !got.At.Equal(want.At) {
				t.Errorf("stored %v, read %v", want.At, got.At)
			}
		}
	})
}

type engEvent struct {
	ID int64     `db:"id,pk"`
	At time.Time `db:"at"`
}

func (engEvent) TableName() string { return "eng_events" }

// --- pool ---

func TestPoolDefaults(t *testing.T) {
	eng := engPool(t)
	if got := eng.DB().Stats().MaxOpenConnections; got != 32 {
		t.Errorf("default MaxOpenConnections = %d, want 32", got)
	}
	// Idle connections follow MaxOpen, not database/sql's 2.
	if got := engIdleAfter(t, eng, 10); got != 10 {
		t.Errorf("idle after using 10 connections: %d, want 10", got)
	}
}

func TestPoolOptions(t *testing.T) {
	tests := []struct {
		name     string
		opts     []orm.Option
		use      int // connections used at once
		wantOpen int
		wantIdle int
	}{
		{"max open 7", []orm.Option{orm.WithMaxOpenConns(7)}, 7, 7, 7},
		{"max idle 3", []orm.Option{orm.WithMaxIdleConns(3)}, 6, 32, 3},
		{"idle 0", []orm.Option{orm.WithMaxIdleConns(0)}, 4, 32, 0},
		{"idle above open", []orm.Option{orm.WithMaxOpenConns(4), orm.WithMaxIdleConns(10)}, 4, 4, 4},
		{"unlimited", []orm.Option{orm.WithMaxOpenConns(0)}, 40, 0, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := engPool(t, tt.opts...)
			if got := eng.DB().Stats().MaxOpenConnections; got != tt.wantOpen {
				t.Errorf("MaxOpenConnections = %d, want %d", got, tt.wantOpen)
			}
			if got := engIdleAfter(t, eng, tt.use); got != tt.wantIdle {
				t.Errorf("idle after using %d connections: %d, want %d", tt.use, got, tt.wantIdle)
			}
		})
	}
}

func TestPoolLifetimes(t *testing.T) {
	// database/sql does not report the settings; a short lifetime shows
	// as connections closed for it.
	eng := engPool(t, orm.WithConnMaxLifetime(time.Millisecond), orm.WithConnMaxIdleTime(time.Hour))
	engIdleAfter(t, eng, 2)
	time.Sleep(20 * time.Millisecond)
	engIdleAfter(t, eng, 2)
	if st := eng.DB().Stats(); st.MaxLifetimeClosed == 0 {
		t.Errorf("no connection closed for its lifetime: %+v", st)
	}
}

// engIdleAfter holds n connections at once, returns them, and reports how
// many the pool then keeps idle.
func engIdleAfter(t *testing.T, eng *orm.Engine, n int) int {
	t.Helper()
	ctx := context.Background()
	var conns []*sql.Conn
	for range n {
		c, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	return eng.DB().Stats().Idle
}

// --- passwords ---

const engPassword = "S3cretPw"

func TestOpenNeverShowsPassword(t *testing.T) {
	tests := []struct{ name, driver, dsn string }{
		{"mysql wrong user", "mysql", "tally_nouser:S3cretPw!@tcp(127.0.0.1:3306)/x"},
		{"mysql unreachable", "mysql", "tally_nouser:S3cretPw!@tcp(127.0.0.1:1)/x?timeout=3s"},
		{"mysql malformed", "mysql", "tally_nouser:S3cretPw!@tcp(127.0.0.1:3306/x"},
		{"postgres url", "postgres", "postgres://tally_nouser:S3cretPw!@127.0.0.1:5432/x?sslmode=disable"},
		{"postgres url encoded", "postgres", "postgres://tally_nouser:S3cretPw%21@127.0.0.1:5432/x?sslmode=disable"},
		{"postgres url query", "postgres", "postgres://tally_nouser@127.0.0.1:5432/x?sslmode=disable&password=S3cretPw!"},
		{"postgres key=value", "postgres", "host=127.0.0.1 port=5432 user=tally_nouser password=S3cretPw! dbname=x sslmode=disable"},
		{"postgres key=value quoted", "postgres", "host=127.0.0.1 port=5432 user=tally_nouser password='S3cretPw! x' dbname=x sslmode=disable"},
		{"postgres unreachable", "postgres", "postgres://tally_nouser:S3cretPw!@127.0.0.1:1/x?sslmode=disable&connect_timeout=3"},
		{"postgres malformed url", "postgres", "postgres://u:S3cretPw!@127.0.0.1:bad/x"},
		{"postgres malformed key=value", "postgres", "host=127.0.0.1 password=S3cretPw! port=bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			var hooked []string
			hook := orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
				hooked = append(hooked, fmt.Sprintf("%s %v %v", ev.SQL, ev.Args, ev.Err))
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			eng, err := orm.Open(ctx, tt.driver, tt.dsn, orm.WithLogger(logger), hook)
			if err == nil {
				eng.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if strings.Contains(err.Error(), engPassword) {
				t.Errorf("error shows the password: %v", err)
			}
			if s := fmt.Sprintf("%+v", err); strings.Contains(s, engPassword) {
				t.Errorf("%%+v of the error shows the password: %s", s)
			}
			walkErrors(err, func(e error, _ int) {
				if strings.Contains(e.Error(), engPassword) {
					t.Errorf("%T in the error's chain shows the password: %v", e, e)
				}
			})
			if strings.Contains(logBuf.String(), engPassword) {
				t.Errorf("log shows the password: %s", logBuf.String())
			}
			if strings.Contains(strings.Join(hooked, "\n"), engPassword) {
				t.Errorf("query hook saw the password: %q", hooked)
			}
			if strings.Contains(tt.name, "unreachable") && !errors.Is(err, orm.ErrConnection) {
				t.Errorf("unreachable server: error does not match ErrConnection: %v", err)
			}
		})
	}
}

// --- hooks and logger ---

type engHooked struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name,unique,size=64"`
}

func (engHooked) TableName() string { return "eng_hooked" }

// engFind returns the first event whose SQL starts with prefix.
func engFind(evs []orm.QueryEvent, prefix string) (orm.QueryEvent, bool) {
	for _, ev := range evs {
		if strings.HasPrefix(ev.SQL, prefix) {
			return ev, true
		}
	}
	return orm.QueryEvent{}, false
}

func TestQueryHook(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		var rec queryLog
		var calls2 int
		eng := mustOpen(t, tg.Name, tg.DSN, orm.WithQueryHook(rec.hook), orm.WithQueryHook(func(context.Context, orm.QueryEvent) { calls2++ }))
		if err := eng.CreateTables(ctx, engHooked{}); err != nil {
			t.Fatal(err)
		}
		ddl, ok := engFind(rec.Take(), "CREATE TABLE")
		if !ok || ddl.Op != "exec" || ddl.Err != nil || len(ddl.Args) != 0 {
			t.Errorf("CreateTables event: %+v (found %v)", ddl, ok)
		}

		s := eng.NewSession()
		defer s.Close()
		a := &engHooked{Name: "ann-secret-arg"}
		if err := s.Add(a); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		evs := rec.Take()
		ins, ok := engFind(evs, "INSERT INTO "+eng.Dialect().Quote("eng_hooked"))
		if !ok {
			t.Fatalf("no INSERT event among %+v", evs)
		}
		if ins.Op != "exec" && ins.Op != "query" {
			t.Errorf("INSERT op %q", ins.Op)
		}
		if fmt.Sprint(ins.Args) != "[ann-secret-arg]" {
			t.Errorf("INSERT args %v, want [ann-secret-arg]", ins.Args)
		}
		if ins.Duration <= 0 {
			t.Errorf("INSERT duration %v", ins.Duration)
		}
		if ins.Rows != 1 {
			t.Errorf("INSERT rows %d, want 1", ins.Rows)
		}
		if ins.Err != nil {
			t.Errorf("INSERT err %v", ins.Err)
		}
		var ops []string
		for _, ev := range evs {
			ops = append(ops, ev.Op)
		}
		if len(ops) != 1 {
			t.Errorf("ops %v, want the INSERT alone (a single-statement commit)", ops)
		}
		if calls2 == 0 {
			t.Error("the second hook was never called")
		}

		// A query reports the rows it read.
		s2 := eng.NewSession()
		defer s2.Close()
		if _, err := orm.Get[engHooked](ctx, s2, a.ID); err != nil {
			t.Fatal(err)
		}
		sel, ok := engFind(rec.Take(), "SELECT")
		if !ok || sel.Op != "query" || sel.Rows != 1 || sel.Err != nil || fmt.Sprint(sel.Args) != fmt.Sprint([]any{a.ID}) {
			t.Errorf("Get event: %+v (found %v)", sel, ok)
		}
		s2.Close()

		// A failing statement reports its error, classified, and the
		// driver's error stays reachable.
		s3 := eng.NewSession()
		defer s3.Close()
		if err := s3.Add(&engHooked{Name: "ann-secret-arg"}); err != nil {
			t.Fatal(err)
		}
		err := s3.Commit(ctx)
		if !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("duplicate Commit: %v, want ErrUniqueViolation", err)
		}
		engCheckDriverError(t, eng.Dialect(), err)
		evs = rec.Take()
		bad, ok := engFind(evs, "INSERT")
		if !ok {
			t.Fatalf("no INSERT event among %+v", evs)
		}
		if !errors.Is(bad.Err, orm.ErrUniqueViolation) {
			t.Errorf("failed INSERT event Err = %v, want ErrUniqueViolation", bad.Err)
		}
		var dbe *orm.DBError
		if !errors.As(bad.Err, &dbe) || dbe.Class != dialect.ClassUnique {
			t.Errorf("failed INSERT event Err = %#v, want a *DBError of class unique", bad.Err)
		}
		if len(evs) != 1 {
			t.Errorf("events %+v, want the failed INSERT alone: it ran in autocommit, with nothing to roll back", evs)
		}
	})
}

// engCheckDriverError checks that the driver's own error, with the code of
// a unique violation, stays reachable through an orm error: the dialect
// finds it with errors.As. (Each dialect/<db> package checks errors.As on
// its driver's error type itself.)
func engCheckDriverError(t *testing.T, d dialect.Dialect, err error) {
	t.Helper()
	engCheckServerCode(t, d, err, map[string]string{
		dbtest.MySQL:    "mysql error 1062",
		dbtest.Postgres: "SQLSTATE 23505",
		dbtest.SQLite:   "sqlite code 2067", // SQLITE_CONSTRAINT_UNIQUE
	})
}

// engCheckServerCode checks that err carries the server error whose code
// want gives for d's database.
func engCheckServerCode(t *testing.T, d dialect.Dialect, err error, want map[string]string) {
	t.Helper()
	code, ok := d.ServerError(err)
	if w := want[d.Name()]; !ok || code != w {
		t.Errorf("ServerError(%v) = %q, %v; want %q, true", err, code, ok, w)
	}
}

func TestForeignKeyErrorReachesDriver(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := mustOpen(t, tg.Name, tg.DSN)
		if err := eng.CreateTables(ctx, engShelf{}, engBook{}); err != nil {
			t.Fatal(err)
		}
		s := eng.NewSession()
		defer s.Close()
		if err := s.Add(&engBook{ShelfID: 404}); err != nil {
			t.Fatal(err)
		}
		err := s.Commit(ctx)
		if !errors.Is(err, orm.ErrForeignKeyViolation) {
			t.Fatalf("Commit: %v, want ErrForeignKeyViolation", err)
		}
		if errors.Is(err, orm.ErrUniqueViolation) || errors.Is(err, orm.ErrRetryable) || errors.Is(err, orm.ErrConnection) {
			t.Errorf("a foreign-key error matches another class: %v", err)
		}
		var fe *orm.FlushError
		if !errors.As(err, &fe) || fe.Op != "INSERT" || fe.Table != "eng_books" {
			t.Errorf("FlushError %+v, want INSERT eng_books", fe)
		}
		engCheckServerCode(t, eng.Dialect(), err, map[string]string{
			dbtest.MySQL:    "mysql error 1452",
			dbtest.Postgres: "SQLSTATE 23503",
			dbtest.SQLite:   "sqlite code 787", // SQLITE_CONSTRAINT_FOREIGNKEY
		})
	})
}

type engShelf struct {
	ID    int64      `db:"id,pk,auto"`
	Books []*engBook `rel:"shelf_id"`
}

func (engShelf) TableName() string { return "eng_shelves" }

type engBook struct {
	ID      int64 `db:"id,pk,auto"`
	ShelfID int64 `db:"shelf_id"`
}

func (engBook) TableName() string { return "eng_books" }

// engLogLines decodes the JSON lines a slog.JSONHandler wrote.
func engLogLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogger(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		var buf bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		eng := mustOpen(t, tg.Name, tg.DSN, orm.WithLogger(logger))
		if err := eng.CreateTables(ctx, engHooked{}); err != nil {
			t.Fatal(err)
		}
		s := eng.NewSession()
		defer s.Close()
		const secret = "personal-data-4711"
		if err := s.Add(&engHooked{Name: secret}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		lines := engLogLines(t, &buf)
		var insert map[string]any
		for _, l := range lines {
			if l["level"] != "DEBUG" || l["msg"] != "tally: statement" {
				t.Errorf("log line %v: want level DEBUG, msg \"tally: statement\"", l)
			}
			if sql, _ := l["sql"].(string); strings.HasPrefix(sql, "INSERT INTO") {
				insert = l
			}
		}
		if insert == nil {
			t.Fatalf("no INSERT logged: %s", buf.String())
		}
		if insert["args"] != float64(1) {
			t.Errorf("args = %v, want the count 1", insert["args"])
		}
		if _, ok := insert["duration"]; !ok {
			t.Errorf("no duration in %v", insert)
		}
		if insert["rows"] != float64(1) {
			t.Errorf("rows = %v, want 1", insert["rows"])
		}
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log shows an argument value: %s", buf.String())
		}

		// A failing statement is logged with its error, still without
		// argument values, although some servers quote them in the error.
		t.Run("failed statement", func(t *testing.T) {
			buf.Reset()
			s := eng.NewSession()
			defer s.Close()
			if err := s.Add(&engHooked{Name: secret}); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
				t.Fatalf("Commit: %v", err)
			}
			var logged bool
			for _, l := range engLogLines(t, &buf) {
				if _, ok := l["error"]; ok {
					logged = true
				}
			}
			if !logged {
				t.Errorf("the failed statement was not logged with its error: %s", buf.String())
			}
			if strings.Contains(buf.String(), secret) {
				t.Errorf("the log shows an argument value: %s", buf.String())
			}
		})
	})
}

func TestLoggerAboveDebugLogsNothing(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	eng := engPool(t, orm.WithLogger(logger))
	if err := eng.CreateTables(context.Background(), engHooked{}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("logged at Info level: %s", buf.String())
	}
}

// --- Register ---

type engNoPK struct {
	Name string `db:"name"`
}

type engBadOption struct {
	ID int64 `db:"id,pk,primary"`
}

type engTwoVersions struct {
	ID int64 `db:"id,pk"`
	V1 int64 `db:"v1,version"`
	V2 int64 `db:"v2,version"`
}

type engBadType struct {
	ID   int64          `db:"id,pk"`
	Tags map[string]int `db:"tags"`
}

type engBadRel struct {
	ID    int64     `db:"id,pk"`
	Other *engShelf `rel:"shelf_ref"`
}

func TestRegister(t *testing.T) {
	eng := engPool(t)
	if err := eng.Register(Account{}, &Entry{}, engHooked{}, engShelf{}, engBook{}); err != nil {
		t.Fatalf("Register of good models: %v", err)
	}
	tests := []struct {
		model any
		want  []string // in the message: type, field, reason
	}{
		{engNoPK{}, []string{"orm_test.engNoPK", "primary key"}},
		{&engNoPK{}, []string{"orm_test.engNoPK", "primary key"}},
		{engBadOption{}, []string{"orm_test.engBadOption", "ID", "primary"}},
		{engTwoVersions{}, []string{"orm_test.engTwoVersions", "V2", "version"}},
		{engBadType{}, []string{"orm_test.engBadType", "Tags", "map[string]int"}},
		{engBadRel{}, []string{"orm_test.engBadRel", "Other", "shelf_ref"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%T", tt.model), func(t *testing.T) {
			err := eng.Register(Account{}, tt.model)
			if err == nil {
				t.Fatal("Register succeeded")
			}
			var de *mapper.DefinitionError
			if !errors.As(err, &de) {
				t.Errorf("error %v (%T) is not a *mapper.DefinitionError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// The verdict is kept: asking again gives the same answer.
			if err2 := eng.Register(tt.model); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("second Register: %v, want %v", err2, err)
			}
		})
	}
	for _, bad := range []any{nil, 42, "accounts", []Account{}} {
		if err := eng.Register(bad); err == nil {
			t.Errorf("Register(%#v) succeeded", bad)
		}
	}
	// A bad model makes no table either.
	if err := eng.CreateTables(context.Background(), engNoPK{}); err == nil {
		t.Error("CreateTables(engNoPK{}) succeeded")
	}
}

func TestRegisterConcurrent(t *testing.T) {
	eng := engPool(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 16 {
		wg.Go(func() {
			errs <- eng.Register(Account{}, Entry{}, engShelf{}, engBook{})
			err := eng.Register(engNoPK{})
			if err == nil {
				err = errors.New("engNoPK registered")
			} else {
				err = nil
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// --- DBError ---

func TestDBErrorIs(t *testing.T) {
	sentinels := map[dialect.Class]error{
		dialect.ClassUnique:     orm.ErrUniqueViolation,
		dialect.ClassForeignKey: orm.ErrForeignKeyViolation,
		dialect.ClassRetryable:  orm.ErrRetryable,
		dialect.ClassConnection: orm.ErrConnection,
	}
	all := []error{orm.ErrUniqueViolation, orm.ErrForeignKeyViolation, orm.ErrRetryable, orm.ErrConnection, orm.ErrNotFound, orm.ErrStaleData}
	for _, class := range []dialect.Class{dialect.ClassOther, dialect.ClassUnique, dialect.ClassForeignKey, dialect.ClassRetryable, dialect.ClassConnection} {
		driverErr := errors.New("driver says no")
		err := fmt.Errorf("orm: flush: %w", &orm.DBError{Class: class, Err: driverErr})
		for _, s := range all {
			if got, want := errors.Is(err, s), sentinels[class] == s; got != want {
				t.Errorf("class %v: errors.Is(%v) = %v, want %v", class, s, got, want)
			}
		}
		if !errors.Is(err, driverErr) {
			t.Errorf("class %v: driver error not reachable", class)
		}
		var dbe *orm.DBError
		if !errors.As(err, &dbe) || dbe.Retryable() != (class == dialect.ClassRetryable) {
			t.Errorf("class %v: Retryable() = %v", class, dbe.Retryable())
		}
		if err.Error() != "orm: flush: driver says no" {
			t.Errorf("message %q", err)
		}
	}
}

// Compile-time check that the QueryEvent fields the hooks rely on exist
// with the documented types.
var _ = func(ev orm.QueryEvent) (string, []any, time.Duration, int64, string, error) {
	return ev.SQL, ev.Args, ev.Duration, ev.Rows, ev.Op, ev.Err
}
