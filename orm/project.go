package orm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/mapper"
)

// P is a projection, built by [Project]: a query's rows read into values
// of another struct type D (a DTO), with chosen columns and simple joins.
// Its builder methods return a new P and never change the receiver; the
// first error of a builder is kept and returned, before any SQL, by the
// method that runs the query.
//
// D values are plain values: they never enter the identity map, are not
// tracked, and changing them changes nothing in the database.
type P[D any] struct {
	s     *Session
	t     *mapper.Table
	q     baseQuery
	start func(ctx context.Context, query string, args []any) (*sql.Rows, observation, error)
	dto   []dtoField
	joins []string
	jargs []any
	sel   []projItem // nil: D's fields from T's columns of the same names
	order []string
	err   error
}

// baseQuery is what a projection takes over from its Q.
type baseQuery struct {
	where     []string
	args      []any
	order     []string
	limit     int
	offset    int
	forUpdate bool
}

// projItem is one entry of the select list: SQL text (quoted names, or a
// trusted expression) and the D field it fills.
type projItem struct {
	expr  string
	args  []any
	as    string
	field int // index into P.dto
}

// dtoField is a field of D that a column fills.
type dtoField struct {
	name  string // column name: the db tag's, else the field name in snake_case
	index []int
	utc   bool // a time.Time or *time.Time, loaded in UTC like a model's
}

// Project reads the rows of q into D values instead of T objects:
//
//	type BookRow struct {
//		Title  string `db:"title"`
//		Author string `db:"author"`
//	}
//	rows, err := orm.Project[BookRow](orm.Query[Book](s).Where("books.year > ?", 2000).OrderBy("title")).
//		Join("JOIN authors a ON a.id = books.author_id").
//		Select("title", "a.name AS author").
//		All(ctx)
//
// q's Where, OrderBy, Limit, Offset and ForUpdate apply; Load does not
// (it is refused). D's fields map to columns by their db tags as a
// model's do (no tag: the field name in snake_case; db:"-" skips a field;
// embedded structs are flattened), and every one of them must be
// selected, by exactly one entry. Without Select or SelectExpr the
// select list is T's columns with D's field names, so a DTO with a subset
// of T's fields needs nothing more.
//
// What is checked and what is trusted: names given to Select, and keys
// given to OrderBy, are checked — identifiers only, quoted when sent, a
// T column when unqualified or qualified by T's table, a D field as the
// result name — so they may come from a request. Join clauses, Where
// conditions and SelectExpr expressions are SQL written by the programmer
// and sent as written (their values bound with ?), as Where's are:
// never build them from user input. With a join, qualify the names in
// Where that both tables have; the projection qualifies T's own
// (OrderBy of q, and Select's unqualified names) with T's table.
//
// Values are scanned by database/sql's rules, into the field itself (a
// sql.Scanner field takes anything else); times come back in UTC, as a
// model's do. Queries autoflush as Q's do.
func Project[D, T any](q *Q[T]) *P[D] {
	p := &P[D]{s: q.s, t: q.t, err: q.err, start: q.start,
		q: baseQuery{where: q.filters(), args: q.args, order: q.order, limit: q.limit, offset: q.offset, forUpdate: q.forUpdate}}
	if p.err == nil && len(q.loads) > 0 {
		p.err = errors.New("orm: Project: Load does not apply to a projection; join the relation's table instead")
	}
	if p.err == nil {
		p.dto, p.err = dtoFields(reflect.TypeFor[D]())
	}
	return p
}

func (p *P[D]) clone() *P[D] {
	c := *p
	c.joins = slices.Clip(p.joins)
	c.jargs = slices.Clip(p.jargs)
	c.sel = slices.Clip(p.sel)
	c.order = slices.Clip(p.order)
	return &c
}

// Join adds a join clause after FROM, e.g. "JOIN authors a ON a.id =
// books.author_id" or "LEFT JOIN ...", with ? for each value in args.
// The clause is trusted SQL, like Where's conditions.
func (p *P[D]) Join(clause string, args ...any) *P[D] {
	c := p.clone()
	c.joins = append(c.joins, clause)
	c.jargs = append(c.jargs, args...)
	return c
}

// Select adds checked columns to the select list, each "col",
// "table.col" or "alias.col", optionally followed by "AS name"; the
// result name (name, else col) must be a field of D. An unqualified col
// must be a column of T, as must one qualified by T's table; a column of
// a joined table is checked to be an identifier and quoted, and the
// database reports one that does not exist.
func (p *P[D]) Select(cols ...string) *P[D] {
	c := p.clone()
	for _, spec := range cols {
		if c.err != nil {
			break
		}
		c.addSelect(spec)
	}
	return c
}

func (p *P[D]) addSelect(spec string) {
	d := p.s.e.dialect
	f := strings.Fields(spec)
	as := ""
	switch {
	case len(f) == 1:
	case len(f) == 3 && strings.EqualFold(f[1], "AS"):
		as = f[2]
	default:
		p.err = p.colErr(spec, `is not "col", "table.col" or either with "AS name"; use SelectExpr for an expression`)
		return
	}
	qual, name, dotted := strings.Cut(f[0], ".")
	if !dotted {
		qual, name = "", f[0]
	}
	for _, id := range []string{qual, name, as} {
		if id != "" && !isIdent(id) || dotted && qual == "" {
			p.err = p.colErr(spec, "has a name that is not an identifier (letters, digits, _)")
			return
		}
	}
	if qual == "" || qual == p.t.Name {
		if p.t.Column(name) == nil {
			p.err = p.colErr(spec, "is not a column of "+p.t.Name)
			return
		}
		qual = p.t.Name
	}
	if as == "" {
		as = name
	}
	p.addItem(d.Quote(qual)+"."+d.Quote(name), nil, as, spec)
}

// SelectExpr adds a trusted SQL expression to the select list, with ?
// for each value in args, its result filling D's field as (which is
// checked); e.g. SelectExpr("a.first || ' ' || a.last", "author").
func (p *P[D]) SelectExpr(expr, as string, args ...any) *P[D] {
	c := p.clone()
	if c.err == nil {
		c.addItem(expr, args, as, as)
	}
	return c
}

func (p *P[D]) addItem(expr string, args []any, as, spec string) {
	i := slices.IndexFunc(p.dto, func(f dtoField) bool { return f.name == as })
	if i < 0 {
		p.err = p.colErr(spec, "names no field of the result type (db tag or snake_case field name)")
		return
	}
	if slices.ContainsFunc(p.sel, func(it projItem) bool { return it.field == i }) {
		p.err = p.colErr(spec, "fills a field already selected")
		return
	}
	p.sel = append(p.sel, projItem{expr: expr, args: args, as: as, field: i})
}

// OrderBy sorts by result names (D's selected fields), in order, after
// q's own OrderBy; a "-" prefix sorts descending. Names are checked, so a
// sort key from a URL cannot inject SQL.
func (p *P[D]) OrderBy(keys ...string) *P[D] {
	c := p.clone()
	for _, k := range keys {
		if c.err != nil {
			break
		}
		name, desc := strings.CutPrefix(k, "-")
		if !slices.ContainsFunc(c.dto, func(f dtoField) bool { return f.name == name }) {
			c.err = c.colErr(k, "is not a field of the result type")
			break
		}
		o := c.s.e.dialect.Quote(name)
		if desc {
			o += " DESC"
		}
		c.order = append(c.order, o)
	}
	return c
}

func (p *P[D]) colErr(name, reason string) error {
	return &ColumnError{Op: "Project", Table: reflect.TypeFor[D]().String(), Name: name, Reason: reason}
}

// build returns the statement and its arguments.
func (p *P[D]) build() (string, []any, []projItem, error) {
	if p.err != nil {
		return "", nil, nil, p.err
	}
	d := p.s.e.dialect
	items := p.sel
	if items == nil {
		for i, f := range p.dto {
			c := p.t.Column(f.name)
			if c == nil {
				return "", nil, nil, p.colErr(f.name, "is not a column of "+p.t.Name+"; Select or SelectExpr it")
			}
			items = append(items, projItem{expr: d.Quote(p.t.Name) + "." + d.Quote(c.Name), as: f.name, field: i})
		}
	}
	for i, f := range p.dto {
		if !slices.ContainsFunc(items, func(it projItem) bool { return it.field == i }) {
			return "", nil, nil, p.colErr(f.name, "is a field of the result type that nothing selects (tag it db:\"-\" to leave it out)")
		}
	}
	var args []any
	what := make([]string, len(items))
	for i, it := range items {
		what[i] = it.expr + " AS " + d.Quote(it.as)
		args = append(args, it.args...)
	}
	args = append(args, p.jargs...)
	args = append(args, p.q.args...)
	st := selectText{what: strings.Join(what, ", "), where: p.q.where, forUpdate: p.q.forUpdate}
	qual := d.Quote(p.t.Name) + "."
	for _, o := range p.q.order {
		st.order = append(st.order, qual+o)
	}
	st.order = append(st.order, p.order...)
	if p.q.limit >= 0 || p.q.offset > 0 {
		st.limit, st.offset = true, p.q.offset > 0
		if p.q.limit >= 0 {
			args = append(args, p.q.limit)
		} else {
			args = append(args, int64(1<<62)) // no limit, but OFFSET needs one on MySQL and SQLite
		}
		if p.q.offset > 0 {
			args = append(args, p.q.offset)
		}
	}
	query, args, err := dialect.Expand(d, projectSQL(d, p.t.Name, p.joins, st), args)
	return query, args, items, err
}

// run enters the session, builds and starts the query.
func (p *P[D]) run(ctx context.Context) (*sql.Rows, observation, []projItem, error) {
	query, args, items, err := p.build()
	if err != nil {
		return nil, observation{}, nil, err
	}
	rows, obs, err := p.start(ctx, query, args)
	return rows, obs, items, err
}

// scan reads the current row into a new D.
func (p *P[D]) scan(rows *sql.Rows, items []projItem) (D, error) {
	var out D
	v := reflect.ValueOf(&out).Elem()
	dest := make([]any, len(items))
	for i, it := range items {
		dest[i] = v.FieldByIndex(p.dto[it.field].index).Addr().Interface()
	}
	if err := rows.Scan(dest...); err != nil {
		return out, err
	}
	for _, f := range p.dto {
		if !f.utc {
			continue
		}
		switch x := v.FieldByIndex(f.index).Addr().Interface().(type) {
		case *time.Time:
			*x = x.UTC()
		case **time.Time:
			if *x != nil {
				t := (*x).UTC()
				*x = &t
			}
		}
	}
	return out, nil
}

// All returns every row as a D.
func (p *P[D]) All(ctx context.Context) ([]D, error) {
	return p.collect(ctx, -1)
}

// One returns the only row, ErrNotFound when there is none and
// ErrMultipleRows when there are more.
func (p *P[D]) One(ctx context.Context) (D, error) {
	var zero D
	out, err := p.collect(ctx, 1)
	switch {
	case err != nil:
		return zero, err
	case len(out) == 0:
		return zero, ErrNotFound
	case len(out) > 1:
		return zero, ErrMultipleRows
	}
	return out[0], nil
}

func (p *P[D]) collect(ctx context.Context, max int) ([]D, error) {
	if err := p.s.enter(); err != nil {
		return nil, err
	}
	defer p.s.leave()
	rows, obs, items, err := p.run(ctx)
	if err != nil {
		return nil, err
	}
	var out []D
	n := int64(0)
	for rows.Next() {
		n++
		var x D
		if x, err = p.scan(rows, items); err != nil {
			break
		}
		out = append(out, x)
		if max >= 0 && len(out) > max {
			break
		}
	}
	if err := p.s.e.closeRows(ctx, rows, obs, n, err); err != nil {
		return nil, err
	}
	return out, nil
}

// Iter streams the rows as D values, one at a time, and closes the rows
// however the loop ends. As with Q.Iter the session is busy while the
// loop runs: calls into it from the loop body return ErrConcurrentUse.
func (p *P[D]) Iter(ctx context.Context) iter.Seq2[D, error] {
	return func(yield func(D, error) bool) {
		var zero D
		if err := p.s.enter(); err != nil {
			yield(zero, err)
			return
		}
		defer p.s.leave()
		rows, obs, items, err := p.run(ctx)
		if err != nil {
			yield(zero, err)
			return
		}
		streamRows(ctx, p.s.e, rows, obs, nil, func() (*D, error) {
			x, err := p.scan(rows, items)
			return &x, err
		}, func(x *D, err error) bool {
			if err != nil {
				return yield(zero, err)
			}
			return yield(*x, nil)
		})
	}
}

// dtoFields lists the fields of struct type t that columns fill.
func dtoFields(t reflect.Type) ([]dtoField, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("orm: Project: the result type %v is not a struct", t)
	}
	var out []dtoField
	var walk func(t reflect.Type, index []int) error
	walk = func(t reflect.Type, index []int) error {
		for i := range t.NumField() {
			sf := t.Field(i)
			idx := append(slices.Clip(index), i)
			tag, tagged := sf.Tag.Lookup("db")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct && !tagged {
				if err := walk(sf.Type, idx); err != nil {
					return err
				}
				continue
			}
			if !sf.IsExported() {
				if tagged {
					return fmt.Errorf("orm: Project: field %s of %v is unexported and cannot be filled; export it or tag it db:\"-\"", sf.Name, t)
				}
				continue
			}
			if name == "" {
				name = mapper.SnakeCase(sf.Name)
			}
			if slices.ContainsFunc(out, func(f dtoField) bool { return f.name == name }) {
				return fmt.Errorf("orm: Project: two fields of %v map to column %q", t, name)
			}
			ft := sf.Type
			utc := ft == reflect.TypeFor[time.Time]() || ft == reflect.TypeFor[*time.Time]()
			out = append(out, dtoField{name: name, index: idx, utc: utc})
		}
		return nil
	}
	if err := walk(t, nil); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("orm: Project: the result type %v has no field to fill", t)
	}
	return out, nil
}

// isIdent reports whether s is a plain SQL identifier: a letter or _,
// then letters, digits or _.
func isIdent(s string) bool {
	for i, r := range s {
		if r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9' {
			continue
		}
		return false
	}
	return s != ""
}
