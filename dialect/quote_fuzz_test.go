package dialect

import (
	"strings"
	"testing"
)

// FuzzQuote checks identifier quoting on every dialect, alone and under
// placeholder rewriting: Quote(s) is s between the dialect's quote
// characters with each one inside doubled, so that undoubling gives s back;
// and a quoted identifier is one token to Rebind and Expand — a `?`, a
// quote of another kind or a comment marker inside it is never taken for
// a placeholder or the end of the identifier.
//
// Seeds are in the top-level testdata/fuzz/FuzzQuote; run it with
//
//	go test -run '^$' -fuzz '^FuzzQuote$' ./dialect/
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"users", "", "a`b", `a"b`, "?", "'?'", "--?", "/*?*/", "$1", "$$?$$", "é?", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, d := range allDialects {
			q := d.d.Quote(s)
			mark := q[:1]
			if len(q) < 2 || q[len(q)-1:] != mark || (mark != "`" && mark != `"`) {
				t.Fatalf("%s: Quote(%q) = %q: not between one kind of quote", d.name, s, q)
			}
			inner := q[1 : len(q)-1]
			if strings.Count(inner, mark)%2 != 0 || strings.ReplaceAll(inner, mark+mark, mark) != s {
				t.Fatalf("%s: Quote(%q) = %q: does not undouble to the identifier", d.name, s, q)
			}
			if strings.Contains(s, "\x00") {
				continue // no database takes NUL in a name; Rebind's scan is FuzzRebind's
			}
			query := "SELECT ? FROM " + q + " WHERE " + q + " = ?"
			got := d.d.Rebind(query)
			want := "SELECT ? FROM " + q + " WHERE " + q + " = ?"
			if d.d == PostgreSQL {
				want = "SELECT $1 FROM " + q + " WHERE " + q + " = $2"
			}
			if got != want {
				t.Fatalf("%s: Rebind(%q) = %q, want %q: the quoted identifier was not one token", d.name, query, got, want)
			}
			if _, args, err := Expand(d.d, query, []any{1, []int{2, 3}}); err != nil || len(args) != 3 {
				t.Fatalf("%s: Expand(%q, 2 args) = %d args, %v; want 3 args", d.name, query, len(args), err)
			}
		}
	})
}
