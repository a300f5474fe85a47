package orm

import (
	"errors"
	"strings"
)

// redactedError hides a password that an underlying error message may
// contain (net/url errors quote the whole DSN, for one).
type redactedError struct {
	msg string
	err error // nil when its text contained the password
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), password, "xxxxx")
	// The original error still carries the password in its text, so it must
	// not be reachable; keep only what errors.Is can use.
	var inner error
	switch {
	case errors.Is(err, ErrConnection):
		inner = ErrConnection
	}
	return &redactedError{msg: msg, err: inner}
}
