package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/orm"
)

type (
	namedString string
	namedInt    int64
	namedFloat  float32
)

// A read sent to pgx directly (BatchStmt.DBScan) fills every field with
// what database/sql's Rows.Scan gives it over pgx's stdlib driver: the
// same value, or an error where database/sql gives one, for every pair of
// column type and field type, NULL included. The pairs cover the ones
// pgx scans natively and the ones converted through the driver.Value.
func TestDirectReadScansAsDatabaseSQL(t *testing.T) {
	onPostgres(t, func(t *testing.T, eng *orm.Engine) {
		ctx := context.Background()
		c, err := eng.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()

		exprs := []string{
			"7::int2", "-8::int4", "9000000000::int8", "12.5::numeric", "1.5::float4", "2.25::float8",
			"'42'::text", "'x y'::varchar", "'ab'::char(3)", "'nm'::name", "true", "'t'::text",
			"'2024-01-02'::date", "'2024-01-02 03:04:05.5'::timestamp", "'2024-01-02 03:04:05+02'::timestamptz",
			`'\x01ff'::bytea`, `'{"a": 1}'::json`, `'{"a": 1}'::jsonb`, "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
			"'1 day'::interval", "300::int4", "'-1'::text",
		}
		dests := []func() any{
			func() any { return new(int64) }, func() any { return new(int32) }, func() any { return new(int16) },
			func() any { return new(int8) }, func() any { return new(int) }, func() any { return new(uint64) },
			func() any { return new(uint8) }, func() any { return new(float64) }, func() any { return new(float32) },
			func() any { return new(string) }, func() any { return new(bool) }, func() any { return new([]byte) },
			func() any { return new(time.Time) }, func() any { return new(any) }, func() any { return new(*int64) },
			func() any { return new(*string) }, func() any { return new(*float64) }, func() any { return new(*bool) },
			func() any { return new(*int32) }, func() any { return new(*time.Time) }, func() any { return new(sql.NullString) },
			func() any { return new(sql.NullInt64) }, func() any { return new(sql.NullTime) }, func() any { return new(sql.NullFloat64) },
		}
		dr := dialect.PostgreSQL.(dialect.DirectReader)
		for _, mk := range dests {
			if d := mk(); !dr.DirectScan(d) {
				t.Fatalf("DirectScan refuses %T", d)
			}
		}
		// Types whose conversion is database/sql's reflection stay on it.
		for _, d := range []any{new(namedString), new(namedInt), new(namedFloat), new(sql.RawBytes), new(json.RawMessage), new(struct{ X int }), new(*namedString)} {
			if dr.DirectScan(d) {
				t.Errorf("DirectScan accepts %T, which database/sql converts by reflection", d)
			}
		}
		b := dialect.PostgreSQL.(dialect.Batcher)
		pairs := 0
		for _, x := range exprs {
			for _, null := range []bool{false, true} {
				q := "SELECT " + x
				if null {
					q = "SELECT CASE WHEN false THEN " + x + " END"
				}
				for _, mk := range dests {
					want, got := mk(), mk()
					werr := c.QueryRowContext(ctx, q).Scan(want)
					var gerr error
					rows := 0
					_, ok, err := b.Pipeline(ctx, c, []dialect.BatchStmt{{SQL: q, DBScan: true, Row: func(scan func(...any) error) error {
						rows++
						gerr = scan(got)
						return nil
					}}})
					if gerr != nil && err != nil {
						err = nil // a failed scan fails pgx's rows too
					}
					if !ok || err != nil || rows != 1 {
						t.Fatalf("%s into %T: pipeline ok=%v err=%v rows=%d", q, want, ok, err, rows)
					}
					pairs++
					if (werr == nil) != (gerr == nil) {
						t.Errorf("%s into %T: database/sql error %v, direct error %v", q, want, werr, gerr)
						continue
					}
					if werr == nil && !reflect.DeepEqual(want, got) {
						t.Errorf("%s into %T: database/sql gave %s, direct %s", q, want, show(want), show(got))
					}
				}
			}
		}
		t.Logf("%d pairs of column and field type compared", pairs)
	})
}

func show(p any) string {
	v := reflect.ValueOf(p).Elem()
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		return fmt.Sprintf("&%#v", v.Elem().Interface())
	}
	return fmt.Sprintf("%#v", v.Interface())
}
