package orm_test

import (
	"context"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
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
