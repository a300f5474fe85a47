package orm

// SetBatchCommits turns batched commits on PostgreSQL on or off, for
// benchmarks that measure a commit with and without the batch.
func SetBatchCommits(on bool) { batchCommits.Store(on) }
