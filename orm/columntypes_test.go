package orm_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/mapper"
	"github.com/tallyorm/tally/orm"
)

// The column types of the README's "Column types" section, each written by
// one session and read back by a fresh one on every database.

// Decimal stands for github.com/shopspring/decimal's Decimal, which Tally
// does not depend on: a struct with unexported state that values itself as
// text and scans text, bytes, float64 and int64, named Decimal.
type Decimal struct{ text string }

func (d Decimal) String() string { return d.text }

// Value returns the decimal's text, as shopspring's does.
func (d Decimal) Value() (driver.Value, error) { return d.text, nil }

// Scan accepts what drivers return for a DECIMAL, NUMERIC or TEXT column.
func (d *Decimal) Scan(src any) error {
	switch v := src.(type) {
	case string:
		d.text = v
	case []byte:
		d.text = string(v)
	case int64:
		d.text = fmt.Sprint(v)
	case float64:
		d.text = fmt.Sprint(v)
	default:
		return fmt.Errorf("Decimal: cannot scan %T", src)
	}
	return nil
}

// ctMoney holds money three ways: a string and a decimal type with
// precision=/scale=, and type=DECIMAL(20,4) with SQLite's own type.
type ctMoney struct {
	ID      int64   `db:"id,pk,auto"`
	Balance string  `db:"balance,precision=20,scale=4"`
	Price   Decimal `db:"price,precision=30,scale=10"`
	Typed   string  `db:"typed,type=DECIMAL(20,4),type.sqlite=TEXT"`
}

func (ctMoney) TableName() string { return "ct_money" }

// ctLooseDecimal is a decimal type with no precision: exact NUMERIC on
// PostgreSQL, TEXT on SQLite, refused on MySQL.
type ctLooseDecimal struct {
	ID     int64   `db:"id,pk,auto"`
	Amount Decimal `db:"amount"`
}

func (ctLooseDecimal) TableName() string { return "ct_loose_decimals" }

// reload returns the row of obj's table with key id, read by a fresh
// session.
func reload[T any](t *testing.T, eng *orm.Engine, id ...any) *T {
	t.Helper()
	s := eng.NewSession()
	defer s.Close()
	got, err := orm.Get[T](context.Background(), s, id...)
	if err != nil {
		t.Fatalf("fresh Get: %v", err)
	}
	return got
}

// commitNew adds objs in a new session and commits them.
func commitNew(t *testing.T, eng *orm.Engine, objs ...any) {
	t.Helper()
	s := eng.NewSession()
	defer s.Close()
	if err := s.Add(objs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background()); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func ctEngine(t *testing.T, tg dbtest.Target, models ...any) *orm.Engine {
	t.Helper()
	eng := mustOpen(t, tg.Driver, tg.DSN)
	if err := eng.CreateTables(context.Background(), models...); err != nil {
		t.Fatalf("CreateTables: %v", err)
	}
	return eng
}

func TestDecimalsRoundTripExactly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := ctEngine(t, tg, ctMoney{})
		// More digits than a float64 keeps, so any trip through a float fails.
		want := &ctMoney{Balance: "12345678901234.5678", Price: Decimal{"12345678901234567890.0123456789"}, Typed: "-9876543210987.6543"}
		commitNew(t, eng, want)
		got := reload[ctMoney](t, eng, want.ID)
		if d := cmp.Diff(want, got, cmp.AllowUnexported(Decimal{})); d != "" {
			t.Errorf("decimals after a round trip (-want +got):\n%s", d)
		}
	})
}

func TestDecimalWithoutPrecision(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := mustOpen(t, tg.Driver, tg.DSN)
		err := eng.CreateTables(ctx, ctLooseDecimal{})
		if tg.Name == "mysql" {
			// MySQL's DECIMAL without digits is DECIMAL(10,0): refused.
			var de *mapper.DefinitionError
			if !errors.As(err, &de) || de.Field != "Amount" || !strings.Contains(err.Error(), "precision=") {
				t.Fatalf("CreateTables = %v; want a *mapper.DefinitionError for Amount asking for precision=", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		want := &ctLooseDecimal{Amount: Decimal{"12345678901234567890.0123456789"}}
		commitNew(t, eng, want)
		if got := reload[ctLooseDecimal](t, eng, want.ID); got.Amount != want.Amount {
			t.Errorf("amount = %q, want %q", got.Amount, want.Amount)
		}
	})
}

// testUUID stands for github.com/google/uuid's UUID: a [16]byte whose
// Valuer gives the 36-character text.
type testUUID [16]byte

func (u testUUID) String() string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Value returns the text form, as google/uuid's does.
func (u testUUID) Value() (driver.Value, error) { return u.String(), nil }

// Scan accepts the text form or 16 bytes, as google/uuid's does.
func (u *testUUID) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		if len(v) == 16 {
			copy(u[:], v)
			return nil
		}
		return u.Scan(string(v))
	case string:
		b, err := hex.DecodeString(strings.ReplaceAll(v, "-", ""))
		if err != nil || len(b) != 16 {
			return fmt.Errorf("testUUID: bad %q", v)
		}
		copy(u[:], b)
		return nil
	}
	return fmt.Errorf("testUUID: cannot scan %T", src)
}

type ctPoint struct{ X, Y int }

// ctDoc has the UUID and JSON columns, and a per-database type override.
type ctDoc struct {
	ID    int64           `db:"id,pk,auto"`
	UID   testUUID        `db:"uid,unique"`
	Raw   [16]byte        `db:"raw"`
	Meta  json.RawMessage `db:"meta"`
	Attrs map[string]any  `db:"attrs,json"`
	Point *ctPoint        `db:"point,json"`
	Code  string          `db:"code,type=VARCHAR(20),type.postgres=VARCHAR(30)"`
}

func (ctDoc) TableName() string { return "ct_docs" }

func TestUUIDAndJSONRoundTrip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ctEngine(t, tg, ctDoc{})
		uid := testUUID{0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00}
		want := &ctDoc{UID: uid, Raw: [16]byte{0: 1, 15: 0xff}, Meta: json.RawMessage(`{"a": 1, "b": [true, null]}`),
			Attrs: map[string]any{"plan": "pro", "seats": 3.0}, Code: "c-1"}
		commitNew(t, eng, want)
		got := reload[ctDoc](t, eng, want.ID)
		if d := cmp.Diff(want, got, cmp.Comparer(jsonEqual)); d != "" {
			t.Errorf("after a round trip (-want +got):\n%s", d)
		}

		// Each database keeps a UUID in its own type: 16 bytes, or uuid.
		var q, wantKind string
		switch tg.Name {
		case "postgres":
			q, wantKind = `SELECT pg_typeof(uid)::text FROM ct_docs`, "uuid"
		case "mysql":
			q, wantKind = "SELECT CAST(LENGTH(uid) AS CHAR) FROM ct_docs", "16"
		default:
			q, wantKind = `SELECT typeof(uid) FROM ct_docs`, "blob"
		}
		var kind string
		if err := eng.DB().QueryRowContext(ctx, q).Scan(&kind); err != nil {
			t.Fatal(err)
		}
		if kind != wantKind {
			t.Errorf("%s = %q, want %q", q, kind, wantKind)
		}

		// A UUID is also a query argument, bound as the column stores it.
		s := eng.NewSession()
		defer s.Close()
		found, err := orm.Query[ctDoc](s).Where("uid = ?", uid).All(ctx)
		if err != nil || len(found) != 1 {
			t.Fatalf("Where uid = ? found %d, %v; want the row", len(found), err)
		}

		// A json value changed in place is a change.
		found[0].Attrs["seats"] = 4.0
		found[0].Point = &ctPoint{1, 2}
		if !s.IsDirty(found[0]) {
			t.Fatal("a map changed in place is not dirty")
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		got = reload[ctDoc](t, eng, want.ID)
		if got.Attrs["seats"] != 4.0 || got.Point == nil || *got.Point != (ctPoint{1, 2}) {
			t.Errorf("after the update: attrs %v, point %v; want seats 4 and {1 2}", got.Attrs, got.Point)
		}
	})
}

// jsonEqual compares JSON texts by value: PostgreSQL's jsonb keeps the
// value, not the spacing or key order.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return cmp.Equal(x, y)
}

// ctBytes has a nullable []byte column.
type ctBytes struct {
	ID   int64  `db:"id,pk,auto"`
	Data []byte `db:"data"`
}

func (ctBytes) TableName() string { return "ct_bytes" }

func TestEmptyBytesAndNullStayDistinct(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ctEngine(t, tg, ctBytes{})
		obj := &ctBytes{Data: []byte{}}
		commitNew(t, eng, obj)
		for i, next := range [][]byte{nil, {}, {0}, nil} {
			s := eng.NewSession()
			got, err := orm.Get[ctBytes](ctx, s, obj.ID)
			if err != nil {
				t.Fatal(err)
			}
			if (got.Data == nil) != (obj.Data == nil) || string(got.Data) != string(obj.Data) {
				t.Fatalf("step %d: loaded %#v, want %#v", i, got.Data, obj.Data)
			}
			got.Data = next
			if !s.IsDirty(got) {
				t.Fatalf("step %d: %#v → %#v is not a change", i, obj.Data, next)
			}
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			s.Close()
			obj.Data = next
		}
		if got := reload[ctBytes](t, eng, obj.ID); got.Data != nil {
			t.Errorf("last load %#v, want nil", got.Data)
		}
	})
}

// ctUnsigned has a uint64 column.
type ctUnsigned struct {
	ID int64  `db:"id,pk,auto"`
	N  uint64 `db:"n"`
}

func (ctUnsigned) TableName() string { return "ct_unsigned" }

func TestUint64FullRangeOrRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := mustOpen(t, tg.Driver, tg.DSN)
		if !eng.Dialect().Capabilities().Uint64 {
			// SQLite's integers are signed: the model is refused up front,
			// naming the field and what to use.
			err := eng.Register(ctUnsigned{})
			var de *mapper.DefinitionError
			if !errors.As(err, &de) || de.Field != "N" || !strings.Contains(err.Error(), "int64") {
				t.Fatalf("Register = %v; want a *mapper.DefinitionError for N suggesting int64", err)
			}
			s := eng.NewSession()
			defer s.Close()
			if err := s.Add(&ctUnsigned{N: 1}); !errors.As(err, &de) {
				t.Errorf("Add = %v; want the *mapper.DefinitionError", err)
			}
			if _, err := orm.Query[ctUnsigned](s).All(ctx); !errors.As(err, &de) {
				t.Errorf("Query.All = %v; want the *mapper.DefinitionError", err)
			}
			return
		}
		if err := eng.CreateTables(ctx, ctUnsigned{}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []uint64{math.MaxUint64, 1 << 63, 0} {
			want := &ctUnsigned{N: n}
			commitNew(t, eng, want)
			if got := reload[ctUnsigned](t, eng, want.ID); got.N != n {
				t.Errorf("N = %d, want %d", got.N, n)
			}
		}
	})
}

// ctText has an unsized and a sized string.
type ctText struct {
	ID    int64  `db:"id,pk,auto"`
	Body  string `db:"body"`
	Short string `db:"short,size=10"`
}

func (ctText) TableName() string { return "ct_texts" }

func TestUnsizedStringHoldsLongText(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		eng := ctEngine(t, tg, ctText{})
		want := &ctText{Body: strings.Repeat("ab€", 70000/3+1)[:70000], Short: "0123456789"}
		commitNew(t, eng, want)
		if got := reload[ctText](t, eng, want.ID); got.Body != want.Body || got.Short != want.Short {
			t.Errorf("body of %d bytes came back as %d bytes, short %q (want %q)", len(want.Body), len(got.Body), got.Short, want.Short)
		}
	})
}

// ctEvent has time columns.
type ctEvent struct {
	ID  int64               `db:"id,pk,auto"`
	At  time.Time           `db:"at"`
	PAt *time.Time          `db:"p_at"`
	NAt sql.NullTime        `db:"n_at"`
	GAt sql.Null[time.Time] `db:"g_at"`
	Nil sql.NullTime        `db:"nil_at"`
}

func (ctEvent) TableName() string { return "ct_events" }

func TestTimesAreUTCMicrosecondsEverywhere(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ctEngine(t, tg, ctEvent{})
		zone := time.FixedZone("IST", 5*3600+1800)
		at := time.Date(2024, 2, 29, 13, 14, 15, 123456789, zone)
		p := at.Add(time.Hour)
		obj := &ctEvent{At: at, PAt: &p, NAt: sql.NullTime{Time: at, Valid: true}, GAt: sql.Null[time.Time]{V: at, Valid: true}}
		commitNew(t, eng, obj)
		want := at.Truncate(time.Microsecond).UTC()
		// The writing session holds what was stored...
		if obj.At != want || *obj.PAt != want.Add(time.Hour) || obj.NAt.Time != want || obj.GAt.V != want {
			t.Errorf("after commit the object holds %v, %v, %v, %v; want %v (and an hour later)", obj.At, *obj.PAt, obj.NAt.Time, obj.GAt.V, want)
		}
		// ...and a fresh session loads exactly that, in UTC.
		got := reload[ctEvent](t, eng, obj.ID)
		if got.At != want || got.PAt == nil || *got.PAt != want.Add(time.Hour) || got.NAt != obj.NAt || got.GAt != obj.GAt || got.Nil.Valid {
			t.Errorf("loaded %v, %v, %+v, %+v, %+v; want %v (same instant, UTC, microseconds), NULL last", got.At, got.PAt, got.NAt, got.GAt, got.Nil, want)
		}
		if got.At.Location() != time.UTC || got.PAt.Location() != time.UTC || got.NAt.Time.Location() != time.UTC {
			t.Errorf("loaded locations %v, %v, %v; want UTC", got.At.Location(), got.PAt.Location(), got.NAt.Time.Location())
		}
		// An update truncates too.
		s := eng.NewSession()
		defer s.Close()
		o, err := orm.Get[ctEvent](ctx, s, obj.ID)
		if err != nil {
			t.Fatal(err)
		}
		o.At = o.At.Add(time.Nanosecond * 1999)
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := reload[ctEvent](t, eng, obj.ID); got.At != o.At || o.At != want.Add(time.Microsecond) {
			t.Errorf("after an update the session holds %v and a fresh load %v; want both %v", o.At, got.At, want.Add(time.Microsecond))
		}
	})
}

// ctItem is a small table for bulk tests.
type ctItem struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name,size=20"`
}

func (ctItem) TableName() string { return "ct_items" }

// TestInListOverParameterLimit: a list longer than the database's
// parameter limit runs as one array on PostgreSQL (= ANY), and elsewhere
// fails before anything is sent, with an error naming the limit.
func TestInListOverParameterLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		log := &queryLog{}
		eng := mustOpen(t, tg.Driver, tg.DSN, orm.WithQueryHook(log.hook))
		if err := eng.CreateTables(ctx, ctItem{}); err != nil {
			t.Fatal(err)
		}
		commitNew(t, eng, &ctItem{ID: 1, Name: "a"}, &ctItem{ID: 2, Name: "b"}, &ctItem{ID: 70001, Name: "c"})
		log.Reset()
		limit := eng.Dialect().MaxParams()
		ids := make([]int64, 70000) // above every database's limit
		for i := range ids {
			ids[i] = int64(i + 1)
		}
		s := eng.NewSession()
		defer s.Close()
		got, err := orm.Query[ctItem](s).Where("id IN (?)", ids).OrderBy("id").All(ctx)
		if eng.Dialect().Capabilities().ArrayParams {
			if err != nil || len(got) != 2 || got[1].ID != 2 {
				t.Fatalf("IN with %d values = %d rows, %v; want ids 1 and 2", len(ids), len(got), err)
			}
			if sel := log.Matching("SELECT"); len(sel) != 1 || !strings.Contains(sel[0].SQL, "= ANY(") || len(sel[0].Args) != 1 {
				t.Errorf("sent %q; want one SELECT with = ANY and one argument", log.SQL())
			}
			n, err := orm.Query[ctItem](s).Where("id NOT IN (?)", ids).Count(ctx)
			if err != nil || n != 1 {
				t.Errorf("NOT IN with %d values counts %d, %v; want 1", len(ids), n, err)
			}
			return
		}
		var be *dialect.BindError
		if !errors.As(err, &be) || be.Limit != limit || !strings.Contains(err.Error(), fmt.Sprint(limit)) {
			t.Fatalf("IN with %d values = %v; want a *dialect.BindError naming the limit %d", len(ids), err, limit)
		}
		if sent := log.SQL(); len(sent) != 0 {
			t.Errorf("sent %q; want nothing", sent)
		}
		// Up to the limit the list runs.
		got, err = orm.Query[ctItem](s).Where("id IN (?)", ids[:limit]).All(ctx)
		if err != nil || len(got) != 2 {
			t.Errorf("IN with %d values = %d rows, %v; want 2", limit, len(got), err)
		}
	})
}

func TestBulkWithoutWhereNeedsAllRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		log := &queryLog{}
		eng := mustOpen(t, tg.Driver, tg.DSN, orm.WithQueryHook(log.hook))
		if err := eng.CreateTables(ctx, ctItem{}); err != nil {
			t.Fatal(err)
		}
		commitNew(t, eng, &ctItem{ID: 1, Name: "a"}, &ctItem{ID: 2, Name: "b"})
		log.Reset()
		s := eng.NewSession()
		defer s.Close()
		if n, err := orm.Query[ctItem](s).DeleteAll(ctx); !errors.Is(err, orm.ErrMissingWhere) || n != 0 {
			t.Errorf("DeleteAll without Where = %d, %v; want 0, ErrMissingWhere", n, err)
		}
		if n, err := orm.Query[ctItem](s).UpdateAll(ctx, orm.Set{"name": "x"}); !errors.Is(err, orm.ErrMissingWhere) || n != 0 {
			t.Errorf("UpdateAll without Where = %d, %v; want 0, ErrMissingWhere", n, err)
		}
		if sent := log.SQL(); len(sent) != 0 {
			t.Errorf("sent %q; want nothing", sent)
		}
		if n, err := orm.Query[ctItem](s).AllRows().UpdateAll(ctx, orm.Set{"name": "x"}); n != 2 || err != nil {
			t.Errorf("AllRows().UpdateAll = %d, %v; want 2", n, err)
		}
		if n, err := orm.Query[ctItem](s).AllRows().DeleteAll(ctx); n != 2 || err != nil {
			t.Errorf("AllRows().DeleteAll = %d, %v; want 2", n, err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestGeneratedMappersFollowValueRules: the test models' compiled mappers
// (internal/testmodels/tally_gen.go) write times as UTC microseconds and
// keep an empty []byte apart from NULL, as the reflective mapper does.
func TestGeneratedMappersFollowValueRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		for _, reflective := range []bool{false, true} {
			var opts []orm.Option
			if reflective {
				opts = append(opts, orm.WithReflectiveMappers())
			}
			eng := openEngine(t, tg, nil, opts...)
			at := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("IST", 5*3600+1800))
			acct := &Account{Owner: fmt.Sprint("gen-", reflective), Created: at}
			blob := &testmodels.Blob{Data: []byte{}}
			commitNew(t, eng, acct, blob)
			want := at.Truncate(time.Microsecond).UTC()
			if acct.Created != want {
				t.Errorf("reflective=%v: after commit Created = %v, want %v", reflective, acct.Created, want)
			}
			if got := reload[Account](t, eng, acct.ID); got.Created != want {
				t.Errorf("reflective=%v: loaded Created = %v, want %v", reflective, got.Created, want)
			}
			if got := reload[testmodels.Blob](t, eng, blob.ID); got.Data == nil {
				t.Errorf("reflective=%v: an empty blob loaded as nil", reflective)
			}
			if err := eng.DropTables(ctx, testmodels.Models...); err != nil {
				t.Fatal(err)
			}
		}
	})
}
