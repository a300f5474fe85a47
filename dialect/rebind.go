package dialect

import (
	"strconv"
	"strings"
)

// Tally writes every query with the portable `?` placeholder and rebinds it
// once, just before it reaches the driver. One scanner serves all dialects;
// a syntax value says which lexical rules of its database decide whether a
// `?` is a placeholder or text.
//
// The scanner assumes each server's default settings: MySQL without
// ANSI_QUOTES or NO_BACKSLASH_ESCAPES, PostgreSQL with
// standard_conforming_strings on (the default since 9.1). MySQL's
// executable comments (/*! ... */) are comments here. Only a bare `?` is
// a placeholder; `??` is a literal `?` everywhere, so that PostgreSQL's jsonb
// operators (`??|`, `??&`) can be written in a portable query. Numbered or
// named native placeholders ($1, ?1, :name) are not recognised and must not
// be mixed with `?`.

// syntax is what the placeholder scanner must know of a dialect.
type syntax struct {
	mark        byte // the placeholder character written out: '?' or '$'
	numbered    bool // mark is followed by the placeholder's 1-based number ($1)
	keepEscapes bool // leave `??` alone: another Rebind resolves it later

	backslash     bool // '...' and "..." strings honour backslash escapes (MySQL)
	backtick      bool // `...` quotes an identifier (MySQL, SQLite)
	brackets      bool // [...] quotes an identifier (SQLite)
	hashComment   bool // # starts a line comment (MySQL)
	dashSpace     bool // -- starts a comment only before a space or control character (MySQL)
	nestedComment bool // /* */ comments nest (PostgreSQL)
	dollarQuote   bool // $$...$$ and $tag$...$tag$ are strings (PostgreSQL)
	escapeString  bool // E'...' strings honour backslash escapes (PostgreSQL)
}

// The syntaxes are never written after initialisation.
var (
	mysqlSyntax = syntax{
		mark:        '?',
		backslash:   true,
		backtick:    true,
		hashComment: true,
		dashSpace:   true,
	}
	postgresSyntax = syntax{
		mark:          '$',
		numbered:      true,
		nestedComment: true,
		dollarQuote:   true,
		escapeString:  true,
	}
	sqliteSyntax = syntax{
		mark:     '?',
		backtick: true,
		brackets: true,
	}
	// ansiSyntax scans for a Dialect this package does not know: standard
	// quotes and comments only, and `??` kept for that Dialect's own Rebind.
	ansiSyntax = syntax{
		mark:        '?',
		keepEscapes: true,
	}
)

// syntaxer is implemented by this package's dialects, so that [Expand] can
// rebind and expand in one pass.
type syntaxer interface {
	syntax() *syntax
}

// rebind is Rebind for every dialect of this package.
func (sx *syntax) rebind(q string) string {
	if strings.IndexByte(q, '?') < 0 {
		return q
	}
	// With `?` as the native placeholder only an escape changes the text.
	if sx.mark == '?' && !sx.numbered && !strings.Contains(q, "??") {
		return q
	}
	out, _, _ := sx.rewrite(q, nil, false, 0)
	return out
}

// rewrite is the single pass behind Rebind and Expand. It replaces every bare
// `?` of q by the native placeholder and resolves `??` escapes. When lists is
// true, a placeholder whose argument is a list (see listLen) becomes one
// placeholder per element; extra is a hint of how many elements that adds.
//
// It returns the new query (q itself, without allocating, when nothing
// changed), the number of bare placeholders n, and the 1-based index of the
// first placeholder bound to an empty list, or 0.
func (sx *syntax) rewrite(q string, args []any, lists bool, extra int) (out string, n, empty int) {
	var b strings.Builder
	last := 0 // q[last:] is not yet in b
	emitted := 0
	i := sx.next(q, 0)
	for i >= 0 {
		if i+1 < len(q) && q[i+1] == '?' { // `??`: a literal `?`
			if !sx.keepEscapes {
				sx.start(&b, q, i, extra)
				b.WriteString(q[last : i+1])
				last = i + 2
			}
			i = sx.next(q, i+2)
			continue
		}
		n++
		elems, list := 1, false
		if lists && n <= len(args) {
			elems, list = listLen(args[n-1])
			if !list {
				elems = 1
			} else if elems == 0 && empty == 0 {
				empty = n
			}
		}
		if !list && !sx.numbered && sx.mark == '?' {
			emitted++ // written as it stands in q
		} else {
			sx.start(&b, q, i, extra)
			b.WriteString(q[last:i])
			last = i + 1
			for e := range elems {
				if e > 0 {
					b.WriteString(", ")
				}
				emitted++
				sx.writeMark(&b, emitted)
			}
		}
		i = sx.next(q, i+1)
	}
	if b.Cap() == 0 {
		return q, n, empty
	}
	b.WriteString(q[last:])
	return b.String(), n, empty
}

// start sizes b, once, before the first write: about one allocation per
// rewritten query. i is the position of the first change.
func (sx *syntax) start(b *strings.Builder, q string, i, extra int) {
	if b.Cap() > 0 {
		return
	}
	marks := strings.Count(q[i:], "?") + extra
	width := 1
	if sx.numbered {
		width += digits(marks)
	}
	b.Grow(len(q) + marks*(width+2))
}

// writeMark writes the k-th placeholder.
func (sx *syntax) writeMark(b *strings.Builder, k int) {
	b.WriteByte(sx.mark)
	if sx.numbered {
		var num [20]byte
		b.Write(strconv.AppendInt(num[:0], int64(k), 10))
	}
}

// digits is the number of decimal digits of n >= 0.
func digits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// next returns the index of the first `?` at or after i that is neither in a
// quoted string or identifier nor in a comment, or -1 if there is none.
// Unterminated quotes and comments run to the end of q.
func (sx *syntax) next(q string, i int) int {
	for i < len(q) {
		if !maybeSpecial[q[i]] {
			i++
			continue
		}
		switch q[i] {
		case '?':
			return i
		case '\'':
			i = skipQuoted(q, i+1, '\'', sx.backslash)
		case '"':
			i = skipQuoted(q, i+1, '"', sx.backslash)
		case '`':
			if sx.backtick {
				i = skipQuoted(q, i+1, '`', false)
			} else {
				i++
			}
		case '[':
			if sx.brackets {
				i = skipPast(q, i+1, ']')
			} else {
				i++
			}
		case '-':
			if i+1 < len(q) && q[i+1] == '-' && (!sx.dashSpace || i+2 == len(q) || q[i+2] <= ' ') {
				i = skipPast(q, i+2, '\n')
			} else {
				i++
			}
		case '#':
			if sx.hashComment {
				i = skipPast(q, i+1, '\n')
			} else {
				i++
			}
		case '/':
			if i+1 < len(q) && q[i+1] == '*' {
				i = skipComment(q, i+2, sx.nestedComment)
			} else {
				i++
			}
		case '$':
			// In PostgreSQL `$` may also continue an identifier (a$b).
			if sx.dollarQuote && (i == 0 || !isIdentByte(q[i-1])) {
				i = skipDollar(q, i)
			} else {
				i++
			}
		case 'E', 'e':
			if sx.escapeString && i+1 < len(q) && q[i+1] == '\'' && (i == 0 || !isIdentByte(q[i-1])) {
				i = skipQuoted(q, i+2, '\'', true)
			} else {
				i++
			}
		default:
			i++
		}
	}
	return -1
}

// maybeSpecial marks the bytes that may start a placeholder, a quote or a
// comment in some dialect; next passes over all others without a switch.
var maybeSpecial = [256]bool{
	'?': true, '\'': true, '"': true, '`': true, '[': true,
	'-': true, '#': true, '/': true, '$': true, 'E': true, 'e': true,
}

// skipQuoted returns the index just past the quote that closes a quoted run
// starting at i. A doubled quote stands for itself; with backslash, so does
// any byte after a backslash.
func skipQuoted(q string, i int, quote byte, backslash bool) int {
	for i < len(q) {
		switch c := q[i]; {
		case c == quote:
			if i+1 < len(q) && q[i+1] == quote {
				i += 2
				continue
			}
			return i + 1
		case c == '\\' && backslash:
			i += 2
		default:
			i++
		}
	}
	return len(q)
}

// skipPast returns the index just past the first c at or after i.
func skipPast(q string, i int, c byte) int {
	if j := strings.IndexByte(q[i:], c); j >= 0 {
		return i + j + 1
	}
	return len(q)
}

// skipComment returns the index just past the */ that closes a block comment
// whose body starts at i.
func skipComment(q string, i int, nested bool) int {
	depth := 1
	for i+1 < len(q) {
		switch {
		case q[i] == '*' && q[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		case nested && q[i] == '/' && q[i+1] == '*':
			depth++
			i += 2
		default:
			i++
		}
	}
	return len(q)
}

// skipDollar handles a `$` at i that does not continue an identifier. If it
// opens a dollar-quoted string ($$ or $tag$) it returns the index past the
// closing delimiter; otherwise (a $1 parameter, a lone $) the index after i.
func skipDollar(q string, i int) int {
	j := i + 1
	if j < len(q) && q[j] >= '0' && q[j] <= '9' {
		return i + 1 // a tag does not start with a digit
	}
	for j < len(q) && q[j] != '$' && isIdentByte(q[j]) {
		j++
	}
	if j >= len(q) || q[j] != '$' {
		return i + 1
	}
	tag := q[i : j+1]
	if k := strings.Index(q[j+1:], tag); k >= 0 {
		return j + 1 + k + len(tag)
	}
	return len(q)
}

// isIdentByte reports whether c may continue an unquoted identifier
// (PostgreSQL accepts `$` and any non-ASCII byte there).
func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
