package mapper

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

const knownOptions = "(known: pk, auto, version, unique, index, readonly, json, created, updated, softdelete, size=N, precision=P, scale=S, type=T, type.<db>=T)"

func TestParseTag(t *testing.T) {
	tests := []struct {
		in   string
		want Tag
	}{
		{"", Tag{}},
		{"id", Tag{Name: "id"}},
		{"-", Tag{Skip: true}},
		{",pk", Tag{PK: true}},
		{",readonly", Tag{ReadOnly: true}},
		{"id,pk", Tag{Name: "id", PK: true}},
		{"id,pk,auto", Tag{Name: "id", PK: true, Auto: true}},
		{"version,version", Tag{Name: "version", Version: true}},
		{"owner,unique", Tag{Name: "owner", Unique: true}},
		{"owner,index", Tag{Name: "owner", Index: true}},
		{"total,readonly", Tag{Name: "total", ReadOnly: true}},
		{"name,size=64", Tag{Name: "name", Size: 64}},
		{"name,size=1", Tag{Name: "name", Size: 1}},
		{"name,size=16777216", Tag{Name: "name", Size: 1 << 24}},
		{"amount,type=BIGINT", Tag{Name: "amount", Type: "BIGINT"}},
		{"amount,type=NUMERIC(12)", Tag{Name: "amount", Type: "NUMERIC(12)"}},
		{"amount,type= DOUBLE PRECISION ", Tag{Name: "amount", Type: "DOUBLE PRECISION"}},
		// Parentheses are counted, not matched: the check is there to catch
		// a comma split, which always leaves them unbalanced.
		{"amount,type=NUMERIC)12(", Tag{Name: "amount", Type: "NUMERIC)12("}},
		{"x,type=a=b", Tag{Name: "x", Type: "a=b"}},
		{"_x9,pk", Tag{Name: "_x9", PK: true}},
		{" id , pk , auto ", Tag{Name: "id", PK: true, Auto: true}},
		{strings.Repeat("a", 64), Tag{Name: strings.Repeat("a", 64)}},
		{
			"code,pk,auto,unique,index,readonly,size=8,type=CHAR(8)",
			Tag{Name: "code", PK: true, Auto: true, Unique: true, Index: true, ReadOnly: true, Size: 8, Type: "CHAR(8)"},
		},
		{"rev,version,unique,index,readonly", Tag{Name: "rev", Version: true, Unique: true, Index: true, ReadOnly: true}},
	}
	for _, tt := range tests {
		got, err := ParseTag(tt.in)
		if err != nil {
			t.Errorf("ParseTag(%q): unexpected error %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseTag(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseTagErrors(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"id,bogus", `unknown option "bogus" ` + knownOptions},
		{"id,PK", `unknown option "PK" ` + knownOptions},
		{"id,size =5", `unknown option "size " ` + knownOptions},
		{"id,pk,pk", `option "pk" repeated`},
		{"id,size=1,size=2", `option "size" repeated`},
		{"id,type=INT,type=INT", `option "type" repeated`},
		{"id,pk=1", `option "pk" takes no value`},
		{"id,auto=", `option "auto" takes no value`},
		{"id,readonly=true", `option "readonly" takes no value`},
		{"id,size=abc", `size must be a positive integer, got "abc"`},
		{"id,size=0", `size must be a positive integer, got "0"`},
		{"id,size=-1", `size must be a positive integer, got "-1"`},
		{"id,size=", `size must be a positive integer, got ""`},
		{"id,size", `size must be a positive integer, got ""`},
		{"id,size=1.5", `size must be a positive integer, got "1.5"`},
		{"id,size=16777217", `size must be a positive integer, got "16777217"`},
		{"id,type=", `type needs a value, e.g. type=BIGINT`},
		{"id,type", `type needs a value, e.g. type=BIGINT`},
		{"id,type=   ", `type needs a value, e.g. type=BIGINT`},
		{"amount,type=NUMERIC(12", `type "NUMERIC(12" has unbalanced parentheses`},
		{"-,pk", `"-" cannot take options`},
		{"-,", `"-" cannot take options`},
		{"id,", "empty option"},
		{"id,,pk", "empty option"},
		{"id,=5", "empty option"},
		{"1id", `name "1id": only letters, digits and _ are allowed, not starting with a digit`},
		{"my-col,pk", `name "my-col": only letters, digits and _ are allowed, not starting with a digit`},
		{"a b", `name "a b": only letters, digits and _ are allowed, not starting with a digit`},
		{"naïve", `name "naïve": only letters, digits and _ are allowed, not starting with a digit`},
		{"x;drop table y", `name "x;drop table y": only letters, digits and _ are allowed, not starting with a digit`},
		{`"id"`, `name "\"id\"": only letters, digits and _ are allowed, not starting with a digit`},
		{strings.Repeat("a", 65), `name "` + strings.Repeat("a", 65) + `" is longer than 64 characters`},
		{"rev,version,pk", "a version column cannot also be pk or auto"},
		{"rev,auto,version", "a version column cannot also be pk or auto"},
		{"at,created,updated", "created, updated and softdelete exclude each other: give each its own column"},
		{"at,softdelete,pk", "a created, updated or softdelete column cannot also be pk, auto, version, readonly or json"},
		{"at,updated,readonly", "a created, updated or softdelete column cannot also be pk, auto, version, readonly or json"},
		{"at,created=1", `option "created" takes no value`},
	}
	for _, tt := range tests {
		_, err := ParseTag(tt.in)
		var te *TagError
		if !errors.As(err, &te) {
			t.Errorf("ParseTag(%q) error = %v, want a *TagError", tt.in, err)
			continue
		}
		if te.Tag != tt.in || te.Reason != tt.reason {
			t.Errorf("ParseTag(%q) = TagError{%q, %q}, want reason %q", tt.in, te.Tag, te.Reason, tt.reason)
		}
		if want := "mapper: bad tag " + strconv.Quote(tt.in) + ": " + tt.reason; err.Error() != want {
			t.Errorf("ParseTag(%q).Error() = %q, want %q", tt.in, err.Error(), want)
		}
	}
}

func TestParseRelTag(t *testing.T) {
	tests := []struct {
		in     string
		want   RelTag
		reason string // "" when the tag is valid
	}{
		{in: "account_id", want: RelTag{Column: "account_id"}},
		{in: "account_id,cascade", want: RelTag{Column: "account_id", Cascade: true}},
		{in: " account_id , cascade ", want: RelTag{Column: "account_id", Cascade: true}},
		{in: "", reason: "rel needs the foreign-key column name"},
		{in: " ", reason: "rel needs the foreign-key column name"},
		{in: ",cascade", reason: "rel needs the foreign-key column name"},
		{in: "account_id,cascade,cascade", reason: `option "cascade" repeated`},
		{in: "account_id,delete", reason: `unknown rel option "delete" (known: cascade, hasone)`},
		{in: "account_id,", reason: `unknown rel option "" (known: cascade, hasone)`},
		{in: "account_id,pk", reason: `unknown rel option "pk" (known: cascade, hasone)`},
		{in: "1account", reason: `name "1account": only letters, digits and _ are allowed, not starting with a digit`},
		{in: "account.id", reason: `name "account.id": only letters, digits and _ are allowed, not starting with a digit`},
		// has-one: the column is on the other table.
		{in: "user_id,hasone", want: RelTag{Column: "user_id", HasOne: true}},
		{in: "user_id, cascade ,hasone", want: RelTag{Column: "user_id", HasOne: true, Cascade: true}},
		{in: "user_id,hasone,hasone", reason: `option "hasone" repeated`},
		{in: "hasone", want: RelTag{Column: "hasone"}}, // a column may be named so
		// many-to-many through a join table.
		{in: "m2m=post_tags(post_id,tag_id)", want: RelTag{Join: "post_tags", JoinLeft: "post_id", JoinRight: "tag_id"}},
		{in: " m2m= post_tags ( post_id , tag_id ) ", want: RelTag{Join: "post_tags", JoinLeft: "post_id", JoinRight: "tag_id"}},
		{in: "m2m=post_tags", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=post_tags(post_id)", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=post_tags(post_id,tag_id,x)", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=post_tags(post_id,tag_id", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=post_tags)post_id,tag_id(", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=(post_id,tag_id)", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=post_tags(,tag_id)", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=post_tags(post_id,tag_id)x", reason: "m2m needs the form m2m=join_table(this_col,other_col)"},
		{in: "m2m=post_tags(post_id,tag_id),cascade", reason: `an m2m relation takes no options, got "cascade" (its join rows are always deleted with either side)`},
		{in: "m2m=post tags(post_id,tag_id)", reason: `name "post tags": only letters, digits and _ are allowed, not starting with a digit`},
		{in: "m2m=post_tags(post_id,tag-id)", reason: `name "tag-id": only letters, digits and _ are allowed, not starting with a digit`},
		{in: "m2m=post_tags(id,id)", reason: `the two join columns must differ, both are "id"`},
	}
	for _, tt := range tests {
		got, err := ParseRelTag(tt.in)
		if tt.reason == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseRelTag(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
			}
			continue
		}
		var te *TagError
		if !errors.As(err, &te) || te.Reason != tt.reason || te.Tag != tt.in {
			t.Errorf("ParseRelTag(%q) error = %#v, want a *TagError with reason %q", tt.in, err, tt.reason)
		}
	}
}

// renderTag writes t back as tag text, options in a fixed order.
func renderTag(t Tag) string {
	if t.Skip {
		return "-"
	}
	var b strings.Builder
	b.WriteString(t.Name)
	for _, o := range []struct {
		on   bool
		name string
	}{{t.PK, "pk"}, {t.Auto, "auto"}, {t.Version, "version"}, {t.Unique, "unique"}, {t.Index, "index"}, {t.ReadOnly, "readonly"}} {
		if o.on {
			b.WriteString("," + o.name)
		}
	}
	if t.Size != 0 {
		b.WriteString(",size=" + strconv.Itoa(t.Size))
	}
	if t.Type != "" {
		b.WriteString(",type=" + t.Type)
	}
	return b.String()
}

// fuzzSeeds are shared by FuzzParseTag's in-code corpus; more live in
// testdata/fuzz/FuzzParseTag.
var fuzzSeeds = []string{
	"", "-", "id", ",pk", "id,pk,auto", "version,version", "owner,unique,index",
	"name,size=64", "amount,type=NUMERIC(12,2)", "amount,type=DOUBLE PRECISION",
	"-,pk", "id,,pk", "id,size=0", "id,pk=1", "id,type=", " id , readonly ",
	"code,pk,auto,unique,index,readonly,size=8,type=CHAR(8)", "x,type=a=b",
	"x,size=+7", "x,size=007",
}

func FuzzParseTag(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tag, err := ParseTag(s)
		if err != nil {
			var te *TagError
			if !errors.As(err, &te) || te.Tag != s || te.Reason == "" {
				t.Fatalf("ParseTag(%q) error = %#v, want a *TagError quoting the tag", s, err)
			}
			if tag.Skip {
				t.Fatalf("ParseTag(%q) failed but returned Skip", s)
			}
			return
		}
		r := renderTag(tag)
		back, err := ParseTag(r)
		if err != nil {
			t.Fatalf("ParseTag(%q) = %+v, rendered %q, which does not parse: %v", s, tag, r, err)
		}
		if back != tag {
			t.Fatalf("ParseTag(%q) = %+v, rendered %q, parsed back as %+v", s, tag, r, back)
		}
	})
}

func FuzzParseRelTag(f *testing.F) {
	for _, s := range []string{"", "account_id", "account_id,cascade", ",cascade", "a,cascade,cascade", "a,", " a , cascade ",
		"user_id,hasone", "m2m=post_tags(post_id,tag_id)", "m2m=j(a,b),cascade", "m2m=j(a,a)", "m2m=j(a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRelTag(s)
		if err != nil {
			var te *TagError
			if !errors.As(err, &te) || te.Tag != s {
				t.Fatalf("ParseRelTag(%q) error = %#v, want a *TagError quoting the tag", s, err)
			}
			return
		}
		text := r.Column
		if r.Cascade {
			text += ",cascade"
		}
		if r.HasOne {
			text += ",hasone"
		}
		if r.Join != "" {
			if r.Column != "" || r.Cascade || r.HasOne {
				t.Fatalf("ParseRelTag(%q) = %+v: an m2m tag with a column or options", s, r)
			}
			text = "m2m=" + r.Join + "(" + r.JoinLeft + "," + r.JoinRight + ")"
		}
		if back, err := ParseRelTag(text); err != nil || back != r {
			t.Fatalf("ParseRelTag(%q) = %+v, rendered %q, parsed back as %+v, %v", s, r, text, back, err)
		}
	})
}
