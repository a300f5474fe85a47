package dialect

import (
	"errors"
	"reflect"
	"testing"
)

// TestExpandLongListAsArray: on PostgreSQL a list longer than the
// parameter limit bound to IN (?) becomes one array parameter; elsewhere,
// or where it cannot, the query is refused naming the limit.
func TestExpandLongListAsArray(t *testing.T) {
	long := make([]int64, 70000)
	names := make([]string, 70000)
	anys := make([]any, 70000)
	tests := []struct {
		name     string
		d        Dialect
		query    string
		args     []any
		wantSQL  string
		wantArgs []any // nil: a *BindError naming the limit
	}{
		{"in", PostgreSQL, "SELECT 1 FROM t WHERE id IN (?)", []any{long},
			"SELECT 1 FROM t WHERE id = ANY($1)", []any{long}},
		{"not in, lower case, spaces", PostgreSQL, "SELECT 1 FROM t WHERE a = ? AND name not in ( ? ) AND b = ?", []any{1, names, 2},
			"SELECT 1 FROM t WHERE a = $1 AND name <> ALL($2) AND b = $3", []any{1, names, 2}},
		{"every typed list of the statement", PostgreSQL, "DELETE FROM t WHERE id IN (?) AND k IN (?) AND j IN (?)", []any{long, []int{1, 2}, []any{3}},
			"DELETE FROM t WHERE id = ANY($1) AND k = ANY($2) AND j IN ($3)", []any{long, []int{1, 2}, 3}},
		{"short lists keep IN", PostgreSQL, "SELECT 1 FROM t WHERE id IN (?)", []any{[]int64{1, 2}},
			"SELECT 1 FROM t WHERE id IN ($1, $2)", []any{int64(1), int64(2)}},
		{"[]any cannot be typed", PostgreSQL, "SELECT 1 FROM t WHERE id IN (?)", []any{anys}, "", nil},
		{"not after IN", PostgreSQL, "SELECT 1 FROM t WHERE f(?)", []any{long}, "", nil},
		{"a word ending in in", PostgreSQL, "SELECT 1 FROM t WHERE login (?)", []any{long}, "", nil},
		{"mysql", MySQL, "SELECT 1 FROM t WHERE id IN (?)", []any{long}, "", nil},
		{"sqlite", SQLite, "SELECT 1 FROM t WHERE id IN (?)", []any{long[:40000]}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotSQL, gotArgs, err := Expand(tt.d, tt.query, tt.args)
			if tt.wantArgs == nil {
				var be *BindError
				if !errors.As(err, &be) || be.Limit != tt.d.MaxParams() {
					t.Fatalf("Expand = %q, %d args, %v; want a *BindError naming the limit %d", gotSQL, len(gotArgs), err, tt.d.MaxParams())
				}
				return
			}
			if err != nil || gotSQL != tt.wantSQL || !reflect.DeepEqual(gotArgs, tt.wantArgs) {
				t.Fatalf("Expand = %q, %d args, %v; want %q, %d args", gotSQL, len(gotArgs), err, tt.wantSQL, len(tt.wantArgs))
			}
		})
	}
}
