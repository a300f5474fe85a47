package orm_test

// Speed benchmarks of the Session, each beside hand-written database/sql
// doing the same work in the same run (sibling sub-benchmarks named raw*),
// on every reachable database:
//
//	go test -run '^$' -bench . -benchtime 2s -count 6 ./orm/ | tee /tmp/bench.txt
//	benchstat /tmp/bench.txt
//
// -count repeats each sub-benchmark back to back, so on a busy machine a
// drift in load lands on one sibling and not the other; for ratios, prefer
// several -count 1 runs, which interleave tally and raw.
//
// Keys are at least firstID (1001) wherever they are boxed into an any.

import (
	"context"
	"runtime"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// BenchmarkGetHit is orm.Get of a key the identity map holds: no SQL.
// Target: 0 allocs/op, well under 1 µs. A hit never reaches the database,
// so it runs on SQLite only. "tally" passes the key as callers do (an
// int64 variable, boxed into Get's ...any); "tally-anykey" passes a key
// boxed once beforehand, separating the caller's boxing from Get's own cost.
func BenchmarkGetHit(b *testing.B) {
	env := openBench(b, sqliteTarget(b))
	ctx := context.Background()
	ids := env.seedAccounts(b, 1)
	s := env.eng.NewSession()
	b.Cleanup(func() { s.Close() })
	want, err := orm.Get[Account](ctx, s, ids[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("tally", func(b *testing.B) {
		id := ids[0]
		b.ReportAllocs()
		for b.Loop() {
			a, err := orm.Get[Account](ctx, s, id)
			if err != nil || a != want {
				b.Fatal(a, err)
			}
		}
	})
	b.Run("tally-anykey", func(b *testing.B) {
		var key any = ids[0]
		b.ReportAllocs()
		for b.Loop() {
			a, err := orm.Get[Account](ctx, s, key)
			if err != nil || a != want {
				b.Fatal(a, err)
			}
		}
	})
	if st := s.Stats(); st.Queries != 1 {
		b.Fatalf("hits sent SQL: %+v", st)
	}
}

// BenchmarkInsert100 adds 100 new rows and commits, per op. Targets:
// tally ≤ 1.2 × raw-multi (one multi-row INSERT … RETURNING id in
// autocommit, as Tally sends a single statement) and ≥ 5 × faster than 100 single-row INSERTs: raw-single
// does them at their best (a prepared statement in one transaction,
// reading each generated key), raw-single-autocommit as a loop saving
// object by object does (each INSERT its own transaction). Every op builds
// its 100 objects, in every variant.
func BenchmarkInsert100(b *testing.B) {
	const n = 100
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		ctx := context.Background()
		b.Run("tally", func(b *testing.B) {
			objs := make([]any, n)
			calls := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range objs {
					objs[i] = env.newRow(i) // Version 0: Tally starts it at 1
				}
				s := env.eng.NewSession()
				if err := s.Add(objs...); err != nil {
					b.Fatal(err)
				}
				if err := s.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				s.Close()
				env.trim(b, &calls)
			}
			if a := objs[n-1].(*BenchAccount); a.ID <= objs[0].(*BenchAccount).ID || a.Version != 1 {
				b.Fatalf("not inserted: %+v", a)
			}
			env.roundTrips(b, func(ctx context.Context, eng *orm.Engine) error {
				for i := range objs {
					objs[i] = env.newRow(i)
				}
				s := eng.NewSession()
				defer s.Close()
				if err := s.Add(objs...); err != nil {
					return err
				}
				return s.Commit(ctx)
			})
		})

		// RETURNING where the database has it, as Tally does; without it a
		// multi-row INSERT cannot tell the keys (MySQL does not promise
		// consecutive ones) and the raw code would simply not read them.
		multi := "INSERT INTO bench_accounts (" + benchCols + ") VALUES " + env.valuesList(n, 5)
		if env.returning {
			multi += " RETURNING id"
		}
		b.Run("raw-multi", func(b *testing.B) {
			objs := make([]*BenchAccount, n)
			args := make([]any, 0, n*5)
			calls := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range objs {
					objs[i] = env.newRow(i)
					objs[i].Version = 1
				}
				args = args[:0]
				for _, a := range objs {
					args = append(args, a.Owner, a.Balance, a.Version, a.Note, a.Created)
				}
				if env.returning {
					rows, err := env.db.QueryContext(ctx, multi, args...)
					if err != nil {
						b.Fatal(err)
					}
					i := 0
					for rows.Next() {
						if err := rows.Scan(&objs[i].ID); err != nil {
							b.Fatal(err)
						}
						i++
					}
					if err := rows.Close(); err != nil || i != n {
						b.Fatal(i, err)
					}
				} else if _, err := env.db.ExecContext(ctx, multi, args...); err != nil {
					b.Fatal(err)
				}
				env.trim(b, &calls)
			}
		})

		single := "INSERT INTO bench_accounts (" + benchCols + ") VALUES " + env.valuesList(1, 5)
		pgReturning := env.tg.Name == dbtest.Postgres // pgx has no LastInsertId
		if pgReturning {
			single += " RETURNING id"
		}
		b.Run("raw-single", func(b *testing.B) {
			objs := make([]*BenchAccount, n)
			calls := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range objs {
					objs[i] = env.newRow(i)
					objs[i].Version = 1
				}
				tx, err := env.db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				// Prepared once per transaction: the best a loop of
				// single-row INSERTs does (unprepared, the MySQL driver
				// would prepare and close the statement on every row).
				stmt, err := tx.PrepareContext(ctx, single)
				if err != nil {
					b.Fatal(err)
				}
				for _, a := range objs {
					if pgReturning {
						err = stmt.QueryRowContext(ctx, a.Owner, a.Balance, a.Version, a.Note, a.Created).Scan(&a.ID)
					} else {
						var res interface{ LastInsertId() (int64, error) }
						res, err = stmt.ExecContext(ctx, a.Owner, a.Balance, a.Version, a.Note, a.Created)
						if err == nil {
							a.ID, err = res.LastInsertId()
						}
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				stmt.Close()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				env.trim(b, &calls)
			}
		})

		// The loop naive code writes: one INSERT per object, each its own
		// transaction (what an ORM that saves object by object does by
		// default), so every row pays a commit.
		b.Run("raw-single-autocommit", func(b *testing.B) {
			objs := make([]*BenchAccount, n)
			calls := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range objs {
					objs[i] = env.newRow(i)
					objs[i].Version = 1
				}
				for _, a := range objs {
					var err error
					if pgReturning {
						err = env.db.QueryRowContext(ctx, single, a.Owner, a.Balance, a.Version, a.Note, a.Created).Scan(&a.ID)
					} else {
						var res interface{ LastInsertId() (int64, error) }
						res, err = env.db.ExecContext(ctx, single, a.Owner, a.Balance, a.Version, a.Note, a.Created)
						if err == nil {
							a.ID, err = res.LastInsertId()
						}
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				env.trim(b, &calls)
			}
		})
	})
}

// BenchmarkFlushUnchanged10k flushes a session that tracks 10,000 loaded,
// unchanged objects: the flush must find nothing and send no statement.
// Target: under 2 ms per op with the reflective mapper. "tally" is the
// six-column BenchAccount; "tally-rel" is Account, whose has-many relation
// makes every flush look for new related objects too.
//
// Loading 10,000 rows through Get takes seconds on a server, so each
// target loads its sessions once and every -count repetition flushes the
// same session. The load also measures what the session holds per tracked
// object beyond the object itself, reported as B/tracked, beside B/obj, the
// object's own size (the struct and the strings and pointers the driver
// scanned into it); being measured once, they repeat across -count.
func BenchmarkFlushUnchanged10k(b *testing.B) {
	const n = 10_000
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		plain := trackLoaded(b, env, env.seed(b, n), "bench_accounts", func() *BenchAccount { return new(BenchAccount) })
		rel := trackLoaded(b, env, env.seedAccounts(b, n), "accounts", func() *Account { return new(Account) })
		b.Run("tally", plain.bench)
		b.Run("tally-rel", rel.bench)
	})
}

// tracked is a session holding loaded, unchanged objects, with what the
// load measured.
type tracked struct {
	s                  *orm.Session
	perTracked, perObj float64
}

// trackLoaded loads the rows with keys ids into a new session, measuring
// the live heap before and after, and the same rows read by database/sql
// alone into the same field types: the objects' own footprint.
func trackLoaded[T any](b *testing.B, env *benchEnv, ids []int64, table string, alloc func() *T) *tracked {
	b.Helper()
	objs := make([]*T, len(ids))
	// Warm the pool, the statement cache and the driver (SQLite's page
	// cache lives in the Go heap and grows as pages are first read), so
	// that the measured load retains only what the session keeps.
	load(b, env, ids[:100], objs).Close()
	clear(objs)
	rawLoad(b, env, table, alloc, make([]*T, len(ids)))

	own := make([]*T, len(ids))
	h0 := liveHeap()
	s := load(b, env, ids, objs)
	h1 := liveHeap()
	rawLoad(b, env, table, alloc, own)
	h2 := liveHeap()
	runtime.KeepAlive(own)
	perObj := float64(h2-h1) / float64(len(ids))
	b.Cleanup(func() {
		s.Close()
		runtime.KeepAlive(objs)
	})
	if st := s.Stats(); st.Tracked != len(ids) {
		b.Fatalf("tracking %d objects, want %d", st.Tracked, len(ids))
	}
	return &tracked{s: s, perObj: perObj, perTracked: float64(h1-h0)/float64(len(ids)) - perObj}
}

func (tr *tracked) bench(b *testing.B) {
	ctx := context.Background()
	st0 := tr.s.Stats()
	b.ReportAllocs()
	for b.Loop() {
		if err := tr.s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if st := tr.s.Stats(); st.Statements != st0.Statements {
		b.Fatalf("an unchanged flush sent %d statements", st.Statements-st0.Statements)
	}
	b.ReportMetric(tr.perTracked, "B/tracked")
	b.ReportMetric(tr.perObj, "B/obj")
}

// rawLoad reads table's rows into new objects from alloc, in key order.
func rawLoad[T any](b *testing.B, env *benchEnv, table string, alloc func() *T, out []*T) {
	b.Helper()
	rows, err := env.db.Query("SELECT id, " + benchCols + " FROM " + table + " ORDER BY id")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		o := alloc()
		var err error
		switch a := any(o).(type) {
		case *BenchAccount:
			err = rows.Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created)
		case *Account:
			err = rows.Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created)
		}
		if err != nil {
			b.Fatal(err)
		}
		out[i] = o
		i++
	}
	if err := rows.Err(); err != nil || i != len(out) {
		b.Fatal(i, err)
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkGetMiss reads one row by key. "tally" is orm.Get in a new
// session per op (one SELECT in autocommit: a session that has not
// written has no transaction); "raw" is the same statement by hand,
// QueryRow and Scan on the pool. "tally-expunge" and "raw-opentx" read inside one
// transaction left open, so only the SELECT is paid per op; Tally expunges
// the object to keep the next Get a miss. Target (issue 4): tally ≤ 1.10 × raw.
func BenchmarkGetMiss(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		ctx := context.Background()
		ids := env.seed(b, 100)
		id := ids[50]
		q := "SELECT id, " + benchCols + " FROM bench_accounts WHERE id = " + env.ph(1)
		check := func(b *testing.B, a *BenchAccount) {
			if a.ID != id || a.Note == nil {
				b.Fatalf("read %+v", a)
			}
		}
		b.Run("tally", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := env.eng.NewSession()
				a, err := orm.Get[BenchAccount](ctx, s, id)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				check(b, a)
			}
			env.roundTrips(b, func(ctx context.Context, eng *orm.Engine) error {
				s := eng.NewSession()
				defer s.Close()
				_, err := orm.Get[BenchAccount](ctx, s, id)
				return err
			})
		})
		b.Run("raw", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a := new(BenchAccount)
				if err := env.db.QueryRowContext(ctx, q, id).Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created); err != nil {
					b.Fatal(err)
				}
				check(b, a)
			}
		})
		b.Run("tally-expunge", func(b *testing.B) {
			s := env.eng.NewSession()
			defer s.Close()
			b.ReportAllocs()
			for b.Loop() {
				a, err := orm.Get[BenchAccount](ctx, s, id)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Expunge(a); err != nil {
					b.Fatal(err)
				}
				check(b, a)
			}
		})
		b.Run("raw-opentx", func(b *testing.B) {
			tx, err := env.db.BeginTx(ctx, env.readOpts)
			if err != nil {
				b.Fatal(err)
			}
			defer tx.Rollback()
			b.ReportAllocs()
			for b.Loop() {
				a := new(BenchAccount)
				if err := tx.QueryRowContext(ctx, q, id).Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created); err != nil {
					b.Fatal(err)
				}
				check(b, a)
			}
		})
	})
}

// BenchmarkRead100 reads 100 rows into fresh objects: a query in a fresh
// session per op (one SELECT in autocommit) against the same by hand. Tally's extra work per row is identity resolution: a map entry and
// a snapshot.
func BenchmarkRead100(b *testing.B) {
	eachTarget(b, func(b *testing.B, env *benchEnv) {
		ctx := context.Background()
		ids := env.seed(b, 100)
		lo, hi := ids[0], ids[len(ids)-1]
		q := "SELECT id, " + benchCols + " FROM bench_accounts WHERE id >= " + env.ph(1) + " AND id <= " + env.ph(2) + " ORDER BY id"
		b.Run("tally", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := env.eng.NewSession()
				got, err := orm.Query[BenchAccount](s).Where("id >= ? AND id <= ?", lo, hi).OrderBy("id").All(ctx)
				if err != nil || len(got) != 100 {
					b.Fatal(len(got), err)
				}
				s.Close()
			}
			env.roundTrips(b, func(ctx context.Context, eng *orm.Engine) error {
				s := eng.NewSession()
				defer s.Close()
				_, err := orm.Query[BenchAccount](s).Where("id >= ? AND id <= ?", lo, hi).OrderBy("id").All(ctx)
				return err
			})
		})
		b.Run("raw", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rows, err := env.db.QueryContext(ctx, q, lo, hi)
				if err != nil {
					b.Fatal(err)
				}
				var got []*BenchAccount
				for rows.Next() {
					a := new(BenchAccount)
					if err := rows.Scan(&a.ID, &a.Owner, &a.Balance, &a.Version, &a.Note, &a.Created); err != nil {
						b.Fatal(err)
					}
					got = append(got, a)
				}
				if err := rows.Close(); err != nil || len(got) != 100 {
					b.Fatal(len(got), err)
				}
			}
		})
	})
}
