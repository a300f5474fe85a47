package orm

import (
	"fmt"
	"strings"

	"github.com/tallyorm/tally/mapper"
)

// sortTables orders tables so that every parent comes before its children,
// following the foreign keys in fks. Tables not related keep their input
// order (Kahn's algorithm, always taking the earliest ready table), so the
// order is deterministic. A self-reference is not an ordering constraint; a
// longer cycle is an error that names its tables.
func sortTables(tables []*mapper.Table, fks []mapper.ForeignKey) ([]*mapper.Table, error) {
	idx := make(map[*mapper.Table]int, len(tables))
	for i, t := range tables {
		idx[t] = i
	}
	parents := make([]map[int]bool, len(tables))
	children := make([][]int, len(tables))
	for _, fk := range fks {
		c, okc := idx[fk.Child]
		p, okp := idx[fk.Parent]
		if !okc || !okp || c == p {
			continue
		}
		if parents[c] == nil {
			parents[c] = map[int]bool{}
		}
		if !parents[c][p] {
			parents[c][p] = true
			children[p] = append(children[p], c)
		}
	}
	out := make([]*mapper.Table, 0, len(tables))
	done := make([]bool, len(tables))
	for len(out) < len(tables) {
		next := -1
		for i := range tables {
			if !done[i] && len(parents[i]) == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, cycleError(tables, parents, done)
		}
		done[next] = true
		out = append(out, tables[next])
		for _, c := range children[next] {
			delete(parents[c], next)
		}
	}
	return out, nil
}

// CycleError reports foreign keys that form a cycle, so no insert order
// satisfies them.
type CycleError struct {
	Tables []string // the cycle, starting and ending with the same table
}

// Error names the tables of the cycle.
func (e *CycleError) Error() string {
	return fmt.Sprintf("orm: foreign keys form a cycle: %s; break it with a nullable column set in a second flush",
		strings.Join(e.Tables, " -> "))
}

func cycleError(tables []*mapper.Table, parents []map[int]bool, done []bool) error {
	// Walk parent links from any blocked table until one repeats.
	start := -1
	for i := range tables {
		if !done[i] {
			start = i
			break
		}
	}
	seen := map[int]int{}
	var path []int
	for cur := start; ; {
		if at, ok := seen[cur]; ok {
			path = append(path[at:], cur)
			break
		}
		seen[cur] = len(path)
		path = append(path, cur)
		next := -1
		for p := range parents[cur] {
			if next < 0 || p < next { // the earliest parent, for a stable message
				next = p
			}
		}
		cur = next
	}
	names := make([]string, len(path))
	for i, p := range path {
		names[i] = tables[p].Name
	}
	return &CycleError{Tables: names}
}
