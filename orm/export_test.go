package orm

import "testing"

// OwnedObjects counts the objects registered in e's owners index, for
// tests that check every session path releases what Add registered.
func OwnedObjects(e *Engine) int {
	return e.owners.len()
}

// SetBatchCommits turns batched commits on PostgreSQL on or off, for
// benchmarks that measure a commit with and without the batch.
func SetBatchCommits(on bool) { batchCommits.Store(on) }

// DirectReads counts the reads s sent to the driver directly.
func DirectReads(s *Session) int { return s.direct }

// UpdateAllPlans counts the UpdateAll statements e keeps, over all tables.
func UpdateAllPlans(e *Engine) int {
	n := 0
	e.updateAll.tables.Range(func(_, v any) bool {
		tp := v.(*tablePlans)
		tp.mu.RLock()
		n += len(tp.m)
		tp.mu.RUnlock()
		return true
	})
	return n
}

// MaxUpdateAllPlans is the bound on the UpdateAll statements kept per table.
const MaxUpdateAllPlans = maxUpdateAllPlans

// MiscountFlushes makes Commit send every flush's first statement alone,
// as if it were the only one, until the test ends: the guard against a
// miscount must then stop the second statement and say what committed.
func MiscountFlushes(t testing.TB) {
	miscountFlushes.Store(true)
	t.Cleanup(func() { miscountFlushes.Store(false) })
}
