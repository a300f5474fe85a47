package dialect_test

import (
	"fmt"

	"github.com/tallyorm/tally/dialect"
)

func ExampleExpand() {
	query, args, err := dialect.Expand(dialect.PostgreSQL,
		"SELECT * FROM users WHERE org_id = ? AND id IN (?)",
		[]any{7, []int64{1, 2, 3}})
	if err != nil {
		panic(err)
	}
	fmt.Println(query)
	fmt.Println(args...)
	// Output:
	// SELECT * FROM users WHERE org_id = $1 AND id IN ($2, $3, $4)
	// 7 1 2 3
}

func ExampleDialect_Rebind() {
	// Quoted and commented `?` are text; `??` is a literal `?`, here the
	// jsonb "any key exists" operator.
	fmt.Println(dialect.PostgreSQL.Rebind(
		"SELECT '?' FROM docs WHERE body ??| ? AND id = ? -- why?"))
	// Output:
	// SELECT '?' FROM docs WHERE body ?| $1 AND id = $2 -- why?
}

func ExampleForMySQLServer() {
	// The answer to SELECT VERSION().
	for _, v := range []string{"8.0.36", "10.4.3-MariaDB-log", "10.11.19-MariaDB-0+deb12u1"} {
		fmt.Println(v, dialect.ForMySQLServer(v).Returning())
	}
	// Output:
	// 8.0.36 false
	// 10.4.3-MariaDB-log false
	// 10.11.19-MariaDB-0+deb12u1 true
}
