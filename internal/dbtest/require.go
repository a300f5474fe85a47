package dbtest

import (
	"fmt"
	"strings"
)

// requireEnv names the servers whose absence fails tests instead of
// skipping them; CI sets it to "mysql,postgres".
const requireEnv = "TALLY_REQUIRE"

// parseRequire parses a TALLY_REQUIRE value: a comma list of target names,
// case and spaces ignored. "sqlite" is accepted (it is always there). An
// unknown name is an error, so that a typo cannot quietly require nothing.
func parseRequire(s string) (map[string]bool, error) {
	req := map[string]bool{}
	for field := range strings.SplitSeq(s, ",") {
		switch name := strings.ToLower(strings.TrimSpace(field)); name {
		case "":
		case SQLite, MySQL, Postgres:
			req[name] = true
		default:
			return nil, fmt.Errorf("%s=%q names %q; known names: %s, %s (%s is always there)",
				requireEnv, s, name, MySQL, Postgres, SQLite)
		}
	}
	return req, nil
}
