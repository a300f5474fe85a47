package orm

import (
	"strings"

	"github.com/tallyorm/tally/mapper"
)

// sortTables orders tables so that every parent comes before its children,
// following the foreign keys in fks. Tables not related keep their input
// order (Kahn's algorithm, always taking the earliest ready table), so the
// order is deterministic. A self-reference is not an ordering constraint
// between tables (the flush orders such a table's rows). A longer cycle is
// broken at a foreign key whose column is nullable: that key is left out of
// the order and returned in broken, and the flush inserts its rows with
// NULL there and sets the key with a follow-up UPDATE once the parent
// exists. A cycle with no nullable column is a *CycleError naming its
// tables and columns.
func sortTables(tables []*mapper.Table, fks []mapper.ForeignKey) (order []*mapper.Table, broken []mapper.ForeignKey, err error) {
	idx := make(map[*mapper.Table]int, len(tables))
	for i, t := range tables {
		idx[t] = i
	}
	// parents[c][p] counts the foreign keys of c that reference p.
	parents := make([]map[int]int, len(tables))
	children := make([][]int, len(tables))
	for _, fk := range fks {
		c, okc := idx[fk.Child]
		p, okp := idx[fk.Parent]
		if !okc || !okp || c == p {
			continue
		}
		if parents[c] == nil {
			parents[c] = map[int]int{}
		}
		if parents[c][p] == 0 {
			children[p] = append(children[p], c)
		}
		parents[c][p]++
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
			cyc := findCycle(tables, parents, done)
			b, err := breakCycle(tables, fks, cyc)
			if err != nil {
				return nil, nil, err
			}
			for _, fk := range b {
				c, p := idx[fk.Child], idx[fk.Parent]
				if parents[c][p]--; parents[c][p] == 0 {
					delete(parents[c], p)
				}
			}
			broken = append(broken, b...)
			continue
		}
		done[next] = true
		out = append(out, tables[next])
		for _, c := range children[next] {
			delete(parents[c], next)
		}
	}
	return out, broken, nil
}

// CycleError reports foreign keys that form a cycle no order satisfies:
// every column in it is NOT NULL, so no row can be inserted first and
// pointed at its parent later.
type CycleError struct {
	Tables  []string // the cycle, starting and ending with the same table
	Columns []string // the foreign-key columns along it, as table.column
}

// Error names the tables and columns of the cycle.
func (e *CycleError) Error() string {
	msg := "orm: foreign keys form a cycle: " + strings.Join(e.Tables, " -> ")
	if len(e.Columns) > 0 {
		msg += " (through " + strings.Join(e.Columns, ", ") + ")"
	}
	return msg + "; make one of these columns nullable (a pointer or sql.Null* field), so that its row is inserted with NULL and updated once the other row exists"
}

// findCycle walks parent links from the first blocked table until one
// repeats, and returns the cycle as table positions, first == last.
func findCycle(tables []*mapper.Table, parents []map[int]int, done []bool) []int {
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
			return append(path[at:], cur)
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
}

// breakCycle returns the foreign keys to leave out so that the cycle cyc
// (child, parent, grandparent, ..., child) no longer blocks: those of the
// first link whose columns are all nullable. With no such link it returns
// a *CycleError.
func breakCycle(tables []*mapper.Table, fks []mapper.ForeignKey, cyc []int) ([]mapper.ForeignKey, error) {
	var cols []string
	for i := 0; i+1 < len(cyc); i++ {
		child, parent := tables[cyc[i]], tables[cyc[i+1]]
		var link []mapper.ForeignKey
		nullable := true
		for _, fk := range fks {
			if fk.Child == child && fk.Parent == parent {
				link = append(link, fk)
				nullable = nullable && fk.Column != nil && fk.Column.Nullable
				if fk.Column != nil {
					cols = append(cols, child.Name+"."+fk.Column.Name)
				}
			}
		}
		if nullable && len(link) > 0 {
			return link, nil
		}
	}
	names := make([]string, len(cyc))
	for i, p := range cyc {
		names[i] = tables[p].Name
	}
	return nil, &CycleError{Tables: names, Columns: cols}
}

// levels groups n rows into levels such that every row comes after the rows
// it depends on (deps[i] lists the rows i depends on), keeping the input
// order within a level: level 0 holds the rows that depend on none. When
// rows depend on each other in a cycle, breakAt(i) is asked to free one of
// them (each blocked row on a cycle in turn, earliest first): it returns
// false when it cannot, and levels then returns the
// blocked rows and no levels.
func levels(n int, deps [][]int, breakAt func(i int) bool) (out [][]int, blocked []int) {
	level := make([]int, n)
	for i := range level {
		level[i] = -1
	}
	placed := 0
	for cur := 0; placed < n; {
		var ready []int
		for i := range n {
			if level[i] >= 0 {
				continue
			}
			ok := true
			for _, d := range deps[i] {
				if d != i && level[d] < 0 {
					ok = false
					break
				}
			}
			if ok {
				ready = append(ready, i)
			}
		}
		if len(ready) == 0 {
			freed := false
			for i := range n {
				if level[i] < 0 && onCycle(i, deps, level) && breakAt(i) {
					deps[i] = nil
					freed = true
					break
				}
			}
			if !freed {
				for i := range n {
					if level[i] < 0 {
						blocked = append(blocked, i)
					}
				}
				return nil, blocked
			}
			continue
		}
		for _, i := range ready {
			level[i] = cur
		}
		out = append(out, ready)
		placed += len(ready)
		cur++
	}
	return out, nil
}

// onCycle reports whether unplaced row i depends, through unplaced rows,
// on itself.
func onCycle(i int, deps [][]int, level []int) bool {
	seen := map[int]bool{}
	stack := []int{i}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range deps[cur] {
			if level[d] >= 0 || d == cur {
				continue
			}
			if d == i {
				return true
			}
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}

// rowCycleError is the *CycleError of rows of one table that reference
// each other through a NOT NULL column.
func rowCycleError(t *mapper.Table, col *mapper.Column) error {
	return &CycleError{Tables: []string{t.Name, t.Name}, Columns: []string{t.Name + "." + col.Name}}
}
