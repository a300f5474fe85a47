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
