package mapper

import (
	"strings"
	"unicode"
)

// SnakeCase turns a Go identifier into a column name: "AccountID" →
// "account_id", "HTTPServer" → "http_server", "CreatedAt" → "created_at".
func SnakeCase(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			// A new word starts at an upper-case letter that follows a
			// lower-case letter or digit, or that ends an acronym
			// ("HTTPServer": the S starts "server").
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				(unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// plural is the default table name of a type: its snake_case name in the
// plural by the common English rules ("entry" → "entries", "box" →
// "boxes", "account" → "accounts"). TableName() overrides it for the rest.
func plural(s string) string {
	switch {
	case s == "":
		return s
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiou", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	case strings.HasSuffix(s, "s"), strings.HasSuffix(s, "x"), strings.HasSuffix(s, "z"),
		strings.HasSuffix(s, "ch"), strings.HasSuffix(s, "sh"):
		return s + "es"
	}
	return s + "s"
}
