package dialect

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Replication is implemented by the dialects whose servers replicate
// (MySQL, MariaDB and PostgreSQL; not SQLite). It is an optional
// interface, found by type assertion, so that the Dialect interface does
// not grow for one feature: orm.WithReplicas uses it to tell how far a
// replica is behind its primary.
//
// A replication position is text the server gives (a GTID list, a WAL
// location). The primary's position sampled at some moment has been
// applied by a replica when PositionReached says so; the age of the
// oldest sample a replica has not reached is its lag. Comparing
// positions, not timestamps, means an idle primary never looks lagged,
// and a replica whose applying stopped looks lagged as soon as the
// primary writes.
type Replication interface {
	// PrimaryPositionSQL returns one row of one text column: the
	// primary's current position, every transaction committed so far.
	PrimaryPositionSQL() string
	// ReplicaPositionSQL returns one row of one text column: the
	// position up to which a replica has applied its primary's
	// transactions; empty when the server is not replicating.
	ReplicaPositionSQL() string
	// PositionReached reports whether a replica at replica has applied
	// everything up to the primary position primary. A position it
	// cannot parse is an error.
	PositionReached(replica, primary string) (bool, error)
}

var (
	_ Replication = mysqlDialect{}
	_ Replication = postgresDialect{}
)

// errNotReplicating is PositionReached's error for a replica position
// that is empty while the primary's is not.
var errNotReplicating = errors.New("dialect: the server reports no replication position: it is not a replica, or its replication never started")

// PrimaryPositionSQL on MariaDB reads the GTID of the last transaction
// of each replication domain written to the binary log; on MySQL, the
// set of GTIDs executed.
func (d mysqlDialect) PrimaryPositionSQL() string {
	if d.mariadb {
		return "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	return "SELECT @@GLOBAL.gtid_executed"
}

// ReplicaPositionSQL on MariaDB reads the GTIDs the replication SQL
// thread has applied (gtid_slave_pos, which stops when the SQL thread
// stops or falls behind); on MySQL, the set of GTIDs executed.
func (d mysqlDialect) ReplicaPositionSQL() string {
	if d.mariadb {
		return "SELECT @@GLOBAL.gtid_slave_pos"
	}
	return "SELECT @@GLOBAL.gtid_executed"
}

// PositionReached compares GTIDs: on MariaDB a replica has reached a
// position when, in every replication domain of the primary's position,
// it has applied a sequence number at least as high (sequence numbers
// grow within a domain); on MySQL, when the replica's executed GTID set
// contains the primary's.
func (d mysqlDialect) PositionReached(replica, primary string) (bool, error) {
	if d.mariadb {
		return mariadbGTIDReached(replica, primary)
	}
	return mysqlGTIDReached(replica, primary)
}

// mariadbGTIDs parses a MariaDB GTID list, "domain-server-seq,...", into
// the sequence number of each domain.
func mariadbGTIDs(s string) (map[uint64]uint64, error) {
	out := map[uint64]uint64{}
	for g := range strings.SplitSeq(s, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		parts := strings.Split(g, "-")
		if len(parts) != 3 {
			return nil, fmt.Errorf("dialect: bad MariaDB GTID %q", g)
		}
		domain, err1 := strconv.ParseUint(parts[0], 10, 32)
		_, err2 := strconv.ParseUint(parts[1], 10, 32)
		seq, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("dialect: bad MariaDB GTID %q", g)
		}
		out[domain] = max(out[domain], seq)
	}
	return out, nil
}

func mariadbGTIDReached(replica, primary string) (bool, error) {
	p, err := mariadbGTIDs(primary)
	if err != nil {
		return false, err
	}
	r, err := mariadbGTIDs(replica)
	if err != nil {
		return false, err
	}
	if len(r) == 0 && len(p) > 0 {
		return false, errNotReplicating
	}
	for domain, seq := range p {
		if r[domain] < seq {
			return false, nil
		}
	}
	return true, nil
}

// gtidInterval is one range of transaction numbers, both ends included.
type gtidInterval struct{ lo, hi uint64 }

// mysqlGTIDSet parses a MySQL GTID set, "uuid:1-5:7,uuid2[:tag]:1-3",
// into intervals by source (uuid, or uuid:tag for tagged GTIDs).
func mysqlGTIDSet(s string) (map[string][]gtidInterval, error) {
	out := map[string][]gtidInterval{}
	for g := range strings.SplitSeq(s, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		parts := strings.Split(g, ":")
		src := strings.ToLower(parts[0])
		for _, p := range parts[1:] {
			if p == "" || p[0] < '0' || p[0] > '9' {
				src = strings.ToLower(parts[0]) + ":" + p // a tag: the intervals after it are its own
				continue
			}
			lo, hi, found := strings.Cut(p, "-")
			a, err := strconv.ParseUint(lo, 10, 64)
			b := a
			if found && err == nil {
				b, err = strconv.ParseUint(hi, 10, 64)
			}
			if err != nil || b < a {
				return nil, fmt.Errorf("dialect: bad MySQL GTID set element %q", g)
			}
			out[src] = append(out[src], gtidInterval{a, b})
		}
	}
	return out, nil
}

func mysqlGTIDReached(replica, primary string) (bool, error) {
	p, err := mysqlGTIDSet(primary)
	if err != nil {
		return false, err
	}
	r, err := mysqlGTIDSet(replica)
	if err != nil {
		return false, err
	}
	if len(r) == 0 && len(p) > 0 {
		return false, errNotReplicating
	}
	for src, ivs := range p {
	next:
		for _, iv := range ivs {
			// MySQL prints sets normalized: adjacent intervals merged, so
			// a contained interval lies within one of the replica's.
			for _, have := range r[src] {
				if have.lo <= iv.lo && iv.hi <= have.hi {
					continue next
				}
			}
			return false, nil
		}
	}
	return true, nil
}

// PrimaryPositionSQL on PostgreSQL is the primary's current WAL write
// location.
func (postgresDialect) PrimaryPositionSQL() string { return "SELECT pg_current_wal_lsn()::text" }

// ReplicaPositionSQL on PostgreSQL is the WAL location a standby has
// replayed (not merely received: received WAL is not yet visible to
// queries). Empty on a server that is not a standby.
func (postgresDialect) ReplicaPositionSQL() string {
	return "SELECT COALESCE(pg_last_wal_replay_lsn()::text, '')"
}

// PositionReached compares WAL locations.
func (postgresDialect) PositionReached(replica, primary string) (bool, error) {
	p, err := parseLSN(primary)
	if err != nil {
		return false, err
	}
	if replica == "" {
		return false, errNotReplicating
	}
	r, err := parseLSN(replica)
	if err != nil {
		return false, err
	}
	return r >= p, nil
}

// parseLSN parses a PostgreSQL WAL location, "16/B374D848": two
// hexadecimal halves of a 64-bit byte position.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("dialect: bad PostgreSQL WAL location %q", s)
	}
	return h<<32 | l, nil
}
