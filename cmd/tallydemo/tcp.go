package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TCPServer serves the bank's line protocol: one request per line, one
// reply line per request.
//
//	TRANSFER <from> <to> <amount> [<request id>]
//	                                → OK <transfer id>, or OK <transfer id> replayed
//	                                  when the request id had committed before
//	BALANCE <account>               → OK <balance>
//	QUIT                            → OK bye, and the server closes
//	anything else, or a failure     → ERR <code>: <detail>
//
// The codes are the ones errorCode returns. Each connection has its own
// goroutine, and each line its own eng.Do (inside Bank). A TCPServer is
// used once: Serve until ctx ends.
type TCPServer struct {
	Bank *Bank
	Log  *slog.Logger

	mu      sync.Mutex // guards conns and closing
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup // one per connection goroutine
}

const (
	tcpMaxLine     = 256              // longer lines are refused and the connection closed
	tcpIdleTimeout = 2 * time.Minute  // a client silent this long is disconnected
	requestTimeout = 10 * time.Second // bounds one request's database work
)

// Serve accepts connections on ln until ctx ends. Then it closes ln,
// lets every connection finish the request it is running (a connection
// waiting for its next line is closed at once), waits for their
// goroutines and returns nil. It returns the listener's error if accepting
// fails otherwise.
func (srv *TCPServer) Serve(ctx context.Context, ln net.Listener) error {
	srv.conns = map[net.Conn]struct{}{}
	var once sync.Once
	shutdown := func() {
		once.Do(func() {
			ln.Close()
			srv.mu.Lock()
			defer srv.mu.Unlock()
			srv.closing = true
			for c := range srv.conns {
				// Wakes a Read blocked for the next line; a request being
				// handled is finished and answered first.
				c.SetReadDeadline(time.Now())
			}
		})
	}
	stop := context.AfterFunc(ctx, shutdown)
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			shutdown()
			srv.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tcp: accept: %w", err)
		}
		srv.mu.Lock()
		if srv.closing {
			srv.mu.Unlock()
			c.Close()
			continue
		}
		srv.conns[c] = struct{}{}
		srv.wg.Add(1)
		srv.mu.Unlock()
		go func() {
			defer srv.wg.Done()
			srv.serveConn(ctx, c)
			srv.mu.Lock()
			delete(srv.conns, c)
			srv.mu.Unlock()
			c.Close()
		}()
	}
}

// armDeadline sets the read deadline for the next line, unless the server
// is closing. It holds mu so that it cannot undo the deadline that Serve's
// shutdown sets.
func (srv *TCPServer) armDeadline(c net.Conn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closing {
		return false
	}
	c.SetReadDeadline(time.Now().Add(tcpIdleTimeout))
	return true
}

func (srv *TCPServer) serveConn(ctx context.Context, c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, tcpMaxLine), tcpMaxLine)
	w := bufio.NewWriter(c)
	reply := func(s string) bool {
		c.SetWriteDeadline(time.Now().Add(requestTimeout))
		w.WriteString(s)
		w.WriteByte('\n')
		return w.Flush() == nil
	}
	for srv.armDeadline(c) {
		if !sc.Scan() {
			if errors.Is(sc.Err(), bufio.ErrTooLong) {
				reply(fmt.Sprintf("ERR bad-request: line longer than %d bytes", tcpMaxLine))
			}
			return
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		// A request runs to its end even when the server is stopping;
		// requestTimeout bounds it instead of ctx.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
		out, quit := srv.handle(rctx, line)
		cancel()
		if !reply(out) || quit {
			return
		}
	}
}

// handle runs one request line and returns the reply and whether to close.
func (srv *TCPServer) handle(ctx context.Context, line string) (reply string, quit bool) {
	f := strings.Fields(line)
	switch cmd := strings.ToUpper(f[0]); {
	case cmd == "QUIT" && len(f) == 1:
		return "OK bye", true
	case cmd == "BALANCE" && len(f) == 2:
		id, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return "ERR bad-request: account must be an integer", false
		}
		bal, err := srv.Bank.Balance(ctx, id)
		if err != nil {
			return srv.fail(ctx, line, err), false
		}
		return "OK " + strconv.FormatInt(bal, 10), false
	case cmd == "TRANSFER" && (len(f) == 4 || len(f) == 5):
		var n [3]int64
		for i := range n {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return "ERR bad-request: TRANSFER takes three integers: from, to, amount", false
			}
			n[i] = v
		}
		reqID := ""
		if len(f) == 5 {
			if reqID = f[4]; checkRequestID(reqID) != nil {
				return srv.fail(ctx, line, checkRequestID(reqID)), false
			}
		}
		t, replayed, err := srv.Bank.Transfer(ctx, reqID, n[0], n[1], n[2])
		if err != nil {
			return srv.fail(ctx, line, err), false
		}
		if replayed {
			return "OK " + strconv.FormatInt(t.ID, 10) + " replayed", false
		}
		return "OK " + strconv.FormatInt(t.ID, 10), false
	}
	return "ERR bad-request: want TRANSFER <from> <to> <amount> [<request id>], BALANCE <account> or QUIT", false
}

func (srv *TCPServer) fail(ctx context.Context, line string, err error) string {
	code, _ := errorCode(err)
	if code == codeInternal {
		// The details may be the database's; they go to the log only.
		if srv.Log != nil {
			srv.Log.ErrorContext(ctx, "tcp request failed", slog.String("request", line), slog.String("error", err.Error()))
		}
		return "ERR " + code + ": the server logged the details"
	}
	// One reply is one line: an error joined from several (a conflict
	// and the rollback it forced) has newlines, which would be read as
	// the replies to the next requests.
	return "ERR " + code + ": " + strings.ReplaceAll(err.Error(), "\n", "; ")
}
