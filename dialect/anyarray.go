package dialect

import (
	"reflect"
	"strings"
)

// arrayArg is a list that Expand binds as one array parameter instead of
// expanding it: listLen does not count it as a list, and Expand unwraps it.
type arrayArg struct{ v any }

// asArrays rewrites, for a database with array parameters, each
// `x IN (?)` whose argument is a typed list into `x = ANY(?)` (and
// `x NOT IN (?)` into `x <> ALL(?)`), with the list bound as one array:
// one parameter, however long the list. Lists elsewhere in the query, and
// []any lists (whose array type the driver cannot tell), are left as they
// are. It reports whether anything was rewritten.
func asArrays(sx *syntax, query string, args []any) (string, []any, bool) {
	var b strings.Builder
	var out []any
	last, n := 0, 0
	for i := sx.next(query, 0); i >= 0; i = sx.next(query, i+1) {
		if i+1 < len(query) && query[i+1] == '?' {
			i++ // `??`, a literal ?
			continue
		}
		n++
		if n > len(args) || !typedList(args[n-1]) {
			continue
		}
		in, notIn, ok := inBefore(query[last:i])
		close := strings.IndexByte(query[i+1:], ')')
		if !ok || close < 0 || strings.TrimSpace(query[i+1:i+1+close]) != "" {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		op := " = ANY("
		if notIn {
			op = " <> ALL("
		}
		b.WriteString(query[last : last+in])
		b.WriteString(op)
		b.WriteByte('?')
		b.WriteByte(')')
		last = i + 2 + close
		out[n-1] = arrayArg{args[n-1]}
	}
	if out == nil {
		return query, args, false
	}
	b.WriteString(query[last:])
	return b.String(), out, true
}

// typedList reports a slice with a concrete element type, which the driver
// can bind as an array.
func typedList(a any) bool {
	if _, ok := listLen(a); !ok {
		return false
	}
	t := reflect.TypeOf(a)
	return t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Interface
}

// inBefore finds, at the end of s (the text before a placeholder), the
// words `IN (` or `NOT IN (`, and returns where they start.
func inBefore(s string) (start int, not, ok bool) {
	t := strings.TrimRight(s, " \t\r\n")
	if !strings.HasSuffix(t, "(") {
		return 0, false, false
	}
	t = strings.TrimRight(t[:len(t)-1], " \t\r\n")
	if len(t) < 2 || !strings.EqualFold(t[len(t)-2:], "IN") || len(t) > 2 && isIdent(t[len(t)-3]) {
		return 0, false, false
	}
	t = strings.TrimRight(t[:len(t)-2], " \t\r\n")
	start = len(t)
	if len(t) >= 3 && strings.EqualFold(t[len(t)-3:], "NOT") && (len(t) == 3 || !isIdent(t[len(t)-4])) {
		return strings.LastIndexFunc(t[:len(t)-3], func(r rune) bool { return r != ' ' && r != '\t' && r != '\r' && r != '\n' }) + 1, true, true
	}
	return start, false, true
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
