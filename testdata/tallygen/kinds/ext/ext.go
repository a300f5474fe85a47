// Package ext declares column types in a package other than the models',
// for tallygen's golden tests.
package ext

import (
	"database/sql/driver"
	"fmt"
	"strings"
)

// Code is a named string from another package.
type Code string

// UUID is a fixed-size key type that scans and values itself.
type UUID [16]byte

// Scan reads 16 bytes.
func (u *UUID) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok || len(b) != 16 {
		return fmt.Errorf("ext: bad UUID %v", src)
	}
	copy(u[:], b)
	return nil
}

// Value writes the 16 bytes.
func (u UUID) Value() (driver.Value, error) { return u[:], nil }

// Labels is a Scanner/Valuer with unexported fields that hold references:
// generated code can neither compare nor copy it field by field.
type Labels struct {
	list []string
}

// NewLabels returns labels holding l.
func NewLabels(l ...string) Labels { return Labels{list: l} }

// List returns the labels.
func (l Labels) List() []string { return l.list }

// Scan reads a comma-separated list.
func (l *Labels) Scan(src any) error {
	switch s := src.(type) {
	case nil:
		l.list = nil
	case string:
		l.list = strings.Split(s, ",")
	case []byte:
		l.list = strings.Split(string(s), ",")
	default:
		return fmt.Errorf("ext: bad labels %v", src)
	}
	return nil
}

// Value writes a comma-separated list.
func (l Labels) Value() (driver.Value, error) {
	if l.list == nil {
		return nil, nil
	}
	return strings.Join(l.list, ","), nil
}
