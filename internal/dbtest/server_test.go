package dbtest

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"go.uber.org/goleak"
)

func TestPackageHint(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/go-build1/b001/dbtest.test":        "dbtest",
		"/x/orm.test.exe":                        "orm",
		"/tmp/Tally-Demo.test":                   "tally_demo",
		"/tmp/averyveryverylongpackagename.test": "averyveryverylon",
		"/tmp/___.test":                          "pkg",
	} {
		if got := packageHint(in); got != want {
			t.Errorf("packageHint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNames(t *testing.T) {
	name := packageDB()
	if len(name) > 52 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		t.Errorf("packageDB() = %q: not a short, safe identifier", name)
	}
	created, ok := createdAt(name)
	if !ok || time.Since(created) > time.Hour || time.Since(created) < 0 {
		t.Errorf("createdAt(%q) = %v, %v", name, created, ok)
	}
	if _, ok := createdAt("tally_t_x_1"); ok {
		t.Error("createdAt accepted a name without a time")
	}
	if _, ok := createdAt("app"); ok {
		t.Error("createdAt accepted a foreign name")
	}
}

// dropStale drops harness databases older than staleAfter, and only those.
func TestDropStale(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			if why := s.unavailable(t, nil); why != "" {
				t.Skip(why)
			}
			old := fmt.Sprintf("%s%d_stale_1_00000000", namePrefix, time.Now().Add(-3*time.Hour).Unix())
			young := fmt.Sprintf("%s%d_young_1_00000000", namePrefix, time.Now().Add(-time.Hour).Unix())
			err := withDB(s.driver, s.admin, func(db *sql.DB) error {
				ctx := t.Context()
				for _, name := range []string{old, young} {
					if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
						return err
					}
				}
				defer s.flavor.drop(ctx, db, young)
				s.dropStale(ctx, db)
				names, err := s.flavor.databases(ctx, db)
				if slices.Contains(names, old) {
					t.Errorf("stale %s is still there", old)
					s.flavor.drop(ctx, db, old)
				}
				if !slices.Contains(names, young) {
					t.Errorf("dropStale dropped %s, an hour old", young)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The harness keeps no connection (nor its goroutines) once a test is
// done, so that tests can check for leaks with goleak.
func TestNoGoroutinesLeft(t *testing.T) {
	Each(t, func(t *testing.T, tg Target) { roundTrip(t, tg) })
	goleak.VerifyNone(t)
}

// A target's MySQL database or PostgreSQL schema is dropped when its test
// ends, not only by Main.
func TestTargetDroppedWhenTestEnds(t *testing.T) {
	var tgs []Target
	t.Run("inner", func(t *testing.T) {
		tgs = Targets(t)
		for _, tg := range tgs {
			roundTrip(t, tg)
		}
	})
	for _, tg := range tgs {
		switch tg.Name {
		case MySQL:
			err := withDB(tg.Driver, tg.DSN, func(db *sql.DB) error { return db.PingContext(t.Context()) })
			if code, _ := dialect.MySQL.ServerError(err); code != "mysql error 1049" { // ER_BAD_DB_ERROR
				t.Errorf("mysql: connecting to the ended test's database: %v; want error 1049, unknown database", err)
			}
		case Postgres:
			var schema sql.NullString // current_schema() is NULL when no schema of search_path exists
			err := withDB(tg.Driver, tg.DSN, func(db *sql.DB) error {
				return db.QueryRowContext(t.Context(), "SELECT current_schema()").Scan(&schema)
			})
			if err != nil || schema.Valid {
				t.Errorf("postgres: current_schema() = %v, %v; want NULL, the schema dropped", schema, err)
			}
		}
	}
}
