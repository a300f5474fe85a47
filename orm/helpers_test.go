package orm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/orm"
)

// Helpers shared by the package's test files. A helper that serves one
// file, or one group of files, keeps its prefix and stays with them: uow
// in session_test.go, qt in query_test.go, scope in scope_test.go, eng,
// mw and fault in their files.

// baseTime is a creation time every database stores exactly: UTC, whole
// seconds, so that a row read back compares equal to what was written.
// qtSeed dates the accounts it seeds in minutes from it.
var baseTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// errBoom is the error a test's callback fails (or panics) with. Tests
// match it with errors.Is, or with == where it must come back unwrapped.
var errBoom = errors.New("boom")

// newAccount returns an unsaved account created at baseTime.
func newAccount(owner string, balance int64) *Account {
	return &Account{Owner: owner, Balance: balance, Created: baseTime}
}

// anys converts xs to the []any that variadic calls such as Session.Add
// take.
func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// mustOpen opens dsn with orm.Open under driverName and closes the engine
// when the test ends.
func mustOpen(t testing.TB, driverName, dsn string, opts ...orm.Option) *orm.Engine {
	t.Helper()
	eng, err := orm.Open(context.Background(), driverName, dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// openEngine opens tg with orm.Open and opts and creates the test models'
// tables. When log is not nil, every statement's SQL is appended to *log;
// the hook appends from whichever goroutine runs the statement, so such a
// log is for tests that run their sessions on one goroutine (queryLog is
// for the others). The hook is installed even without a log: an engine
// with no hook and no logger skips timing and reporting statements, and
// the tests have always run with that path on.
func openEngine(t testing.TB, tg dbtest.Target, log *[]string, opts ...orm.Option) *orm.Engine {
	t.Helper()
	record := orm.WithQueryHook(func(_ context.Context, ev orm.QueryEvent) {
		if log != nil {
			*log = append(*log, ev.SQL)
		}
	})
	eng := mustOpen(t, tg.Driver, tg.DSN, append([]orm.Option{record}, opts...)...)
	if err := eng.CreateTables(context.Background(), testmodels.Models...); err != nil {
		t.Fatal(err)
	}
	return eng
}

// openLogged is openEngine with every statement recorded in a queryLog,
// which is empty when it is returned: the CREATE TABLEs are not in it.
func openLogged(t testing.TB, tg dbtest.Target, opts ...orm.Option) (*orm.Engine, *queryLog) {
	t.Helper()
	log := &queryLog{}
	eng := openEngine(t, tg, nil, append([]orm.Option{orm.WithQueryHook(log.hook)}, opts...)...)
	log.Reset()
	return eng, log
}

// queryLog records the statements an engine runs, with their Op, Args and
// the rest of the event. It is locked: hooks run on the goroutine of the
// session that sends the statement, and some tests run many.
type queryLog struct {
	mu  sync.Mutex
	evs []orm.QueryEvent
}

// hook is the orm.WithQueryHook function that records into l.
func (l *queryLog) hook(_ context.Context, ev orm.QueryEvent) {
	ev.Args = slices.Clone(ev.Args) // the engine may reuse Args after the hook returns
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

// Reset forgets what was recorded so far.
func (l *queryLog) Reset() {
	l.mu.Lock()
	l.evs = nil
	l.mu.Unlock()
}

// Take returns what was recorded so far and forgets it, in one step, so
// that no event falls between the two.
func (l *queryLog) Take() []orm.QueryEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.evs
	l.evs = nil
	return evs
}

// Events returns a copy of the recorded events.
func (l *queryLog) Events() []orm.QueryEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

// SQL returns the recorded statements' text.
func (l *queryLog) SQL() []string {
	var out []string
	for _, ev := range l.Events() {
		out = append(out, ev.SQL)
	}
	return out
}

// Matching returns the recorded events whose SQL starts with prefix.
func (l *queryLog) Matching(prefix string) []orm.QueryEvent {
	var out []orm.QueryEvent
	for _, ev := range l.Events() {
		if strings.HasPrefix(ev.SQL, prefix) {
			out = append(out, ev)
		}
	}
	return out
}

// seedObjects adds objs to a session of its own and commits them.
func seedObjects(t testing.TB, eng *orm.Engine, objs ...any) {
	t.Helper()
	s := eng.NewSession()
	defer s.Close()
	if err := s.Add(objs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background()); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// countRows runs a counting query (? placeholders) through eng's pool,
// outside any session, so that it sees committed rows only and takes no
// lock a session under test could wait for.
func countRows(t testing.TB, eng *orm.Engine, query string, args ...any) int64 {
	t.Helper()
	n, err := countRowsErr(eng, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// countRowsErr is countRows for goroutines other than the test's, which
// must not call t.Fatal.
func countRowsErr(eng *orm.Engine, query string, args ...any) (int64, error) {
	var n int64
	if err := eng.DB().QueryRowContext(context.Background(), eng.Dialect().Rebind(query), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", query, err)
	}
	return n, nil
}

// countAccounts counts the committed accounts matching where, all of them
// for "". Being plain SQL, where cannot expand a slice into an IN list.
func countAccounts(t testing.TB, eng *orm.Engine, where string, args ...any) int64 {
	t.Helper()
	q := "SELECT COUNT(*) FROM accounts"
	if where != "" {
		q += " WHERE " + where
	}
	return countRows(t, eng, q, args...)
}

// walkErrors calls fn for err and every error it wraps, depth first, with
// how many wrappings down each one is (0 for err). It follows both
// Unwrap() error and Unwrap() []error, as errors.Is does.
func walkErrors(err error, fn func(err error, depth int)) {
	var walk func(err error, depth int)
	walk = func(err error, depth int) {
		if err == nil {
			return
		}
		fn(err, depth)
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap(), depth+1)
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, depth+1)
			}
		}
	}
	walk(err, 0)
}

// errorChain renders err and the errors it wraps, one indented line each
// with its type, for a test's log: what each driver returns is part of the
// report. Past a depth of 12 it stops, so that a log stays readable.
func errorChain(err error) string {
	var b strings.Builder
	walkErrors(err, func(err error, depth int) {
		if depth <= 12 {
			fmt.Fprintf(&b, "\n\t%s%T: %v", strings.Repeat("  ", depth), err, err)
		}
	})
	return b.String()
}
