package postgres_test

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tallyorm/tally/dialect"
	_ "github.com/tallyorm/tally/dialect/postgres"
)

// With the package imported, the PostgreSQL dialect knows pgx's errors.
func Example_classify() {
	err := fmt.Errorf("insert user: %w", &pgconn.PgError{Code: "23505"})
	fmt.Println(dialect.PostgreSQL.Classify(err))
	code, _ := dialect.PostgreSQL.ServerError(err)
	fmt.Println(code)
	// Output:
	// unique violation
	// SQLSTATE 23505
}
