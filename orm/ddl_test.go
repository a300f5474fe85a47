package orm

// White-box tests of the DDL: sortTables and CycleError on hand-built
// metadata, and CreateTables / DropTables on every real database. The
// database tests use only the exported API; they live in package orm so
// that one file covers DDL end to end.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/mapper"
)

// ddlColor is a named string type: stored as text, scanned back by kind.
type ddlColor string

// DDLScalars has one column of every type the dialects map, plus the tag
// options that change DDL (size, type, unique, index). It is embedded, so
// flattened, in the models below. (Exported only so that go-cmp sees it.)
// uint64 is not here: SQLite refuses it (see columntypes_test.go).
type DDLScalars struct {
	Bool   bool              `db:"b"`
	I8     int8              `db:"i8"`
	I16    int16             `db:"i16"`
	I32    int32             `db:"i32"`
	I64    int64             `db:"i64"`
	Int    int               `db:"i"`
	U8     uint8             `db:"u8"`
	U16    uint16            `db:"u16"`
	U32    uint32            `db:"u32"`
	F32    float32           `db:"f32"`
	F64    float64           `db:"f64"`
	Str    string            `db:"str"`
	Sized  string            `db:"sized,size=20"`
	Bytes  []byte            `db:"bytes"`
	At     time.Time         `db:"at"`
	PStr   *string           `db:"p_str"`
	PInt   *int64            `db:"p_int"`
	PTime  *time.Time        `db:"p_time"`
	NStr   sql.NullString    `db:"n_str"`
	NInt   sql.NullInt64     `db:"n_int"`
	NTime  sql.NullTime      `db:"n_time"`
	NFloat sql.Null[float64] `db:"n_float"`
	Color  ddlColor          `db:"color"`
	Amount int64             `db:"amount,type=DECIMAL(12)"`
	Email  string            `db:"email,unique"`
	Code   string            `db:"code,index,size=16"`
	Order  int32             `db:"order,index"` // a reserved word: only quoting makes it a column
	Skip   string            `db:"-"`
}

// ddlAllTypes is every column type plus a readonly column.
type ddlAllTypes struct {
	ID int64 `db:"id,pk,auto"`
	DDLScalars
	Score int64 `db:"score,readonly"`
}

func (ddlAllTypes) TableName() string { return "ddl_all_types" }

// ddlAllColumns are ddlAllTypes' columns in field order, for plain INSERTs.
var ddlAllColumns = []string{"id", "b", "i8", "i16", "i32", "i64", "i", "u8", "u16", "u32",
	"f32", "f64", "str", "sized", "bytes", "at", "p_str", "p_int", "p_time", "n_str", "n_int",
	"n_time", "n_float", "color", "amount", "email", "code", "order", "score"}

func (r *ddlAllTypes) args() []any {
	return []any{r.ID, r.Bool, r.I8, r.I16, r.I32, r.I64, r.Int, r.U8, r.U16, r.U32,
		r.F32, r.F64, r.Str, r.Sized, r.Bytes, r.At, r.PStr, r.PInt, r.PTime, r.NStr, r.NInt,
		r.NTime, r.NFloat, string(r.Color), r.Amount, r.Email, r.Code, r.Order, r.Score}
}

// ddlInsertSQL builds INSERT INTO table (cols) VALUES (?, ...) in d's syntax.
func ddlInsertSQL(d dialect.Dialect, table string, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = d.Quote(c)
	}
	return d.Rebind("INSERT INTO " + d.Quote(table) + " (" + strings.Join(q, ", ") +
		") VALUES (" + strings.Repeat("?, ", len(cols)-1) + "?)")
}

func ddlOpen(t *testing.T, tg dbtest.Target, opts ...Option) *Engine {
	t.Helper()
	eng, err := Open(context.Background(), tg.Name, tg.DSN, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// ddlFullRow and ddlNullRow are two rows of ddlAllTypes: every column
// set, and zero values where they are allowed with NULL in every nullable
// column. Times are in a zone that is neither UTC nor whole hours, to catch
// a time stored as wall clock, and keep microseconds, as DATETIME(6) does.
func ddlFullRow() DDLScalars {
	at := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("IST", 5*3600+1800)).Truncate(time.Microsecond)
	s, n, tm := "pointer", int64(-42), at.Add(time.Hour)
	return DDLScalars{
		Bool: true, I8: -128, I16: -32768, I32: -2147483648, I64: -9223372036854775808,
		Int: 1 << 40, U8: 255, U16: 65535, U32: 4294967295,
		F32: 1.5, F64: 2.718281828459045, Str: "text with 'quotes', \"double\", \\ and ünïcödé",
		Sized: "twenty characters!!!", Bytes: []byte{0, 1, 2, 0xfe, 0xff}, At: at,
		PStr: &s, PInt: &n, PTime: &tm,
		NStr:   sql.NullString{String: "ns", Valid: true},
		NInt:   sql.NullInt64{Int64: 7, Valid: true},
		NTime:  sql.NullTime{Time: at.Add(-time.Hour), Valid: true},
		NFloat: sql.Null[float64]{V: -0.25, Valid: true},
		Color:  "red", Amount: 123456789012, Email: "ann@example.com", Code: "A1", Order: 3,
	}
}

func ddlNullRow() DDLScalars {
	return DDLScalars{Email: "bob@example.com", At: time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)}
}

func TestCreateTablesRoundTrip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ddlOpen(t, tg)
		if err := eng.CreateTables(ctx, ddlAllTypes{}); err != nil {
			t.Fatal(err)
		}
		// IF NOT EXISTS: a second call is a no-op, indexes included.
		if err := eng.CreateTables(ctx, ddlAllTypes{}); err != nil {
			t.Fatalf("second CreateTables: %v", err)
		}

		full := ddlAllTypes{ID: 1, DDLScalars: ddlFullRow(), Score: 99}
		nulls := ddlAllTypes{ID: 2, DDLScalars: ddlNullRow()}
		ins := ddlInsertSQL(eng.Dialect(), "ddl_all_types", ddlAllColumns)
		for _, r := range []*ddlAllTypes{&full, &nulls} {
			if _, err := eng.DB().ExecContext(ctx, ins, r.args()...); err != nil {
				t.Fatalf("insert id %d: %v\n%s", r.ID, err, ins)
			}
		}

		sess := eng.NewSession()
		defer sess.Close()
		for _, want := range []*ddlAllTypes{&full, &nulls} {
			got, err := Get[ddlAllTypes](ctx, sess, want.ID)
			if err != nil {
				t.Fatalf("Get(%d): %v", want.ID, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Get(%d) mismatch (-inserted +read):\n%s", want.ID, diff)
			}
		}
		sess.Close()

		// unique: a second row with the same email is refused.
		dup := nulls
		dup.ID = 3
		if _, err := eng.DB().ExecContext(ctx, ins, dup.args()...); err == nil {
			t.Error("duplicate value in a unique column was accepted")
		}
		// index: the indexed columns have their named indexes.
		idx := ddlIndexes(t, eng, "ddl_all_types")
		for _, col := range []string{"code", "order"} {
			name := indexName("ddl_all_types", col)
			if !slices.Equal(idx[name], []string{col}) {
				t.Errorf("no index %s on %s; indexes: %v", name, col, idx)
			}
		}
	})
}

// ddlWritable is every column type without a readonly one, so that a
// session can write all of its columns.
type ddlWritable struct {
	ID int64 `db:"id,pk,auto"`
	DDLScalars
}

func (ddlWritable) TableName() string { return "ddl_writables" }

// TestCreateTablesSessionRoundTrip writes every column type through a
// session, the way an application does, and reads it back in another.
func TestCreateTablesSessionRoundTrip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ddlOpen(t, tg)
		if err := eng.CreateTables(ctx, ddlWritable{}); err != nil {
			t.Fatal(err)
		}
		objs := []*ddlWritable{{DDLScalars: ddlFullRow()}, {DDLScalars: ddlNullRow()}}
		s := eng.NewSession()
		defer s.Close()
		for _, o := range objs {
			if err := s.Add(o); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		s2 := eng.NewSession()
		defer s2.Close()
		for _, want := range objs {
			got, err := Get[ddlWritable](ctx, s2, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("id %d mismatch (-added +read):\n%s", want.ID, diff)
			}
		}
	})
}

// ddlReadOnly has a readonly column: never written by the session, so the
// table CreateTables makes must accept rows without it.
type ddlReadOnly struct {
	ID    int64  `db:"id,pk,auto"`
	Name  string `db:"name"`
	Score int64  `db:"score,readonly"`
}

func (ddlReadOnly) TableName() string { return "ddl_read_onlies" }

func TestCreateTablesReadOnlyColumn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ddlOpen(t, tg)
		if err := eng.CreateTables(ctx, ddlReadOnly{}); err != nil {
			t.Fatal(err)
		}
		s := eng.NewSession()
		defer s.Close()
		obj := &ddlReadOnly{Name: "x", Score: 5}
		if err := s.Add(obj); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatalf("the session cannot insert into the table CreateTables made for a model with a readonly column: %v", err)
		}
		// The readonly value was not written: the column holds the zero value.
		s2 := eng.NewSession()
		defer s2.Close()
		got, err := Get[ddlReadOnly](ctx, s2, obj.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Score != 0 || got.Name != "x" {
			t.Errorf("read back %+v, want Name x and Score 0 (never written)", got)
		}
	})
}

// ddlIndexes returns the indexes on table, index name → column names.
func ddlIndexes(t *testing.T, eng *Engine, table string) map[string][]string {
	t.Helper()
	var q string
	switch eng.Dialect().Name() {
	case "sqlite":
		q = `SELECT il.name, ii.name FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii`
	case "mysql":
		q = `SELECT index_name, column_name FROM information_schema.statistics
			WHERE table_schema = DATABASE() AND table_name = ?`
	case "postgres":
		q = `SELECT i.relname, a.attname FROM pg_index x
			JOIN pg_class i ON i.oid = x.indexrelid
			JOIN pg_class c ON c.oid = x.indrelid
			JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(x.indkey)
			WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace`
	}
	rows, err := eng.DB().QueryContext(context.Background(), q, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var name, col string
		if err := rows.Scan(&name, &col); err != nil {
			t.Fatal(err)
		}
		out[name] = append(out[name], col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ddlTables lists the tables of the current database or schema.
func ddlTables(t *testing.T, eng *Engine) []string {
	t.Helper()
	var q string
	switch eng.Dialect().Name() {
	case "sqlite":
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	case "mysql":
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`
	case "postgres":
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	var names []string
	if err := eng.DB().SelectContext(context.Background(), &names, q); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// Two tables whose index names would coincide: ix_ + "ddl_ix_a" + _ + "b_c"
// and ix_ + "ddl_ix_a_b" + _ + "c". PostgreSQL and SQLite name indexes per
// schema, so both must still get theirs.
type ddlIxOne struct {
	ID  int64 `db:"id,pk"`
	B_C int64 `db:"b_c,index"`
}

func (ddlIxOne) TableName() string { return "ddl_ix_a" }

type ddlIxTwo struct {
	ID int64 `db:"id,pk"`
	C  int64 `db:"c,index"`
}

func (ddlIxTwo) TableName() string { return "ddl_ix_a_b" }

func TestCreateTablesIndexNamesDoNotCollide(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ddlOpen(t, tg)
		if err := eng.CreateTables(ctx, ddlIxOne{}, ddlIxTwo{}); err != nil {
			t.Fatal(err)
		}
		if idx := ddlIndexes(t, eng, "ddl_ix_a"); !ddlHasIndexOn(idx, "b_c") {
			t.Errorf("ddl_ix_a.b_c has no index; indexes: %v", idx)
		}
		if idx := ddlIndexes(t, eng, "ddl_ix_a_b"); !ddlHasIndexOn(idx, "c") {
			t.Errorf("ddl_ix_a_b.c has no index; indexes: %v", idx)
		}
	})
}

// ddlLongNames has names well within each database's 63/64-character limit
// for identifiers, whose index name "ix_<table>_<column>" is not.
type ddlLongNames struct {
	ID  int64 `db:"id,pk"`
	Ref int64 `db:"external_payment_reference_code,index"`
}

func (ddlLongNames) TableName() string { return "ddl_customer_subscription_billing_events" }

func TestCreateTablesLongIndexName(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ddlOpen(t, tg)
		for i := range 2 {
			if err := eng.CreateTables(ctx, ddlLongNames{}); err != nil {
				t.Fatalf("CreateTables #%d: %v", i+1, err)
			}
		}
		if idx := ddlIndexes(t, eng, "ddl_customer_subscription_billing_events"); !ddlHasIndexOn(idx, "external_payment_reference_code") {
			t.Errorf("no index on the column; indexes: %v", idx)
		}
	})
}

func ddlHasIndexOn(idx map[string][]string, col string) bool {
	for _, cols := range idx {
		if slices.Equal(cols, []string{col}) {
			return true
		}
	}
	return false
}

// A has-many / belongs-to pair, and a second pair with ON DELETE CASCADE.
type ddlParent struct {
	ID       int64       `db:"id,pk,auto"`
	Name     string      `db:"name"`
	Children []*ddlChild `rel:"parent_id"`
}

func (ddlParent) TableName() string { return "ddl_parents" }

type ddlChild struct {
	ID       int64      `db:"id,pk,auto"`
	ParentID int64      `db:"parent_id"`
	Parent   *ddlParent `rel:"parent_id"`
}

func (ddlChild) TableName() string { return "ddl_children" }

type ddlOwner struct {
	ID    int64      `db:"id,pk,auto"`
	Items []*ddlItem `rel:"owner_id,cascade"`
}

func (ddlOwner) TableName() string { return "ddl_owners" }

type ddlItem struct {
	ID      int64 `db:"id,pk,auto"`
	OwnerID int64 `db:"owner_id"`
}

func (ddlItem) TableName() string { return "ddl_items" }

func TestCreateTablesForeignKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		eng := ddlOpen(t, tg)
		// Children first on purpose: CreateTables orders them.
		if err := eng.CreateTables(ctx, ddlItem{}, ddlChild{}, ddlParent{}, ddlOwner{}); err != nil {
			t.Fatal(err)
		}

		t.Run("missing parent", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			if err := s.Add(&ddlChild{ParentID: 12345}); err != nil {
				t.Fatal(err)
			}
			err := s.Commit(ctx)
			if !errors.Is(err, ErrForeignKeyViolation) {
				t.Fatalf("Commit of a child without parent: got %v, want ErrForeignKeyViolation", err)
			}
		})

		t.Run("restrict", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			p := &ddlParent{Name: "p", Children: []*ddlChild{{}}}
			if err := s.Add(p); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if p.Children[0].ParentID != p.ID {
				t.Fatalf("child's parent_id %d, want %d", p.Children[0].ParentID, p.ID)
			}
			// Without cascade, a referenced parent cannot go.
			s2 := eng.NewSession()
			defer s2.Close()
			p2, err := Get[ddlParent](ctx, s2, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s2.Delete(p2); err != nil {
				t.Fatal(err)
			}
			err = s2.Commit(ctx)
			if !errors.Is(err, ErrForeignKeyViolation) {
				t.Fatalf("Commit deleting a referenced parent: got %v, want ErrForeignKeyViolation", err)
			}
		})

		t.Run("cascade", func(t *testing.T) {
			s := eng.NewSession()
			defer s.Close()
			o := &ddlOwner{Items: []*ddlItem{{}, {}}}
			if err := s.Add(o); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// Plain SQL, so that only the database's ON DELETE CASCADE
			// can remove the items (not the session's cascade).
			d := eng.Dialect()
			del := d.Rebind("DELETE FROM " + d.Quote("ddl_owners") + " WHERE " + d.Quote("id") + " = ?")
			if _, err := eng.DB().ExecContext(ctx, del, o.ID); err != nil {
				t.Fatalf("delete owner: %v", err)
			}
			var n int
			cnt := d.Rebind("SELECT COUNT(*) FROM " + d.Quote("ddl_items") + " WHERE " + d.Quote("owner_id") + " = ?")
			if err := eng.DB().GetContext(ctx, &n, cnt, o.ID); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d items left after deleting their owner; want ON DELETE CASCADE", n)
			}
		})

		t.Run("drop", func(t *testing.T) {
			// Parents first in the arguments: DropTables must still drop
			// the children first, or the databases refuse.
			models := []any{ddlParent{}, ddlOwner{}, ddlChild{}, ddlItem{}}
			if err := eng.DropTables(ctx, models...); err != nil {
				t.Fatal(err)
			}
			if got := ddlTables(t, eng); len(got) != 0 {
				t.Errorf("tables left after DropTables: %v", got)
			}
			if err := eng.DropTables(ctx, models...); err != nil {
				t.Errorf("second DropTables: %v", err)
			}
		})
	})
}

func TestCreateTablesBadModel(t *testing.T) {
	ctx := context.Background()
	eng := New(ddlNoDB(t), dialect.SQLite)
	type noKey struct{ Name string }
	err := eng.CreateTables(ctx, noKey{})
	var de *mapper.DefinitionError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "noKey") {
		t.Fatalf("CreateTables(noKey{}): %v; want a DefinitionError naming the type", err)
	}
	if err := eng.DropTables(ctx, noKey{}); !errors.As(err, &de) {
		t.Fatalf("DropTables(noKey{}): %v; want a DefinitionError", err)
	}
}

// ddlNoDB is a pool on an in-memory SQLite database, for tests that must
// fail before any statement runs.
func ddlNoDB(t *testing.T) *sql.DB {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// --- createTableSQL, per dialect, as {model, want} rows ---

func TestCreateTableSQL(t *testing.T) {
	type tagged struct {
		Kind string `db:"kind,pk,size=32"`
		Name string `db:"name,pk"`
		Note *string
		Data []byte `db:"data,unique"`
	}
	tests := []struct {
		d    dialect.Dialect
		want []string
	}{
		{dialect.SQLite, []string{"CREATE TABLE IF NOT EXISTS \"taggeds\" (\n" +
			"  \"kind\" TEXT NOT NULL,\n  \"name\" TEXT NOT NULL,\n  \"note\" TEXT,\n  \"data\" BLOB,\n" +
			"  PRIMARY KEY (\"kind\", \"name\"),\n  UNIQUE (\"data\")\n)"}},
		{dialect.MySQL, []string{"CREATE TABLE IF NOT EXISTS `taggeds` (\n" +
			"  `kind` VARCHAR(32) NOT NULL,\n  `name` VARCHAR(255) NOT NULL,\n  `note` LONGTEXT,\n  `data` VARBINARY(255),\n" +
			"  PRIMARY KEY (`kind`, `name`),\n  UNIQUE (`data`)\n)"}},
		{dialect.PostgreSQL, []string{"CREATE TABLE IF NOT EXISTS \"taggeds\" (\n" +
			"  \"kind\" VARCHAR(32) NOT NULL,\n  \"name\" TEXT NOT NULL,\n  \"note\" TEXT,\n  \"data\" BYTEA,\n" +
			"  PRIMARY KEY (\"kind\", \"name\"),\n  UNIQUE (\"data\")\n)"}},
	}
	reg := mapper.NewRegistry()
	tab, err := reg.TableOf(tagged{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.d.Name(), func(t *testing.T) {
			got, err := createTableSQL(tt.d, tab, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateTableSQLForeignKeyAndIndex(t *testing.T) {
	reg := mapper.NewRegistry()
	parent, err := reg.TableOf(ddlOwner{})
	if err != nil {
		t.Fatal(err)
	}
	child, err := reg.TableOf(ddlItem{})
	if err != nil {
		t.Fatal(err)
	}
	fks, err := reg.ForeignKeys([]*mapper.Table{parent, child})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		d    dialect.Dialect
		want []string
	}{
		{dialect.SQLite, []string{"CREATE TABLE IF NOT EXISTS \"ddl_items\" (\n" +
			"  \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n  \"owner_id\" INTEGER NOT NULL,\n" +
			"  FOREIGN KEY (\"owner_id\") REFERENCES \"ddl_owners\" (\"id\") ON DELETE CASCADE\n)"}},
		{dialect.MySQL, []string{"CREATE TABLE IF NOT EXISTS `ddl_items` (\n" +
			"  `id` BIGINT NOT NULL AUTO_INCREMENT,\n  `owner_id` BIGINT NOT NULL,\n  PRIMARY KEY (`id`),\n" +
			"  FOREIGN KEY (`owner_id`) REFERENCES `ddl_owners` (`id`) ON DELETE CASCADE\n)"}},
		{dialect.PostgreSQL, []string{"CREATE TABLE IF NOT EXISTS \"ddl_items\" (\n" +
			"  \"id\" BIGINT GENERATED BY DEFAULT AS IDENTITY,\n  \"owner_id\" BIGINT NOT NULL,\n  PRIMARY KEY (\"id\"),\n" +
			"  FOREIGN KEY (\"owner_id\") REFERENCES \"ddl_owners\" (\"id\") ON DELETE CASCADE\n)"}},
	}
	for _, tt := range tests {
		t.Run(tt.d.Name(), func(t *testing.T) {
			got, err := createTableSQL(tt.d, child, fks)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// --- sortTables and CycleError ---

// ddlGraph builds tables named by names and the foreign keys child→parent.
func ddlGraph(names []string, edges [][2]string) ([]*mapper.Table, []mapper.ForeignKey) {
	byName := map[string]*mapper.Table{}
	var tables []*mapper.Table
	for _, n := range names {
		tab := &mapper.Table{Name: n}
		byName[n] = tab
		tables = append(tables, tab)
	}
	var fks []mapper.ForeignKey
	for _, e := range edges {
		child, parent := byName[e[0]], byName[e[1]]
		if child == nil {
			child = &mapper.Table{Name: e[0]} // a table outside the list
		}
		if parent == nil {
			parent = &mapper.Table{Name: e[1]}
		}
		fks = append(fks, mapper.ForeignKey{Child: child, Parent: parent})
	}
	return tables, fks
}

func TestSortTables(t *testing.T) {
	tests := []struct {
		name  string
		in    []string
		edges [][2]string // {child, parent}
		want  []string
	}{
		{"empty", nil, nil, []string{}},
		{"unrelated keep input order", []string{"c", "a", "b"}, nil, []string{"c", "a", "b"}},
		{"parent moved before child", []string{"entries", "accounts"}, [][2]string{{"entries", "accounts"}},
			[]string{"accounts", "entries"}},
		{"already ordered", []string{"accounts", "entries"}, [][2]string{{"entries", "accounts"}},
			[]string{"accounts", "entries"}},
		{"chain", []string{"c", "b", "a"}, [][2]string{{"c", "b"}, {"b", "a"}}, []string{"a", "b", "c"}},
		{"earliest ready first", []string{"x", "child", "y", "parent", "z"}, [][2]string{{"child", "parent"}},
			[]string{"x", "y", "parent", "child", "z"}},
		{"diamond", []string{"d", "c", "b", "a"}, [][2]string{{"d", "b"}, {"d", "c"}, {"b", "a"}, {"c", "a"}},
			[]string{"a", "c", "b", "d"}},
		{"two parents", []string{"child", "p2", "p1"}, [][2]string{{"child", "p1"}, {"child", "p2"}},
			[]string{"p2", "p1", "child"}},
		{"duplicate edge", []string{"b", "a"}, [][2]string{{"b", "a"}, {"b", "a"}}, []string{"a", "b"}},
		{"self reference is no constraint", []string{"tree", "root"}, [][2]string{{"tree", "tree"}, {"tree", "root"}},
			[]string{"root", "tree"}},
		{"parent outside the list ignored", []string{"b", "a"}, [][2]string{{"b", "elsewhere"}}, []string{"b", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tables, fks := ddlGraph(tt.in, tt.edges)
			got, _, err := sortTables(tables, fks)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, tab := range got {
				names = append(names, tab.Name)
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// The same input gives the same order every time (no map order).
			for range 20 {
				again, _, _ := sortTables(tables, fks)
				if !slices.Equal(again, got) {
					t.Fatal("order is not stable across calls")
				}
			}
		})
	}
}

func TestSortTablesCycle(t *testing.T) {
	tests := []struct {
		name  string
		in    []string
		edges [][2]string
		want  []string // CycleError.Tables
	}{
		{"two", []string{"a", "b"}, [][2]string{{"a", "b"}, {"b", "a"}}, []string{"a", "b", "a"}},
		{"three", []string{"x", "a", "b", "c"}, [][2]string{{"a", "c"}, {"b", "a"}, {"c", "b"}},
			[]string{"a", "c", "b", "a"}},
		// A table blocked behind a cycle is not part of it.
		{"tail", []string{"tail", "p", "q"}, [][2]string{{"tail", "p"}, {"p", "q"}, {"q", "p"}},
			[]string{"p", "q", "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tables, fks := ddlGraph(tt.in, tt.edges)
			_, _, err := sortTables(tables, fks)
			var ce *CycleError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *CycleError", err)
			}
			if diff := cmp.Diff(tt.want, ce.Tables); diff != "" {
				t.Errorf("cycle (-want +got):\n%s", diff)
			}
			for _, n := range tt.want {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("message %q does not name %s", err, n)
				}
			}
			if want := strings.Join(tt.want, " -> "); !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not contain %q", err, want)
			}
		})
	}
}

// A relation cycle among models reaches CreateTables as a CycleError.
type ddlCycA struct {
	ID  int64    `db:"id,pk"`
	BID int64    `db:"b_id"`
	B   *ddlCycB `rel:"b_id"`
}

func (ddlCycA) TableName() string { return "ddl_cyc_a" }

type ddlCycB struct {
	ID  int64    `db:"id,pk"`
	AID int64    `db:"a_id"`
	A   *ddlCycA `rel:"a_id"`
}

func (ddlCycB) TableName() string { return "ddl_cyc_b" }

func TestCreateTablesCycle(t *testing.T) {
	eng := New(ddlNoDB(t), dialect.SQLite)
	err := eng.CreateTables(context.Background(), ddlCycA{}, ddlCycB{})
	var ce *CycleError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *CycleError", err)
	}
	if !strings.Contains(err.Error(), "ddl_cyc_a") || !strings.Contains(err.Error(), "ddl_cyc_b") {
		t.Errorf("message %q does not name both tables", err)
	}
}

// TestDeleteAfterInsertInOneSession: an object inserted and committed, then
// deleted and committed in the same session, must be gone. (Found through
// the foreign-key tests above; it is a Session bug, not a DDL one.)
func TestDeleteAfterInsertInOneSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		ctx := context.Background()
		var sqls []string
		eng := ddlOpen(t, tg, WithQueryHook(func(_ context.Context, ev QueryEvent) { sqls = append(sqls, ev.SQL) }))
		if err := eng.CreateTables(ctx, ddlIxTwo{}); err != nil {
			t.Fatal(err)
		}
		s := eng.NewSession()
		defer s.Close()
		obj := &ddlIxTwo{ID: 1, C: 2}
		if err := s.Add(obj); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		sqls = nil
		if err := s.Delete(obj); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		d := eng.Dialect()
		if err := eng.DB().GetContext(ctx, &n, "SELECT COUNT(*) FROM "+d.Quote("ddl_ix_a_b")); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("row still there after Delete+Commit in the session that inserted it; statements sent: %q", sqls)
		}
	})
}

// TestCreateTableSQLPerDatabaseTypes: type.<db>= wins over type= on its
// database, and the decimal, UUID and JSON kinds take each database's type.
func TestCreateTableSQLPerDatabaseTypes(t *testing.T) {
	type perDB struct {
		ID    int64           `db:"id,pk"`
		Code  string          `db:"code,type=VARCHAR(20),type.postgres=CITEXT"`
		Money string          `db:"money,precision=20,scale=4"`
		Typed string          `db:"typed,type=DECIMAL(12,2),type.sqlite=TEXT"`
		UID   [16]byte        `db:"uid"`
		Meta  json.RawMessage `db:"meta"`
		Attrs map[string]int  `db:"attrs,json"`
	}
	tab, err := mapper.NewRegistry().Table(reflect.TypeFor[perDB]())
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[dialect.Dialect]string{
		dialect.MySQL: "CREATE TABLE IF NOT EXISTS `per_dbs` (\n  `id` BIGINT NOT NULL,\n  `code` VARCHAR(20) NOT NULL,\n" +
			"  `money` DECIMAL(20,4) NOT NULL,\n  `typed` DECIMAL(12,2) NOT NULL,\n  `uid` BINARY(16) NOT NULL,\n  `meta` JSON,\n  `attrs` JSON,\n  PRIMARY KEY (`id`)\n)",
		dialect.PostgreSQL: `CREATE TABLE IF NOT EXISTS "per_dbs" (` + "\n" + `  "id" BIGINT NOT NULL,` + "\n" + `  "code" CITEXT NOT NULL,` + "\n" +
			`  "money" NUMERIC(20,4) NOT NULL,` + "\n" + `  "typed" DECIMAL(12,2) NOT NULL,` + "\n" + `  "uid" UUID NOT NULL,` + "\n" +
			`  "meta" JSONB,` + "\n" + `  "attrs" JSONB,` + "\n" + `  PRIMARY KEY ("id")` + "\n)",
		dialect.SQLite: `CREATE TABLE IF NOT EXISTS "per_dbs" (` + "\n" + `  "id" INTEGER NOT NULL,` + "\n" + `  "code" VARCHAR(20) NOT NULL,` + "\n" +
			`  "money" TEXT NOT NULL,` + "\n" + `  "typed" TEXT NOT NULL,` + "\n" + `  "uid" BLOB NOT NULL,` + "\n" +
			`  "meta" TEXT,` + "\n" + `  "attrs" TEXT,` + "\n" + `  PRIMARY KEY ("id")` + "\n)",
	} {
		got, err := createTableSQL(d, tab, nil)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("%s: createTableSQL = %q, %v\nwant %q", d.Name(), got, err, want)
		}
	}
}
