package orm_test

// Benchmarks of the single-row operations users compare ORMs on (issue 11),
// each beside raw database/sql doing the same job the way the peers do: one
// statement per operation, in autocommit. Each Tally sub-benchmark also
// reports round-trips/op, counted on a second engine (see roundTrips).

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// rtCounter counts the round trips an engine's statements cost, from its
// query hook: one per statement (BEGIN, COMMIT and ROLLBACK included) not
// pipelined with the one before it, and
// one more for a statement with arguments on a MySQL connection that
// prepares every such statement before executing it.
type rtCounter struct {
	n        atomic.Int64
	prepares bool
}

func (c *rtCounter) hook(_ context.Context, ev orm.QueryEvent) {
	if ev.Pipelined {
		return // sent with the statement before it
	}
	c.n.Add(1)
	if c.prepares && len(ev.Args) > 0 {
		c.n.Add(1)
	}
}

// roundTrips runs op on a second engine, on the same database and with the
// same settings as env.eng plus a counting hook (a hook costs time, so the
// timed engine has none), and reports the round trips one op costs.
func (env *benchEnv) roundTrips(b *testing.B, op func(ctx context.Context, eng *orm.Engine) error) {
	b.Helper()
	ctx := context.Background()
	c := &rtCounter{}
	eng, err := orm.Open(ctx, env.tg.Driver, env.dsn, orm.WithQueryHook(c.hook))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	if env.tg.Name == dbtest.MySQL {
		c.prepares = mysqlPrepares(b, eng.DB().DB)
	}
	if err := op(ctx, eng); err != nil { // warm: statement caches, pool
		b.Fatal(err)
	}
	const runs = 4
	n0 := c.n.Load()
	for range runs {
		if err := op(ctx, eng); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.n.Load()-n0)/runs, "round-trips/op")
}

// mysqlPrepares reports whether the pool's connections prepare a statement
// with arguments every time they run it (go-sql-driver's default without
// interpolateParams), by asking the server: a statement that Tally's
// per-connection cache keeps prepared, or whose arguments the driver
// interpolates, is one round trip from its second run on.
func mysqlPrepares(b *testing.B, db *sql.DB) bool {
	b.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	prepared := func() int64 {
		var name string
		var n int64
		if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	before := prepared()
	for range 2 {
		var one int64
		if err := conn.QueryRowContext(ctx, "SELECT ?", 1).Scan(&one); err != nil {
			b.Fatal(err)
		}
	}
	return prepared()-before > 1
}

// BenchmarkInsertOne inserts one row per op: a fresh session, Add, Commit,
// Close, against one INSERT in autocommit (reading the generated key).
// Target (issue 11): one round trip.
func BenchmarkInsertOne(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		insertOne := func(ctx context.Context, eng *orm.Engine) error {
			s := eng.NewSession()
			defer s.Close()
			if err := s.Add(env.newRow(1)); err != nil {
				return err
			}
			return s.Commit(ctx)
		}
		b.Run("tally", func(b *testing.B) {
			ctx := context.Background()
			calls := 0
			b.ReportAllocs()
			for b.Loop() {
				if err := insertOne(ctx, env.eng); err != nil {
					b.Fatal(err)
				}
				env.trim(b, &calls)
			}
			env.roundTrips(b, insertOne)
		})
		q := "INSERT INTO bench_accounts (" + benchCols + ") VALUES " + env.valuesList(1, 5)
		if env.returning {
			q += " RETURNING id"
		}
		b.Run("raw", func(b *testing.B) {
			ctx := context.Background()
			calls := 0
			b.ReportAllocs()
			for b.Loop() {
				a := env.newRow(1)
				a.Version = 1
				var err error
				if env.returning {
					err = env.db.QueryRowContext(ctx, q, a.Owner, a.Balance, a.Version, a.Note, a.Created).Scan(&a.ID)
				} else {
					var res sql.Result
					if res, err = env.db.ExecContext(ctx, q, a.Owner, a.Balance, a.Version, a.Note, a.Created); err == nil {
						a.ID, err = res.LastInsertId()
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				env.trim(b, &calls)
			}
		})
	})
}

// BenchmarkGetChangeCommit reads a row by key in a fresh session, changes
// one field and commits (a real, version-checked UPDATE every op), against
// the same SELECT and UPDATE in autocommit. Target (issue 11): two round
// trips.
func BenchmarkGetChangeCommit(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		id := env.seed(b, 10)[5]
		change := func(ctx context.Context, eng *orm.Engine) error {
			s := eng.NewSession()
			defer s.Close()
			a, err := orm.Get[BenchAccount](ctx, s, id)
			if err != nil {
				return err
			}
			a.Balance++
			return s.Commit(ctx)
		}
		b.Run("tally", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := change(ctx, env.eng); err != nil {
					b.Fatal(err)
				}
			}
			env.roundTrips(b, change)
		})
		sel := "SELECT id, " + benchCols + " FROM bench_accounts WHERE id = " + env.ph(1)
		upd := "UPDATE bench_accounts SET balance = " + env.ph(1) + ", version = " + env.ph(2) +
			" WHERE id = " + env.ph(3) + " AND version = " + env.ph(4)
		b.Run("raw", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				a := new(BenchAccount)
				if err := env.db.QueryRowContext(ctx, sel, id).Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created); err != nil {
					b.Fatal(err)
				}
				res, err := env.db.ExecContext(ctx, upd, a.Balance+1, a.Version+1, a.ID, a.Version)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					b.Fatal(n, err)
				}
			}
		})
	})
}

// BenchmarkUpdateAllByKey sets a column of one row by key through
// Query.UpdateAll in a fresh session and commits, against one UPDATE in
// autocommit. UpdateAll runs at once and can still be rolled back, so it
// runs in the session's transaction: BEGIN, UPDATE, COMMIT.
func BenchmarkUpdateAllByKey(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		id := env.seed(b, 10)[5]
		balance := int64(100_000)
		update := func(ctx context.Context, eng *orm.Engine) error {
			s := eng.NewSession()
			defer s.Close()
			balance++
			n, err := orm.Query[BenchAccount](s).Where("id = ?", id).UpdateAll(ctx, orm.Set{"balance": balance})
			if err != nil {
				return err
			}
			if n != 1 {
				b.Fatalf("UpdateAll matched %d rows, want 1", n)
			}
			return s.Commit(ctx)
		}
		b.Run("tally", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := update(ctx, env.eng); err != nil {
					b.Fatal(err)
				}
			}
			env.roundTrips(b, update)
		})
		upd := "UPDATE bench_accounts SET balance = " + env.ph(1) + ", version = version + 1 WHERE id = " + env.ph(2)
		b.Run("raw", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				balance++
				res, err := env.db.ExecContext(ctx, upd, balance, id)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					b.Fatal(n, err)
				}
			}
		})
	})
}

// BenchmarkGetChangeCommitTwo reads two rows by key in a fresh session,
// changes both and commits: two statements to commit, so a transaction
// (on PostgreSQL sent as one batch: BEGIN and both UPDATEs in one round
// trip, then COMMIT). raw does the same reads in autocommit and the two
// UPDATEs in a transaction, one statement at a time.
func BenchmarkGetChangeCommitTwo(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		ids := env.seed(b, 10)
		id1, id2 := ids[5], ids[6]
		change := func(ctx context.Context, eng *orm.Engine) error {
			s := eng.NewSession()
			defer s.Close()
			x, err := orm.Get[BenchAccount](ctx, s, id1)
			if err != nil {
				return err
			}
			y, err := orm.Get[BenchAccount](ctx, s, id2)
			if err != nil {
				return err
			}
			x.Balance++
			y.Balance++
			return s.Commit(ctx)
		}
		b.Run("tally", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := change(ctx, env.eng); err != nil {
					b.Fatal(err)
				}
			}
			env.roundTrips(b, change)
		})
		sel := "SELECT id, " + benchCols + " FROM bench_accounts WHERE id = " + env.ph(1)
		upd := "UPDATE bench_accounts SET balance = " + env.ph(1) + ", version = " + env.ph(2) +
			" WHERE id = " + env.ph(3) + " AND version = " + env.ph(4)
		b.Run("raw", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				var as [2]BenchAccount
				for i, id := range []int64{id1, id2} {
					a := &as[i]
					if err := env.db.QueryRowContext(ctx, sel, id).Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created); err != nil {
						b.Fatal(err)
					}
				}
				tx, err := env.db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for _, a := range as {
					res, err := tx.ExecContext(ctx, upd, a.Balance+1, a.Version+1, a.ID, a.Version)
					if err != nil {
						b.Fatal(err)
					}
					if n, err := res.RowsAffected(); err != nil || n != 1 {
						b.Fatal(n, err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkMySQLStatementCache measures statements prepared once per
// connection and executed from then on (Tally's default) against the
// driver's client-side interpolation of arguments into the text
// (WithMySQLStatementCache(0)), on the same database, by alternating the
// two engines op by op so that a change in machine load falls on both
// alike. It reports each side's mean time per op and their ratio (below
// 1: the prepared statements are faster). MySQL/MariaDB only.
func BenchmarkMySQLStatementCache(b *testing.B) {
	for _, tg := range dbtest.Targets(b) {
		if tg.Name != dbtest.MySQL {
			continue
		}
		b.Run(tg.Name, func(b *testing.B) {
			ctx := context.Background()
			env := openBench(b, tg)
			id := env.seed(b, 10)[5]
			interp, err := orm.Open(ctx, tg.Driver, env.dsn, orm.WithMySQLStatementCache(0))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { interp.Close() })
			ops := []struct {
				name string
				op   func(ctx context.Context, eng *orm.Engine) error
			}{
				{"get", func(ctx context.Context, eng *orm.Engine) error {
					s := eng.NewSession()
					defer s.Close()
					_, err := orm.Get[BenchAccount](ctx, s, id)
					return err
				}},
				{"get-change-commit", func(ctx context.Context, eng *orm.Engine) error {
					s := eng.NewSession()
					defer s.Close()
					a, err := orm.Get[BenchAccount](ctx, s, id)
					if err != nil {
						return err
					}
					a.Balance++
					return s.Commit(ctx)
				}},
				{"insert", func(ctx context.Context, eng *orm.Engine) error {
					s := eng.NewSession()
					defer s.Close()
					if err := s.Add(env.newRow(1)); err != nil {
						return err
					}
					return s.Commit(ctx)
				}},
				{"insert100", func(ctx context.Context, eng *orm.Engine) error {
					s := eng.NewSession()
					defer s.Close()
					for i := range 100 {
						if err := s.Add(env.newRow(i)); err != nil {
							return err
						}
					}
					return s.Commit(ctx)
				}},
			}
			for _, o := range ops {
				b.Run(o.name, func(b *testing.B) {
					var tPrep, tInterp time.Duration
					n := 0
					for b.Loop() {
						t0 := time.Now()
						if err := o.op(ctx, env.eng); err != nil {
							b.Fatal(err)
						}
						t1 := time.Now()
						if err := o.op(ctx, interp); err != nil {
							b.Fatal(err)
						}
						tPrep += t1.Sub(t0)
						tInterp += time.Since(t1)
						n++
					}
					b.ReportMetric(float64(tPrep.Nanoseconds())/float64(n), "prepared-ns/op")
					b.ReportMetric(float64(tInterp.Nanoseconds())/float64(n), "interpolate-ns/op")
					b.ReportMetric(float64(tPrep)/float64(tInterp), "prepared/interpolate")
				})
			}
		})
	}
}

// BenchmarkPostgresBatchCommit measures the batched commit (BEGIN and the
// UPDATEs in one round trip, then COMMIT) against the same commit sent
// statement by statement, alternating op by op so that a change in
// machine load falls on both alike: a session reads n rows, changes each
// and commits. PostgreSQL only. Reports each side's mean time per op, their
// ratio (below 1: the batch is faster) and round trips per op.
func BenchmarkPostgresBatchCommit(b *testing.B) {
	for _, tg := range dbtest.Targets(b) {
		if tg.Name != dbtest.Postgres {
			continue
		}
		b.Run(tg.Name, func(b *testing.B) {
			env := openBench(b, tg)
			ids := env.seed(b, 10)
			for _, n := range []int{2, 5} {
				change := func(ctx context.Context, eng *orm.Engine) error {
					s := eng.NewSession()
					defer s.Close()
					for _, id := range ids[:n] {
						a, err := orm.Get[BenchAccount](ctx, s, id)
						if err != nil {
							return err
						}
						a.Balance++
					}
					return s.Commit(ctx)
				}
				b.Run(fmt.Sprintf("update-%d", n), func(b *testing.B) {
					ctx := context.Background()
					defer orm.SetBatchCommits(true)
					var tBatch, tEach time.Duration
					for b.Loop() {
						orm.SetBatchCommits(true)
						t0 := time.Now()
						if err := change(ctx, env.eng); err != nil {
							b.Fatal(err)
						}
						t1 := time.Now()
						orm.SetBatchCommits(false)
						if err := change(ctx, env.eng); err != nil {
							b.Fatal(err)
						}
						tBatch += t1.Sub(t0)
						tEach += time.Since(t1)
					}
					b.ReportMetric(float64(tBatch.Nanoseconds())/float64(b.N), "batch-ns/op")
					b.ReportMetric(float64(tEach.Nanoseconds())/float64(b.N), "each-ns/op")
					b.ReportMetric(float64(tBatch)/float64(tEach), "batch/each")
					orm.SetBatchCommits(true)
					env.roundTrips(b, change)
				})
			}
		})
	}
}
