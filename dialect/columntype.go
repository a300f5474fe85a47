package dialect

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// goKind is the family of Go types a dialect maps to one DDL type.
type goKind int

const (
	kindBool goKind = iota
	kindInt8
	kindInt16
	kindInt32
	kindInt64 // also int
	kindUint8
	kindUint16
	kindUint32
	kindUint64 // also uint
	kindFloat32
	kindFloat64
	kindString
	kindBytes
	kindTime
	kindDecimal // precision= in the tag, or a Scanner/Valuer type named Decimal
	kindUUID    // a 16-byte array: [16]byte, github.com/google/uuid's UUID
	kindJSON    // json.RawMessage, or the json option

	numKinds // the length of each dialect's table of types
)

var (
	timeType       = reflect.TypeFor[time.Time]()
	valuerType     = reflect.TypeFor[driver.Valuer]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
)

// isDecimalType recognises a decimal library's type without depending on
// it: a type named Decimal or NullDecimal that values itself
// (github.com/shopspring/decimal, github.com/cockroachdb/apd, ...).
func isDecimalType(t reflect.Type) bool {
	named := t.Name() == "Decimal" || t.Name() == "NullDecimal"
	return named && (t.Implements(valuerType) || reflect.PointerTo(t).Implements(valuerType))
}

// storedType unwraps what a column may hold in place of the stored value:
// pointers, and database/sql's NullString, NullInt64, ..., Null[T].
func storedType(t reflect.Type) reflect.Type {
	for {
		switch {
		case t.Kind() == reflect.Pointer:
			t = t.Elem()
		case isSQLNull(t):
			t = t.Field(0).Type
		default:
			return t
		}
	}
}

// isSQLNull recognises database/sql's Null types by shape, which covers the
// generic sql.Null[T] for every T as well as the older named ones.
func isSQLNull(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == "database/sql" &&
		strings.HasPrefix(t.Name(), "Null") && t.NumField() == 2 && t.Field(1).Name == "Valid"
}

// kindOf classifies the stored type of c for dialect name, whose ColumnType
// maps each kind. The errors tell the user to name the type in the tag,
// since that is the one fix that always works.
func kindOf(name string, c Column) (goKind, error) {
	if c.Type == nil {
		return 0, fmt.Errorf("dialect: %s: column has no Go type", name)
	}
	t := storedType(c.Type)
	switch {
	case c.JSON || t == rawMessageType:
		return kindJSON, nil
	case c.Precision > 0 || isDecimalType(t):
		return kindDecimal, nil
	case t.Kind() == reflect.Array && t.Len() == 16 && t.Elem().Kind() == reflect.Uint8:
		return kindUUID, nil
	case t == timeType:
		return kindTime, nil
	}
	if t.Implements(valuerType) || reflect.PointerTo(t).Implements(valuerType) {
		return 0, fmt.Errorf("dialect: %s: Go type %s implements driver.Valuer, so the database type it needs is unknown; "+
			"set it with type=... in the field's tag", name, c.Type)
	}
	switch t.Kind() {
	case reflect.Bool:
		return kindBool, nil
	case reflect.Int8:
		return kindInt8, nil
	case reflect.Int16:
		return kindInt16, nil
	case reflect.Int32:
		return kindInt32, nil
	case reflect.Int, reflect.Int64:
		return kindInt64, nil
	case reflect.Uint8:
		return kindUint8, nil
	case reflect.Uint16:
		return kindUint16, nil
	case reflect.Uint32:
		return kindUint32, nil
	case reflect.Uint, reflect.Uint64:
		return kindUint64, nil
	case reflect.Float32:
		return kindFloat32, nil
	case reflect.Float64:
		return kindFloat64, nil
	case reflect.String:
		return kindString, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return kindBytes, nil
		}
	}
	return 0, fmt.Errorf("dialect: %s cannot store Go type %s; set a database type with type=... in the field's tag", name, c.Type)
}

// intWidth is the size in bytes of the integer stored for t (pointers and
// Null types unwrapped), or 8 if t is nil or not an integer type.
func intWidth(t reflect.Type) (size int, unsigned bool) {
	if t == nil {
		return 8, false
	}
	t = storedType(t)
	switch t.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return int(t.Size()), false
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return int(t.Size()), true
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return 8, true
	}
	return 8, false
}

// decimalArgs is "(P,S)" for a column with a precision, else "".
func decimalArgs(c Column) string {
	if c.Precision == 0 {
		return ""
	}
	return "(" + strconv.Itoa(c.Precision) + "," + strconv.Itoa(c.Scale) + ")"
}
