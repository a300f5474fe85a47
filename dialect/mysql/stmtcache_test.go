package mysql_test

import (
	"context"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// A connection prepares a statement with arguments once and executes it
// from then on: reads by key in new sessions cost the server no prepare
// after the first, and each is one execute; so do the INSERTs of
// single-statement commits.
func TestStatementsWithArgumentsArePreparedOncePerConnection(t *testing.T) {
	onMySQL(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng, err := orm.Open(ctx, tg.Driver, tg.DSN, orm.WithMaxOpenConns(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		if err := eng.CreateTables(ctx, shelf{}); err != nil {
			t.Fatal(err)
		}
		s := eng.NewSession()
		sh := &shelf{Name: "a"}
		if err := s.Add(sh); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		s.Close()
		// status reads a counter of the pool's one connection.
		status := func(name string) int64 {
			var k string
			var v int64
			if err := eng.DB().QueryRowContext(ctx, "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		get := func() {
			s := eng.NewSession()
			defer s.Close()
			if _, err := orm.Get[shelf](ctx, s, sh.ID); err != nil {
				t.Fatal(err)
			}
		}
		get()
		prep0, exec0 := status("Com_stmt_prepare"), status("Com_stmt_execute")
		for range 3 {
			get()
		}
		if prep, exec := status("Com_stmt_prepare"), status("Com_stmt_execute"); prep != prep0 || exec != exec0+3 {
			t.Fatalf("3 reads: %d prepares and %d executes, want 0 and 3", prep-prep0, exec-exec0)
		}
		// A commit whose one statement is an INSERT runs it the same way:
		// prepared, with binary values, not as text with the values in it.
		insert := func(names ...string) {
			s := eng.NewSession()
			defer s.Close()
			for _, n := range names {
				if err := s.Add(&shelf{Name: n}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		insert("b", "c")
		prep0, exec0 = status("Com_stmt_prepare"), status("Com_stmt_execute")
		insert("d", "e")
		insert("f", "g")
		if prep, exec := status("Com_stmt_prepare"), status("Com_stmt_execute"); prep != prep0 || exec != exec0+2 {
			t.Fatalf("2 commits of a 2-row INSERT: %d prepares and %d executes, want 0 and 2", prep-prep0, exec-exec0)
		}
	})
}
