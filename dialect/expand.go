package dialect

import (
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
)

// Expand rebinds query for d, as [Dialect.Rebind] does, and expands list
// arguments, so that `id IN (?)` can take a whole slice: on PostgreSQL,
// "id IN (?)" with []int64{1, 2, 3} becomes "id IN ($1, $2, $3)" with the
// arguments 1, 2, 3.
//
// A list is a slice or array bound to one `?`, unless it is a driver.Valuer
// or its elements are bytes ([]byte, json.RawMessage, [16]byte): those are
// one value, as in database/sql. Other arguments are passed through as they
// are.
//
// Expand returns a [*BindError] when the number of bare `?` differs from
// len(args), when a list is empty (an empty IN () is not valid SQL), or
// when the arguments, lists expanded, are more than d.MaxParams() — except
// on a database with array parameters (PostgreSQL), where `x IN (?)` and
// `x NOT IN (?)` with such a list are sent as `x = ANY($1)` and
// `x <> ALL($1)` with the list as one array.
// Without list arguments it allocates no more than Rebind, and returns args
// itself.
//
// For a Dialect not of this package, placeholders are found with standard SQL
// quoting rules and the expanded query is then passed to d.Rebind.
func Expand(d Dialect, query string, args []any) (string, []any, error) {
	sx, native := &ansiSyntax, false
	if s, ok := d.(syntaxer); ok {
		sx, native = s.syntax(), true
	}
	lists, extra, nlists := false, 0, 0
	count := func() {
		lists, extra, nlists = false, 0, 0
		for _, a := range args {
			if n, ok := listLen(a); ok {
				lists = true
				extra += n
				nlists++
			}
		}
	}
	count()
	arrays := false
	if total, limit := len(args)-nlists+extra, d.MaxParams(); limit > 0 && total > limit {
		// Where the database takes an array as one parameter, the typed
		// IN (?) lists of a statement over the limit become = ANY(?);
		// statements under it keep IN, whose plan and logged SQL users know.
		if native && d.Capabilities().ArrayParams {
			if query, args, arrays = asArrays(sx, query, args); arrays {
				count()
			}
		}
		// Refused before sending: the driver's own message for too many
		// parameters names neither the limit nor the list (and some
		// drivers wrap the count around 16 bits and fail in stranger ways).
		if total := len(args) - nlists + extra; total > limit {
			return "", nil, &BindError{Query: query, Args: total, Limit: limit, Dialect: d.Name()}
		}
	}
	var out string
	var n, empty int
	if !lists && native {
		// Rebind's fast paths, but the placeholders must still be counted.
		if strings.IndexByte(query, '?') < 0 {
			out = query
		} else {
			out, n, empty = sx.rewrite(query, nil, false, 0)
		}
	} else {
		out, n, empty = sx.rewrite(query, args, lists, extra)
	}
	if n != len(args) {
		return "", nil, &BindError{Query: query, Placeholders: n, Args: len(args)}
	}
	if empty > 0 {
		return "", nil, &BindError{Query: query, Placeholders: n, Args: len(args), Empty: empty}
	}
	if !native {
		out = d.Rebind(out)
	}
	if !lists && !arrays {
		return out, args, nil
	}
	flat := make([]any, 0, len(args)+extra)
	for _, a := range args {
		if _, ok := listLen(a); ok {
			flat = appendElems(flat, a)
		} else if aa, ok := a.(arrayArg); ok {
			flat = append(flat, aa.v)
		} else {
			flat = append(flat, a)
		}
	}
	return out, flat, nil
}

// BindError reports that the placeholders of a query do not fit its
// arguments. It is returned by [Expand].
type BindError struct {
	Query        string // the query as passed to Expand; not part of the message
	Placeholders int    // bare `?` placeholders found in Query
	Args         int    // arguments given
	Empty        int    // 1-based placeholder bound to an empty list; 0 if the counts differ
	// Limit is the dialect's parameter limit when the arguments, lists
	// expanded, are more than it (then Args is their number); else 0.
	Limit   int
	Dialect string // the dialect's name, set with Limit
}

// Error says what does not fit, and for a missing argument how to write a
// `?` that is not a placeholder.
func (e *BindError) Error() string {
	if e.Limit > 0 {
		return fmt.Sprintf("dialect: the query binds %d values, more than the %d parameters %s takes in one statement; "+
			"split the list into chunks of at most %d values (one query each), or select the keys with a subquery",
			e.Args, e.Limit, e.Dialect, e.Limit)
	}
	if e.Empty > 0 {
		return fmt.Sprintf("dialect: placeholder %d is bound to an empty list; "+
			"IN () is not valid SQL, so leave the condition out when the list is empty", e.Empty)
	}
	msg := fmt.Sprintf("dialect: query has %d placeholder%s but %d argument%s given",
		e.Placeholders, plural(e.Placeholders), e.Args, pluralWas(e.Args))
	if e.Placeholders > e.Args {
		msg += " (write ?? for a literal ?)"
	}
	return msg
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pluralWas(n int) string {
	if n == 1 {
		return " was"
	}
	return "s were"
}

// listLen reports whether a is a list argument for Expand, and its length.
func listLen(a any) (int, bool) {
	switch v := a.(type) {
	case nil, []byte, driver.Valuer, arrayArg:
		return 0, false
	case []any:
		return len(v), true
	case []string:
		return len(v), true
	case []int64:
		return len(v), true
	case []int:
		return len(v), true
	}
	t := reflect.TypeOf(a)
	if k := t.Kind(); (k == reflect.Slice || k == reflect.Array) && t.Elem().Kind() != reflect.Uint8 {
		return reflect.ValueOf(a).Len(), true
	}
	return 0, false
}

// appendElems appends the elements of the list a to dst.
func appendElems(dst []any, a any) []any {
	switch v := a.(type) {
	case []any:
		return append(dst, v...)
	case []string:
		for _, e := range v {
			dst = append(dst, e)
		}
		return dst
	case []int64:
		for _, e := range v {
			dst = append(dst, e)
		}
		return dst
	case []int:
		for _, e := range v {
			dst = append(dst, e)
		}
		return dst
	}
	rv := reflect.ValueOf(a)
	for i := range rv.Len() {
		dst = append(dst, rv.Index(i).Interface())
	}
	return dst
}
