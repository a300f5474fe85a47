package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tallyorm/tally/orm"
)

// Faults are the failures a load run injects (-faults), to show that every
// transfer is still applied exactly once and the service keeps serving:
//
//   - kill: every -fault-every on average, the server ends one of the
//     demo's own database connections, as a DBA or a timeout would —
//     MariaDB/MySQL KILL CONNECTION, PostgreSQL pg_terminate_backend.
//     Whatever the connection was doing (idle in the pool, mid-transfer,
//     at COMMIT) fails; eng.Do retries what it knows did not commit, and
//     the client retries the rest with the same request id.
//   - cut: a fraction (-cut) of the clients' transfer attempts are cut
//     off once sent: the TCP client closes its connection without reading
//     the reply, the HTTP client's request times out after a few
//     milliseconds. The client cannot know the outcome and retries with
//     the same request id.
type Faults struct {
	Kill  bool
	Cut   bool
	Every time.Duration // kill: mean time between kills
}

// parseFaults reads -faults: a comma list of kill and cut, or "" / none.
func parseFaults(s string) (Faults, error) {
	var f Faults
	for k := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(k) {
		case "", "none":
		case "kill":
			f.Kill = true
		case "cut":
			f.Cut = true
		default:
			return f, fmt.Errorf("-faults %q: want a comma list of kill and cut", s)
		}
	}
	return f, nil
}

// Killer ends the demo's own database connections from the server side.
// It only ever targets connections of this process: on MariaDB/MySQL those
// of the same user in the demo's database (which the demo owns: it drops
// and recreates its tables there); on PostgreSQL those carrying this
// process's application_name, which open sets in the DSN.
type Killer struct {
	Eng    *orm.Engine
	Driver string
	Every  time.Duration
	Log    *slog.Logger

	Kills    atomic.Int64 // connections ended
	Failures atomic.Int64 // attempts that found no connection or whose KILL failed
}

// killable lists the connections the killer may end, without its own.
var killable = map[string]string{
	"mysql": "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() " +
		"AND USER = SUBSTRING_INDEX(USER(), '@', 1) AND ID <> CONNECTION_ID()",
	"postgres": "SELECT pid FROM pg_stat_activity WHERE datname = current_database() " +
		"AND application_name = current_setting('application_name') AND pid <> pg_backend_pid()",
}

// Run kills a connection every Every on average until ctx ends. It holds
// one connection of the pool for itself, so that a KILL never lands on
// the connection that sends it.
func (k *Killer) Run(ctx context.Context) error {
	list, ok := killable[dialectOf(k.Driver)]
	if !ok {
		return fmt.Errorf("-faults kill: needs mysql or postgres, not %s", k.Driver)
	}
	conn, err := k.Eng.DB().Conn(ctx)
	if err != nil {
		return fmt.Errorf("fault injector: %w", err)
	}
	defer conn.Close()
	for {
		t := time.NewTimer(k.Every/2 + rand.N(k.Every+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := k.killOne(ctx, conn, list); err != nil {
			k.Failures.Add(1)
			if ctx.Err() != nil {
				return nil
			}
			if k.Log != nil && k.Failures.Load() <= 3 {
				k.Log.WarnContext(ctx, "fault injector: kill failed", slog.String("error", err.Error()))
			}
		}
	}
}

func (k *Killer) killOne(ctx context.Context, conn *sql.Conn, list string) error {
	rows, err := conn.QueryContext(ctx, list)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("no connection to kill")
	}
	id := ids[rand.IntN(len(ids))]
	if dialectOf(k.Driver) == "postgres" {
		_, err = conn.ExecContext(ctx, "SELECT pg_terminate_backend($1)", id)
	} else {
		// KILL takes no placeholder; id is an integer the server gave.
		_, err = conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
	}
	if err != nil {
		// The connection may have ended on its own meanwhile.
		return err
	}
	k.Kills.Add(1)
	return nil
}

// withApplicationName returns a PostgreSQL DSN (URL or key=value form)
// that names this process, so that the killer finds the demo's own
// backends and nobody else's. A DSN that names one already is kept.
func withApplicationName(dsn string) string {
	if strings.Contains(dsn, "application_name") {
		return dsn
	}
	name := fmt.Sprintf("tallydemo-%d-%s", os.Getpid(), newRequestID("")[:8])
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn // orm.Open reports it
		}
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " application_name=" + name
}

// dialectOf names the database of a driver name orm.Open accepts
// ("pgx" is PostgreSQL's database/sql driver).
func dialectOf(driver string) string {
	if driver == "pgx" {
		return "postgres"
	}
	return driver
}
