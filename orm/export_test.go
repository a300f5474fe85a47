package orm

// OwnedObjects counts the objects registered in e's owners index, for
// tests that check every session path releases what Add registered.
func OwnedObjects(e *Engine) int {
	return e.owners.len()
}
