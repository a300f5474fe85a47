package orm_test

import (
	"context"
	"database/sql"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// BenchAccount is the six-column model of the session benchmarks, the
// shape a typical table has: a generated key, a string, two integers (one
// the version), a nullable column and a timestamp. Unlike Account it has
// no relation, so its numbers show the session's own cost; Account's
// has-many adds cascade work to every flush, measured beside it.
type BenchAccount struct {
	ID      int64     `db:"id,pk,auto"`
	Owner   string    `db:"owner,size=64"`
	Balance int64     `db:"balance"`
	Version int64     `db:"version,version"`
	Note    *string   `db:"note"`
	Created time.Time `db:"created_at"`
}

// firstID is the lowest key the benchmarks seed: Go boxes integers below
// 256 without allocating, which would hide the allocation a real key costs.
const firstID = 1001

// benchEnv is one target's database, opened through Tally, with the raw
// pieces that the hand-written database/sql counterparts need.
type benchEnv struct {
	tg  dbtest.Target
	eng *orm.Engine
	// db is the engine's own pool on the servers: raw code runs on the same
	// driver, DSN settings (SQLite pragmas, MySQL parseTime) and
	// connections as Tally. On SQLite it is a second pool on the same file
	// and settings, without Tally's statement cache.
	db *sql.DB
	// returning says whether the database has INSERT ... RETURNING.
	returning bool
	// readOpts are the options Tally's session begins a reading transaction
	// with (a deferred BEGIN on SQLite), so raw reads send the same BEGIN.
	readOpts *sql.TxOptions
	created  time.Time
	notes    []string // per-row Note values, built once so ops allocate only rows
	owners   []string
	// dsn opened eng; roundTrips opens a second engine on it.
	dsn string
}

// eachTarget runs fn as a sub-benchmark per target, each on a fresh
// database holding the test models and BenchAccount.
func eachTarget(b *testing.B, fn func(b *testing.B, env *benchEnv)) {
	for _, tg := range dbtest.Targets(b) {
		b.Run(tg.Name, func(b *testing.B) { fn(b, openBench(b, tg)) })
	}
}

func openBench(b *testing.B, tg dbtest.Target) *benchEnv {
	b.Helper()
	ctx := context.Background()
	dsn := tg.DSN
	if tg.Name == dbtest.Postgres {
		// As in ANCHORS.md's peer table: without a durable commit per
		// transaction the library's own overhead is visible. It is a
		// per-connection setting, so the server is untouched. MariaDB's
		// equivalent (innodb_flush_log_at_trx_commit) is global; it is
		// left as the server has it.
		u, err := url.Parse(dsn)
		if err != nil {
			b.Fatal("bad postgres target DSN")
		}
		q := u.Query()
		q.Set("synchronous_commit", "off")
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	eng, err := orm.Open(ctx, tg.Driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	models := append([]any{BenchAccount{}}, testmodels.Models...)
	if err := eng.CreateTables(ctx, models...); err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{tg: tg, eng: eng, db: eng.DB().DB, returning: eng.Dialect().Returning(), dsn: dsn,
		created: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	if tg.Name == dbtest.SQLite {
		env.readOpts = &sql.TxOptions{ReadOnly: true}
		// Tally's SQLite connections keep statements compiled; plain
		// database/sql on modernc's driver compiles every statement, so
		// the raw code gets a pool of its own without that cache (same
		// file, same DSN settings).
		raw, err := orm.Open(ctx, tg.Driver, dsn, orm.WithSQLiteStatementCache(0))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { raw.Close() })
		env.db = raw.DB().DB
	}
	for i := range 1000 {
		env.notes = append(env.notes, "note "+strconv.Itoa(i))
		env.owners = append(env.owners, "owner "+strconv.Itoa(i))
	}
	return env
}

// ph returns the n-th placeholder (from 1) of the target's driver.
func (env *benchEnv) ph(n int) string {
	if env.tg.Name == dbtest.Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

const benchCols = "owner, balance, version, note, created_at"

// valuesList returns "(?, ?, ?, ?, ?), ..." for rows rows of cols columns.
func (env *benchEnv) valuesList(rows, cols int) string {
	var sb strings.Builder
	n := 0
	for r := range rows {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		for c := range cols {
			if c > 0 {
				sb.WriteString(", ")
			}
			n++
			sb.WriteString(env.ph(n))
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

// newRow returns a new, unsaved BenchAccount number i. Balance is above
// 255 so that binding it allocates, as real amounts do.
func (env *benchEnv) newRow(i int) *BenchAccount {
	return &BenchAccount{
		Owner:   env.owners[i%len(env.owners)],
		Balance: int64(100_000 + i),
		Note:    &env.notes[i%len(env.notes)],
		Created: env.created,
	}
}

// seed inserts n BenchAccount rows with keys firstID.. by raw multi-row
// INSERTs, and returns the keys.
func (env *benchEnv) seed(b *testing.B, n int) []int64 {
	b.Helper()
	return env.seedTable(b, "bench_accounts", n)
}

// seedAccounts does what seed does for testmodels.Account (unique owners).
func (env *benchEnv) seedAccounts(b *testing.B, n int) []int64 {
	b.Helper()
	return env.seedTable(b, "accounts", n)
}

func (env *benchEnv) seedTable(b *testing.B, table string, n int) []int64 {
	b.Helper()
	ctx := context.Background()
	const chunk = 500
	ids := make([]int64, 0, n)
	tx, err := env.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	for start := 0; start < n; start += chunk {
		rows := min(chunk, n-start)
		q := "INSERT INTO " + table + " (id, " + benchCols + ") VALUES " + env.valuesList(rows, 6)
		args := make([]any, 0, rows*6)
		for i := start; i < start+rows; i++ {
			id := int64(firstID + i)
			ids = append(ids, id)
			// Owners are unique (accounts has a UNIQUE owner).
			args = append(args, id, "owner "+strconv.Itoa(i), int64(100_000+i), int64(1), env.notes[i%len(env.notes)], env.created)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			b.Fatalf("seed %s: %v", table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return ids
}

// trim empties bench_accounts every 20th call, with the timer stopped, so
// that insert benchmarks neither grow the table without bound nor pay a
// DELETE per op.
func (env *benchEnv) trim(b *testing.B, calls *int) {
	*calls++
	if *calls%20 != 0 {
		return
	}
	b.StopTimer()
	if _, err := env.db.Exec("DELETE FROM bench_accounts"); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

// load reads the rows with keys ids into a new session without autoflush
// (with it, every Get that goes to SQL would first diff every object
// already tracked), returning the session and the objects.
func load[T any](b *testing.B, env *benchEnv, ids []int64, objs []*T) *orm.Session {
	b.Helper()
	ctx := context.Background()
	s := env.eng.NewSession(orm.WithoutAutoflush())
	for i, id := range ids {
		o, err := orm.Get[T](ctx, s, id)
		if err != nil {
			b.Fatal(err)
		}
		objs[i] = o
	}
	return s
}

// sqliteTarget returns the SQLite target, for benchmarks that never reach
// the database. (Targets always lists it first, and makes the others too.)
func sqliteTarget(b *testing.B) dbtest.Target {
	b.Helper()
	tg := dbtest.Targets(b)[0]
	if tg.Name != dbtest.SQLite {
		b.Fatalf("first target is %s, want sqlite", tg.Name)
	}
	return tg
}
