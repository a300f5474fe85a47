package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseLine checks the TCP line parser: it never panics; a line it
// accepts is a known command whose canonical form parses to the same
// request; a line it refuses gets a bad-request error whose text is valid
// UTF-8 (the reply never echoes the client's bytes raw).
//
// Seeds are in the top-level testdata/fuzz/FuzzParseLine; run it with
//
//	go test -run '^$' -fuzz '^FuzzParseLine$' ./cmd/tallydemo/
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"TRANSFER 1 2 5", "transfer 1 2 5 req-1", "BALANCE 1", "QUIT", "  balance\t7 ",
		"TRANSFER 1 2 9223372036854775808", "TRANSFER 1 2 5 bad/id", "BALANCE \xff", "TRANSFER 1 2 3 4 5", "quit now"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		req, err := parseLine(line)
		if err != nil {
			if !errors.Is(err, errBadLine) && !errors.Is(err, ErrInvalidTransfer) {
				t.Fatalf("parseLine(%q): %v, want a bad-request error", line, err)
			}
			if code, _ := errorCode(err); code != codeBadRequest && !errors.Is(err, errBadLine) {
				t.Fatalf("parseLine(%q): %v maps to %s, want bad-request", line, err, code)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("parseLine(%q): error %q is not valid UTF-8", line, err)
			}
			return
		}
		var canon string
		switch req.Cmd {
		case "QUIT":
			canon = "QUIT"
		case "BALANCE":
			canon = fmt.Sprintf("BALANCE %d", req.From)
		case "TRANSFER":
			canon = strings.TrimSpace(fmt.Sprintf("TRANSFER %d %d %d %s", req.From, req.To, req.Amount, req.RequestID))
		default:
			t.Fatalf("parseLine(%q) = %+v: unknown command", line, req)
		}
		if back, err := parseLine(canon); err != nil || back != req {
			t.Fatalf("parseLine(%q) = %+v; its canonical form %q parses as %+v, %v", line, req, canon, back, err)
		}
	})
}

// FuzzDecodeTransfer checks the POST /transfers body decoder with an
// Idempotency-Key: it never panics; what it accepts has a valid request id
// (or none) agreeing with the key, and survives encoding and decoding
// again unchanged; what it refuses is ErrInvalidTransfer (400) with a
// message that is valid UTF-8.
//
// Seeds are in the top-level testdata/fuzz/FuzzDecodeTransfer; run it with
//
//	go test -run '^$' -fuzz '^FuzzDecodeTransfer$' ./cmd/tallydemo/
func FuzzDecodeTransfer(f *testing.F) {
	for _, tc := range []struct{ body, key string }{
		{`{"from":1,"to":2,"amount":5}`, ""},
		{`{"from":1,"to":2,"amount":5,"request_id":"r-1"}`, "r-1"},
		{`{"from":1,"to":2,"amount":5,"request_id":"r-1"}`, "r-2"},
		{`{"from":1,"to":2,"amount":1e30}`, ""},
		{`{"from":1,"to":2,"amount":5}{}`, ""},
		{"{\"from\":1,\"request_id\":\"\xff\"}", ""},
		{`{"FROM":1,"To":2,"amount":5}`, "k"},
		{`null`, ""},
		{`[]`, ""},
	} {
		f.Add([]byte(tc.body), tc.key)
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		req, err := decodeTransfer(bytes.NewReader(body), key)
		if err != nil {
			if code, status := errorCode(err); !errors.Is(err, ErrInvalidTransfer) || code != codeBadRequest || status != 400 {
				t.Fatalf("decodeTransfer(%q, %q): %v (%s %d), want ErrInvalidTransfer, 400", body, key, err, code, status)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("decodeTransfer(%q, %q): error %q is not valid UTF-8", body, key, err)
			}
			return
		}
		if req.RequestID != "" && checkRequestID(req.RequestID) != nil || key != "" && req.RequestID != key {
			t.Fatalf("decodeTransfer(%q, %q) accepted request id %q", body, key, req.RequestID)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := decodeTransfer(bytes.NewReader(again), ""); err != nil || back != req {
			t.Fatalf("decodeTransfer(%q, %q) = %+v; encoded %s decodes as %+v, %v", body, key, req, again, back, err)
		}
	})
}
