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
	// Created, Updated and SoftDelete are the time columns Tally sets
	// itself: at insert (created, updated), at each UPDATE that writes
	// something (updated), and when Delete soft-deletes the row (softdelete).
	Created, Updated, SoftDelete bool
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
// created, updated, softdelete, size=N, precision=P, scale=S, type=SQLTYPE, type.<dialect>=SQLTYPE).
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
			"created": &t.Created, "updated": &t.Updated, "softdelete": &t.SoftDelete,
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
			return t, &TagError{s, fmt.Sprintf("unknown option %q (known: pk, auto, version, unique, index, readonly, json, created, updated, softdelete, size=N, precision=P, scale=S, type=T, type.<db>=T)", key)}
		}
	}
	if t.Version && (t.PK || t.Auto) {
		return t, &TagError{s, "a version column cannot also be pk or auto"}
	}
	if reason := t.checkTimeOptions(); reason != "" {
		return t, &TagError{s, reason}
	}
	if t.Scale > 0 && t.Precision == 0 {
		return t, &TagError{s, "scale needs a precision too, e.g. precision=20,scale=4"}
	}
	if t.Scale > t.Precision {
		return t, &TagError{s, fmt.Sprintf("scale %d is larger than precision %d", t.Scale, t.Precision)}
	}
	return t, nil
}

// RelTag is a parsed `rel` struct tag. The forms are:
//
//	rel:"column[,cascade]"          belongs-to on a *T field (column on this table),
//	                                has-many on a []*T field (column on T's table)
//	rel:"column,hasone[,cascade]"   has-one on a *T field (column on T's table)
//	rel:"m2m=join(this_col,t_col)"  many-to-many on a []*T field, through the
//	                                join table join: this_col references this
//	                                table's key, t_col T's key
type RelTag struct {
	Column  string // the foreign-key column; "" for m2m
	Cascade bool
	HasOne  bool
	// Join, JoinLeft and JoinRight are the join table of an m2m relation
	// and its two columns (this side, the other side); "" otherwise.
	Join, JoinLeft, JoinRight string
}

// ParseRelTag parses the value of a `rel` struct tag (see [RelTag]).
func ParseRelTag(s string) (RelTag, error) {
	var r RelTag
	if rest, ok := strings.CutPrefix(strings.TrimSpace(s), "m2m="); ok {
		return parseM2M(s, rest)
	}
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
			flag := map[string]*bool{"cascade": &r.Cascade, "hasone": &r.HasOne}[strings.TrimSpace(opt)]
			if flag == nil {
				return r, &TagError{s, fmt.Sprintf("unknown rel option %q (known: cascade, hasone)", opt)}
			}
			if *flag {
				return r, &TagError{s, fmt.Sprintf("option %q repeated", strings.TrimSpace(opt))}
			}
			*flag = true
		}
	}
	return r, nil
}

// parseM2M parses what follows "m2m=": join(left,right). It takes no
// options: join rows always go with either side's row, so there is
// nothing for cascade to choose.
func parseM2M(s, rest string) (RelTag, error) {
	var r RelTag
	const form = "m2m needs the form m2m=join_table(this_col,other_col)"
	open := strings.IndexByte(rest, '(')
	closing := strings.IndexByte(rest, ')')
	if open < 0 || closing < open {
		return r, &TagError{s, form}
	}
	if tail := strings.TrimSpace(rest[closing+1:]); tail != "" {
		if strings.HasPrefix(tail, ",") {
			return r, &TagError{s, fmt.Sprintf("an m2m relation takes no options, got %q (its join rows are always deleted with either side)", strings.TrimSpace(tail[1:]))}
		}
		return r, &TagError{s, form}
	}
	left, right, ok := strings.Cut(rest[open+1:closing], ",")
	if !ok || strings.Contains(right, ",") {
		return r, &TagError{s, form}
	}
	r.Join = strings.TrimSpace(rest[:open])
	r.JoinLeft, r.JoinRight = strings.TrimSpace(left), strings.TrimSpace(right)
	for _, name := range []string{r.Join, r.JoinLeft, r.JoinRight} {
		if name == "" {
			return RelTag{}, &TagError{s, form}
		}
		if err := checkIdent(name); err != nil {
			return RelTag{}, &TagError{s, err.Error()}
		}
	}
	if r.JoinLeft == r.JoinRight {
		return RelTag{}, &TagError{s, fmt.Sprintf("the two join columns must differ, both are %q", r.JoinLeft)}
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

// checkTimeOptions says why the created, updated and softdelete options
// of t do not go together with its others, or "". Each names a column
// whose value Tally sets, so it cannot also be one the database or the
// caller owns (pk, auto, version, readonly), nor two of them at once.
func (t Tag) checkTimeOptions() string {
	n := 0
	for _, b := range []bool{t.Created, t.Updated, t.SoftDelete} {
		if b {
			n++
		}
	}
	switch {
	case n == 0:
		return ""
	case n > 1:
		return "created, updated and softdelete exclude each other: give each its own column"
	case t.PK || t.Auto || t.Version || t.ReadOnly || t.JSON:
		return "a created, updated or softdelete column cannot also be pk, auto, version, readonly or json"
	}
	return ""
}
