package keyval

import (
	"testing"
	"time"
)

// Detach copies the kinds a key can have, without sharing the caller's
// box, and refuses the rest.
func TestDetach(t *testing.T) {
	type id int64
	type uuid [4]byte
	now := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	n := int64(7)
	b := []byte("ab")
	tests := []struct {
		in     any
		want   any
		wantOK bool
	}{
		{nil, nil, true},
		{int64(7), int64(7), true},
		{uint8(7), uint8(7), true},
		{"s", "s", true},
		{true, true, true},
		{2.5, 2.5, true},
		{now, now, true},
		{&now, now, true},
		{(*time.Time)(nil), nil, true},
		{id(7), id(7), true},
		{&n, int64(7), true},
		{(*int64)(nil), nil, true},
		{uuid{1, 2, 3, 4}, uuid{1, 2, 3, 4}, true},
		{struct{ A int }{1}, nil, false},
		{[]int{1}, nil, false},
		{map[string]int{}, nil, false},
	}
	for _, tt := range tests {
		got, ok := Detach(tt.in)
		if ok != tt.wantOK || (ok && got != tt.want) {
			t.Errorf("Detach(%#v) = %#v, %v; want %#v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
	// A named byte slice is copied: the copy must not see later writes.
	type blob []byte
	got, ok := Detach(blob(b))
	if !ok {
		t.Fatalf("Detach(blob) not ok")
	}
	b[0] = 'z'
	if g := string(got.(blob)); g != "ab" {
		t.Errorf("Detach(blob) = %q after the original changed, want %q", g, "ab")
	}
}

func TestInt64(t *testing.T) {
	type id int64
	three := 3
	for _, v := range []any{int(-3), int8(-3), int16(-3), int32(-3), int64(-3)} {
		if n, ok := Int64(v); !ok || n != -3 {
			t.Errorf("Int64(%T -3) = %d, %v", v, n, ok)
		}
	}
	for _, v := range []any{uint(3), uint8(3), uint16(3), uint32(3), uint64(3)} {
		if n, ok := Int64(v); !ok || n != 3 {
			t.Errorf("Int64(%T 3) = %d, %v", v, n, ok)
		}
	}
	for _, v := range []any{nil, "3", 3.0, id(3), &three, true} {
		if _, ok := Int64(v); ok {
			t.Errorf("Int64(%T) ok", v)
		}
	}
}
