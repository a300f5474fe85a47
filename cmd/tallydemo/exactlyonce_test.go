package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// tcpLine sends one line and returns the reply without its newline.
func tcpLine(t *testing.T, conn net.Conn, r *bufio.Reader, line string) string {
	t.Helper()
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return strings.TrimSuffix(got, "\n")
}

// A transfer sent again with the same request id — as a client does after
// an unknown outcome — is applied once and answered with the first
// attempt's transfer, over TCP and HTTP alike, on every database; a
// refusal is answered again the same way; an id reused for another
// transfer is refused.
func TestTransferRetriedWithSameRequestIDAppliesOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		log := slog.New(slog.NewTextHandler(t.Output(), nil))
		a, err := open(t.Context(), testConfig(tg), log)
		if err != nil {
			t.Fatal(err)
		}
		defer a.close()
		s, err := a.start("127.0.0.1:0", "127.0.0.1:0", log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.stop()
		conn, err := net.Dial("tcp", s.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(conn)
		for _, tc := range []struct{ send, want string }{
			{"TRANSFER 1 2 5 req-1", "OK 1"},
			{"TRANSFER 1 2 5 req-1", "OK 1 replayed"},
			{"TRANSFER 1 2 5 req-2", "OK 2"},
			{"TRANSFER 1 2 6 req-1", `ERR conflict: request id already used for another transfer: "req-1" is transfer 1`},
			{"TRANSFER 1 2 5000 req-3", "ERR insufficient-funds: account 1 has 990, transfer needs 5000"},
			{"TRANSFER 2 1 500 req-4", "OK 3"},
			{"TRANSFER 1 2 5000 req-3", "ERR insufficient-funds: account 1 has 990, transfer needs 5000"}, // the recorded refusal (1 now has 1490)
			{"TRANSFER 1 2 5 bad/id", "ERR bad-request: invalid transfer: a request id has only letters, digits and -_.: (byte 3 is 0x2f)"},
			{"BALANCE 1", "OK 1490"},
		} {
			if got := tcpLine(t, conn, r, tc.send); got != tc.want {
				t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
			}
		}

		// HTTP: the header, and the body's request_id, name the same request.
		post := func(key, body string) (int, string, string) {
			t.Helper()
			req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+s.httpAddr+"/transfers", strings.NewReader(body))
			if key != "" {
				req.Header.Set("Idempotency-Key", key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), string(data)
		}
		code, rep, body := post("h-1", `{"from":3,"to":4,"amount":7}`)
		if code != 201 || rep != "" || !strings.Contains(body, `"id":4,"request_id":"h-1"`) {
			t.Errorf("first POST: %d %q %s", code, rep, body)
		}
		first := body
		code, rep, body = post("", `{"from":3,"to":4,"amount":7,"request_id":"h-1"}`)
		if code != 200 || rep != "true" || body != first {
			t.Errorf("POST again: %d %q %s, want 200, replayed, and the first body %s", code, rep, body, first)
		}
		if code, _, body = post("h-2", `{"from":3,"to":4,"amount":7,"request_id":"h-3"}`); code != 400 {
			t.Errorf("POST with differing key and request_id: %d %s, want 400", code, body)
		}
		if code, _, body = post("h-4", `{"from":3,"to":4,"amount":9000}`); code != 422 {
			t.Errorf("POST refused: %d %s, want 422", code, body)
		}
		if code, rep, body = post("h-4", `{"from":3,"to":4,"amount":9000}`); code != 422 || rep != "true" {
			t.Errorf("POST refused again: %d %q %s, want 422 replayed", code, rep, body)
		}
		if got := tcpLine(t, conn, r, "BALANCE 4"); got != "OK 1007" {
			t.Errorf("BALANCE 4 = %q, want OK 1007: the transfer applied once", got)
		}
		checks, err := a.bank.Verify(t.Context(),
			[]Receipt{{"req-1", 1}, {"req-2", 2}, {"req-4", 3}, {"h-1", 4}},
			[]Receipt{{RequestID: "req-3"}, {RequestID: "h-4"}}, 8*1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range checks {
			if !c.OK {
				t.Errorf("%s: %s", c.Name, c.Detail)
			}
		}
	})
}

// Two attempts of one request racing each other: whichever commits first
// decides; the other finds it (or meets the unique key and is told to
// retry), and the transfer is applied once.
func TestConcurrentAttemptsOfOneRequestApplyOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, tg dbtest.Target) {
		a, err := open(t.Context(), testConfig(tg), slog.New(slog.NewTextHandler(t.Output(), nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer a.close()
		const n = 8
		ids := make(chan int64, n)
		errs := make(chan error, n)
		for range n {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				for {
					tr, _, err := a.bank.Transfer(ctx, "same", 1, 2, 10)
					if err == nil {
						ids <- tr.ID
						return
					}
					if code, _ := errorCode(err); code != codeBusy {
						errs <- err
						return
					}
				}
			}()
		}
		var first int64
		for range n {
			select {
			case id := <-ids:
				if first == 0 {
					first = id
				} else if id != first {
					t.Errorf("transfer %d and %d for one request id", first, id)
				}
			case err := <-errs:
				t.Error(err)
			}
		}
		bal, err := a.bank.Balance(t.Context(), 2)
		if err != nil || bal != 1010 {
			t.Errorf("balance of 2: %d, %v; want 1010", bal, err)
		}
		n2, err := orm.Query[Transfer](a.eng.NewSession()).Count(t.Context())
		if err != nil || n2 != 1 {
			t.Errorf("%d journal rows, %v; want 1", n2, err)
		}
	})
}
