package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func testConfig(tg dbtest.Target) config {
	return config{driver: tg.Driver, dsn: tg.DSN, clients: 8, duration: 2 * time.Second, accounts: 8,
		balance: 1000, maxAmount: 200, unordered: 0.05, audit: 200 * time.Millisecond}
}

// TestLoad runs the self-driving load on every database and checks the
// invariants, with no request failing and no goroutine left behind.
func TestLoad(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		before := runtime.NumGoroutine()
		log := slog.New(slog.NewTextHandler(t.Output(), nil))
		rep, err := runLoad(t.Context(), testConfig(tg), nil, false, log)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		rep.Print(&b)
		t.Log("\n" + b.String())
		if !rep.OK() {
			t.Error("a check failed")
		}
		l := rep.Load
		if l.Errors != 0 || l.HTTPCommits == 0 || l.TCPCommits == 0 || rep.AuditRuns == 0 {
			t.Errorf("errors %d, HTTP commits %d, TCP commits %d, audit runs %d; want 0 errors and the rest above 0",
				l.Errors, l.HTTPCommits, l.TCPCommits, rep.AuditRuns)
		}
		checkGoroutines(t, before)
	})
}

// checkGoroutines waits briefly for the goroutine count to fall back to
// before: every server, client, job and pool goroutine must end.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines, %d before the run:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSQLite serves a fresh bank on SQLite; the services are stopped and
// the app closed when the test ends, if the test has not done it.
func startSQLite(t *testing.T) (*app, *services) {
	t.Helper()
	cfg := testConfig(dbtest.Targets(t)[0])
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	a, err := open(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.start("127.0.0.1:0", "127.0.0.1:0", log)
	if err != nil {
		a.close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stop()
		a.close()
	})
	return a, s
}

func TestTCPProtocol(t *testing.T) {
	_, s := startSQLite(t)
	conn, err := net.Dial("tcp", s.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	for _, tc := range []struct{ send, want string }{
		{"BALANCE 1", "OK 1000"},
		{"transfer 1 2 5", "OK 1"},
		{"  BALANCE   2  ", "OK 1005"},
		{"TRANSFER 1 2 5000", "ERR insufficient-funds: account 1 has 995, transfer needs 5000"},
		{"TRANSFER 1 99 5", "ERR not-found: unknown account: 99"},
		{"TRANSFER 1 1 5", "ERR bad-request: invalid transfer: need two different accounts and a positive amount"},
		{"TRANSFER 1 2 -5", "ERR bad-request: invalid transfer: need two different accounts and a positive amount"},
		{"TRANSFER 1 2 x", "ERR bad-request: TRANSFER takes three integers: from, to, amount"},
		{"BALANCE 42", "ERR not-found: unknown account: 42"},
		{"HELLO", "ERR bad-request: want TRANSFER <from> <to> <amount> [<request id>], BALANCE <account> or QUIT"},
		{"", ""}, // blank lines get no reply
		{"QUIT", "OK bye"},
	} {
		if _, err := io.WriteString(conn, tc.send+"\r\n"); err != nil {
			t.Fatal(err)
		}
		if tc.want == "" {
			continue
		}
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v", tc.send, err)
		}
		if got = strings.TrimSuffix(got, "\n"); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("after QUIT: %v, want EOF", err)
	}
}

func TestTCPLineTooLong(t *testing.T) {
	_, s := startSQLite(t)
	conn, err := net.Dial("tcp", s.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "BALANCE "+strings.Repeat("1", tcpMaxLine)+"\n")
	got, _ := io.ReadAll(conn)
	if want := "ERR bad-request: line longer than 256 bytes\n"; string(got) != want {
		t.Errorf("got %q, want %q and the connection closed", got, want)
	}
}

// Stopping the services closes an idle connection at once rather than
// waiting for its read deadline, and lets the goroutines end.
func TestTCPStopClosesIdleConnections(t *testing.T) {
	before := runtime.NumGoroutine()
	a, s := startSQLite(t)
	conn, err := net.Dial("tcp", s.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "BALANCE 1\n")
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "OK 1000\n" {
		t.Fatalf("BALANCE 1: %q, %v", line, err)
	}
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Error(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stop took %s with an idle connection open", d)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("read after stop: %v, want EOF", err)
	}
	conn.Close()
	a.close()
	checkGoroutines(t, before)
}

func TestHTTPAPI(t *testing.T) {
	_, s := startSQLite(t)
	base := "http://" + s.httpAddr
	do := func(method, path, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s %s: %s: body %q is not JSON", method, path, resp.Status, data)
		}
		m, _ := v.(map[string]any)
		if m == nil {
			m = map[string]any{"list": v}
		}
		return resp.StatusCode, resp.Header, m
	}

	code, h, v := do("POST", "/transfers", `{"from":1,"to":2,"amount":5}`)
	if code != http.StatusCreated || h.Get("Location") != "/transfers/1" || v["id"] != 1.0 || v["amount"] != 5.0 {
		t.Errorf("POST /transfers: %d %q %v", code, h.Get("Location"), v)
	}
	if es, _ := v["entries"].([]any); len(es) != 2 {
		t.Errorf("POST /transfers: entries %v, want two", v["entries"])
	}
	if code, _, v = do("GET", "/accounts/1", ""); code != http.StatusOK || v["balance"] != 995.0 || v["owner"] != "alice" {
		t.Errorf("GET /accounts/1: %d %v", code, v)
	}
	if code, _, v = do("GET", "/transfers/1", ""); code != http.StatusOK || len(v["entries"].([]any)) != 2 {
		t.Errorf("GET /transfers/1: %d %v", code, v)
	}
	if code, _, v = do("GET", "/accounts", ""); code != http.StatusOK || len(v["list"].([]any)) != 8 {
		t.Errorf("GET /accounts: %d %v", code, v)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/transfers", `{"from":1,"to":2,"amount":5000}`, 422, codeFunds},
		{"POST", "/transfers", `{"from":1,"to":99,"amount":5}`, 404, codeNotFound},
		{"POST", "/transfers", `{"from":1,"to":1,"amount":5}`, 400, codeBadRequest},
		{"POST", "/transfers", `{"from":1,"to":2,"amount":5,"memo":"x"}`, 400, codeBadRequest},
		{"POST", "/transfers", `not json`, 400, codeBadRequest},
		{"GET", "/accounts/x", "", 400, codeBadRequest},
		{"GET", "/accounts/99", "", 404, codeNotFound},
		{"GET", "/transfers/99", "", 404, codeNotFound},
	} {
		if code, _, v := do(tc.method, tc.path, tc.body); code != tc.status || v["code"] != tc.code {
			t.Errorf("%s %s %s: %d %v, want %d %s", tc.method, tc.path, tc.body, code, v, tc.status, tc.code)
		}
	}
	// The rejected transfers changed nothing.
	if code, _, v = do("GET", "/accounts/1", ""); code != http.StatusOK || v["balance"] != 995.0 {
		t.Errorf("GET /accounts/1 after the rejections: %d %v", code, v)
	}
}

func TestNextPort(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8080", "127.0.0.1:8081"},
		{":8080", ":8081"},
		{"localhost:0", "localhost:0"},
		{"[::1]:9000", "[::1]:9001"},
		{"8080", ""},
		{"host:http", ""},
		{"host:65535", ""},
	} {
		got, err := nextPort(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("nextPort(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestHTTPPutAccount is the edit-form story on every database: two
// clients read account 1 at the same version; the first save wins, the
// second is refused with 409 instead of overwriting it.
func TestHTTPPutAccount(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		log := slog.New(slog.NewTextHandler(t.Output(), nil))
		a, err := open(t.Context(), testConfig(tg), log)
		if err != nil {
			t.Fatal(err)
		}
		defer a.close()
		srv := httptest.NewServer((&API{Bank: a.bank, Log: log}).Handler())
		defer srv.Close()
		do := func(method, path, body string) (int, map[string]any) {
			t.Helper()
			req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var v map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				t.Fatalf("%s %s: %s: body is not a JSON object: %v", method, path, resp.Status, err)
			}
			return resp.StatusCode, v
		}
		code, read := do("GET", "/accounts/1", "")
		if code != http.StatusOK || read["version"] != 1.0 {
			t.Fatalf("GET /accounts/1: %d %v, want 200 at version 1", code, read)
		}
		// Client A saves an edit made on version 1.
		code, v := do("PUT", "/accounts/1", `{"id":1,"owner":"alice2","balance":1000,"version":1}`)
		if code != http.StatusOK || v["owner"] != "alice2" || v["version"] != 2.0 {
			t.Errorf("first PUT: %d %v, want 200 with owner alice2 at version 2", code, v)
		}
		// Client B saves its edit of the same version 1: refused.
		code, v = do("PUT", "/accounts/1", `{"id":1,"owner":"alice3","balance":1000,"version":1}`)
		if code != http.StatusConflict || v["code"] != codeConflict {
			t.Errorf("stale PUT: %d %v, want 409 %s", code, v, codeConflict)
		}
		// The same edit unchanged again is no change at all.
		if code, v = do("PUT", "/accounts/1", `{"id":1,"owner":"alice2","balance":1000,"version":2}`); code != http.StatusOK || v["version"] != 2.0 {
			t.Errorf("unchanged PUT: %d %v, want 200 still at version 2", code, v)
		}
		for _, tc := range []struct {
			path, body string
			status     int
			code       string
		}{
			{"/accounts/1", `{"id":1,"owner":"alice2","balance":5,"version":2}`, 400, codeBadRequest},
			{"/accounts/1", `{"id":2,"owner":"alice2","balance":1000,"version":2}`, 400, codeBadRequest},
			{"/accounts/1", `{"id":1,"owner":"bob","balance":1000,"version":2}`, 409, codeConflict},
			{"/accounts/1", `{"id":1,"owner":"x","balance":1000,"version":2,"extra":1}`, 400, codeBadRequest},
			{"/accounts/99", `{"owner":"x","balance":0,"version":1}`, 404, codeNotFound},
		} {
			if code, v := do("PUT", tc.path, tc.body); code != tc.status || v["code"] != tc.code {
				t.Errorf("PUT %s %s: %d %v, want %d %s", tc.path, tc.body, code, v, tc.status, tc.code)
			}
		}
		if code, v = do("GET", "/accounts/1", ""); code != http.StatusOK || v["owner"] != "alice2" || v["version"] != 2.0 || v["balance"] != 1000.0 {
			t.Errorf("GET /accounts/1 at the end: %d %v, want alice2 at version 2 with 1000", code, v)
		}
	})
}
