package orm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tallyorm/tally/dialect"
)

// Open's errors never show the DSN's password, also not through Unwrap,
// and a connection error stays one.
func TestRedactHidesPassword(t *testing.T) {
	const pw = "S3cretPw"
	plain := errors.New("dial tcp 127.0.0.1:1: connection refused")
	if got := redact(plain, pw); got != plain {
		t.Errorf("an error without the password was changed: %v", got)
	}
	if got := redact(plain, ""); got != plain {
		t.Errorf("an empty password changed the error: %v", got)
	}
	if redact(nil, pw) != nil {
		t.Error("redact(nil) != nil")
	}

	driverErr := errors.New(`parse "postgres://u:S3cretPw@h/x": invalid port`)
	got := redact(fmt.Errorf("orm: open: %w", driverErr), pw)
	if strings.Contains(got.Error(), pw) {
		t.Errorf("message still has the password: %v", got)
	}
	if got.Error() != `orm: open: parse "postgres://u:xxxxx@h/x": invalid port` {
		t.Errorf("message %q, want %q", got, `orm: open: parse "postgres://u:xxxxx@h/x": invalid port`)
	}
	engWalk(got, func(e error) {
		if strings.Contains(e.Error(), pw) {
			t.Errorf("%T reachable through Unwrap has the password: %v", e, e)
		}
	})
	if errors.Is(got, driverErr) {
		t.Error("the original error, whose text has the password, is still reachable")
	}

	// A connection error stays a connection error.
	conn := &DBError{Class: dialect.ClassConnection, Err: errors.New("dial u:S3cretPw@h: refused")}
	got = redact(fmt.Errorf("orm: connect: %w", conn), pw)
	if !errors.Is(got, ErrConnection) {
		t.Errorf("redacted connection error does not match ErrConnection: %v", got)
	}
	engWalk(got, func(e error) {
		if strings.Contains(e.Error(), pw) {
			t.Errorf("%T reachable through Unwrap has the password: %v", e, e)
		}
	})
}

func engWalk(err error, fn func(error)) {
	for err != nil {
		fn(err)
		err = errors.Unwrap(err)
	}
}
