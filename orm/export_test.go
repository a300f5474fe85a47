package orm

// OwnedObjects counts the objects registered in e's owners index, for
// tests that check every session path releases what Add registered.
func OwnedObjects(e *Engine) int {
	n := 0
	e.owners.m.Range(func(_, _ any) bool { n++; return true })
	return n
}
