package mapper

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The models of DESIGN.md, "Declaring models".

type Account struct {
	ID      int64     `db:"id,pk,auto"`
	Owner   string    `db:"owner,unique"`
	Balance int64     `db:"balance"`
	Version int64     `db:"version,version"`
	Note    *string   `db:"note"`
	Created time.Time `db:"created_at"`
	Entries []*Entry  `rel:"account_id"`
}

type Entry struct {
	ID        int64    `db:"id,pk,auto"`
	AccountID int64    `db:"account_id"`
	Account   *Account `rel:"account_id"`
	Amount    int64    `db:"amount"`
}

func (Account) TableName() string { return "accounts" }

// Column types beyond the built-in kinds.

// Email is a named string type without methods: it maps as a string.
type Email string

// Level is a named integer that scans and values itself.
type Level int

func (l *Level) Scan(src any) error {
	n, ok := src.(int64)
	if !ok {
		return fmt.Errorf("Level: cannot scan a %T", src)
	}
	*l = Level(n)
	return nil
}

func (l Level) Value() (driver.Value, error) { return int64(l), nil }

// UUID is a fixed-size byte array stored as a 16-byte BLOB.
type UUID [16]byte

func (u *UUID) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok || len(b) != len(u) {
		return fmt.Errorf("UUID: cannot scan %T of length %d", src, len(b))
	}
	copy(u[:], b)
	return nil
}

func (u UUID) Value() (driver.Value, error) { return u[:], nil }

// Kinds has a column of every supported kind of type.
type Kinds struct {
	ID     int64           `db:"id,pk"`
	B      bool            `db:"b"`
	I      int             `db:"i"`
	I8     int8            `db:"i8"`
	I16    int16           `db:"i16"`
	I32    int32           `db:"i32"`
	I64    int64           `db:"i64"`
	U      uint            `db:"u"`
	U8     uint8           `db:"u8"`
	U16    uint16          `db:"u16"`
	U32    uint32          `db:"u32"`
	U64    uint64          `db:"u64"`
	F32    float32         `db:"f32"`
	F64    float64         `db:"f64"`
	S      string          `db:"s"`
	Bytes  []byte          `db:"bytes"`
	Email  Email           `db:"email"`
	Level  Level           `db:"level"`
	UUID   UUID            `db:"uuid"`
	T      time.Time       `db:"t"`
	PI     *int64          `db:"pi"`
	PS     *string         `db:"ps"`
	PF     *float64        `db:"pf"`
	PB     *bool           `db:"pb"`
	PT     *time.Time      `db:"pt"`
	PBytes *[]byte         `db:"pbytes"`
	PUUID  *UUID           `db:"puuid"`
	PEmail *Email          `db:"pemail"`
	NS     sql.NullString  `db:"ns"`
	NI     sql.NullInt64   `db:"ni"`
	NF     sql.NullFloat64 `db:"nf"`
	NB     sql.NullBool    `db:"nb"`
	NT     sql.NullTime    `db:"nt"`
	NG     sql.Null[int64] `db:"ng"`
}

// Embedding: Doc flattens Base, which flattens Timestamps.

type Timestamps struct {
	Created time.Time `db:"created_at"`
	Updated time.Time `db:"updated_at"`
}

type Base struct {
	ID int64 `db:"id,pk,auto"`
	Timestamps
}

type meta struct {
	Rev int64 `db:"rev"`
}

type Doc struct {
	Base
	Title  string
	meta                     // unexported, but its exported fields are promoted
	Body   []byte            `db:"body"`
	Cache  map[string]string `db:"-"`
	Tags   []string          `db:"-"`
	secret string
}

type PtrNamed struct {
	ID int64 `db:"id,pk"`
}

func (*PtrNamed) TableName() string { return "custom_ptr" }

type Flags struct {
	ID       int64  `db:"id,pk,auto"`
	Code     string `db:"code,unique,size=32"`
	Name     string `db:"name,index,type=VARCHAR(100)"`
	Computed string `db:"computed,readonly"`
	Rev      int32  `db:"rev,version"`
}

type Membership struct {
	UserID  int64  `db:"user_id,pk"`
	Role    string `db:"role"`
	GroupID int64  `db:"group_id,pk"`
}

type HTTPServer struct {
	ID        int64 `db:",pk"`
	AccountID int64
	HostName  string
	CreatedAt time.Time
}

type Box struct {
	ID int64 `db:"id,pk"`
}

type Status struct {
	ID int64 `db:"id,pk"`
}

// colInfo is the comparable part of a Column.
type colInfo struct {
	Field, Name, Type                                      string
	PK, Auto, Version, Unique, Indexed, ReadOnly, Nullable bool
	Size                                                   int
	SQLType                                                string
}

func colInfos(cols []*Column) []colInfo {
	var out []colInfo
	for _, c := range cols {
		out = append(out, colInfo{
			Field: c.Field, Name: c.Name, Type: c.Type.String(),
			PK: c.PK, Auto: c.Auto, Version: c.Version, Unique: c.Unique, Indexed: c.Indexed,
			ReadOnly: c.ReadOnly, Nullable: c.Nullable, Size: c.Size, SQLType: c.SQLType,
		})
	}
	return out
}

func colNames(cols []*Column) []string {
	var out []string
	for _, c := range cols {
		out = append(out, c.Name)
	}
	return out
}

type relInfo struct {
	Field, Column     string
	Cascade, HasMany  bool
	Target, FieldType string
}

func relInfos(rels []*Relation) []relInfo {
	var out []relInfo
	for _, r := range rels {
		out = append(out, relInfo{r.Field, r.Column, r.Cascade, r.HasMany, r.Target.String(), r.FieldType.String()})
	}
	return out
}

// Has-one and many-to-many relations parse into their kinds, are
// reported by the registry's kind flags, add the has-one foreign key on
// the other table and list the join table.
func TestHasOneAndManyToManyRelations(t *testing.T) {
	reg := NewRegistry()
	if reg.HasM2M() || reg.HasHasOne() {
		t.Fatal("an empty registry reports m2m or has-one relations")
	}
	user := mustTableIn[RelUser](t, reg)
	if len(user.Relations) != 2 {
		t.Fatalf("RelUser has %d relations, want 2", len(user.Relations))
	}
	p, tags := user.Relations[0], user.Relations[1]
	if !p.HasOne || p.HasMany || p.Join != nil || p.BelongsTo() || p.IsSlice() || p.Column != "user_id" || !p.Cascade {
		t.Errorf("Profile relation = %+v, want has-one on user_id with cascade", p)
	}
	wantJoin := JoinTable{Name: "user_tags", Left: "user_id", Right: "tag_id"}
	if tags.Join == nil || *tags.Join != wantJoin || tags.HasMany || tags.HasOne || tags.BelongsTo() || !tags.IsSlice() || tags.Column != "" {
		t.Errorf("Tags relation = %+v (join %+v), want m2m %+v", tags, tags.Join, wantJoin)
	}
	if !reg.HasM2M() || !reg.HasHasOne() {
		t.Errorf("HasM2M, HasHasOne = %v, %v; want true, true", reg.HasM2M(), reg.HasHasOne())
	}
	profile := mustTableIn[RelProfile](t, reg)
	tagTab := mustTableIn[RelTagModel](t, reg)
	fks, err := reg.ForeignKeys([]*Table{user, profile, tagTab})
	if err != nil {
		t.Fatal(err)
	}
	if len(fks) != 1 || fks[0].Child != profile || fks[0].Parent != user || fks[0].Column.Name != "user_id" || !fks[0].Cascade {
		t.Errorf("ForeignKeys = %+v, want one: rel_profiles.user_id -> rel_users, cascade", fks)
	}
	joins := reg.JoinTables([]*Table{user, profile, tagTab})
	if len(joins) != 1 || *joins[0].JoinTable != wantJoin || joins[0].Left != user || joins[0].Right != tagTab {
		t.Errorf("JoinTables = %+v, want user_tags between rel_users and rel_tag_models", joins)
	}
	if j := reg.JoinTables([]*Table{user, profile}); len(j) != 0 {
		t.Errorf("JoinTables without the target table = %+v, want none", j)
	}
}

// mustTable builds the table of T in a fresh registry and checks the
// invariants every table keeps.
func mustTable[T any](t *testing.T) *Table {
	t.Helper()
	return mustTableIn[T](t, NewRegistry())
}

func mustTableIn[T any](t *testing.T, reg *Registry) *Table {
	t.Helper()
	tab, err := reg.Table(reflect.TypeFor[T]())
	if err != nil {
		t.Fatalf("Table(%v): %v", reflect.TypeFor[T](), err)
	}
	checkLayout(t, tab)
	return tab
}

// checkLayout checks that each column's Pos, Index, offset and Type agree
// with the struct, and that the PK, Version and lookup by name are consistent.
func checkLayout(t *testing.T, tab *Table) {
	t.Helper()
	v := reflect.New(tab.Type)
	base := uintptr(v.UnsafePointer())
	if tab.PtrType() != v.Type() {
		t.Errorf("%s: PtrType = %v, want %v", tab.Name, tab.PtrType(), v.Type())
	}
	var pk []*Column
	var version *Column
	for i, c := range tab.Columns {
		if c.Pos != i {
			t.Errorf("%s.%s: Pos = %d, want %d", tab.Name, c.Name, c.Pos, i)
		}
		f := v.Elem().FieldByIndex(c.Index)
		if f.Type() != c.Type {
			t.Errorf("%s.%s: Index %v reaches a %v, want %v", tab.Name, c.Name, c.Index, f.Type(), c.Type)
		}
		if off := uintptr(f.Addr().UnsafePointer()) - base; off != c.offset {
			t.Errorf("%s.%s: offset = %d, want %d", tab.Name, c.Name, c.offset, off)
		}
		if tab.Column(c.Name) != c {
			t.Errorf("%s: Column(%q) does not return the column", tab.Name, c.Name)
		}
		if c.PK {
			pk = append(pk, c)
		}
		if c.Version {
			version = c
		}
	}
	if !slices.Equal(pk, tab.PK) {
		t.Errorf("%s: PK = %v, want %v", tab.Name, colNames(tab.PK), colNames(pk))
	}
	if version != tab.Version {
		t.Errorf("%s: Version = %v, want %v", tab.Name, tab.Version, version)
	}
	for _, r := range tab.Relations {
		f := v.Elem().FieldByIndex(r.Index)
		if off := uintptr(f.Addr().UnsafePointer()) - base; off != r.offset || f.Type() != r.FieldType {
			t.Errorf("%s.%s: relation at offset %d of %v, want %d of %v", tab.Name, r.Field, r.offset, r.FieldType, off, f.Type())
		}
	}
	if tab.Column("no_such_column") != nil {
		t.Errorf("%s: Column of an unknown name is not nil", tab.Name)
	}
}

func TestTableDesignModels(t *testing.T) {
	reg := NewRegistry()
	acc := mustTableIn[Account](t, reg)
	ent := mustTableIn[Entry](t, reg)

	if acc.Name != "accounts" || ent.Name != "entries" {
		t.Errorf("names = %q, %q; want accounts, entries", acc.Name, ent.Name)
	}
	wantAcc := []colInfo{
		{Field: "ID", Name: "id", Type: "int64", PK: true, Auto: true},
		{Field: "Owner", Name: "owner", Type: "string", Unique: true},
		{Field: "Balance", Name: "balance", Type: "int64"},
		{Field: "Version", Name: "version", Type: "int64", Version: true},
		{Field: "Note", Name: "note", Type: "*string", Nullable: true},
		{Field: "Created", Name: "created_at", Type: "time.Time"},
	}
	if d := cmp.Diff(wantAcc, colInfos(acc.Columns)); d != "" {
		t.Errorf("accounts columns (-want +got):\n%s", d)
	}
	wantEnt := []colInfo{
		{Field: "ID", Name: "id", Type: "int64", PK: true, Auto: true},
		{Field: "AccountID", Name: "account_id", Type: "int64"},
		{Field: "Amount", Name: "amount", Type: "int64"},
	}
	if d := cmp.Diff(wantEnt, colInfos(ent.Columns)); d != "" {
		t.Errorf("entries columns (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]relInfo{{"Entries", "account_id", false, true, "mapper.Entry", "[]*mapper.Entry"}}, relInfos(acc.Relations)); d != "" {
		t.Errorf("accounts relations (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]relInfo{{"Account", "account_id", false, false, "mapper.Account", "*mapper.Account"}}, relInfos(ent.Relations)); d != "" {
		t.Errorf("entries relations (-want +got):\n%s", d)
	}
	if acc.Version != acc.Columns[3] || ent.Version != nil {
		t.Errorf("Version = %v, %v; want accounts.version, nil", acc.Version, ent.Version)
	}
	if !acc.HasAuto() || !ent.HasAuto() {
		t.Error("HasAuto is false for a table with an auto pk")
	}
	if d := cmp.Diff([]string{"owner", "balance", "version", "note", "created_at"}, colNames(acc.Insertable())); d != "" {
		t.Errorf("accounts Insertable (-want +got):\n%s", d)
	}

	// Building Account built Entry through the cycle, in the same registry.
	reg2 := NewRegistry()
	a2, err := reg2.TableOf(&Account{})
	if err != nil {
		t.Fatal(err)
	}
	e2, err := reg2.TableOf(Entry{})
	if err != nil {
		t.Fatal(err)
	}
	if e3, _ := reg2.Table(a2.Relations[0].Target); e3 != e2 {
		t.Error("the Entry table built through Account's relation is not the one Table returns")
	}

	fks, err := reg.ForeignKeys([]*Table{acc, ent})
	if err != nil {
		t.Fatal(err)
	}
	if len(fks) != 1 || fks[0].Child != ent || fks[0].Column != ent.Column("account_id") || fks[0].Parent != acc || fks[0].Cascade {
		t.Errorf("ForeignKeys = %+v, want one: entries.account_id → accounts", fks)
	}
}

func TestTableDefaultNames(t *testing.T) {
	type key struct {
		ID int64 `db:"id,pk"`
	}
	tests := []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[Entry](), "entries"},
		{reflect.TypeFor[Box](), "boxes"},
		{reflect.TypeFor[Status](), "statuses"},
		{reflect.TypeFor[key](), "keys"},
		{reflect.TypeFor[HTTPServer](), "http_servers"},
		{reflect.TypeFor[Membership](), "memberships"},
		{reflect.TypeFor[Account](), "accounts"},    // TableName on a value receiver
		{reflect.TypeFor[PtrNamed](), "custom_ptr"}, // TableName on a pointer receiver
		{reflect.TypeFor[*PtrNamed](), "custom_ptr"},
	}
	for _, tt := range tests {
		tab, err := NewRegistry().Table(tt.typ)
		if err != nil {
			t.Errorf("Table(%v): %v", tt.typ, err)
			continue
		}
		if tab.Name != tt.want {
			t.Errorf("Table(%v).Name = %q, want %q", tt.typ, tab.Name, tt.want)
		}
	}

	tab := mustTable[HTTPServer](t)
	if d := cmp.Diff([]string{"id", "account_id", "host_name", "created_at"}, colNames(tab.Columns)); d != "" {
		t.Errorf("default column names (-want +got):\n%s", d)
	}
}

func TestTableEmbedded(t *testing.T) {
	tab := mustTable[Doc](t)
	if tab.Name != "docs" {
		t.Errorf("Name = %q, want docs", tab.Name)
	}
	want := []colInfo{
		{Field: "Base.ID", Name: "id", Type: "int64", PK: true, Auto: true},
		{Field: "Base.Timestamps.Created", Name: "created_at", Type: "time.Time"},
		{Field: "Base.Timestamps.Updated", Name: "updated_at", Type: "time.Time"},
		{Field: "Title", Name: "title", Type: "string"},
		{Field: "meta.Rev", Name: "rev", Type: "int64"},
		{Field: "Body", Name: "body", Type: "[]uint8", Nullable: true},
	}
	if d := cmp.Diff(want, colInfos(tab.Columns)); d != "" {
		t.Errorf("columns (-want +got):\n%s", d)
	}

	// The accessor reaches flattened fields, two levels down and through
	// an unexported embedded struct.
	d := &Doc{}
	d.ID, d.Updated, d.Rev = 7, time.Unix(100, 0), 3
	for _, c := range []string{"id", "updated_at", "rev"} {
		want := reflect.ValueOf(d).Elem().FieldByIndex(tab.Column(c).Index).Interface()
		if got := tab.Acc.Value(d, tab.Column(c)); !cmp.Equal(got, want) {
			t.Errorf("Value(%s) = %v, want %v", c, got, want)
		}
	}
	if err := tab.Acc.Set(d, tab.Column("rev"), 9); err != nil || d.Rev != 9 {
		t.Errorf("Set(rev, 9) = %v, Rev = %d", err, d.Rev)
	}
	if k := tab.Acc.Key(d); k != (Key{I: 7}) {
		t.Errorf("Key = %+v, want {I:7}", k)
	}

	// Fields that are not columns are not compared.
	snap := tab.Acc.Snapshot(d)
	d.secret, d.Cache, d.Tags = "s", map[string]string{"k": "v"}, []string{"t"}
	if ch := tab.Acc.Changed(d, snap, nil); len(ch) != 0 {
		t.Errorf("Changed = %v after changing only unmapped fields", colNames(ch))
	}
}

func TestTableColumnTypes(t *testing.T) {
	tab := mustTable[Kinds](t)
	want := []colInfo{
		{Field: "ID", Name: "id", Type: "int64", PK: true},
		{Field: "B", Name: "b", Type: "bool"},
		{Field: "I", Name: "i", Type: "int"},
		{Field: "I8", Name: "i8", Type: "int8"},
		{Field: "I16", Name: "i16", Type: "int16"},
		{Field: "I32", Name: "i32", Type: "int32"},
		{Field: "I64", Name: "i64", Type: "int64"},
		{Field: "U", Name: "u", Type: "uint"},
		{Field: "U8", Name: "u8", Type: "uint8"},
		{Field: "U16", Name: "u16", Type: "uint16"},
		{Field: "U32", Name: "u32", Type: "uint32"},
		{Field: "U64", Name: "u64", Type: "uint64"},
		{Field: "F32", Name: "f32", Type: "float32"},
		{Field: "F64", Name: "f64", Type: "float64"},
		{Field: "S", Name: "s", Type: "string"},
		{Field: "Bytes", Name: "bytes", Type: "[]uint8", Nullable: true},
		{Field: "Email", Name: "email", Type: "mapper.Email"},
		{Field: "Level", Name: "level", Type: "mapper.Level"},
		{Field: "UUID", Name: "uuid", Type: "mapper.UUID"},
		{Field: "T", Name: "t", Type: "time.Time"},
		{Field: "PI", Name: "pi", Type: "*int64", Nullable: true},
		{Field: "PS", Name: "ps", Type: "*string", Nullable: true},
		{Field: "PF", Name: "pf", Type: "*float64", Nullable: true},
		{Field: "PB", Name: "pb", Type: "*bool", Nullable: true},
		{Field: "PT", Name: "pt", Type: "*time.Time", Nullable: true},
		{Field: "PBytes", Name: "pbytes", Type: "*[]uint8", Nullable: true},
		{Field: "PUUID", Name: "puuid", Type: "*mapper.UUID", Nullable: true},
		{Field: "PEmail", Name: "pemail", Type: "*mapper.Email", Nullable: true},
		{Field: "NS", Name: "ns", Type: "sql.NullString", Nullable: true},
		{Field: "NI", Name: "ni", Type: "sql.NullInt64", Nullable: true},
		{Field: "NF", Name: "nf", Type: "sql.NullFloat64", Nullable: true},
		{Field: "NB", Name: "nb", Type: "sql.NullBool", Nullable: true},
		{Field: "NT", Name: "nt", Type: "sql.NullTime", Nullable: true},
		{Field: "NG", Name: "ng", Type: "sql.Null[int64]", Nullable: true},
	}
	if d := cmp.Diff(want, colInfos(tab.Columns)); d != "" {
		t.Errorf("columns (-want +got):\n%s", d)
	}
}

func TestTableFlags(t *testing.T) {
	tab := mustTable[Flags](t)
	want := []colInfo{
		{Field: "ID", Name: "id", Type: "int64", PK: true, Auto: true},
		{Field: "Code", Name: "code", Type: "string", Unique: true, Size: 32},
		{Field: "Name", Name: "name", Type: "string", Indexed: true, SQLType: "VARCHAR(100)"},
		{Field: "Computed", Name: "computed", Type: "string", ReadOnly: true},
		{Field: "Rev", Name: "rev", Type: "int32", Version: true},
	}
	if d := cmp.Diff(want, colInfos(tab.Columns)); d != "" {
		t.Errorf("columns (-want +got):\n%s", d)
	}
	if !tab.HasAuto() {
		t.Error("HasAuto = false")
	}
	if d := cmp.Diff([]string{"code", "name", "rev"}, colNames(tab.Insertable())); d != "" {
		t.Errorf("Insertable (-want +got):\n%s", d)
	}
	if tab := mustTable[Membership](t); tab.HasAuto() || len(tab.Insertable()) != 3 {
		t.Errorf("memberships: HasAuto = %v, Insertable = %v; want false, all columns", tab.HasAuto(), colNames(tab.Insertable()))
	}
}

func TestTableCompositeKey(t *testing.T) {
	tab := mustTable[Membership](t)
	if d := cmp.Diff([]string{"user_id", "group_id"}, colNames(tab.PK)); d != "" {
		t.Errorf("PK in field order (-want +got):\n%s", d)
	}
}

// Bad definitions, each with the field and reason its error names.

type NoPK struct{ Name string }

type TwoVersions struct {
	ID int64 `db:"id,pk"`
	V1 int64 `db:"v1,version"`
	V2 int64 `db:"v2,version"`
}

type FloatVersion struct {
	ID int64   `db:"id,pk"`
	V  float64 `db:"v,version"`
}

type PtrVersion struct {
	ID int64  `db:"id,pk"`
	V  *int64 `db:"v,version"`
}

type UnknownOption struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name,uniq"`
}

type MalformedTag struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"1name"`
}

type BadMap struct {
	ID    int64 `db:"id,pk"`
	Attrs map[string]int
}

type BadChan struct {
	ID int64 `db:"id,pk"`
	C  chan int
}

type BadStrings struct {
	ID   int64 `db:"id,pk"`
	Tags []string
}

type Point struct{ X, Y int }

type BadStruct struct {
	ID int64 `db:"id,pk"`
	At Point
}

type BadIface struct {
	ID  int64 `db:"id,pk"`
	Any any
}

type BadPtrPtr struct {
	ID int64 `db:"id,pk"`
	PP **int64
}

type BadUntaggedRel struct {
	ID      int64 `db:"id,pk"`
	Account *Account
}

type RelWithDB struct {
	ID        int64    `db:"id,pk"`
	AccountID int64    `db:"account_id"`
	Account   *Account `db:"account" rel:"account_id"`
}

type OrphanEntry struct {
	ID      int64    `db:"id,pk"`
	Account *Account `rel:"acct_id"`
}

type Ledger struct {
	ID      int64    `db:"id,pk"`
	Entries []*Entry `rel:"ledger_id"`
}

type RelOnInt struct {
	ID    int64 `db:"id,pk"`
	Owner int64 `rel:"owner_id"`
}

type RelSliceOfValues struct {
	ID      int64   `db:"id,pk"`
	Entries []Entry `rel:"account_id"`
}

type RelBadTag struct {
	ID      int64    `db:"id,pk"`
	Account *Account `rel:"account_id,restrict"`
}

// Has-one and many-to-many definitions, good and bad.

type RelProfile struct {
	ID     int64 `db:"id,pk,auto"`
	UserID int64 `db:"user_id"`
}

type RelTagModel struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name"`
}

type RelUser struct {
	ID      int64          `db:"id,pk,auto"`
	Profile *RelProfile    `rel:"user_id,hasone,cascade"`
	Tags    []*RelTagModel `rel:"m2m=user_tags(user_id,tag_id)"`
}

type HasOneOnSlice struct {
	ID      int64    `db:"id,pk"`
	Entries []*Entry `rel:"account_id,hasone"`
}

type HasOneNoColumn struct {
	ID      int64       `db:"id,pk"`
	Profile *RelProfile `rel:"owner_id,hasone"`
}

type BelongsToWrongSide struct {
	ID      int64       `db:"id,pk"`
	Profile *RelProfile `rel:"user_id"`
}

type HasOneCompositeOwner struct {
	A       int64       `db:"a,pk"`
	B       int64       `db:"b,pk"`
	Profile *RelProfile `rel:"user_id,hasone"`
}

type M2MOnPointer struct {
	ID  int64        `db:"id,pk"`
	Tag *RelTagModel `rel:"m2m=x_tags(x_id,tag_id)"`
}

type M2MCompositeTarget struct {
	ID   int64         `db:"id,pk"`
	Tags []*Membership `rel:"m2m=x_members(x_id,member_id)"`
}

type M2MJoinIsModel struct {
	ID   int64          `db:"id,pk"`
	Tags []*RelTagModel `rel:"m2m=rel_tag_models(x_id,tag_id)"`
}

type M2MBadTag struct {
	ID   int64          `db:"id,pk"`
	Tags []*RelTagModel `rel:"m2m=x_tags"`
}

type MembershipNote struct {
	ID         int64       `db:"id,pk"`
	UserID     int64       `db:"user_id"`
	Membership *Membership `rel:"user_id"`
}

type Pair struct {
	A    int64      `db:"a,pk"`
	B    int64      `db:"b,pk"`
	Kids []*PairKid `rel:"pair_a"`
}

type PairKid struct {
	ID    int64 `db:"id,pk"`
	PairA int64
}

type RelToBad struct {
	ID  int64 `db:"id,pk"`
	XID int64 `db:"x_id"`
	X   *NoPK `rel:"x_id"`
}

type DupNames struct {
	ID int64  `db:"id,pk"`
	A  string `db:"name"`
	B  string `db:"name"`
}

type DupSnake struct {
	ID      int64 `db:"id,pk"`
	UserID  int64
	User_ID int64 // snake_cases to user_id as well
}

type DupEmbed struct {
	Base
	ID int64 `db:"id"`
}

type PtrEmbed struct {
	*Base
	Name string
}

type EmbedOpts struct {
	Base `db:",readonly"`
}

type EmbedNamedOpts struct {
	Base `db:"base,readonly"`
}

type NullPK struct {
	ID *int64 `db:"id,pk"`
}

type NullStringPK struct {
	ID sql.NullString `db:"id,pk"`
}

type BytesPK struct {
	ID []byte `db:"id,pk"`
}

type AutoStringPK struct {
	ID string `db:"id,pk,auto"`
}

type DashOpts struct {
	ID int64 `db:"id,pk"`
	X  int   `db:"-,pk"`
}

func unsupportedReason(typ string) string {
	return "unsupported column type " + typ + ` (want a bool, number, string, []byte, time.Time, a pointer to one, sql.Null*, or a type implementing sql.Scanner and driver.Valuer); tag it db:"-" to leave it out, or db:"...,json" to store it as JSON`
}

func TestTableDefinitionErrors(t *testing.T) {
	tests := []struct {
		typ    reflect.Type
		field  string
		reason string
		tagErr bool // the error wraps a *TagError
	}{
		{reflect.TypeFor[int](), "", "a model must be a struct (or a pointer to one)", false},
		{reflect.TypeFor[*int](), "", "a model must be a struct (or a pointer to one)", false},
		{reflect.TypeFor[[]Account](), "", "a model must be a struct (or a pointer to one)", false},
		{reflect.TypeFor[**Account](), "", "a model must be a struct (or a pointer to one)", false},
		{reflect.TypeOf(struct {
			ID int64 `db:"id,pk"`
		}{}), "", "empty table name (an anonymous struct needs a TableName method)", false},
		{reflect.TypeFor[NoPK](), "", `no primary key: tag one field db:"...,pk"`, false},
		{reflect.TypeFor[TwoVersions](), "V2", "a second version column (the first is V1)", false},
		{reflect.TypeFor[FloatVersion](), "V", "a version column must be an integer", false},
		{reflect.TypeFor[PtrVersion](), "V", "a version column must be an integer", false},
		{reflect.TypeFor[UnknownOption](), "Name", `unknown option "uniq" ` + knownOptions, true},
		{reflect.TypeFor[MalformedTag](), "Name", `name "1name": only letters, digits and _ are allowed, not starting with a digit`, true},
		{reflect.TypeFor[DashOpts](), "X", `"-" cannot take options`, true},
		{reflect.TypeFor[BadMap](), "Attrs", unsupportedReason("map[string]int"), false},
		{reflect.TypeFor[BadChan](), "C", unsupportedReason("chan int"), false},
		{reflect.TypeFor[BadStrings](), "Tags", unsupportedReason("[]string"), false},
		{reflect.TypeFor[BadStruct](), "At", unsupportedReason("mapper.Point"), false},
		{reflect.TypeFor[BadIface](), "Any", unsupportedReason("interface {}"), false},
		{reflect.TypeFor[BadPtrPtr](), "PP", unsupportedReason("**int64"), false},
		{reflect.TypeFor[BadUntaggedRel](), "Account", unsupportedReason("*mapper.Account"), false},
		{reflect.TypeFor[RelWithDB](), "Account", "a rel field is not a column and cannot have a db tag", false},
		{reflect.TypeFor[OrphanEntry](), "Account", `rel column "acct_id" does not exist in table orphan_entries`, false},
		{reflect.TypeFor[Ledger](), "Entries", `rel column "ledger_id" does not exist in table entries`, false},
		{reflect.TypeFor[RelOnInt](), "Owner", "a rel field must be *Struct (belongs-to, has-one) or []*Struct (has-many, m2m), not int64", false},
		{reflect.TypeFor[RelSliceOfValues](), "Entries", "a rel field must be *Struct (belongs-to, has-one) or []*Struct (has-many, m2m), not []mapper.Entry", false},
		{reflect.TypeFor[RelBadTag](), "Account", `unknown rel option "restrict" (known: cascade, hasone)`, true},
		{reflect.TypeFor[MembershipNote](), "Membership", "a relation must point at a single-column primary key; memberships has 2", false},
		{reflect.TypeFor[Pair](), "Kids", "a relation must point at a single-column primary key; pairs has 2", false},
		{reflect.TypeFor[RelToBad](), "X", `related model: mapper: model mapper.NoPK: no primary key: tag one field db:"...,pk"`, false},
		{reflect.TypeFor[DupNames](), "B", `column "name" is also mapped by field A`, false},
		{reflect.TypeFor[DupSnake](), "User_ID", `column "user_id" is also mapped by field UserID`, false},
		{reflect.TypeFor[DupEmbed](), "ID", `column "id" is also mapped by field Base.ID`, false},
		{reflect.TypeFor[PtrEmbed](), "Base", "embedded pointer structs are not supported: embed the struct by value", false},
		{reflect.TypeFor[EmbedOpts](), "Base", "an embedded struct takes no column options", false},
		{reflect.TypeFor[EmbedNamedOpts](), "Base", "an embedded struct takes no column options", false},
		{reflect.TypeFor[NullPK](), "ID", "a primary-key column cannot be nullable", false},
		{reflect.TypeFor[NullStringPK](), "ID", "a primary-key column cannot be nullable", false},
		{reflect.TypeFor[BytesPK](), "ID", "a primary-key column cannot be nullable", false},
		{reflect.TypeFor[AutoStringPK](), "ID", "an auto primary key must be an integer", false},
		{reflect.TypeFor[HasOneOnSlice](), "Entries", "hasone needs a *Struct field, not []*mapper.Entry (a []*Struct field is has-many without it)", false},
		{reflect.TypeFor[HasOneNoColumn](), "Profile", `rel column "owner_id" does not exist in table rel_profiles`, false},
		{reflect.TypeFor[BelongsToWrongSide](), "Profile", `rel column "user_id" does not exist in table belongs_to_wrong_sides (it is on the other table: tag a has-one relation rel:"user_id,hasone")`, false},
		{reflect.TypeFor[HasOneCompositeOwner](), "Profile", "a relation must point at a single-column primary key; has_one_composite_owners has 2", false},
		{reflect.TypeFor[M2MOnPointer](), "Tag", "an m2m relation needs a []*Struct field, not *mapper.RelTagModel", false},
		{reflect.TypeFor[M2MCompositeTarget](), "Tags", "an m2m relation needs a single-column primary key on both sides; memberships has 2", false},
		{reflect.TypeFor[M2MJoinIsModel](), "Tags", `the m2m join table "rel_tag_models" is the table of model mapper.RelTagModel; give the join table a name of its own`, false},
		{reflect.TypeFor[M2MBadTag](), "Tags", "m2m needs the form m2m=join_table(this_col,other_col)", true},
	}
	for _, tt := range tests {
		reg := NewRegistry()
		tab, err := reg.Table(tt.typ)
		var de *DefinitionError
		if !errors.As(err, &de) {
			t.Errorf("Table(%v) = %v, %v; want a *DefinitionError", tt.typ, tab, err)
			continue
		}
		if tab != nil {
			t.Errorf("Table(%v) returned a table with its error", tt.typ)
		}
		wantType := tt.typ
		if wantType.Kind() == reflect.Pointer {
			wantType = wantType.Elem()
		}
		if de.Type != wantType || de.Field != tt.field || de.Reason != tt.reason {
			t.Errorf("Table(%v) error:\n got  {Type: %v, Field: %q, Reason: %q}\n want {Type: %v, Field: %q, Reason: %q}",
				tt.typ, de.Type, de.Field, de.Reason, wantType, tt.field, tt.reason)
		}
		var te *TagError
		if errors.As(err, &te) != tt.tagErr {
			t.Errorf("Table(%v): errors.As(*TagError) = %v, want %v", tt.typ, !tt.tagErr, tt.tagErr)
		}
		// The failure is remembered: asking again gives the same error
		// without rebuilding.
		if _, err2 := reg.Table(tt.typ); err2 != err {
			t.Errorf("Table(%v) a second time = %v, want the same error", tt.typ, err2)
		}
	}
}

func TestDefinitionErrorText(t *testing.T) {
	_, err := NewRegistry().Table(reflect.TypeFor[NoPK]())
	if want := `mapper: model mapper.NoPK: no primary key: tag one field db:"...,pk"`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	_, err = NewRegistry().Table(reflect.TypeFor[TwoVersions]())
	if want := "mapper: model mapper.TwoVersions, field V2: a second version column (the first is V1)"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	// A relation's broken target is reachable through Unwrap.
	_, err = NewRegistry().Table(reflect.TypeFor[RelToBad]())
	var outer *DefinitionError
	if !errors.As(err, &outer) {
		t.Fatalf("error = %v, want a *DefinitionError", err)
	}
	var inner *DefinitionError
	if !errors.As(outer.Err, &inner) || inner.Type != reflect.TypeFor[NoPK]() {
		t.Errorf("inner error = %v, want the NoPK *DefinitionError", outer.Err)
	}
}

func TestTableOf(t *testing.T) {
	reg := NewRegistry()
	want := mustTableIn[Account](t, reg)
	for _, v := range []any{Account{}, &Account{}, reflect.TypeFor[Account](), reflect.TypeFor[*Account]()} {
		got, err := reg.TableOf(v)
		if err != nil || got != want {
			t.Errorf("TableOf(%T) = %p, %v; want %p", v, got, err, want)
		}
	}
	if _, err := reg.TableOf(nil); err == nil || err.Error() != "mapper: nil is not a model" {
		t.Errorf("TableOf(nil) error = %v", err)
	}
}

// genModel is registered with a generated accessor by TestRegisterGenerated
// only; no other test uses it.
type genModel struct {
	ID int64 `db:"id,pk"`
}

type genBroken struct {
	ID int64 `db:"id,pk"`
}

type stubAccessor struct{ reflectAccessor }

func TestRegisterGenerated(t *testing.T) {
	RegisterGenerated(reflect.TypeFor[genModel](), func(t *Table) (Accessor, error) {
		return stubAccessor{reflectAccessor{t}}, nil
	})
	RegisterGenerated(reflect.TypeFor[genBroken](), func(t *Table) (Accessor, error) {
		return nil, errors.New("field Name was added since generation: run go generate")
	})
	tab := mustTable[genModel](t)
	if _, ok := tab.Acc.(stubAccessor); !ok {
		t.Errorf("Acc = %T, want the generated accessor", tab.Acc)
	}
	if tab := mustTable[Box](t); reflect.TypeOf(tab.Acc) != reflect.TypeFor[reflectAccessor]() {
		t.Errorf("Acc = %T, want the reflective accessor", tab.Acc)
	}
	_, err := NewRegistry().Table(reflect.TypeFor[genBroken]())
	var de *DefinitionError
	if !errors.As(err, &de) || de.Reason != "field Name was added since generation: run go generate" {
		t.Errorf("error = %v, want the generated mapper's refusal", err)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	types := []reflect.Type{
		reflect.TypeFor[Account](), reflect.TypeFor[Entry](), reflect.TypeFor[*Doc](),
		reflect.TypeFor[Kinds](), reflect.TypeFor[Membership](), reflect.TypeFor[Flags](),
		reflect.TypeFor[NoPK](), reflect.TypeFor[Ledger](),
	}
	reg := NewRegistry()
	const n = 32
	got := make([][]*Table, n)
	errs := make([][]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for g := range n {
		done.Go(func() {
			start.Wait()
			got[g] = make([]*Table, len(types))
			errs[g] = make([]error, len(types))
			for i := range types {
				j := (i + g) % len(types) // each goroutine starts at another type
				got[g][j], errs[g][j] = reg.Table(types[j])
			}
		})
	}
	start.Done()
	done.Wait()
	for i, typ := range types {
		want, wantErr := reg.Table(typ)
		for g := range n {
			if got[g][i] != want || errs[g][i] != wantErr {
				t.Errorf("goroutine %d: Table(%v) = %p, %v; want %p, %v", g, typ, got[g][i], errs[g][i], want, wantErr)
			}
		}
	}
}
