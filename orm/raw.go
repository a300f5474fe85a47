package orm

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"strings"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/mapper"
)

// RawQ is a hand-written SELECT whose rows map onto T, built by [Raw].
type RawQ[T any] struct {
	s     *Session
	t     *mapper.Table
	err   error
	query string
	args  []any
}

// Raw maps the rows of an arbitrary SELECT onto T through the same path as
// Query: result columns are matched to T's columns by name, and every row
// is resolved against the identity map, so the result must include the
// primary key. A row that selects only some columns returns the tracked
// object if there is one, and otherwise a detached object that the session
// does not track (a partial object must not stand for the row). A result column T does not map is an error that names it.
// query uses `?` placeholders; args are always bound.
func Raw[T any](s *Session, query string, args ...any) *RawQ[T] {
	t, err := tableFor[T](s.e)
	return &RawQ[T]{s: s, t: t, err: err, query: query, args: args}
}

// All returns every row as a T.
func (r *RawQ[T]) All(ctx context.Context) ([]*T, error) {
	var out []*T
	for obj, err := range r.Iter(ctx) {
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// One returns the only row: ErrNotFound for none, ErrMultipleRows for more.
func (r *RawQ[T]) One(ctx context.Context) (*T, error) {
	var found *T
	for obj, err := range r.Iter(ctx) {
		if err != nil {
			return nil, err
		}
		if found != nil {
			return nil, fmt.Errorf("%w: the raw query returned more than one row", ErrMultipleRows)
		}
		found = obj
	}
	if found == nil {
		return nil, fmt.Errorf("%w: the raw query returned no row", ErrNotFound)
	}
	return found, nil
}

// Iter streams the rows; see Q.Iter for what the session allows meanwhile.
func (r *RawQ[T]) Iter(ctx context.Context) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		s := r.s
		if err := s.enter(); err != nil {
			yield(nil, err)
			return
		}
		defer s.leave()
		if r.err != nil {
			yield(nil, r.err)
			return
		}
		query, args, err := dialect.Expand(s.e.dialect, r.query, r.args)
		if err != nil {
			yield(nil, err)
			return
		}
		if err := s.autoflushLocked(ctx); err != nil {
			yield(nil, err)
			return
		}
		rows, obs, err := s.query(ctx, query, args)
		if err != nil {
			yield(nil, err)
			return
		}
		cols, err := r.columns(rows)
		streamRows(ctx, s.e, rows, obs, err, func() (*T, error) {
			obj := new(T)
			if err := rows.Scan(s.scanDest(r.t, obj, cols)...); err != nil {
				return nil, err
			}
			if len(cols) == len(r.t.Columns) {
				got := s.resolve(r.t, obj)
				return got.(*T), s.loaded(ctx, r.t, obj, got)
			}
			// A partial row of an untracked object is returned detached:
			// tracked, its missing columns would read as zero to later
			// Gets and be compared and version-checked at flush.
			if e := s.idmap.Get(r.t, r.t.Acc.Key(obj)); e != nil {
				return e.Obj().(*T), nil
			}
			return obj, nil
		}, yield)
	}
}

// columns matches the result columns to T's, by name.
func (r *RawQ[T]) columns(rows *sql.Rows) ([]*mapper.Column, error) {
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	cols := make([]*mapper.Column, len(names))
	var unknown []string
	seen := map[*mapper.Column]bool{}
	for i, n := range names {
		if cols[i] = r.t.Column(n); cols[i] == nil {
			unknown = append(unknown, n)
		} else if seen[cols[i]] {
			return nil, fmt.Errorf("orm: Raw: result column %s appears twice", n)
		}
		seen[cols[i]] = true
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("orm: Raw: result column(s) %s are not columns of %s", strings.Join(unknown, ", "), r.t.Name)
	}
	for _, pk := range r.t.PK {
		found := false
		for _, c := range cols {
			found = found || c == pk
		}
		if !found {
			return nil, fmt.Errorf("orm: Raw: the result must include the primary key column %s of %s", pk.Name, r.t.Name)
		}
	}
	return cols, nil
}

// Exec runs a statement in the session's transaction, after flushing
// pending changes. query uses `?` placeholders (a slice expands for IN);
// args are always bound. Objects the statement changes are not refreshed:
// use Query's UpdateAll and DeleteAll to keep the session true, or Refresh.
func (s *Session) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	q, qargs, err := dialect.Expand(s.e.dialect, query, args)
	if err != nil {
		return nil, err
	}
	if err := s.autoflushLocked(ctx); err != nil {
		return nil, err
	}
	return s.exec(ctx, q, qargs)
}
