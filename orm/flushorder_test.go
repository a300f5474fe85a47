package orm_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Behaviour tests of the flush order of rows whose foreign keys point at
// rows of the same flush (DESIGN.md "Flush order"): a table that refers to
// itself is written row by row in dependency levels, one batch per level;
// a cycle of tables through a nullable column is inserted with NULL there
// and completed by an UPDATE; a cycle of NOT NULL columns is a CycleError.
// Helpers carry an fo prefix.

// foNode is a tree node whose parent is a node of the same table, with a
// database-generated key.
type foNode struct {
	ID       int64   `db:"id,pk,auto"`
	Name     string  `db:"name,size=32"`
	ParentID *int64  `db:"parent_id"`
	Parent   *foNode `rel:"parent_id"`
}

func (foNode) TableName() string { return "fo_nodes" }

// foTree is foNode with keys the application chooses.
type foTree struct {
	ID       int64   `db:"id,pk"`
	ParentID *int64  `db:"parent_id"`
	Parent   *foTree `rel:"parent_id"`
}

func (foTree) TableName() string { return "fo_trees" }

// foStrict refers to itself through a NOT NULL column: rows that point at
// each other in a circle cannot be written in any order.
type foStrict struct {
	ID       int64     `db:"id,pk"`
	ParentID int64     `db:"parent_id"`
	Parent   *foStrict `rel:"parent_id"`
}

func (foStrict) TableName() string { return "fo_stricts" }

// foPerson and foCar form a cycle of tables: a car has an owner (NOT
// NULL), and a person may have a favourite car (nullable).
type foPerson struct {
	ID    int64  `db:"id,pk,auto"`
	Name  string `db:"name,size=32"`
	CarID *int64 `db:"car_id"`
	Car   *foCar `rel:"car_id"`
}

func (foPerson) TableName() string { return "fo_people" }

type foCar struct {
	ID      int64     `db:"id,pk,auto"`
	Model   string    `db:"model,unique,size=32"`
	OwnerID int64     `db:"owner_id"`
	Owner   *foPerson `rel:"owner_id"`
}

func (foCar) TableName() string { return "fo_cars" }

// foDir's children are deleted with it (cascade), in the same table.
type foDir struct {
	ID       int64    `db:"id,pk,auto"`
	ParentID *int64   `db:"parent_id"`
	Children []*foDir `rel:"parent_id,cascade"`
}

func (foDir) TableName() string { return "fo_dirs" }

// foNullNode refers to itself through a sql.NullInt64 column.
type foNullNode struct {
	ID       int64         `db:"id,pk,auto"`
	ParentID sql.NullInt64 `db:"parent_id"`
	Parent   *foNullNode   `rel:"parent_id"`
}

func (foNullNode) TableName() string { return "fo_null_nodes" }

// foOpen opens tg with every statement logged and the models of this file
// created; the log is empty when it returns.
func foOpen(t *testing.T, tg dbtest.Target) (*orm.Engine, *queryLog) {
	t.Helper()
	eng, log := openLogged(t, tg)
	if err := eng.CreateTables(context.Background(), foNode{}, foTree{}, foStrict{}, foPerson{}, foCar{}, foDir{}, foNullNode{}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	return eng, log
}

// foExec runs a statement (? placeholders) outside any session.
func foExec(t *testing.T, eng *orm.Engine, q string, args ...any) {
	t.Helper()
	if _, err := eng.DB().ExecContext(context.Background(), eng.Dialect().Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// foStatements returns the INSERT, UPDATE and DELETE statements of events
// that touch table, in order.
func foStatements(evs []orm.QueryEvent, table string) []orm.QueryEvent {
	var out []orm.QueryEvent
	for _, ev := range evs {
		for _, verb := range []string{"INSERT INTO ", "UPDATE ", "DELETE FROM "} {
			if strings.HasPrefix(ev.SQL, verb) && strings.HasPrefix(ev.SQL[len(verb)+1:], table) {
				out = append(out, ev)
			}
		}
	}
	return out
}

func foPtr(n int64) *int64 { return &n }

// foParentOf reads a committed node's parent_id, 0 for NULL.
func foParentOf(t *testing.T, eng *orm.Engine, table string, id int64) int64 {
	t.Helper()
	return countRows(t, eng, "SELECT COALESCE(parent_id, 0) FROM "+table+" WHERE id = ?", id)
}

// The chain 1 <- 2 <- 3: deleted in one commit, in either order of
// the Delete arguments. MariaDB checks foreign keys row by row inside one
// DELETE ... IN, so the rows must go children first, one level each.
func TestFlushDeletesSelfReferencingRowsChildrenFirst(t *testing.T) {
	for _, reversed := range []bool{false, true} {
		t.Run(fmt.Sprintf("reversed=%v", reversed), func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
				eng, log := foOpen(t, tg)
				ctx := context.Background()
				foExec(t, eng, "INSERT INTO fo_nodes (id, name, parent_id) VALUES (1, 'n1', NULL)")
				foExec(t, eng, "INSERT INTO fo_nodes (id, name, parent_id) VALUES (2, 'n2', 1)")
				foExec(t, eng, "INSERT INTO fo_nodes (id, name, parent_id) VALUES (3, 'n3', 2)")
				s := eng.NewSession()
				defer s.Close()
				var nodes []any
				for id := int64(1); id <= 3; id++ {
					n, err := orm.Get[foNode](ctx, s, id)
					uowMust(t, err)
					nodes = append(nodes, n)
				}
				if !reversed {
					slices.Reverse(nodes) // n3, n2, n1: the call
				}
				uowMust(t, s.Delete(nodes...))
				log.Reset()
				if err := s.Commit(ctx); err != nil {
					t.Fatalf("Commit: %v", err)
				}
				dels := foStatements(log.Events(), "fo_nodes")
				var got [][]any
				for _, ev := range dels {
					got = append(got, ev.Args)
				}
				want := [][]any{{int64(3)}, {int64(2)}, {int64(1)}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("DELETE arguments, one statement per level (-want +got):\n%s", diff)
				}
				if n := countRows(t, eng, "SELECT COUNT(*) FROM fo_nodes"); n != 0 {
					t.Fatalf("%d rows left, want 0", n)
				}
			})
		})
	}
}

// A child added before its new parent: the parent is inserted first and
// its generated key flows into the child, across three generations.
func TestFlushInsertsSelfReferencingParentsFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		root := &foNode{Name: "root"}
		mid := &foNode{Name: "mid", Parent: root}
		leaf := &foNode{Name: "leaf", Parent: mid}
		uowMust(t, s.Add(leaf)) // reaches mid and root through Parent
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if ins := foStatements(log.Events(), "fo_nodes"); len(ins) != 3 {
			t.Fatalf("%d statements for fo_nodes, want 3 INSERTs (one per level): %q", len(ins), log.SQL())
		}
		if root.ParentID != nil || mid.ParentID == nil || *mid.ParentID != root.ID || leaf.ParentID == nil || *leaf.ParentID != mid.ID {
			t.Fatalf("keys: root %d parent %v, mid %d parent %v, leaf parent %v", root.ID, root.ParentID, mid.ID, mid.ParentID, leaf.ParentID)
		}
		if got := foParentOf(t, eng, "fo_nodes", leaf.ID); got != mid.ID {
			t.Fatalf("committed leaf.parent_id %d, want %d", got, mid.ID)
		}
		if s.IsDirty(leaf) || s.IsDirty(mid) {
			t.Fatal("objects dirty after Commit")
		}
	})
}

// With keys the application chooses, the foreign key value alone says
// which row must come first: MariaDB refused a child listed before its
// parent in one INSERT (1452).
func TestFlushInsertsSelfReferencingByKeyValue(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		uowMust(t, s.Add(&foTree{ID: 3, ParentID: foPtr(2)}, &foTree{ID: 2, ParentID: foPtr(1)}, &foTree{ID: 1}, &foTree{ID: 4, ParentID: foPtr(1)}))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		var got [][]any
		for _, ev := range foStatements(log.Events(), "fo_trees") {
			got = append(got, ev.Args)
		}
		want := [][]any{{int64(1), nil}, {int64(2), int64(1), int64(4), int64(1)}, {int64(3), int64(2)}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("INSERT arguments by level (-want +got):\n%s", diff)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM fo_trees"); n != 4 {
			t.Fatalf("%d rows, want 4", n)
		}
	})
}

// A chain 40 deep goes in 40 INSERTs and 40 DELETEs; 30 independent trees
// of two levels go in two statements each way, whatever the Add order.
func TestFlushSelfReferencingLevelsBatch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()

		const depth = 40
		chain := make([]*foNode, depth)
		for i := range chain {
			chain[i] = &foNode{Name: fmt.Sprintf("c%d", i)}
			if i > 0 {
				chain[i].Parent = chain[i-1]
			}
		}
		uowMust(t, s.Add(chain[depth-1]))
		uowMust(t, s.Commit(ctx))
		if n := len(foStatements(log.Take(), "fo_nodes")); n != depth {
			t.Fatalf("chain of %d: %d statements, want %d", depth, n, depth)
		}
		for i := 1; i < depth; i++ {
			if got := foParentOf(t, eng, "fo_nodes", chain[i].ID); got != chain[i-1].ID {
				t.Fatalf("c%d.parent_id = %d, want %d", i, got, chain[i-1].ID)
			}
		}
		uowMust(t, s.Delete(anys(chain)...))
		uowMust(t, s.Commit(ctx))
		if n := len(foStatements(log.Take(), "fo_nodes")); n != depth {
			t.Fatalf("deleting the chain: %d statements, want %d", n, depth)
		}

		var objs []any
		var kids []*foNode
		for i := range 30 {
			root := &foNode{Name: fmt.Sprintf("r%d", i)}
			kid := &foNode{Name: fmt.Sprintf("k%d", i), Parent: root}
			kids = append(kids, kid)
			objs = append(objs, kid, root) // children first
		}
		uowMust(t, s.Add(objs...))
		uowMust(t, s.Commit(ctx))
		if ins := foStatements(log.Take(), "fo_nodes"); len(ins) != 2 {
			t.Fatalf("30 trees: %d statements, want 2 (roots, then children)", len(ins))
		}
		for _, k := range kids {
			if k.ParentID == nil || *k.ParentID != k.Parent.ID {
				t.Fatalf("%s.ParentID = %v, want %d", k.Name, k.ParentID, k.Parent.ID)
			}
		}
		uowMust(t, s.Delete(objs...))
		uowMust(t, s.Commit(ctx))
		if dels := foStatements(log.Take(), "fo_nodes"); len(dels) != 2 {
			t.Fatalf("deleting 30 trees: %d statements, want 2", len(dels))
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM fo_nodes"); n != 0 {
			t.Fatalf("%d rows left", n)
		}
	})
}

// Two new nodes that are each other's parent, through a nullable column:
// one is inserted with NULL and updated once the other exists; deleting
// them sets the key to NULL first.
func TestFlushSelfReferencingRowCycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		a := &foNode{Name: "a"}
		b := &foNode{Name: "b", Parent: a}
		a.Parent = b
		uowMust(t, s.Add(a))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if a.ParentID == nil || *a.ParentID != b.ID || b.ParentID == nil || *b.ParentID != a.ID {
			t.Fatalf("a %d parent %v, b %d parent %v", a.ID, a.ParentID, b.ID, b.ParentID)
		}
		if foParentOf(t, eng, "fo_nodes", a.ID) != b.ID || foParentOf(t, eng, "fo_nodes", b.ID) != a.ID {
			t.Fatal("committed rows do not point at each other")
		}
		stmts := foStatements(log.Take(), "fo_nodes")
		if len(stmts) != 3 || !strings.HasPrefix(stmts[2].SQL, "UPDATE") {
			t.Fatalf("statements %v, want two INSERTs and the follow-up UPDATE", stmts)
		}
		uowMust(t, s.Delete(a, b))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("deleting the cycle: %v", err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM fo_nodes"); n != 0 {
			t.Fatalf("%d rows left", n)
		}
	})
}

// Rows that point at each other through a NOT NULL column cannot be
// written: a CycleError naming the table and column, before any SQL, and
// the objects are still pending.
func TestFlushSelfReferencingRowCycleNotNull(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()
		uowMust(t, s.Add(&foStrict{ID: 1, ParentID: 2}, &foStrict{ID: 2, ParentID: 1}))
		err := s.Commit(ctx)
		var ce *orm.CycleError
		if !errors.As(err, &ce) {
			t.Fatalf("Commit: %v, want a *orm.CycleError", err)
		}
		if !strings.Contains(err.Error(), "fo_stricts.parent_id") {
			t.Fatalf("message %q does not name fo_stricts.parent_id", err)
		}
		if n := len(foStatements(log.Events(), "fo_stricts")); n != 0 {
			t.Fatalf("%d statements sent for an impossible order", n)
		}
		if p := s.Pending(); len(p) != 2 {
			t.Fatalf("Pending() = %d objects, want 2", len(p))
		}
	})
}

// A cycle of two tables through a nullable column: the person is inserted
// with car_id NULL, the car with the person's key, and the person's car_id
// set by a follow-up UPDATE. Deleting both sets car_id to NULL first.
// A failed commit restores the objects.
func TestFlushTableCycleThroughNullableColumn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		s := eng.NewSession()
		defer s.Close()

		p := &foPerson{Name: "ann"}
		c := &foCar{Model: "beetle", Owner: p}
		p.Car = c
		uowMust(t, s.Add(p))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if p.CarID == nil || *p.CarID != c.ID || c.OwnerID != p.ID {
			t.Fatalf("person %d car %v, car %d owner %d", p.ID, p.CarID, c.ID, c.OwnerID)
		}
		if got := countRows(t, eng, "SELECT COALESCE(car_id, 0) FROM fo_people WHERE id = ?", p.ID); got != c.ID {
			t.Fatalf("committed car_id %d, want %d", got, c.ID)
		}
		var kinds []string
		for _, ev := range log.Take() {
			if f := strings.Fields(ev.SQL); len(f) > 2 && (f[0] == "INSERT" || f[0] == "UPDATE") {
				kinds = append(kinds, f[0]+" "+strings.Trim(map[bool]string{true: f[2], false: f[1]}[f[0] == "INSERT"], "`\""))
			}
		}
		if diff := cmp.Diff([]string{"INSERT fo_people", "INSERT fo_cars", "UPDATE fo_people"}, kinds); diff != "" {
			t.Fatalf("statements (-want +got):\n%s", diff)
		}
		if s.IsDirty(p) || s.IsDirty(c) {
			t.Fatal("objects dirty after Commit")
		}

		uowMust(t, s.Delete(p, c))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("deleting the cycle: %v", err)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM fo_people WHERE id = ?", p.ID) + countRows(t, eng, "SELECT COUNT(*) FROM fo_cars"); n != 0 {
			t.Fatalf("%d rows left", n)
		}
	})
}

// A failed commit of a cycle loses nothing: the NULL and the key the
// flush wrote are undone, the objects are pending again with no keys, and
// a second commit after fixing the cause writes them.
func TestFlushTableCycleFailedCommitRestores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := foOpen(t, tg)
		ctx := context.Background()
		foExec(t, eng, "INSERT INTO fo_people (id, name) VALUES (50, 'old')")
		foExec(t, eng, "INSERT INTO fo_cars (id, model, owner_id) VALUES (50, 'taken', 50)")
		s := eng.NewSession()
		defer s.Close()
		p := &foPerson{Name: "ann"}
		// The car's model is taken (unique): its INSERT fails after the
		// person's has run with car_id NULL.
		c := &foCar{Model: "taken", Owner: p}
		p.Car = c
		uowMust(t, s.Add(p))
		if err := s.Commit(ctx); !errors.Is(err, orm.ErrUniqueViolation) {
			t.Fatalf("Commit: %v, want ErrUniqueViolation", err)
		}
		if p.ID != 0 || c.ID != 0 || p.CarID != nil || c.OwnerID != 0 {
			t.Fatalf("after the failure: person %d car_id %v, car %d owner %d; want all zero", p.ID, p.CarID, c.ID, c.OwnerID)
		}
		if n := len(s.Pending()); n != 2 {
			t.Fatalf("%d pending, want 2", n)
		}
		if n := countRows(t, eng, "SELECT COUNT(*) FROM fo_people"); n != 1 {
			t.Fatalf("%d people, want the seeded one only", n)
		}
		c.Model = "beetle"
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("second Commit: %v", err)
		}
		if p.CarID == nil || *p.CarID != c.ID || c.OwnerID != p.ID {
			t.Fatalf("person %d car %v, car %d owner %d", p.ID, p.CarID, c.ID, c.OwnerID)
		}
	})
}

// A cycle of NOT NULL columns is still an error, naming the tables and
// their columns (testmodels.CycA and CycB are used by TestFlushCycleIsAnError).
func TestCycleErrorNamesColumns(t *testing.T) {
	err := (&orm.CycleError{Tables: []string{"a", "b", "a"}, Columns: []string{"a.b_id", "b.a_id"}}).Error()
	for _, want := range []string{"a -> b -> a", "a.b_id", "b.a_id", "nullable"} {
		if !strings.Contains(err, want) {
			t.Errorf("message %q does not contain %q", err, want)
		}
	}
}

// CreateTables makes a cycle of tables through a nullable column, with
// both constraints enforced, again without error; DropTables drops it with
// rows in it.
func TestCreateTablesCycleThroughNullableColumn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := foOpen(t, tg) // created once
		ctx := context.Background()
		uowMust(t, eng.CreateTables(ctx, foPerson{}, foCar{})) // and again: nothing to do
		foExec(t, eng, "INSERT INTO fo_people (id, name) VALUES (1, 'ann')")
		foExec(t, eng, "INSERT INTO fo_cars (id, model, owner_id) VALUES (1, 'beetle', 1)")
		foExec(t, eng, "UPDATE fo_people SET car_id = 1 WHERE id = 1")
		for _, q := range []string{
			"INSERT INTO fo_cars (id, model, owner_id) VALUES (2, 'ghost', 99)",
			"UPDATE fo_people SET car_id = 99 WHERE id = 1",
		} {
			if _, err := eng.DB().ExecContext(ctx, q); err == nil {
				t.Errorf("%s: accepted, want a foreign-key violation", q)
			}
		}
		uowMust(t, eng.DropTables(ctx, foPerson{}, foCar{}))
		uowMust(t, eng.CreateTables(ctx, foPerson{}, foCar{}))
		if n := countRows(t, eng, "SELECT COUNT(*) FROM fo_people"); n != 0 {
			t.Fatalf("%d people after drop and create, want 0", n)
		}
		if _, err := eng.DB().ExecContext(ctx, "UPDATE fo_people SET car_id = 99"); err != nil {
			t.Fatal(err) // no rows: nothing to refuse
		}
	})
}

// A persistent node moved under a new node gets the new node's key in an
// UPDATE after the new node's INSERT.
func TestFlushSelfReferencingPersistentRowMovedUnderNewRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := foOpen(t, tg)
		ctx := context.Background()
		x := &foNode{Name: "x"}
		seedObjects(t, eng, x)
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Get[foNode](ctx, s, x.ID)
		uowMust(t, err)
		y := &foNode{Name: "y"}
		got.Parent = y
		uowMust(t, s.Add(y))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if got.ParentID == nil || *got.ParentID != y.ID || foParentOf(t, eng, "fo_nodes", x.ID) != y.ID {
			t.Fatalf("x.ParentID = %v, committed %d; want %d", got.ParentID, foParentOf(t, eng, "fo_nodes", x.ID), y.ID)
		}
	})
}

// Deleting the root of a cascade tree whose nodes were loaded by a query
// (not through the slices) marks every tracked descendant deleted and
// deletes them leaves first, one statement per level.
func TestFlushDeletesCascadeTreeByLevel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		foExec(t, eng, "INSERT INTO fo_dirs (id, parent_id) VALUES (1, NULL)")
		foExec(t, eng, "INSERT INTO fo_dirs (id, parent_id) VALUES (2, 1)")
		foExec(t, eng, "INSERT INTO fo_dirs (id, parent_id) VALUES (3, 1)")
		foExec(t, eng, "INSERT INTO fo_dirs (id, parent_id) VALUES (4, 2)")
		s := eng.NewSession()
		defer s.Close()
		dirs, err := orm.Query[foDir](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		uowMust(t, s.Delete(dirs[0]))
		for _, d := range dirs {
			if !s.IsDirty(d) {
				t.Fatalf("dir %d not marked deleted with the root", d.ID)
			}
		}
		log.Reset()
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		var got [][]any
		for _, ev := range foStatements(log.Events(), "fo_dirs") {
			got = append(got, ev.Args)
		}
		want := [][]any{{int64(4)}, {int64(2), int64(3)}, {int64(1)}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DELETE arguments by level (-want +got):\n%s", diff)
		}
	})
}

// Rows whose self-referencing key is a sql.NullInt64 are ordered by the
// value it holds.
func TestFlushDeletesSelfReferencingRowsThroughNullInt64(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, log := foOpen(t, tg)
		ctx := context.Background()
		foExec(t, eng, "INSERT INTO fo_null_nodes (id, parent_id) VALUES (1, NULL)")
		foExec(t, eng, "INSERT INTO fo_null_nodes (id, parent_id) VALUES (2, 1)")
		foExec(t, eng, "INSERT INTO fo_null_nodes (id, parent_id) VALUES (3, 2)")
		s := eng.NewSession()
		defer s.Close()
		nodes, err := orm.Query[foNullNode](s).OrderBy("id").All(ctx)
		uowMust(t, err)
		uowMust(t, s.Delete(anys(nodes)...))
		log.Reset()
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		var got [][]any
		for _, ev := range foStatements(log.Events(), "fo_null_nodes") {
			got = append(got, ev.Args)
		}
		want := [][]any{{int64(3)}, {int64(2)}, {int64(1)}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DELETE arguments by level (-want +got):\n%s", diff)
		}
	})
}

// A persistent person given a new car, across the cycle: the car is
// inserted after the person's table, and the person's car_id set by an
// UPDATE after it.
func TestFlushTableCyclePersistentRowPointedAtNewRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng, _ := foOpen(t, tg)
		ctx := context.Background()
		ann := &foPerson{Name: "ann"}
		seedObjects(t, eng, ann)
		s := eng.NewSession()
		defer s.Close()
		p, err := orm.Get[foPerson](ctx, s, ann.ID)
		uowMust(t, err)
		c := &foCar{Model: "beetle", Owner: p}
		p.Car = c
		uowMust(t, s.Add(c))
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if p.CarID == nil || *p.CarID != c.ID || c.OwnerID != p.ID {
			t.Fatalf("person car_id %v, car %d owner %d", p.CarID, c.ID, c.OwnerID)
		}
		if got := countRows(t, eng, "SELECT COALESCE(car_id, 0) FROM fo_people WHERE id = ?", p.ID); got != c.ID {
			t.Fatalf("committed car_id %d, want %d", got, c.ID)
		}
		if s.IsDirty(p) {
			t.Fatal("the person is dirty after Commit")
		}
	})
}
