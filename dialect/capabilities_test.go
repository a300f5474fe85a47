package dialect

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Each dialect's capabilities are the data the ORM core acts on; these rows
// are what it will do on each database.
func TestCapabilities(t *testing.T) {
	savepoints := func(c Capabilities) Capabilities {
		c.Savepoint, c.ReleaseSavepoint, c.RollbackToSavepoint = "SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT "
		return c
	}
	tests := []struct {
		name string
		d    Dialect
		want Capabilities
	}{
		{"mysql", MySQL, savepoints(Capabilities{
			ForUpdate: true, EmptyInsert: "() VALUES ()", DropForeignKey: "DROP FOREIGN KEY ", Begin: BeginPlain, MaxParams: 65535, Uint64: true, Upsert: UpsertOnDuplicateKey,
		})},
		{"mariadb", MariaDB, savepoints(Capabilities{
			Returning: true, ForUpdate: true, EmptyInsert: "() VALUES ()", DropForeignKey: "DROP FOREIGN KEY ", Begin: BeginPlain, MaxParams: 65535, Uint64: true, Upsert: UpsertOnDuplicateKey,
		})},
		{"postgres", PostgreSQL, savepoints(Capabilities{
			Returning: true, ForUpdate: true, CreateIndexIfNotExists: true, EmptyInsert: "DEFAULT VALUES",
			DropForeignKey: "DROP CONSTRAINT IF EXISTS ", Begin: BeginPlain, MaxParams: 65535, Uint64: true, ArrayParams: true, Upsert: UpsertOnConflict,
		})},
		{"sqlite", SQLite, savepoints(Capabilities{
			Returning: true, CreateIndexIfNotExists: true, EmptyInsert: "DEFAULT VALUES",
			Begin: BeginDeferredOrImmediate, MaxParams: 32766, Upsert: UpsertOnConflict,
		})},
	}
	for _, tt := range tests {
		got := tt.d.Capabilities()
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s Capabilities() (-want +got):\n%s", tt.name, diff)
		}
		if got.Returning != tt.d.Returning() || got.MaxParams != tt.d.MaxParams() {
			t.Errorf("%s: Returning() %v MaxParams() %d, want the capabilities' %v %d",
				tt.name, tt.d.Returning(), tt.d.MaxParams(), got.Returning, got.MaxParams)
		}
	}
}
