package orm_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// Adversarial tests of PostgreSQL's direct reads (directread.go,
// dialect/postgres/dbscan.go) through models: the fields the accessors
// hand to a read, not only the builtin destinations. Helpers carry an
// adv prefix.

// advDirect has only fields a direct read takes, over column types that
// pgx scans natively and ones it converts through database/sql's rules:
// numeric, uuid, jsonb, bytea, interval, date and timestamp columns into
// strings, []byte, integers, floats and times, with NULLs.
type advDirect struct {
	ID    int64           `db:"id,pk,auto"`
	I32   int32           `db:"i32"`
	I16   int16           `db:"i16"`
	U32   uint32          `db:"u32,type=BIGINT"`
	F32   float32         `db:"f32"`
	F64   float64         `db:"f64"`
	S     string          `db:"s,size=20"`
	PS    *string         `db:"ps,size=20"`
	B     bool            `db:"b"`
	PB    *bool           `db:"pb"`
	Bytes []byte          `db:"bytes"`
	T     time.Time       `db:"t"`
	PT    *time.Time      `db:"pt"`
	NS    sql.NullString  `db:"ns,size=20"`
	NI    sql.NullInt64   `db:"ni"`
	NT    sql.NullTime    `db:"nt"`
	NF    sql.NullFloat64 `db:"nf"`
	Num   string          `db:"num,type=NUMERIC(10,2)"`
	PNum  *string         `db:"pnum,type=NUMERIC(10,2)"`
	NumI  int64           `db:"numi,type=NUMERIC(10,0)"`
	NumF  float64         `db:"numf,type=NUMERIC(10,3)"`
	U     string          `db:"u,type=UUID"`
	UB    []byte          `db:"ub,type=UUID"`
	J     string          `db:"j,type=JSONB"`
	JB    []byte          `db:"jb,type=JSONB"`
	D     time.Time       `db:"d,type=DATE"`
	TS    time.Time       `db:"ts,type=TIMESTAMP"`
	IV    string          `db:"iv,type=INTERVAL"`
	Small int64           `db:"small,type=SMALLINT"`
	Ch    string          `db:"ch,type=CHAR(5)"`
	PI    *int64          `db:"pi"`
	BS    string          `db:"bs,type=BYTEA"`
	TZ    string          `db:"tz,type=TIMESTAMPTZ"`
}

func (advDirect) TableName() string { return "adv_direct" }

// advName is a named string: database/sql converts into it by reflection.
type advName string

// advBase is embedded in advDeclined.
type advBase struct {
	EA int64  `db:"ea"`
	EB string `db:"eb,size=10"`
}

// advDeclined has fields a direct read declines (a named type, a pointer
// to one, json.RawMessage, a small unsigned integer) next to an embedded
// struct and a json column: its reads stay on database/sql.
type advDeclined struct {
	ID int64 `db:"id,pk,auto"`
	advBase
	N  advName         `db:"n,size=10"`
	PN *advName        `db:"pn,size=10"`
	R  json.RawMessage `db:"r,type=JSONB"`
	M  map[string]any  `db:"m,json"`
	U8 uint8           `db:"u8"`
}

func (advDeclined) TableName() string { return "adv_declined" }

// A model's rows read in autocommit on PostgreSQL, where they go to pgx
// directly, are the objects database/sql gives in a transaction, field
// for field, NULLs and the conversions of numeric, uuid, jsonb, bytea,
// interval, date and time columns included; a model with a field the
// direct read declines is read through database/sql instead. The objects
// read directly have snapshots equal to them (not dirty), and a change to
// one is a one-column UPDATE sent alone.
func TestDirectReadOfModelFieldsIsDatabaseSQLs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		if tg.Name != dbtest.Postgres {
			t.Skip("only PostgreSQL reads directly (and has these column types)")
		}
		ctx := context.Background()
		eng, log := openLogged(t, tg)
		uowMust(t, eng.CreateTables(ctx, advDirect{}, advDeclined{}))
		for _, q := range []string{
			`INSERT INTO adv_direct (i32, i16, u32, f32, f64, s, ps, b, pb, bytes, t, pt, ns, ni, nt, nf, num, pnum, numi, numf, u, ub, j, jb, d, ts, iv, small, ch, pi, bs, tz) VALUES
			 (-5, 7, 4000000000, 1.25, 2.5e300, 'héllo', 'p', true, false, '\x00ff', '2024-01-02 03:04:05.123456+05:30', '1999-12-31 23:59:59-08', 'ns', 42, '2020-02-29 12:00:00+00', 0.1,
			  '12.50', '3.10', '123', '1.125', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2]}', '{"x": null}',
			  '2024-02-29', '2024-01-02 03:04:05.5', '1 day 02:00:00', 300, 'ab', 9, '\xdeadbeef', '2024-06-01 00:00:00+00')`,
			`INSERT INTO adv_direct (i32, i16, u32, f32, f64, s, b, t, num, numi, numf, u, ub, j, jb, d, ts, iv, small, ch, bs, tz) VALUES
			 (0, 0, 0, 0, 0, '', false, '0001-01-01 00:00:00+00', '0', '0', '0', '00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000',
			  'null', '[]', '0001-01-01', '0001-01-01 00:00:00', '0', 0, '', '', '1970-01-01 00:00:00+00')`,
			`INSERT INTO adv_declined (ea, eb, n, pn, r, m, u8) VALUES (1, 'e', 'nn', 'pn', '{"k": [1, 2.50]}', '{"z": 1}', 200), (0, '', '', NULL, 'null', NULL, 0)`,
		} {
			if _, err := eng.DB().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		// read reads both models in a session of opts and returns the
		// objects and the session's direct reads.
		read := func(opts ...orm.SessionOption) ([]*advDirect, []*advDeclined, int) {
			s := eng.NewSession(opts...)
			defer s.Close()
			d, err := orm.Query[advDirect](s).OrderBy("id").All(ctx)
			uowMust(t, err)
			o, err := orm.Query[advDeclined](s).OrderBy("id").All(ctx)
			uowMust(t, err)
			return d, o, orm.DirectReads(s)
		}
		wantD, wantO, _ := read(orm.WithSnapshot()) // in a transaction: database/sql
		gotD, gotO, direct := read()
		if direct != 1 {
			t.Errorf("%d direct reads, want 1: advDirect's only", direct)
		}
		if d := cmp.Diff(wantD, gotD); d != "" {
			t.Errorf("direct read differs from database/sql's (-database/sql +direct):\n%s", d)
		}
		if d := cmp.Diff(wantO, gotO, cmp.AllowUnexported(advDeclined{})); d != "" {
			t.Errorf("declined read differs (-database/sql +autocommit):\n%s", d)
		}

		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Get[advDirect](ctx, s, wantD[0].ID)
		uowMust(t, err)
		if d := cmp.Diff(wantD[0], got); d != "" || orm.DirectReads(s) != 1 {
			t.Errorf("direct Get (%d direct reads) differs (-database/sql +direct):\n%s", orm.DirectReads(s), d)
		}
		if s.IsDirty(got) {
			t.Error("an object read directly is dirty: its snapshot disagrees with it")
		}
		got.S = "changed"
		log.Reset()
		uowMust(t, s.Commit(ctx))
		if sqls := log.SQL(); !slices.Equal(sqls, []string{`UPDATE "adv_direct" SET "s" = $1 WHERE "id" = $2`}) {
			t.Errorf("commit sent %q, want the one column's UPDATE alone", sqls)
		}
	})
}
