package mapper

import (
	"fmt"
	"strconv"
	"strings"
)

// Tag is a parsed `db:"..."` struct tag.
type Tag struct {
	Name     string // column name; "" means "derive it from the field name"
	Skip     bool   // db:"-"
	PK       bool
	Auto     bool
	Version  bool
	Unique   bool
	Index    bool
	ReadOnly bool
	Size     int    // size=N; 0 when absent
	Type     string // type=SQLTYPE; "" when absent
	// Types holds the per-database overrides type.<dialect>=SQLTYPE.
	Types DialectTypes
	// Precision and Scale are precision=P and scale=S: the column is an
	// exact decimal, DECIMAL(P,S) or NUMERIC(P,S). Both 0 when absent.
	Precision, Scale int
	JSON             bool // json: the field's value is stored as JSON text
}

// DialectTypes are the DDL types a column declares for one database each
// (type.mysql=, type.postgres=, type.sqlite=); "" where it declares none.
type DialectTypes struct {
	MySQL, Postgres, SQLite string
}

// For returns the type declared for the dialect named name, or "".
func (d DialectTypes) For(name string) string {
	switch name {
	case "mysql":
		return d.MySQL
	case "postgres":
		return d.Postgres
	case "sqlite":
		return d.SQLite
	}
	return ""
}

// slot returns the field for dialect name; nil for a name Tally does not
// know, which is a typo: the override would silently never apply.
func (d *DialectTypes) slot(name string) *string {
	switch name {
	case "mysql":
		return &d.MySQL
	case "postgres":
		return &d.Postgres
	case "sqlite":
		return &d.SQLite
	}
	return nil
}

// splitOptions splits the options of a tag at the commas outside
// parentheses, so that type=DECIMAL(20,4) stays one option.
func splitOptions(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// TagError reports a malformed `db` or `rel` tag.
type TagError struct {
	Tag    string // the whole tag text
	Reason string
}

// Error quotes the tag and says what is wrong with it.
func (e *TagError) Error() string {
	return fmt.Sprintf("mapper: bad tag %q: %s", e.Tag, e.Reason)
}

// ParseTag parses the value of a `db` struct tag: a column name followed by
// comma-separated options (pk, auto, version, unique, index, readonly, json,
// size=N, precision=P, scale=S, type=SQLTYPE, type.<dialect>=SQLTYPE).
// Commas inside parentheses do not separate options, so
// type=DECIMAL(20,4) is one option. Unknown, repeated or malformed options
// are errors, so a typo never silently changes the schema.
func ParseTag(s string) (Tag, error) {
	var t Tag
	if s == "-" {
		t.Skip = true
		return t, nil
	}
	name, rest, hasOpts := strings.Cut(s, ",")
	name = strings.TrimSpace(name)
	if name == "-" {
		return t, &TagError{s, `"-" cannot take options`}
	}
	if err := checkIdent(name); err != nil {
		return t, &TagError{s, err.Error()}
	}
	t.Name = name
	if !hasOpts {
		return t, nil
	}
	seen := map[string]bool{}
	for _, opt := range splitOptions(rest) {
		opt = strings.TrimSpace(opt)
		key, val, hasVal := strings.Cut(opt, "=")
		if key == "" {
			return t, &TagError{s, "empty option"}
		}
		if seen[key] {
			return t, &TagError{s, fmt.Sprintf("option %q repeated", key)}
		}
		seen[key] = true
		flag := map[string]*bool{
			"pk": &t.PK, "auto": &t.Auto, "version": &t.Version, "unique": &t.Unique,
			"index": &t.Index, "readonly": &t.ReadOnly, "json": &t.JSON,
		}[key]
		switch {
		case flag != nil:
			if hasVal {
				return t, &TagError{s, fmt.Sprintf("option %q takes no value", key)}
			}
			*flag = true
		case key == "size":
			n, err := strconv.Atoi(val)
			if !hasVal || err != nil || n <= 0 || n > 1<<24 {
				return t, &TagError{s, fmt.Sprintf("size must be a positive integer, got %q", val)}
			}
			t.Size = n
		case key == "precision" || key == "scale":
			n, err := strconv.Atoi(val)
			// 65 is MySQL's largest DECIMAL precision, 30 its largest scale;
			// PostgreSQL allows more, but a model must fit every database.
			limit, least := 65, 1
			if key == "scale" {
				limit, least = 30, 0
			}
			if !hasVal || err != nil || n < least || n > limit {
				return t, &TagError{s, fmt.Sprintf("%s must be an integer from %d to %d, got %q", key, least, limit, val)}
			}
			if key == "scale" {
				t.Scale = n
			} else {
				t.Precision = n
			}
		case key == "type" || strings.HasPrefix(key, "type."):
			val = strings.TrimSpace(val)
			if !hasVal || val == "" {
				return t, &TagError{s, "type needs a value, e.g. type=BIGINT"}
			}
			if strings.Count(val, "(") != strings.Count(val, ")") {
				return t, &TagError{s, fmt.Sprintf("type %q has unbalanced parentheses", val)}
			}
			if key == "type" {
				t.Type = val
				continue
			}
			slot := t.Types.slot(strings.TrimPrefix(key, "type."))
			if slot == nil {
				return t, &TagError{s, fmt.Sprintf("option %q names no database Tally knows (known: type.mysql, type.postgres, type.sqlite)", key)}
			}
			*slot = val
		default:
			return t, &TagError{s, fmt.Sprintf("unknown option %q (known: pk, auto, version, unique, index, readonly, json, size=N, precision=P, scale=S, type=T, type.<db>=T)", key)}
		}
	}
	if t.Version && (t.PK || t.Auto) {
		return t, &TagError{s, "a version column cannot also be pk or auto"}
	}
	if t.Scale > 0 && t.Precision == 0 {
		return t, &TagError{s, "scale needs a precision too, e.g. precision=20,scale=4"}
	}
	if t.Scale > t.Precision {
		return t, &TagError{s, fmt.Sprintf("scale %d is larger than precision %d", t.Scale, t.Precision)}
	}
	return t, nil
}

// RelTag is a parsed `rel:"column[,cascade]"` struct tag.
type RelTag struct {
	Column  string
	Cascade bool
}

// ParseRelTag parses the value of a `rel` struct tag.
func ParseRelTag(s string) (RelTag, error) {
	var r RelTag
	col, rest, hasOpts := strings.Cut(s, ",")
	col = strings.TrimSpace(col)
	if col == "" {
		return r, &TagError{s, "rel needs the foreign-key column name"}
	}
	if err := checkIdent(col); err != nil {
		return r, &TagError{s, err.Error()}
	}
	r.Column = col
	if hasOpts {
		for _, opt := range strings.Split(rest, ",") {
			switch strings.TrimSpace(opt) {
			case "cascade":
				if r.Cascade {
					return r, &TagError{s, `option "cascade" repeated`}
				}
				r.Cascade = true
			default:
				return r, &TagError{s, fmt.Sprintf("unknown rel option %q (known: cascade)", opt)}
			}
		}
	}
	return r, nil
}

// checkIdent rejects column names that could not be a plain identifier.
// Names are always quoted in SQL, so this is about catching typos and
// smuggled SQL early, not about safety.
func checkIdent(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("name %q is longer than 64 characters", name)
	}
	for i, r := range name {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9'
		if !ok {
			return fmt.Errorf("name %q: only letters, digits and _ are allowed, not starting with a digit", name)
		}
	}
	return nil
}
