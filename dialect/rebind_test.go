package dialect

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var allDialects = []struct {
	name string
	d    Dialect
}{
	{"mysql", MySQL},
	{"mariadb", MariaDB},
	{"postgres", PostgreSQL},
	{"sqlite", SQLite},
}

// In the `?` dialects Rebind only resolves `??`, so many rows probe with `??`:
// it becomes `?` only where the scanner sees a bare placeholder position.
var rebindTests = []struct {
	name    string
	d       Dialect
	input   string
	wantSQL string
}{
	{"pg/empty", PostgreSQL, "", ""},
	{"pg/no placeholder", PostgreSQL, "SELECT 1", "SELECT 1"},
	{"pg/simple", PostgreSQL, "SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"},
	{"pg/at both ends", PostgreSQL, "?x?", "$1x$2"},
	{"pg/two digits", PostgreSQL, "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"},
	{"mysql/simple", MySQL, "SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = ? AND b = ?"},
	{"mariadb/simple", MariaDB, "SELECT ? FROM t", "SELECT ? FROM t"},
	{"sqlite/simple", SQLite, "SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = ? AND b = ?"},

	// Strings.
	{"pg/single quotes", PostgreSQL, "SELECT '?', ?", "SELECT '?', $1"},
	{"pg/doubled quote", PostgreSQL, "SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
	{"pg/empty string", PostgreSQL, "SELECT '', ?, ''''", "SELECT '', $1, ''''"},
	{"pg/backslash is a plain character", PostgreSQL, `SELECT 'a\', ?`, `SELECT 'a\', $1`},
	{"pg/E string honours backslash", PostgreSQL, `SELECT E'\'?', ?`, `SELECT E'\'?', $1`},
	{"pg/lowercase e string", PostgreSQL, `SELECT e'\'?', ?`, `SELECT e'\'?', $1`},
	{"pg/e ending an identifier is no E string", PostgreSQL, `SELECT type'\', ?`, `SELECT type'\', $1`},
	{"pg/unterminated string", PostgreSQL, "SELECT '?, ?", "SELECT '?, ?"},
	{"mysql/backslash escapes the quote", MySQL, `SELECT 'a\'??', ??`, `SELECT 'a\'??', ?`},
	{"pg/same text, no backslash escapes", PostgreSQL, `SELECT 'a\'??', ??`, `SELECT 'a\'?', ??`},
	{"sqlite/no backslash escapes", SQLite, `SELECT 'a\'??', ??`, `SELECT 'a\'?', ??`},
	{"mysql/doubled quote", MySQL, "SELECT 'it''s ??', ??", "SELECT 'it''s ??', ?"},
	{"mysql/double quotes are a string with escapes", MySQL, `SELECT "a\"??", ??`, `SELECT "a\"??", ?`},

	// Quoted identifiers.
	{"pg/double quoted identifier", PostgreSQL, `SELECT "a?""b", ?`, `SELECT "a?""b", $1`},
	{"sqlite/double quoted identifier", SQLite, `SELECT "a??""b", ??`, `SELECT "a??""b", ?`},
	{"mysql/backticks", MySQL, "SELECT `a??``b`, ??", "SELECT `a??``b`, ?"},
	{"sqlite/backticks", SQLite, "SELECT `a??`, ??", "SELECT `a??`, ?"},
	{"pg/backticks are no quotes", PostgreSQL, "SELECT `?`", "SELECT `$1`"},
	{"sqlite/brackets", SQLite, "SELECT [a??], ??", "SELECT [a??], ?"},
	{"mysql/brackets are no quotes", MySQL, "SELECT [??]", "SELECT [?]"},
	{"pg/brackets are no quotes", PostgreSQL, "SELECT a[?]", "SELECT a[$1]"},

	// Comments.
	{"pg/line comment", PostgreSQL, "SELECT ? -- what?\n, ?", "SELECT $1 -- what?\n, $2"},
	{"pg/line comment at the end", PostgreSQL, "SELECT ? -- ?", "SELECT $1 -- ?"},
	{"pg/dashes need no space", PostgreSQL, "SELECT 1--?", "SELECT 1--?"},
	{"pg/one dash", PostgreSQL, "SELECT 1-?", "SELECT 1-$1"},
	{"pg/block comment", PostgreSQL, "SELECT /* ? */ ?", "SELECT /* ? */ $1"},
	{"pg/block comments nest", PostgreSQL, "SELECT /* /* ? */ ? */ ?", "SELECT /* /* ? */ ? */ $1"},
	{"pg/unterminated block comment", PostgreSQL, "SELECT /* ?", "SELECT /* ?"},
	{"pg/slash star star slash", PostgreSQL, "SELECT /*/ ? */ ?", "SELECT /*/ ? */ $1"},
	{"pg/division", PostgreSQL, "SELECT ?/?", "SELECT $1/$2"},
	{"sqlite/block comments do not nest", SQLite, "SELECT /* /* */ ??", "SELECT /* /* */ ?"},
	{"mysql/block comments do not nest", MySQL, "SELECT /* /* */ ??", "SELECT /* /* */ ?"},
	{"sqlite/line comment", SQLite, "SELECT ?? -- ??\n", "SELECT ? -- ??\n"},
	{"mysql/dashes need a space", MySQL, "SELECT 1--??", "SELECT 1--?"},
	{"mysql/dashes and a space", MySQL, "SELECT 1-- ??\n??", "SELECT 1-- ??\n?"},
	{"mysql/dashes and a tab", MySQL, "SELECT 1--\t??", "SELECT 1--\t??"},
	{"mysql/dashes at the end", MySQL, "SELECT ??--", "SELECT ?--"},
	{"mysql/hash comment", MySQL, "SELECT 1 # ??\n, ??", "SELECT 1 # ??\n, ?"},
	{"pg/hash is an operator", PostgreSQL, "SELECT 1 # ?", "SELECT 1 # $1"},
	{"sqlite/hash is no comment", SQLite, "SELECT 1 # ??", "SELECT 1 # ?"},

	// Dollar quotes.
	{"pg/dollar quote", PostgreSQL, "SELECT $$?$$, ?", "SELECT $$?$$, $1"},
	{"pg/tagged dollar quote", PostgreSQL, "SELECT $fn$ ? $$ ? $fn$, ?", "SELECT $fn$ ? $$ ? $fn$, $1"},
	{"pg/dollar quote with quotes inside", PostgreSQL, "DO $$ SELECT '?' $$; SELECT ?", "DO $$ SELECT '?' $$; SELECT $1"},
	{"pg/unterminated dollar quote", PostgreSQL, "SELECT $a$ ?", "SELECT $a$ ?"},
	{"pg/dollar inside an identifier", PostgreSQL, "SELECT x$y$ ?, z$y$", "SELECT x$y$ $1, z$y$"},
	{"pg/numbered parameter is no tag", PostgreSQL, "SELECT $1$ ?", "SELECT $1$ $1"},
	{"pg/lone dollar", PostgreSQL, "SELECT $ ?", "SELECT $ $1"},
	{"pg/non-ASCII tag", PostgreSQL, "SELECT $é$?$é$, ?", "SELECT $é$?$é$, $1"},
	{"sqlite/dollars are no quotes", SQLite, "SELECT $$??$$", "SELECT $$?$$"},

	// `??` is a literal `?` everywhere.
	{"pg/jsonb operator", PostgreSQL, "SELECT data ??| array['a'] FROM t WHERE id = ?", "SELECT data ?| array['a'] FROM t WHERE id = $1"},
	{"pg/escape then placeholder", PostgreSQL, "???", "?$1"},
	{"pg/two escapes", PostgreSQL, "????", "??"},
	{"pg/escape in a string stays", PostgreSQL, "SELECT '??', ??", "SELECT '??', ?"},
	{"mysql/escape", MySQL, "SELECT ?? FROM t WHERE a = ?", "SELECT ? FROM t WHERE a = ?"},
	{"mariadb/escape", MariaDB, "SELECT ??", "SELECT ?"},
	{"sqlite/escape", SQLite, "SELECT ??, ?", "SELECT ?, ?"},

	{"pg/non-ASCII text", PostgreSQL, "SELECT 'é?', ?, \"ü?\", ?", "SELECT 'é?', $1, \"ü?\", $2"},
}

func TestRebind(t *testing.T) {
	for _, tt := range rebindTests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.wantSQL, tt.d.Rebind(tt.input)); diff != "" {
				t.Errorf("Rebind(%q) mismatch (-want +got):\n%s", tt.input, diff)
			}
		})
	}
}

func TestRebindAllocs(t *testing.T) {
	const q = "SELECT a FROM t WHERE b = ? AND c = ?"
	tests := []struct {
		d     Dialect
		query string
		want  float64
	}{
		{PostgreSQL, "SELECT 1", 0},
		{PostgreSQL, q, 1},
		{MySQL, q, 0},
		{MySQL, "SELECT ??, ?", 1},
		{SQLite, q, 0},
	}
	for _, tt := range tests {
		got := testing.AllocsPerRun(100, func() { tt.d.Rebind(tt.query) })
		if got != tt.want {
			t.Errorf("%s.Rebind(%q): %v allocations, want %v", tt.d.Name(), tt.query, got, tt.want)
		}
	}
}

// intList is a list that is its own driver.Valuer (like pq.Int64Array), so
// Expand must pass it as one value.
type intList []int64

func (l intList) Value() (driver.Value, error) { return "{1,2}", nil }

type ids []int32

// foreign is a Dialect this package does not know: Expand must fall back to
// standard quoting and the wrapped dialect's Rebind.
type foreign struct{ Dialect }

func TestExpand(t *testing.T) {
	tests := []struct {
		name     string
		d        Dialect
		query    string
		args     []any
		wantSQL  string
		wantArgs []any
	}{
		{"pg/in list", PostgreSQL, "id IN (?)", []any{[]int64{1, 2, 3}}, "id IN ($1, $2, $3)", []any{int64(1), int64(2), int64(3)}},
		{"mysql/in list", MySQL, "id IN (?)", []any{[]int64{1, 2, 3}}, "id IN (?, ?, ?)", []any{int64(1), int64(2), int64(3)}},
		{"mariadb/in list", MariaDB, "id IN (?)", []any{[]int{1, 2}}, "id IN (?, ?)", []any{1, 2}},
		{"sqlite/in list", SQLite, "name IN (?)", []any{[]string{"a", "b"}}, "name IN (?, ?)", []any{"a", "b"}},
		{"pg/list then scalar", PostgreSQL, "a IN (?) AND b = ?", []any{[]string{"x", "y"}, 7}, "a IN ($1, $2) AND b = $3", []any{"x", "y", 7}},
		{"pg/scalar, list, scalar", PostgreSQL, "a = ? AND b IN (?) AND c = ?", []any{"s", []any{1, "two"}, nil}, "a = $1 AND b IN ($2, $3) AND c = $4", []any{"s", 1, "two", nil}},
		{"pg/two lists", PostgreSQL, "a IN (?) OR b IN (?)", []any{[]int{1}, []int{2, 3}}, "a IN ($1) OR b IN ($2, $3)", []any{1, 2, 3}},
		{"pg/array", PostgreSQL, "a IN (?)", []any{[3]int{1, 2, 3}}, "a IN ($1, $2, $3)", []any{1, 2, 3}},
		{"pg/named slice type", PostgreSQL, "a IN (?)", []any{ids{4, 5}}, "a IN ($1, $2)", []any{int32(4), int32(5)}},
		{"pg/slice of byte slices", PostgreSQL, "a IN (?)", []any{[][]byte{{1}, {2}}}, "a IN ($1, $2)", []any{[]byte{1}, []byte{2}}},
		{"pg/bytes are one value", PostgreSQL, "b = ?", []any{[]byte("ab")}, "b = $1", []any{[]byte("ab")}},
		{"pg/json.RawMessage is one value", PostgreSQL, "j = ?", []any{json.RawMessage(`[1]`)}, "j = $1", []any{json.RawMessage(`[1]`)}},
		{"pg/byte array is one value", PostgreSQL, "u = ?", []any{[4]byte{1, 2, 3, 4}}, "u = $1", []any{[4]byte{1, 2, 3, 4}}},
		{"pg/Valuer is one value", PostgreSQL, "a = ANY(?)", []any{intList{1, 2}}, "a = ANY($1)", []any{intList{1, 2}}},
		{"pg/no arguments", PostgreSQL, "SELECT 1", nil, "SELECT 1", nil},
		{"pg/scalars only", PostgreSQL, "a = ? AND b = ?", []any{1, "b"}, "a = $1 AND b = $2", []any{1, "b"}},
		{"mysql/scalars only", MySQL, "a = ? AND b = ?", []any{1, "b"}, "a = ? AND b = ?", []any{1, "b"}},
		{"pg/escape and list", PostgreSQL, "a ?? b AND c IN (?)", []any{[]int{1, 2}}, "a ? b AND c IN ($1, $2)", []any{1, 2}},
		{"mysql/escape and list", MySQL, "a ?? b AND c IN (?)", []any{[]int{1, 2}}, "a ? b AND c IN (?, ?)", []any{1, 2}},
		{"pg/quoted ? is no placeholder", PostgreSQL, "SELECT '?' WHERE a IN (?)", []any{[]int{1, 2}}, "SELECT '?' WHERE a IN ($1, $2)", []any{1, 2}},
		{"mysql/commented ? is no placeholder", MySQL, "SELECT 1 # ?\nWHERE a = ?", []any{1}, "SELECT 1 # ?\nWHERE a = ?", []any{1}},
		{"sqlite/backticked ? is no placeholder", SQLite, "SELECT `?` WHERE a IN (?)", []any{[]int{1, 2}}, "SELECT `?` WHERE a IN (?, ?)", []any{1, 2}},
		{"foreign/in list", foreign{PostgreSQL}, "id IN (?) AND '?' = ?", []any{[]int{1, 2}, 3}, "id IN ($1, $2) AND '?' = $3", []any{1, 2, 3}},
		{"foreign/escape reaches its Rebind", foreign{PostgreSQL}, "a ?? b AND c = ?", []any{1}, "a ? b AND c = $1", []any{1}},
		{"foreign/scalars only", foreign{MySQL}, "a = ?", []any{1}, "a = ?", []any{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotSQL, gotArgs, err := Expand(tt.d, tt.query, tt.args)
			if err != nil {
				t.Fatalf("Expand(%q): %v", tt.query, err)
			}
			if diff := cmp.Diff(tt.wantSQL, gotSQL); diff != "" {
				t.Errorf("SQL mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantArgs, gotArgs); diff != "" {
				t.Errorf("args mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		name    string
		d       Dialect
		query   string
		args    []any
		want    BindError
		wantMsg string
	}{
		{"too few arguments", PostgreSQL, "a = ? AND b = ?", []any{1},
			BindError{Placeholders: 2, Args: 1},
			"dialect: query has 2 placeholders but 1 argument was given (write ?? for a literal ?)"},
		{"too many arguments", MySQL, "a = ?", []any{1, 2},
			BindError{Placeholders: 1, Args: 2},
			"dialect: query has 1 placeholder but 2 arguments were given"},
		{"no placeholders", SQLite, "SELECT 1", []any{1},
			BindError{Placeholders: 0, Args: 1},
			"dialect: query has 0 placeholders but 1 argument was given"},
		{"quoted ? does not count", PostgreSQL, "SELECT '?'", []any{1},
			BindError{Placeholders: 0, Args: 1},
			"dialect: query has 0 placeholders but 1 argument was given"},
		{"escape does not count", MySQL, "SELECT ??", []any{1},
			BindError{Placeholders: 0, Args: 1},
			"dialect: query has 0 placeholders but 1 argument was given"},
		{"too few with a list", PostgreSQL, "a IN (?) AND b = ?", []any{[]int{1, 2}},
			BindError{Placeholders: 2, Args: 1},
			"dialect: query has 2 placeholders but 1 argument was given (write ?? for a literal ?)"},
		{"empty list", PostgreSQL, "a IN (?) AND b IN (?)", []any{[]int{1}, []int{}},
			BindError{Placeholders: 2, Args: 2, Empty: 2},
			"dialect: placeholder 2 is bound to an empty list; IN () is not valid SQL, so leave the condition out when the list is empty"},
		{"nil slice", MySQL, "a IN (?)", []any{[]string(nil)},
			BindError{Placeholders: 1, Args: 1, Empty: 1},
			"dialect: placeholder 1 is bound to an empty list; IN () is not valid SQL, so leave the condition out when the list is empty"},
		{"count is reported before an empty list", SQLite, "a IN (?)", []any{[]int{}, 1},
			BindError{Placeholders: 1, Args: 2},
			"dialect: query has 1 placeholder but 2 arguments were given"},
		{"foreign dialect", foreign{PostgreSQL}, "a = ?", nil,
			BindError{Placeholders: 1, Args: 0},
			"dialect: query has 1 placeholder but 0 arguments were given (write ?? for a literal ?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sql, args, err := Expand(tt.d, tt.query, tt.args)
			be, ok := errors.AsType[*BindError](err)
			if !ok {
				t.Fatalf("Expand(%q) = %q, %v, %v; want a *BindError", tt.query, sql, args, err)
			}
			tt.want.Query = tt.query
			if diff := cmp.Diff(tt.want, *be); diff != "" {
				t.Errorf("BindError mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMsg, err.Error()); diff != "" {
				t.Errorf("message mismatch (-want +got):\n%s", diff)
			}
			if sql != "" || args != nil {
				t.Errorf("Expand returned %q, %v with its error; want zero values", sql, args)
			}
		})
	}
}

// Expand must cost nothing over Rebind when no argument is a list.
func TestExpandAllocs(t *testing.T) {
	const q = "SELECT a FROM t WHERE b = ? AND c = ? AND d = '?'"
	args := []any{1, "x"}
	for _, d := range allDialects {
		rebind := testing.AllocsPerRun(100, func() { d.d.Rebind(q) })
		expand := testing.AllocsPerRun(100, func() {
			if _, _, err := Expand(d.d, q, args); err != nil {
				t.Fatal(err)
			}
		})
		if expand > rebind {
			t.Errorf("%s: Expand makes %v allocations, Rebind %v", d.name, expand, rebind)
		}
	}
	_, got, _ := Expand(PostgreSQL, q, args)
	if &got[0] != &args[0] {
		t.Error("Expand copied args that needed no expansion")
	}
}

// FuzzRebind checks Rebind against a marker rendering of the same scan: a
// copy of each dialect's syntax writes a NUL for each placeholder, which
// cannot be confused with the text around it.
func FuzzRebind(f *testing.F) {
	for _, tt := range rebindTests {
		f.Add(tt.input)
	}
	// More seeds, each mixing every quoting rule, are in testdata/fuzz.
	f.Fuzz(func(t *testing.T, q string) {
		q = strings.ReplaceAll(q, "\x00", "")
		for _, d := range allDialects {
			sx := *d.d.(syntaxer).syntax()
			sx.mark, sx.numbered = 0, false
			marked, n, _ := sx.rewrite(q, nil, false, 0)

			if got := strings.Count(marked, "\x00"); got != n {
				t.Fatalf("%s: %q: %d placeholders written, %d counted", d.name, q, got, n)
			}
			// Apart from placeholders and the `?` of escapes, the text is kept.
			strip := strings.NewReplacer("\x00", "", "?", "")
			if a, b := strip.Replace(q), strip.Replace(marked); a != b {
				t.Fatalf("%s: %q: text changed to %q", d.name, q, marked)
			}
			// Each `?` of the input is kept (quoted), a placeholder, or one of
			// the two of an escape, which leaves one: in = kept + n + 2e and
			// out = kept + e.
			in, out := strings.Count(q, "?"), strings.Count(marked, "?")
			if e := in - out - n; e < 0 || out < e {
				t.Fatalf("%s: %q: %d `?` in, %d out, %d placeholders", d.name, q, in, out, n)
			}

			want := marked
			if d.d == PostgreSQL {
				var b strings.Builder
				k := 0
				for part := range strings.SplitSeq(marked, "\x00") {
					if k > 0 {
						b.WriteString("$" + strconv.Itoa(k))
					}
					b.WriteString(part)
					k++
				}
				want = b.String()
			} else {
				want = strings.ReplaceAll(marked, "\x00", "?")
			}
			got := d.d.Rebind(q)
			if got != want {
				t.Fatalf("%s: Rebind(%q) = %q, want %q", d.name, q, got, want)
			}

			// Expand agrees on the count and the text, and expands lists.
			args := make([]any, n)
			sql, _, err := Expand(d.d, q, args)
			if err != nil || sql != got {
				t.Fatalf("%s: Expand(%q, %d args) = %q, %v; want %q", d.name, q, n, sql, err, got)
			}
			if _, _, err := Expand(d.d, q, append(args, 0)); err == nil {
				t.Fatalf("%s: Expand(%q) accepted %d args for %d placeholders", d.name, q, n+1, n)
			}
			for i := range args {
				args[i] = []int{1, 2}
			}
			if _, flat, err := Expand(d.d, q, args); err != nil || len(flat) != 2*n {
				t.Fatalf("%s: Expand(%q) with lists = %d args, %v; want %d", d.name, q, len(flat), err, 2*n)
			}
		}
	})
}

const benchQuery = "SELECT id, name, email FROM users WHERE org_id = ? AND status = ? " +
	"AND created_at > ? AND name LIKE 'a?%' AND role IN (?, ?) ORDER BY id"

func BenchmarkRebind(b *testing.B) {
	for _, d := range allDialects {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d.d.Rebind(benchQuery)
			}
		})
	}
}

func BenchmarkExpand(b *testing.B) {
	b.Run("scalars", func(b *testing.B) {
		args := []any{1, "active", "2024-01-01", "admin", "owner"}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Expand(PostgreSQL, benchQuery, args); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list", func(b *testing.B) {
		args := []any{[]int64{1, 2, 3, 4, 5, 6, 7, 8}}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Expand(PostgreSQL, "SELECT * FROM t WHERE id IN (?)", args); err != nil {
				b.Fatal(err)
			}
		}
	})
}
