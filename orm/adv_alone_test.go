package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Adversarial tests of the session's autocommit paths (autocommit.go,
// bulkalone.go): a commit the count says has one statement must send one,
// or a first statement commits alone before the second fails. Helpers
// carry an adv prefix.

// advCommitAtomic commits s and fails the test unless the commit
// succeeded and either sent one statement alone or wrapped all it sent in
// one transaction: never two statements in autocommit.
func advCommitAtomic(t *testing.T, s *orm.Session, log *queryLog) {
	t.Helper()
	log.Reset()
	err := s.Commit(context.Background())
	ops := acOps(log.Events())
	if err != nil {
		t.Fatalf("Commit: %v (ops %v)", err, ops)
	}
	if len(ops) > 1 && (ops[0] != "begin" || ops[len(ops)-1] != "commit") {
		t.Fatalf("ops %v: several statements outside one transaction", ops)
	}
}

// A tracked child moved under a new parent gets the parent's key only
// after the parent's INSERT, in an UPDATE: two statements, so the commit
// is a transaction. Sent alone, the INSERT committed by itself and the
// UPDATE failed, leaving the parent's row written by a failed commit.
func TestSingleStatementCommitCountsUpdateAwaitingNewParentKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		ann := newAccount("ann", 1)
		ann.Entries = []*Entry{{Amount: 5}, {Amount: 6}}
		seedObjects(t, eng, ann)
		for i, how := range []string{"belongs-to", "has-many"} {
			t.Run(how, func(t *testing.T) {
				s := eng.NewSession()
				defer s.Close()
				e, err := orm.Get[Entry](ctx, s, ann.Entries[i].ID)
				uowMust(t, err)
				owner := "new-" + how
				nb := newAccount(owner, 3)
				if how == "belongs-to" {
					e.Account = nb
				} else {
					nb.Entries = []*Entry{e}
				}
				uowMust(t, s.Add(nb))
				advCommitAtomic(t, s, log)
				if nb.ID == 0 || e.AccountID != nb.ID || s.IsDirty(e) {
					t.Fatalf("after Commit: account %d, entry's account %d, dirty %v; want the new key in a clean entry", nb.ID, e.AccountID, s.IsDirty(e))
				}
				if n := countRows(t, eng, "SELECT COUNT(*) FROM entries WHERE id = ? AND account_id = ?", e.ID, nb.ID); n != 1 {
					t.Fatalf("the entry's row does not point at the new account %d", nb.ID)
				}
				if n := countAccounts(t, eng, "owner = ?", owner); n != 1 {
					t.Fatalf("%d accounts %q, want 1", n, owner)
				}
			})
		}
	})
}

// On a soft-delete model, Delete sends an UPDATE of the softdelete
// column and HardDelete a DELETE: two statements for one table, so the
// commit is a transaction. Counted as one IN batch, the soft delete
// committed alone and the DELETE failed.
func TestSingleStatementCommitCountsSoftAndHardDeletesApart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := sdOpen(t, tg)
		ctx := context.Background()
		soft, hard := &sdNote{Body: "soft"}, &sdNote{Body: "hard"}
		seedObjects(t, eng, &sdOwner{Name: "o", Notes: []*sdNote{soft, hard}})
		s := eng.NewSession()
		defer s.Close()
		a, err := orm.Get[sdNote](ctx, s, soft.ID)
		uowMust(t, err)
		b, err := orm.Get[sdNote](ctx, s, hard.ID)
		uowMust(t, err)
		uowMust(t, s.Delete(a))
		uowMust(t, s.HardDelete(b))
		advCommitAtomic(t, s, log)
		if n := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes WHERE id = ? AND deleted_at IS NOT NULL", soft.ID); n != 1 {
			t.Fatal("the soft-deleted note's row is not marked deleted")
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM sd_notes WHERE id = ?", hard.ID); n != 0 {
			t.Fatal("the hard-deleted note's row is still there")
		}
	})
}

// advAudit's BeforeInsert changes another tracked object, an advCounter:
// against the advice to keep a hook's effects to its object, but the
// commit must stay atomic all the same.
type advAudit struct {
	ID      int64       `db:"id,pk,auto"`
	Note    string      `db:"note,size=32"`
	Counter *advCounter `db:"-"`
}

func (advAudit) TableName() string { return "adv_audits" }

// BeforeInsert counts the audit row on its counter.
func (a *advAudit) BeforeInsert(context.Context, *orm.Session) error {
	if a.Counter != nil {
		a.Counter.N++
	}
	return nil
}

// advCounter is the object advAudit's hook changes; its table sorts after
// adv_audits, so the flush writes it after the audit row.
type advCounter struct {
	ID int64 `db:"id,pk,auto"`
	N  int64 `db:"n"`
}

func (advCounter) TableName() string { return "adv_counters" }

// A BeforeInsert hook that changes another tracked object makes the
// flush send that object's UPDATE after the INSERT: with other objects
// tracked, a hooked statement is not sent alone, so the two commit
// together. Sent alone, the INSERT committed and the UPDATE failed; a
// retry inserted the audit row twice.
func TestSingleStatementCommitNotAloneWhenAHookMayChangeAnotherObject(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advAudit{}, advCounter{}))
		c := &advCounter{}
		seedObjects(t, eng, c)
		s := eng.NewSession()
		defer s.Close()
		gc, err := orm.Get[advCounter](ctx, s, c.ID)
		uowMust(t, err)
		uowMust(t, s.Add(&advAudit{Note: "x", Counter: gc}))
		advCommitAtomic(t, s, log)
		if n := countRows(t, eng, "SELECT COUNT(*) FROM adv_counters WHERE id = ? AND n = 1", c.ID); n != 1 || s.IsDirty(gc) {
			t.Fatalf("the counter's row was not updated with the audit row (dirty %v)", s.IsDirty(gc))
		}

		// Alone, the hooked object is the only one the hook can reach.
		s2 := eng.NewSession()
		defer s2.Close()
		uowMust(t, s2.Add(&advAudit{Note: "y"}))
		log.Reset()
		uowMust(t, s2.Commit(ctx))
		if ops := acOps(log.Events()); len(ops) != 1 {
			t.Fatalf("ops %v, want the INSERT alone", ops)
		}
	})
}

// advSlowWrites makes every INSERT and UPDATE of accounts sleep half a
// second at the server (a trigger), so that the test can act while one
// runs.
func advSlowWrites(t *testing.T, admin *sql.DB, tg dbtest.Target) {
	t.Helper()
	stmts := []string{
		"CREATE TRIGGER adv_slow_ins BEFORE INSERT ON accounts FOR EACH ROW SET @adv_slept = SLEEP(0.5)",
		"CREATE TRIGGER adv_slow_upd BEFORE UPDATE ON accounts FOR EACH ROW SET @adv_slept = SLEEP(0.5)",
	}
	if tg.Name == dbtest.Postgres {
		stmts = []string{
			"CREATE FUNCTION adv_slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$ LANGUAGE plpgsql",
			"CREATE TRIGGER adv_slow BEFORE INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION adv_slow()",
		}
	}
	for _, q := range stmts {
		if _, err := admin.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// advRunningWrite returns the server's id of the connection that runs a
// write to accounts in this test's database (on MariaDB the trigger's
// SLEEP shows while it runs), waiting for one to start.
func advRunningWrite(t *testing.T, admin *sql.DB, tg dbtest.Target) int64 {
	t.Helper()
	q := "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID() AND (info LIKE 'INSERT INTO `accounts`%' OR info LIKE 'UPDATE `accounts`%' OR info LIKE '%SLEEP(0.5)%')"
	if tg.Name == dbtest.Postgres {
		q = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND (query LIKE 'INSERT INTO "accounts"%' OR query LIKE 'UPDATE "accounts"%')`
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var id int64
		switch err := admin.QueryRowContext(context.Background(), q).Scan(&id); {
		case err == nil:
			return id
		case !errors.Is(err, sql.ErrNoRows):
			t.Fatalf("find the running write: %v", err)
		}
	}
	t.Fatal("no write to accounts started")
	return 0
}

// The statement of a single-statement commit (an INSERT, on PostgreSQL
// sent to pgx directly; an UPDATE) and a bulk statement sent alone,
// interrupted while the server runs it: by a KILL or pg_terminate_backend
// from another connection, or by the caller's deadline. Either way the
// statement may have run, so the error matches ErrCommitUnknown (with
// ErrConnection, or the ctx's error), and the session is as before the
// Commit. On MariaDB a statement whose caller gave up runs on and
// commits: the reason the outcome is unknown.
func TestAloneStatementInterruptedWhileRunningIsCommitUnknown(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := openLogged(t, tg)
		admin := dbtest.Open(t, tg)
		ctx := context.Background()
		ann := newAccount("ann", 10)
		seedObjects(t, eng, ann)
		advSlowWrites(t, admin, tg)

		// interrupt runs commit while the test kills its connection, or
		// with a deadline shorter than the statement, and returns its error.
		interrupt := func(t *testing.T, kill bool, commit func(ctx context.Context) error) error {
			t.Helper()
			if !kill {
				dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				err := commit(dctx)
				if !errors.Is(err, orm.ErrCommitUnknown) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("want ErrCommitUnknown and the deadline, got %v", err)
				}
				time.Sleep(600 * time.Millisecond) // let the server finish the statement
				return err
			}
			done := make(chan error, 1)
			go func() { done <- commit(ctx) }()
			killConn(t, admin, tg, advRunningWrite(t, admin, tg))
			err := <-done
			if !errors.Is(err, orm.ErrCommitUnknown) || !errors.Is(err, orm.ErrConnection) {
				t.Fatalf("want ErrCommitUnknown and ErrConnection, got %v", err)
			}
			if n := countAccounts(t, eng, "owner LIKE ? OR balance = ?", "new-%", 99); n != 0 {
				t.Fatalf("%d rows written by a statement killed while it ran", n)
			}
			return err
		}
		// The kills first: they check that nothing was written, which a
		// statement that ran on past its caller's deadline may have been.
		for _, kill := range []bool{true, false} {
			how := map[bool]string{true: "killed", false: "deadline"}[kill]
			t.Run(how+"/insert", func(t *testing.T) {
				s := eng.NewSession()
				defer s.Close()
				a := newAccount("new-"+how, 1)
				uowMust(t, s.Add(a))
				interrupt(t, kill, s.Commit)
				if p := s.Pending(); len(p) != 1 || p[0] != a || a.ID != 0 || a.Version != 0 {
					t.Fatalf("after the commit: pending %v, %+v; want it pending with no key and version 0", p, a)
				}
			})
			t.Run(how+"/update", func(t *testing.T) {
				s := eng.NewSession()
				defer s.Close()
				a, err := orm.Get[Account](ctx, s, ann.ID)
				uowMust(t, err)
				v := a.Version
				a.Balance = 99
				interrupt(t, kill, s.Commit)
				if !s.IsDirty(a) || a.Balance != 99 || a.Version != v {
					t.Fatalf("after the commit: dirty %v, %+v; want still dirty at version %d", s.IsDirty(a), a, v)
				}
			})
			t.Run(how+"/UpdateAll", func(t *testing.T) {
				s := eng.NewSession()
				defer s.Close()
				interrupt(t, kill, func(ctx context.Context) error {
					_, err := orm.Query[Account](s).Where("id = ?", ann.ID).UpdateAll(ctx, orm.Set{"balance": 99})
					return err
				})
			})
		}
		acInUse(t, eng, "after the interrupted statements", 0)
	})
}

// advPair has a composite key of its own values, nothing generated.
type advPair struct {
	A int64 `db:"a,pk"`
	B int64 `db:"b,pk"`
	N int64 `db:"n"`
}

func (advPair) TableName() string { return "adv_pairs" }

// advScored has a unique name and a readonly score, which the session
// never writes.
type advScored struct {
	ID    int64  `db:"id,pk,auto"`
	Name  string `db:"name,unique,size=10"`
	Score int64  `db:"score,readonly"`
}

func (advScored) TableName() string { return "adv_scored" }

// A flush that writes nothing (the only change is to a readonly column:
// it takes a new snapshot and sends no statement) opens no transaction,
// so nothing can roll it back: a later Commit that fails restores the
// session to after it, not to before it. Its undo records were kept, and
// the failed commit undid the snapshot too, making the object dirty
// again. Every way such a flush runs: a Commit alone, a Commit of a
// session with an isolation level (whose writes wait for a transaction),
// Flush, and the autoflush of a query.
func TestFlushThatWritesNothingIsNotUndoneByALaterFailedCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := openLogged(t, tg)
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, advScored{}))
		a, b := &advScored{Name: "a"}, &advScored{Name: "b"}
		seedObjects(t, eng, a, b)
		for _, how := range []string{"Commit", "Commit with isolation", "Flush", "autoflush"} {
			t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
				var opts []orm.SessionOption
				if how == "Commit with isolation" {
					opts = append(opts, orm.WithIsolation(sql.LevelReadCommitted))
				}
				s := eng.NewSession(opts...)
				defer s.Close()
				x, err := orm.Get[advScored](ctx, s, a.ID)
				uowMust(t, err)
				x.Score = 5
				log.Reset()
				switch how {
				case "Flush":
					uowMust(t, s.Flush(ctx))
				case "autoflush":
					_, err := orm.Query[advScored](s).Where("id = ?", b.ID).All(ctx)
					uowMust(t, err)
				default:
					uowMust(t, s.Commit(ctx))
				}
				for _, ev := range log.Events() {
					if ev.Op != "query" {
						t.Fatalf("the flush of a readonly change sent %q", log.SQL())
					}
				}
				if s.IsDirty(x) {
					t.Fatal("after the flush of a readonly change the object is dirty")
				}
				y, err := orm.Get[advScored](ctx, s, b.ID)
				uowMust(t, err)
				y.Name = "a" // taken
				if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
					t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
				}
				if s.IsDirty(x) || !s.IsDirty(y) {
					t.Fatalf("after the failed commit: dirty %v %v; want only the object it failed on dirty, as before it", s.IsDirty(x), s.IsDirty(y))
				}
			})
		}
	})
}

// advPick returns a random row of T read through s in key order, loading
// loads, or nil when the read fails (its autoflush may refuse an earlier
// change).
func advPick[T any](ctx context.Context, s *orm.Session, rnd *rand.Rand, loads ...string) *T {
	q := orm.Query[T](s).OrderBy(advKeyOrder(new(T))...)
	for _, l := range loads {
		q = q.Load(l)
	}
	all, err := q.All(ctx)
	if err != nil || len(all) == 0 {
		return nil
	}
	return all[rnd.IntN(len(all))]
}

// advKeyOrder is the ORDER BY of advPick: the key of obj's model.
func advKeyOrder(obj any) []string {
	if _, ok := obj.(*advPair); ok {
		return []string{"a", "b"}
	}
	return []string{"id"}
}

// Random sessions over every kind of flush work (relations moved to new
// and old parents, cascades and orphans, has-one, many-to-many links,
// soft and hard deletes, versioned rows, composite keys, batched deletes,
// a hook that changes another object) never write two statements outside
// a transaction: whatever a session's Commit sends alone is its only
// write, and no commit fails with ErrCommitUnknown or an internal error
// (errAloneSecond). The seed is fixed: a failure replays. Among the
// operations are the three the count got wrong: a tracked entry moved
// under a new account, a soft and a hard delete of one table, the hook.
func TestRandomSessionsNeverWriteTwiceOutsideATransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		log := &queryLog{}
		eng := mustOpen(t, tg.Driver, tg.DSN, orm.WithQueryHook(log.hook))
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, relModels...))
		uowMust(t, eng.CreateTables(ctx, testmodels.Account{}, testmodels.Entry{}, testmodels.Blob{}, sdOwner{}, sdNote{}, advAudit{}, advCounter{}, advPair{}))
		seq := 0
		name := func() string { seq++; return fmt.Sprintf("n%d", seq) }
		for i := 0; i < 10; i++ {
			a := &RelAuthor{Name: name(), Profile: &RelProfile{Bio: "b"}, Books: []*RelBook{{Title: name(), Reviews: []*RelReview{{}, {}}}, {Title: name()}}}
			acc := newAccount(name(), 1)
			acc.Entries = []*Entry{{Amount: 1}, {Amount: 2}}
			seedObjects(t, eng, a, acc, &sdOwner{Name: name(), Notes: []*sdNote{{Body: "x"}, {Body: "y"}}}, &RelLabel{Name: name()},
				&testmodels.Blob{Data: []byte{1}}, &advCounter{}, &advPair{A: int64(i), B: 1}, &advPair{A: int64(i), B: 2})
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		type op func(s *orm.Session) bool // false: skipped
		ops := map[string]op{
			"new author": func(s *orm.Session) bool { return s.Add(&RelAuthor{Name: name()}) == nil },
			"rename author": func(s *orm.Session) bool {
				a := advPick[RelAuthor](ctx, s, rnd)
				if a == nil {
					return false
				}
				a.Name = name()
				return true
			},
			"move book": func(s *orm.Session) bool {
				b, a := advPick[RelBook](ctx, s, rnd), advPick[RelAuthor](ctx, s, rnd)
				if b == nil || a == nil {
					return false
				}
				b.Author = a
				return true
			},
			"move book to new author": func(s *orm.Session) bool {
				b := advPick[RelBook](ctx, s, rnd)
				if b == nil {
					return false
				}
				b.Author = &RelAuthor{Name: name()}
				return true
			},
			"append book": func(s *orm.Session) bool {
				a := advPick[RelAuthor](ctx, s, rnd, "Books")
				if a == nil {
					return false
				}
				a.Books = append(a.Books, &RelBook{Title: name()})
				return true
			},
			"orphan book": func(s *orm.Session) bool {
				a := advPick[RelAuthor](ctx, s, rnd, "Books")
				if a == nil || len(a.Books) == 0 {
					return false
				}
				a.Books = a.Books[1:]
				return true
			},
			"move profile to new author": func(s *orm.Session) bool {
				a := advPick[RelAuthor](ctx, s, rnd, "Profile")
				if a == nil || a.Profile == nil {
					return false
				}
				p := a.Profile
				a.Profile = nil
				return s.Add(&RelAuthor{Name: name(), Profile: p}) == nil
			},
			"toggle label": func(s *orm.Session) bool {
				b, l := advPick[RelBook](ctx, s, rnd, "Labels"), advPick[RelLabel](ctx, s, rnd)
				if b == nil || l == nil {
					return false
				}
				if len(b.Labels) > 0 {
					b.Labels = nil
				} else {
					b.Labels = []*RelLabel{l}
				}
				return true
			},
			"account balance": func(s *orm.Session) bool {
				x := advPick[Account](ctx, s, rnd)
				if x == nil {
					return false
				}
				x.Balance++
				return true
			},
			"new entry of account": func(s *orm.Session) bool {
				x := advPick[Account](ctx, s, rnd)
				return x != nil && s.Add(&Entry{Account: x, Amount: 9}) == nil
			},
			"entry to new account": func(s *orm.Session) bool {
				e := advPick[Entry](ctx, s, rnd)
				if e == nil {
					return false
				}
				e.Account = newAccount(name(), 0)
				return true
			},
			"entry into new account's slice": func(s *orm.Session) bool {
				e := advPick[Entry](ctx, s, rnd)
				if e == nil {
					return false
				}
				na := newAccount(name(), 0)
				na.Entries = []*Entry{e}
				return s.Add(na) == nil
			},
			"delete entry": func(s *orm.Session) bool {
				e := advPick[Entry](ctx, s, rnd)
				return e != nil && s.Delete(e) == nil
			},
			"entry amount": func(s *orm.Session) bool {
				e := advPick[Entry](ctx, s, rnd)
				if e == nil {
					return false
				}
				e.Amount++
				return true
			},
			"new account": func(s *orm.Session) bool { return s.Add(newAccount(name(), 5)) == nil },
			"soft delete": func(s *orm.Session) bool {
				n := advPick[sdNote](ctx, s, rnd)
				return n != nil && s.Delete(n) == nil
			},
			"hard delete": func(s *orm.Session) bool {
				n := advPick[sdNote](ctx, s, rnd)
				return n != nil && s.HardDelete(n) == nil
			},
			"soft and hard delete": func(s *orm.Session) bool {
				a, b := advPick[sdNote](ctx, s, rnd), advPick[sdNote](ctx, s, rnd)
				return a != nil && b != nil && a != b && s.Delete(a) == nil && s.HardDelete(b) == nil
			},
			"audit (hook changes a counter)": func(s *orm.Session) bool {
				c := advPick[advCounter](ctx, s, rnd)
				return c != nil && s.Add(&advAudit{Note: name(), Counter: c}) == nil
			},
			"blob data": func(s *orm.Session) bool {
				b := advPick[testmodels.Blob](ctx, s, rnd)
				if b == nil {
					return false
				}
				b.Data = append(b.Data, 2)
				return true
			},
			"delete blob": func(s *orm.Session) bool {
				b := advPick[testmodels.Blob](ctx, s, rnd)
				return b != nil && s.Delete(b) == nil
			},
			"new blobs": func(s *orm.Session) bool {
				return s.Add(&testmodels.Blob{Data: []byte(name())}, &testmodels.Blob{}) == nil
			},
			"pair": func(s *orm.Session) bool {
				p := advPick[advPair](ctx, s, rnd)
				if p == nil {
					return false
				}
				p.N++
				return true
			},
			"delete pair": func(s *orm.Session) bool {
				p := advPick[advPair](ctx, s, rnd)
				return p != nil && s.Delete(p) == nil
			},
			"new pair": func(s *orm.Session) bool {
				seq++
				return s.Add(&advPair{A: int64(1000 + seq), B: 1}) == nil
			},
			"note body": func(s *orm.Session) bool {
				n := advPick[sdNote](ctx, s, rnd)
				if n == nil {
					return false
				}
				n.Body = name()
				return true
			},
			"new note": func(s *orm.Session) bool {
				o := advPick[sdOwner](ctx, s, rnd)
				return o != nil && s.Add(&sdNote{OwnerID: o.ID, Body: name()}) == nil
			},
		}
		names := make([]string, 0, len(ops))
		for n := range ops {
			names = append(names, n)
		}
		slices.Sort(names)
		counts := map[int]int{} // sessions by writes outside a transaction
		for i := 0; i < 300; i++ {
			s := eng.NewSession()
			log.Reset()
			var did []string
			for k := 0; k < 1+rnd.IntN(4); k++ {
				n := names[rnd.IntN(len(names))]
				if ops[n](s) {
					did = append(did, n)
				}
			}
			err := s.Commit(ctx)
			inTx, outside := false, 0
			for _, ev := range log.Events() {
				switch ev.Op {
				case "begin":
					inTx = true
				case "commit", "rollback":
					inTx = false
				default:
					u := strings.ToUpper(ev.SQL)
					if !inTx && (strings.HasPrefix(u, "INSERT") || strings.HasPrefix(u, "UPDATE") || strings.HasPrefix(u, "DELETE")) {
						outside++
					}
				}
			}
			if outside > 1 || err != nil && (errors.Is(err, orm.ErrCommitUnknown) || strings.Contains(err.Error(), "internal error")) {
				t.Errorf("%v: %d writes outside a transaction, %v: %q", did, outside, err, log.SQL())
			}
			counts[outside]++
			s.Close()
		}
		if counts[0] == 0 || counts[1] == 0 {
			t.Fatalf("commits by writes outside a transaction: %v; want some of each (alone, in a transaction)", counts)
		}
	})
}
