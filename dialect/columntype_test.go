package dialect

import (
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

type status string

// uuidLike stands for github.com/google/uuid's UUID: a 16-byte array
// whose Valuer gives its text form.
type uuidLike [16]byte

func (uuidLike) Value() (driver.Value, error) { return "", nil }

// Decimal stands for github.com/shopspring/decimal's Decimal, recognised
// by its name and its Valuer.
type Decimal struct{ _ string }

func (Decimal) Value() (driver.Value, error) { return "", nil }

// opaqueValuer is a Valuer whose database type nothing tells.
type opaqueValuer struct{ _ int }

func (opaqueValuer) Value() (driver.Value, error) { return "", nil }

type ptrValuer struct{ _ int }

func (*ptrValuer) Value() (driver.Value, error) { return nil, nil }

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

func TestColumnType(t *testing.T) {
	tests := []struct {
		name                   string
		col                    Column
		mysql, postgres, sqlit string
	}{
		{"bool", Column{Type: typeOf[bool]()}, "BOOLEAN", "BOOLEAN", "BOOLEAN"},
		{"int8", Column{Type: typeOf[int8]()}, "TINYINT", "SMALLINT", "INTEGER"},
		{"int16", Column{Type: typeOf[int16]()}, "SMALLINT", "SMALLINT", "INTEGER"},
		{"int32", Column{Type: typeOf[int32]()}, "INT", "INTEGER", "INTEGER"},
		{"int64", Column{Type: typeOf[int64]()}, "BIGINT", "BIGINT", "INTEGER"},
		{"int", Column{Type: typeOf[int]()}, "BIGINT", "BIGINT", "INTEGER"},
		{"uint8", Column{Type: typeOf[uint8]()}, "TINYINT UNSIGNED", "SMALLINT", "INTEGER"},
		{"uint16", Column{Type: typeOf[uint16]()}, "SMALLINT UNSIGNED", "INTEGER", "INTEGER"},
		{"uint32", Column{Type: typeOf[uint32]()}, "INT UNSIGNED", "BIGINT", "INTEGER"},
		{"uint64", Column{Type: typeOf[uint64]()}, "BIGINT UNSIGNED", "NUMERIC(20)", "INTEGER"},
		{"uint", Column{Type: typeOf[uint]()}, "BIGINT UNSIGNED", "NUMERIC(20)", "INTEGER"},
		{"float32", Column{Type: typeOf[float32]()}, "FLOAT", "REAL", "REAL"},
		{"float64", Column{Type: typeOf[float64]()}, "DOUBLE", "DOUBLE PRECISION", "REAL"},
		{"string", Column{Type: typeOf[string]()}, "LONGTEXT", "TEXT", "TEXT"},
		{"string with size", Column{Type: typeOf[string](), Size: 40}, "VARCHAR(40)", "VARCHAR(40)", "TEXT"},
		{"string key", Column{Type: typeOf[string](), Key: true}, "VARCHAR(255)", "TEXT", "TEXT"},
		{"string key with size", Column{Type: typeOf[string](), Key: true, Size: 64}, "VARCHAR(64)", "VARCHAR(64)", "TEXT"},
		{"named string", Column{Type: typeOf[status]()}, "LONGTEXT", "TEXT", "TEXT"},
		{"bytes", Column{Type: typeOf[[]byte]()}, "LONGBLOB", "BYTEA", "BLOB"},
		{"bytes with size", Column{Type: typeOf[[]byte](), Size: 16}, "VARBINARY(16)", "BYTEA", "BLOB"},
		{"bytes key", Column{Type: typeOf[[]byte](), Key: true}, "VARBINARY(255)", "BYTEA", "BLOB"},
		{"json.RawMessage", Column{Type: typeOf[json.RawMessage]()}, "JSON", "JSONB", "TEXT"},
		{"json option", Column{Type: typeOf[map[string]any](), JSON: true}, "JSON", "JSONB", "TEXT"},
		{"*json.RawMessage", Column{Type: typeOf[*json.RawMessage]()}, "JSON", "JSONB", "TEXT"},
		{"string decimal", Column{Type: typeOf[string](), Precision: 20, Scale: 4}, "DECIMAL(20,4)", "NUMERIC(20,4)", "TEXT"},
		{"decimal type", Column{Type: typeOf[Decimal](), Precision: 12, Scale: 0}, "DECIMAL(12,0)", "NUMERIC(12,0)", "TEXT"},
		{"uuid type", Column{Type: typeOf[uuidLike]()}, "BINARY(16)", "UUID", "BLOB"},
		{"*uuid type", Column{Type: typeOf[*uuidLike]()}, "BINARY(16)", "UUID", "BLOB"},
		{"[16]byte", Column{Type: typeOf[[16]byte]()}, "BINARY(16)", "UUID", "BLOB"},
		{"time", Column{Type: typeOf[time.Time]()}, "DATETIME(6)", "TIMESTAMPTZ", "DATETIME"},
		{"*int64", Column{Type: typeOf[*int64]()}, "BIGINT", "BIGINT", "INTEGER"},
		{"**string", Column{Type: typeOf[**string](), Size: 10}, "VARCHAR(10)", "VARCHAR(10)", "TEXT"},
		{"*time", Column{Type: typeOf[*time.Time]()}, "DATETIME(6)", "TIMESTAMPTZ", "DATETIME"},
		{"NullString", Column{Type: typeOf[sql.NullString]()}, "LONGTEXT", "TEXT", "TEXT"},
		{"NullInt64", Column{Type: typeOf[sql.NullInt64]()}, "BIGINT", "BIGINT", "INTEGER"},
		{"NullInt32", Column{Type: typeOf[sql.NullInt32]()}, "INT", "INTEGER", "INTEGER"},
		{"NullInt16", Column{Type: typeOf[sql.NullInt16]()}, "SMALLINT", "SMALLINT", "INTEGER"},
		{"NullByte", Column{Type: typeOf[sql.NullByte]()}, "TINYINT UNSIGNED", "SMALLINT", "INTEGER"},
		{"NullFloat64", Column{Type: typeOf[sql.NullFloat64]()}, "DOUBLE", "DOUBLE PRECISION", "REAL"},
		{"NullBool", Column{Type: typeOf[sql.NullBool]()}, "BOOLEAN", "BOOLEAN", "BOOLEAN"},
		{"NullTime", Column{Type: typeOf[sql.NullTime]()}, "DATETIME(6)", "TIMESTAMPTZ", "DATETIME"},
		{"Null[int32]", Column{Type: typeOf[sql.Null[int32]]()}, "INT", "INTEGER", "INTEGER"},
		{"Null[string] key", Column{Type: typeOf[sql.Null[string]](), Key: true}, "VARCHAR(255)", "TEXT", "TEXT"},
		{"Null[[]byte]", Column{Type: typeOf[sql.Null[[]byte]]()}, "LONGBLOB", "BYTEA", "BLOB"},
		{"Null[time]", Column{Type: typeOf[sql.Null[time.Time]]()}, "DATETIME(6)", "TIMESTAMPTZ", "DATETIME"},
		{"*NullInt64", Column{Type: typeOf[*sql.NullInt64]()}, "BIGINT", "BIGINT", "INTEGER"},
		{"Null[*uint16]", Column{Type: typeOf[sql.Null[*uint16]]()}, "SMALLINT UNSIGNED", "INTEGER", "INTEGER"},
		{"type= wins", Column{Type: typeOf[string](), Size: 3, Key: true, SQLType: "CHAR(3)"}, "CHAR(3)", "CHAR(3)", "CHAR(3)"},
		{"type= for a Valuer", Column{Type: typeOf[uuidLike](), SQLType: "UUID"}, "UUID", "UUID", "UUID"},
		{"type= without a Go type", Column{SQLType: "JSONB"}, "JSONB", "JSONB", "JSONB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				d    Dialect
				want string
			}{{MySQL, tt.mysql}, {MariaDB, tt.mysql}, {PostgreSQL, tt.postgres}, {SQLite, tt.sqlit}} {
				got, err := c.d.ColumnType(tt.col)
				if err != nil || got != c.want {
					t.Errorf("%s: ColumnType(%v) = %q, %v; want %q", c.d.Name(), tt.col.Type, got, err, c.want)
				}
			}
		})
	}
}

func TestColumnTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  reflect.Type
		want []string // in the message, besides the dialect prefix
	}{
		{"no type", nil, []string{"no Go type"}},
		{"Valuer", typeOf[opaqueValuer](), []string{"dialect.opaqueValuer", "driver.Valuer", "type="}},
		{"*Valuer", typeOf[*opaqueValuer](), []string{"*dialect.opaqueValuer", "driver.Valuer", "type="}},
		{"pointer-receiver Valuer", typeOf[ptrValuer](), []string{"dialect.ptrValuer", "driver.Valuer"}},
		{"struct", typeOf[struct{ A int }](), []string{"struct { A int }", "type="}},
		{"map", typeOf[map[string]any](), []string{"map[string]interface {}", "type="}},
		{"slice", typeOf[[]int](), []string{"[]int", "type="}},
		{"byte array", typeOf[[8]byte](), []string{"[8]uint8", "type="}},
		{"complex", typeOf[complex128](), []string{"complex128"}},
		{"uintptr", typeOf[uintptr](), []string{"uintptr"}},
		{"interface", typeOf[any](), []string{"interface {}"}},
		{"named time", typeOf[struct{ time.Time }](), []string{"struct { time.Time }"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range allDialects {
				got, err := d.d.ColumnType(Column{Type: tt.typ})
				if err == nil {
					t.Errorf("%s: ColumnType(%v) = %q; want an error", d.name, tt.typ, got)
					continue
				}
				msg := err.Error()
				for _, w := range append([]string{"dialect: " + d.d.Name()}, tt.want...) {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: error %q does not mention %q", d.name, msg, w)
					}
				}
			}
		})
	}
}

// TestColumnTypeDecimalOnMySQLNeedsDigits: MySQL's DECIMAL without digits
// is DECIMAL(10,0), which rounds money to whole units, so a decimal column
// without precision=, or a bare type=NUMERIC, is refused with the fix.
func TestColumnTypeDecimalOnMySQLNeedsDigits(t *testing.T) {
	for _, col := range []Column{
		{Type: typeOf[Decimal]()},
		{Type: typeOf[string](), SQLType: "NUMERIC"},
		{Type: typeOf[string](), SQLType: "decimal"},
	} {
		got, err := MySQL.ColumnType(col)
		if err == nil || !strings.Contains(err.Error(), "DECIMAL(10,0)") || !strings.Contains(err.Error(), "precision=") {
			t.Errorf("MySQL.ColumnType(%v, type=%q) = %q, %v; want an error naming DECIMAL(10,0) and precision=", col.Type, col.SQLType, got, err)
		}
	}
	for d, want := range map[Dialect]string{PostgreSQL: "NUMERIC", SQLite: "TEXT"} {
		if got, err := d.ColumnType(Column{Type: typeOf[Decimal]()}); err != nil || got != want {
			t.Errorf("%s.ColumnType(Decimal) = %q, %v; want %q", d.Name(), got, err, want)
		}
	}
}

func TestAutoIncrement(t *testing.T) {
	tests := []struct {
		typ                    reflect.Type
		mysql, postgres, sqlit string
	}{
		{typeOf[int64](), "`id` BIGINT NOT NULL AUTO_INCREMENT", `"id" BIGINT GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{typeOf[int](), "`id` BIGINT NOT NULL AUTO_INCREMENT", `"id" BIGINT GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{typeOf[int32](), "`id` INT NOT NULL AUTO_INCREMENT", `"id" INTEGER GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{typeOf[int16](), "`id` INT NOT NULL AUTO_INCREMENT", `"id" INTEGER GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{typeOf[uint32](), "`id` INT UNSIGNED NOT NULL AUTO_INCREMENT", `"id" BIGINT GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{typeOf[uint64](), "`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT", `"id" BIGINT GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{typeOf[*int32](), "`id` INT NOT NULL AUTO_INCREMENT", `"id" INTEGER GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{typeOf[sql.NullInt32](), "`id` INT NOT NULL AUTO_INCREMENT", `"id" INTEGER GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
		{nil, "`id` BIGINT NOT NULL AUTO_INCREMENT", `"id" BIGINT GENERATED BY DEFAULT AS IDENTITY`, `"id" INTEGER PRIMARY KEY AUTOINCREMENT`},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			d        Dialect
			want     string
			inlinePK bool
		}{{MySQL, tt.mysql, false}, {PostgreSQL, tt.postgres, false}, {SQLite, tt.sqlit, true}} {
			ddl, inline := c.d.AutoIncrement(c.d.Quote("id"), tt.typ)
			if ddl != c.want || inline != c.inlinePK {
				t.Errorf("%s.AutoIncrement(%v) = %q, %v; want %q, %v", c.d.Name(), tt.typ, ddl, inline, c.want, c.inlinePK)
			}
		}
	}
}
