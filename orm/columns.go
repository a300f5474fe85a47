package orm

import (
	"fmt"
	"reflect"

	"github.com/tallyorm/tally/mapper"
)

// fits passes on t and err, refusing a model whose columns this engine's
// database cannot store: a uint64 column where integers are signed 64-bit
// (SQLite). It runs wherever a model is looked up, so Register, CreateTables
// and the first query or Add all report it.
func (e *Engine) fits(t *mapper.Table, err error) (*mapper.Table, error) {
	if err != nil {
		return nil, err
	}
	if c := t.Uint64Column(); c != nil && !e.dialect.Capabilities().Uint64 {
		// Refused up front: the driver accepts small values and fails at
		// some later commit, on the first value above 1<<63-1.
		return nil, &mapper.DefinitionError{Type: t.Type, Field: c.Field, Reason: fmt.Sprintf(
			"%s stores integers as signed 64-bit numbers, so a uint64 above 9223372036854775807 cannot be stored; "+
				"use int64 (or a smaller unsigned type) if the values fit, else keep the number in a string field",
			e.dialect.Name())}
	}
	return t, nil
}

// bytes16Arg returns the 16 bytes of a [16]byte argument or of a named
// type of it (github.com/google/uuid's UUID), which columns store as 16
// bytes: uuid.UUID's own Valuer gives its 36-character text, which a
// BINARY(16) column never equals.
func bytes16Arg(a any) ([]byte, bool) {
	t := reflect.TypeOf(a)
	if t == nil || t.Kind() != reflect.Array || t.Len() != 16 || t.Elem().Kind() != reflect.Uint8 {
		return nil, false
	}
	b := make([]byte, 16)
	reflect.Copy(reflect.ValueOf(b), reflect.ValueOf(a))
	return b, true
}
