package dialect

import "testing"

func TestPositionReachedComparesReplicationPositions(t *testing.T) {
	const uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	const uuid2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	tests := []struct {
		d                Dialect
		replica, primary string
		want             bool
		wantErr          bool
	}{
		{MariaDB, "0-1-57", "0-1-57", true, false},
		{MariaDB, "0-1-58", "0-1-57", true, false},
		{MariaDB, "0-1-56", "0-1-57", false, false},
		{MariaDB, "0-2-57", "0-1-57", true, false}, // the server id does not order GTIDs
		{MariaDB, "0-1-57,1-1-3", "0-1-57,1-1-4", false, false},
		{MariaDB, "0-1-57,1-1-4", "1-1-4,0-1-57", true, false},
		{MariaDB, "0-1-57", "0-1-57,1-1-1", false, false}, // a domain the replica has never seen
		{MariaDB, "", "", true, false},                    // nothing written yet
		{MariaDB, "0-1-5", "", true, false},
		{MariaDB, "", "0-1-1", false, true}, // not replicating
		{MariaDB, "0-1", "0-1-1", false, true},
		{MySQL, uuid + ":1-10", uuid + ":1-10", true, false},
		{MySQL, uuid + ":1-10", uuid + ":1-11", false, false},
		{MySQL, uuid + ":1-5:7-10", uuid + ":1-6", false, false},
		{MySQL, uuid + ":1-10,\n" + uuid2 + ":1-3", uuid2 + ":2-3," + uuid + ":4", true, false},
		{MySQL, uuid + ":1-10", uuid + ":1-10," + uuid2 + ":1", false, false},
		{MySQL, uuid + ":1-10:red:1-2", uuid + ":red:1-3", false, false},
		{MySQL, uuid + ":1-10:red:1-3", uuid + ":red:2", true, false},
		{MySQL, uuid + ":1-x", uuid + ":1", false, true},
		{PostgreSQL, "0/3000148", "0/3000148", true, false},
		{PostgreSQL, "1/0", "0/FFFFFFFF", true, false},
		{PostgreSQL, "0/3000100", "0/3000148", false, false},
		{PostgreSQL, "", "0/3000148", false, true},
		{PostgreSQL, "0/zz", "0/3000148", false, true},
	}
	for _, tt := range tests {
		got, err := tt.d.(Replication).PositionReached(tt.replica, tt.primary)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s PositionReached(%q, %q) = %v, %v; want %v (error %v)", tt.d.Name(), tt.replica, tt.primary, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSQLiteHasNoReplication(t *testing.T) {
	if _, ok := SQLite.(Replication); ok {
		t.Error("SQLite implements Replication; it has no replicas to measure")
	}
}
