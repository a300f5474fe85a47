package main

import (
	"bufio"
	"cmp"
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
	// LineTimeout bounds the wait for each line, from the previous reply
	// (0: tcpIdleTimeout): a client that is silent, or sends a line a few
	// bytes at a time (slowloris), is disconnected when it runs out.
	LineTimeout time.Duration
	// MaxConns bounds the open connections (0: tcpMaxConns); one more is
	// answered "ERR busy" and closed, so that many idle or slow clients
	// cannot take every goroutine and file descriptor.
	MaxConns int

	mu      sync.Mutex // guards conns and closing
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup // one per connection goroutine
}

const (
	tcpMaxLine     = 256              // longer lines are refused and the connection closed
	tcpMaxConns    = 4096             // default TCPServer.MaxConns
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
		if max := cmp.Or(srv.MaxConns, tcpMaxConns); len(srv.conns) >= max {
			srv.mu.Unlock()
			c.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "ERR %s: the server has %d connections open; try again later\n", codeBusy, max)
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
	c.SetReadDeadline(time.Now().Add(cmp.Or(srv.LineTimeout, tcpIdleTimeout)))
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

// lineRequest is one parsed request line.
type lineRequest struct {
	Cmd              string // "TRANSFER", "BALANCE" or "QUIT"
	From, To, Amount int64  // TRANSFER; BALANCE's account is From
	RequestID        string // TRANSFER's optional fifth field
}

// errLineSyntax is the answer to a line that is no request.
var errLineSyntax = fmt.Errorf("%w: want TRANSFER <from> <to> <amount> [<request id>], BALANCE <account> or QUIT", errBadLine)

// errBadLine marks a line the parser refused; the reply is bad-request.
var errBadLine = errors.New("bad request line")

// parseLine parses a non-blank request line. Commands are case-blind and
// fields separated by any white space. It returns an error wrapping
// errBadLine, or ErrInvalidTransfer for a malformed request id.
func parseLine(line string) (lineRequest, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return lineRequest{}, errLineSyntax
	}
	req := lineRequest{Cmd: strings.ToUpper(f[0])}
	switch {
	case req.Cmd == "QUIT" && len(f) == 1:
		return req, nil
	case req.Cmd == "BALANCE" && len(f) == 2:
		id, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return req, fmt.Errorf("%w: account must be an integer", errBadLine)
		}
		req.From = id
		return req, nil
	case req.Cmd == "TRANSFER" && (len(f) == 4 || len(f) == 5):
		for i, p := range []*int64{&req.From, &req.To, &req.Amount} {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return req, fmt.Errorf("%w: TRANSFER takes three integers: from, to, amount", errBadLine)
			}
			*p = v
		}
		if len(f) == 5 {
			if err := checkRequestID(f[4]); err != nil {
				return req, err
			}
			req.RequestID = f[4]
		}
		return req, nil
	}
	return req, errLineSyntax
}

// handle runs one request line and returns the reply and whether to close.
func (srv *TCPServer) handle(ctx context.Context, line string) (reply string, quit bool) {
	req, err := parseLine(line)
	if errors.Is(err, errBadLine) {
		_, detail, _ := strings.Cut(err.Error(), ": ")
		return "ERR " + codeBadRequest + ": " + detail, false
	}
	if err != nil {
		return srv.fail(ctx, line, err), false
	}
	switch req.Cmd {
	case "QUIT":
		return "OK bye", true
	case "BALANCE":
		bal, err := srv.Bank.Balance(ctx, req.From)
		if err != nil {
			return srv.fail(ctx, line, err), false
		}
		return "OK " + strconv.FormatInt(bal, 10), false
	}
	t, replayed, err := srv.Bank.Transfer(ctx, req.RequestID, req.From, req.To, req.Amount)
	if err != nil {
		return srv.fail(ctx, line, err), false
	}
	if replayed {
		return "OK " + strconv.FormatInt(t.ID, 10) + " replayed", false
	}
	return "OK " + strconv.FormatInt(t.ID, 10), false
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
