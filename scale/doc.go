// Package scale holds Tally's scale-out tests: read replicas (MariaDB GTID
// replication, PostgreSQL streaming replication) and multi-primary
// clusters, each on throwaway servers the test starts on loopback
// (internal/servers). They take minutes, so they run only with
// TALLY_SCALE=1: run them with make scale. The package has no code of its
// own.
package scale
