package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// e2eModels is the user's package: models marked for generation, the
// directive that runs tallygen, and a program that uses them on SQLite
// through the typed column names.
const e2eModels = `package main

GENERATE

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/tallyorm/tally/mapper"
	"github.com/tallyorm/tally/orm"
	IMPORTS
)

// Account is a model.
//
//tally:model
type Account struct {
	ID      int64     ` + "`db:\"id,pk,auto\"`" + `
	Owner   string    ` + "`db:\"owner,unique\"`" + `
	Balance int64     ` + "`db:\"balance\"`" + `
	Version int64     ` + "`db:\"version,version\"`" + `
	Note    *string   ` + "`db:\"note\"`" + `
	Created time.Time ` + "`db:\"created_at\"`" + `
	Entries []*Entry  ` + "`rel:\"account_id\"`" + `
}

// Entry belongs to an Account.
//
//tally:model
type Entry struct {
	ID        int64 ` + "`db:\"id,pk,auto\"`" + `
	AccountID int64 ` + "`db:\"account_id\"`" + `
	Amount    int64
}

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	ctx := context.Background()
	tab, err := mapper.NewRegistry().TableOf(Account{})
	if err != nil {
		return err
	}
	fmt.Println("accessor:", reflect.TypeOf(mapper.Unwrap(tab.Acc)).Name())
	eng, err := orm.Open(ctx, "sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := eng.CreateTables(ctx, Account{}, Entry{}); err != nil {
		return err
	}
	s := eng.NewSession()
	defer s.Close()
	for i, owner := range []string{"ann", "bob", "cy"} {
		a := &Account{Owner: owner, Balance: int64(10 * (i + 1)), Created: time.Now()}
		a.Entries = []*Entry{{Amount: int64(i)}}
		if err := s.Add(a); err != nil {
			return err
		}
	}
	if err := s.Commit(ctx); err != nil {
		return err
	}
	n, err := orm.Query[Account](s).Where(AccountCols.Owner+" <> ?", "cy").UpdateAll(ctx, orm.Set{AccountCols.Balance: 5})
	if err != nil {
		return err
	}
	got, err := orm.Query[Account](s).OrderBy(AccountDesc.Balance, AccountCols.Owner).Load("Entries").All(ctx)
	if err != nil {
		return err
	}
	got[0].Balance++
	if err := s.Commit(ctx); err != nil {
		return err
	}
	fmt.Println("updated:", n)
	for _, a := range got {
		fmt.Printf("%s %d v%d entries=%d\n", a.Owner, a.Balance, a.Version, len(a.Entries))
	}
	return nil
}
`

// TestGenerateBuildAndRunAModule is what a user does: a module with
// models and a go:generate line, then go generate, go build, and the
// program run against SQLite.
func TestGenerateBuildAndRunAModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module: skipped in -short mode")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH, so go generate cannot run:", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	imports := ""
	// Drivers move into dialect packages that programs blank-import; the
	// module imports SQLite's when the repository has it.
	if _, err := os.Stat(filepath.Join(root, "dialect", "sqlite")); err == nil {
		imports = `_ "github.com/tallyorm/tally/dialect/sqlite"`
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The directive is spliced in so that go generate in this repository
	// does not take it for one of its own.
	src := strings.Replace(e2eModels, "IMPORTS", imports, 1)
	src = strings.Replace(src, "GENERATE", "//go:"+"generate go run github.com/tallyorm/tally/cmd/tallygen", 1)
	write("main.go", src)
	write("go.mod", "module example.com/e2e\n\ngo 1.26\n\nrequire github.com/tallyorm/tally v0.0.0\n\nreplace github.com/tallyorm/tally => "+root+"\n")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sum))
	// Everything the module needs is the repository's own dependencies,
	// usually in the module cache already; the go.mod files of versions the
	// repository's pruned graph never loads (sqlx's own requirements) may
	// not be, so GOPROXY is the caller's, not off.
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
		}
		return string(out)
	}
	run(goTool, "generate", "./...")
	gen, err := os.ReadFile(filepath.Join(dir, OutputName))
	if err != nil {
		t.Fatalf("go generate wrote no %s: %v", OutputName, err)
	}
	if !strings.HasPrefix(string(gen), header) {
		t.Errorf("%s starts %q, want %q", OutputName, strings.SplitN(string(gen), "\n", 2)[0], header)
	}
	run(goTool, "build", "-o", "app", ".")
	out := run(filepath.Join(dir, "app"), filepath.Join(dir, "app.db"))
	want := "accessor: tallyAccountAccessor\nupdated: 2\ncy 31 v2 entries=1\nann 5 v2 entries=1\nbob 5 v2 entries=1\n"
	if out != want {
		t.Errorf("the program printed:\n%s\nwant:\n%s", out, want)
	}
}
