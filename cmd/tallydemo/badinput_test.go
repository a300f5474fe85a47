package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// startTCP serves the line protocol of a fresh SQLite bank with srv's
// limits; it stops when the test ends.
func startTCP(t *testing.T, srv *TCPServer) string {
	t.Helper()
	a, _ := startSQLite(t)
	srv.Bank = a.bank
	srv.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// stillServes checks that a new client is answered at once.
func stillServes(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if got := tcpLine(t, conn, bufio.NewReader(conn), "BALANCE 1"); !strings.HasPrefix(got, "OK ") {
		t.Errorf("a new client after the bad one: BALANCE 1 = %q", got)
	}
}

// A 10 MB line is refused after tcpMaxLine bytes — the server never
// buffers it — with a clear error, and the server goes on serving.
func TestTCPTenMegabyteLineIsRefusedWithBoundedMemory(t *testing.T) {
	addr := startTCP(t, &TCPServer{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		chunk := bytes.Repeat([]byte("7"), 64<<10)
		io.WriteString(conn, "TRANSFER ")
		for range (10 << 20) / len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return // the server closed the connection: expected
			}
		}
	}()
	got, _ := bufio.NewReader(conn).ReadString('\n')
	runtime.ReadMemStats(&after)
	if want := "ERR bad-request: line longer than 256 bytes\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("the process allocated %d MiB while refusing a 10 MiB line; want it bounded", grew>>20)
	}
	stillServes(t, addr)
}

// Malformed lines — invalid UTF-8, zero, negative and overflowing
// amounts, unknown accounts, bad request ids — get a clear error each and
// leave the connection usable.
func TestTCPMalformedRequestsGetClearErrors(t *testing.T) {
	addr := startTCP(t, &TCPServer{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	const ints = "ERR bad-request: TRANSFER takes three integers: from, to, amount"
	const positive = "ERR bad-request: invalid transfer: need two different accounts and a positive amount"
	for _, tc := range []struct{ send, want string }{
		{"TRANSFER \xff\xfe 2 5", ints},
		{"BALANCE 1\xff", "ERR bad-request: account must be an integer"},
		{"\xc3\x28 1 2 3", "ERR bad-request: want TRANSFER <from> <to> <amount> [<request id>], BALANCE <account> or QUIT"},
		{"TRANSFER 1 2 5 id\xff", "ERR bad-request: invalid transfer: a request id has only letters, digits and -_.: (byte 2 is 0xff)"},
		{"TRANSFER 1 2 5 " + strings.Repeat("a", 65), "ERR bad-request: invalid transfer: a request id has 1 to 64 characters"},
		{"TRANSFER 1 2 0", positive},
		{"TRANSFER 1 2 -5", positive},
		{"TRANSFER 1 2 -9223372036854775808", positive},
		{"TRANSFER 1 2 9223372036854775808", ints},
		{"TRANSFER 1 2 99999999999999999999999", ints},
		{"TRANSFER 1 2 1e3", ints},
		{"TRANSFER 1 2 9223372036854775807", "ERR insufficient-funds: account 1 has 1000, transfer needs 9223372036854775807"},
		{"TRANSFER 1 999 5", "ERR not-found: unknown account: 999"},
		{"TRANSFER -1 2 5", "ERR not-found: unknown account: -1"},
		{"BALANCE 9223372036854775807", "ERR not-found: unknown account: 9223372036854775807"},
		{"TRANSFER 1 2 5 ok-id", "OK 1"},
	} {
		if got := tcpLine(t, conn, r, tc.send); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
}

// A slowloris client — a few bytes at a time, never finishing its line —
// is disconnected when the line timeout runs out, while others are served;
// connections past MaxConns are refused at once instead of piling up.
func TestTCPSlowlorisIsDisconnectedAndConnectionsBounded(t *testing.T) {
	addr := startTCP(t, &TCPServer{LineTimeout: 300 * time.Millisecond, MaxConns: 2})
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	closed := make(chan time.Duration)
	go func() {
		for _, b := range []byte("BALANCE 1111111111") {
			if _, err := slow.Write([]byte{b}); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		slow.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(slow) // returns when the server closes
		closed <- time.Since(start)
	}()
	stillServes(t, addr) // a second connection, while the slow one holds the first
	if d := <-closed; d > 2*time.Second {
		t.Errorf("the slowloris connection lasted %s with a 300ms line timeout", d)
	}
	// Two held open, so a third is refused.
	for range 2 {
		held, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
	}
	time.Sleep(50 * time.Millisecond) // let the server count them
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	third.SetDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(third)
	third.Close()
	if want := "ERR busy: the server has 2 connections open; try again later\n"; string(got) != want {
		t.Errorf("connection over MaxConns: got %q, want %q and closed", got, want)
	}
}

// httpDo sends a request and returns the status and body.
func httpDo(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// Bad HTTP bodies and headers get a 4xx with the bank's JSON error (or
// 431 for headers), memory stays bounded by the body limit, and the server
// goes on serving.
func TestHTTPMalformedRequestsGetClearErrors(t *testing.T) {
	_, s := startSQLite(t)
	base := "http://" + s.httpAddr
	post := func(body, key string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/transfers", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		return httpDo(t, req)
	}
	for _, tc := range []struct {
		body, key string
		status    int
		code      string
	}{
		{`{"from":1,"to":2,"amount":0}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":-5}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":9223372036854775808}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":1e30}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":5.5}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":"5"}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":9223372036854775807}`, "", 422, codeFunds},
		{`{"from":1,"to":999,"amount":5}`, "", 404, codeNotFound},
		{"{\"from\":1,\"to\":2,\"amount\":5,\"request_id\":\"\xff\xfe\"}", "", 400, codeBadRequest},
		{"{\"from\":1,\"to\":2,\"amount\":5}\xff", "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":5}{"from":1,"to":2,"amount":5}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":5}`, "bad key", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":5,"pad":"` + strings.Repeat("x", 10<<20) + `"}`, "", 400, codeBadRequest},
		{`{"from":1,"to":2,"amount":5}`, "", 201, ""},
	} {
		code, body := post(tc.body, tc.key)
		if code != tc.status || tc.code != "" && !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("POST %.60q (key %q): %d %s, want %d %s", tc.body, tc.key, code, body, tc.status, tc.code)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/accounts/1", nil)
	req.Header.Set("X-Flood", strings.Repeat("x", 1<<20))
	if code, _ := httpDo(t, req); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 1 MiB header: %d, want 431", code)
	}
	req, _ = http.NewRequestWithContext(t.Context(), "GET", base+"/accounts/1", nil)
	if code, body := httpDo(t, req); code != 200 || !strings.Contains(body, `"balance":995`) {
		t.Errorf("GET /accounts/1 after the bad requests: %d %s", code, body)
	}
}

// A client that sends its headers a byte at a time is cut off by
// ReadHeaderTimeout while other clients are served.
func TestHTTPSlowHeadersAreCutOff(t *testing.T) {
	a, _ := startSQLite(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	srv := NewHTTPServer((&API{Bank: a.bank, Log: log}).Handler(), log)
	srv.ReadHeaderTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer shutdownHTTP(srv, 5*time.Second)
	addr := ln.Addr().String()
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	closed := make(chan time.Duration)
	go func() {
		for _, b := range []byte("GET /accounts/1 HTTP/1.1\r\nHost: x\r\nX-Slow: 1111111111111111\r\n") {
			if _, err := slow.Write([]byte{b}); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		slow.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(slow)
		closed <- time.Since(start)
	}()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/accounts/1", nil)
	if code, _ := httpDo(t, req); code != 200 {
		t.Errorf("GET while a slow client sends headers: %d", code)
	}
	if d := <-closed; d > 2*time.Second {
		t.Errorf("the slow-header connection lasted %s with a 300ms ReadHeaderTimeout", d)
	}
}
