// Package reliability holds Tally's fault tests that need more than the
// shared database servers: a server stopped, killed or paused mid-load,
// lock and statement timeouts, a pool run dry, and SQLite on a read-only
// or full disk. It has no code of its own; its tests run under
// `make reliability` (TALLY_RELIABILITY=1), and the long ones skip
// otherwise.
package reliability
