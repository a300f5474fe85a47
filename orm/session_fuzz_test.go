package orm_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// sessionFuzzItem is the session fuzzer's model: explicit keys, so that the
// in-memory model knows every row's key without asking the database.
type sessionFuzzItem struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name,size=16"`
	N    int64  `db:"n"`
}

// fuzzRow is a row's values in the in-memory model.
type fuzzRow struct {
	Name string
	N    int64
}

// errFuzzRollback makes a savepoint's function fail on purpose.
var errFuzzRollback = errors.New("fuzz: roll back to the savepoint")

// fuzzSession runs one program against a session and the in-memory model
// side by side.
type fuzzSession struct {
	t   *testing.T
	ctx context.Context
	eng *orm.Engine
	s   *orm.Session

	committed map[int64]fuzzRow          // what the database holds after the last commit
	view      map[int64]fuzzRow          // what the session's unit of work stands for now
	objs      map[int64]*sessionFuzzItem // the tracked objects, by key
	deleted   map[int64]bool             // keys deleted since the last commit or rollback
	trace     []string                   // the operations so far, for failure messages
	prog      []byte
	steps     int
}

const (
	fuzzKeys     = 6  // keys 1..6: few, so that operations meet
	fuzzMaxSteps = 48 // operations per program, so that each execution is quick
)

// FuzzSession is a differential test of the unit of work on SQLite: a
// program of random operations — Add, Delete, change, Flush, Commit,
// Rollback, Savepoint (released or rolled back, nested) — runs against a
// session and against an in-memory model of what it promises. After every
// operation the tracked objects must hold the model's values (a savepoint
// rolled back restores them); after every commit the table must hold
// exactly the model's committed rows.
//
// Each byte pair is an operation and its argument. Seeds are in the
// top-level testdata/fuzz/FuzzSession; run it with
//
//	go test -run '^$' -fuzz '^FuzzSession$' -fuzztime 30s ./orm/
func FuzzSession(f *testing.F) {
	for _, p := range []string{
		"\x00\x01\x00\x02\x04\x00",                                 // add 1, add 2, commit
		"\x00\x01\x04\x00\x02\x01\x03\x00\x05\x00",                 // add, commit, change, flush, rollback
		"\x00\x01\x04\x00\x06\x00\x02\x01\x01\x02\x07\x01\x04\x00", // savepoint rolled back
		"\x00\x03\x06\x00\x06\x00\x01\x03\x07\x00\x07\x01\x04\x00", // nested savepoints
	} {
		f.Add([]byte(p))
	}
	var tg dbtest.Target
	for _, t := range dbtest.Targets(f) {
		if t.Name == dbtest.SQLite {
			tg = t
		}
	}
	eng := mustOpen(f, tg.Driver, tg.DSN)
	ctx := context.Background()
	if err := eng.CreateTables(ctx, sessionFuzzItem{}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		if _, err := eng.DB().ExecContext(ctx, "DELETE FROM session_fuzz_items"); err != nil {
			t.Fatal(err)
		}
		fs := &fuzzSession{t: t, ctx: ctx, eng: eng, s: eng.NewSession(), prog: prog,
			committed: map[int64]fuzzRow{}, view: map[int64]fuzzRow{}, objs: map[int64]*sessionFuzzItem{}, deleted: map[int64]bool{}}
		defer fs.s.Close()
		fs.run(0, 0)
		fs.do("commit", fs.commit)
	})
}

// run interprets prog from i at savepoint depth; it returns where it
// stopped and, inside a savepoint, whether that savepoint is to fail.
func (fs *fuzzSession) run(i, depth int) (int, bool) {
	for ; i+1 < len(fs.prog) && fs.steps < fuzzMaxSteps; i += 2 {
		fs.steps++
		op, arg := fs.prog[i]%8, fs.prog[i+1]
		k := int64(arg%fuzzKeys) + 1
		switch op {
		case 0:
			if _, ok := fs.view[k]; ok || fs.deleted[k] {
				continue
			}
			o := &sessionFuzzItem{ID: k, Name: fuzzName(arg), N: int64(arg)}
			fs.do(fmt.Sprintf("add %d", k), func() error { return fs.s.Add(o) })
			fs.objs[k], fs.view[k] = o, fuzzRow{o.Name, o.N}
		case 1:
			o := fs.get(k)
			if o == nil {
				continue
			}
			fs.do(fmt.Sprintf("delete %d", k), func() error { return fs.s.Delete(o) })
			delete(fs.objs, k)
			delete(fs.view, k)
			fs.deleted[k] = true
		case 2:
			o := fs.get(k)
			if o == nil {
				continue
			}
			fs.trace = append(fs.trace, fmt.Sprintf("change %d", k))
			o.Name, o.N = fuzzName(arg/fuzzKeys), o.N+int64(arg)
			fs.view[k] = fuzzRow{o.Name, o.N}
		case 3:
			fs.do("flush", func() error { return fs.s.Flush(fs.ctx) })
		case 4:
			if depth == 0 {
				fs.do("commit", fs.commit)
			}
		case 5:
			if depth == 0 {
				fs.do("rollback", func() error { return fs.s.Rollback(fs.ctx) })
				fs.reset()
			}
		case 6:
			fs.savepoint(&i, depth)
		case 7:
			if depth > 0 {
				return i, arg%2 == 1
			}
		}
		fs.checkObjects()
	}
	return i, false
}

// savepoint runs the program's next operations in s.Savepoint, up to the
// matching end, and updates the model by its outcome.
func (fs *fuzzSession) savepoint(i *int, depth int) {
	view, objs, deleted := maps.Clone(fs.view), maps.Clone(fs.objs), maps.Clone(fs.deleted)
	var fail bool
	fs.trace = append(fs.trace, "savepoint {")
	err := fs.s.Savepoint(fs.ctx, func() error {
		*i, fail = fs.run(*i+2, depth+1)
		if fail {
			return errFuzzRollback
		}
		return nil
	})
	fs.trace = append(fs.trace, fmt.Sprintf("} failed=%v", fail))
	switch {
	case fail && errors.Is(err, errFuzzRollback):
		// Everything since the savepoint is undone, in memory too.
		fs.view, fs.objs, fs.deleted = view, objs, deleted
	case err != nil:
		fs.fatalf("savepoint: %v", err)
	}
}

// get returns the tracked object for k, loading it if the model says the
// row exists; nil if it does not, or was deleted since the last commit.
func (fs *fuzzSession) get(k int64) *sessionFuzzItem {
	if o := fs.objs[k]; o != nil {
		return o
	}
	if _, ok := fs.view[k]; !ok {
		return nil
	}
	o, err := orm.Get[sessionFuzzItem](fs.ctx, fs.s, k)
	if err != nil {
		fs.fatalf("get %d: %v", k, err)
	}
	fs.trace = append(fs.trace, fmt.Sprintf("get %d", k))
	fs.objs[k] = o
	return o
}

func (fs *fuzzSession) commit() error {
	if err := fs.s.Commit(fs.ctx); err != nil {
		return err
	}
	fs.committed = maps.Clone(fs.view)
	fs.deleted = map[int64]bool{}
	fs.checkTable()
	return nil
}

// reset is the model of Rollback: the committed rows, nothing tracked.
func (fs *fuzzSession) reset() {
	fs.view = maps.Clone(fs.committed)
	fs.objs = map[int64]*sessionFuzzItem{}
	fs.deleted = map[int64]bool{}
}

func (fs *fuzzSession) do(what string, fn func() error) {
	fs.trace = append(fs.trace, what)
	if err := fn(); err != nil {
		fs.fatalf("%s: %v", what, err)
	}
}

// checkObjects compares every tracked object with the model.
func (fs *fuzzSession) checkObjects() {
	for k, o := range fs.objs {
		if got, want := (fuzzRow{o.Name, o.N}), fs.view[k]; o.ID != k || got != want {
			fs.fatalf("object %d holds %d %+v, the model %+v", k, o.ID, got, want)
		}
	}
}

// checkTable compares the table, read outside the session, with the
// model's committed rows.
func (fs *fuzzSession) checkTable() {
	rows, err := fs.eng.DB().QueryContext(fs.ctx, "SELECT id, name, n FROM session_fuzz_items")
	if err != nil {
		fs.fatalf("read the table: %v", err)
	}
	defer rows.Close()
	got := map[int64]fuzzRow{}
	for rows.Next() {
		var k int64
		var r fuzzRow
		if err := rows.Scan(&k, &r.Name, &r.N); err != nil {
			fs.fatalf("scan: %v", err)
		}
		got[k] = r
	}
	if err := rows.Err(); err != nil {
		fs.fatalf("read the table: %v", err)
	}
	if !maps.Equal(got, fs.committed) {
		fs.fatalf("after commit the table holds %v, the model %v", got, fs.committed)
	}
}

func (fs *fuzzSession) fatalf(format string, args ...any) {
	fs.t.Helper()
	fs.t.Fatalf("%s\nafter: %s", fmt.Sprintf(format, args...), strings.Join(fs.trace, "; "))
}

// fuzzName is a short name from b: empty sometimes, never over size=16.
func fuzzName(b byte) string {
	return strings.Repeat(string(rune('a'+b%26)), int(b%5))
}
