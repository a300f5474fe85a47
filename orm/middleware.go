package orm

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
)

// Middleware gives every request its own session, in the request's
// context (SessionFrom(r.Context())), and ends it for the handler:
//
//   - the work is committed before the first byte of a success response
//     (status below 400) reaches the client, so a client is never told
//     "created" about work that then fails to commit;
//   - if that commit fails, the client gets 409 Conflict (stale data, a
//     unique violation, or a retryable conflict such as a deadlock or
//     SQLite busy — a client may try again) or 500 instead of the
//     handler's status, and what the handler writes afterwards is
//     discarded;
//   - a status of 400 or more, or a panic, rolls the work back (the panic
//     goes on to the server);
//   - a handler that writes nothing gets its work committed before the
//     implicit 200;
//   - the session is always closed and its connection returned; a
//     request that only reads holds no connection while the handler
//     works and sends no BEGIN (see Session: transactions begin at the
//     first write), and one whose work is a single statement commits it
//     in one round trip.
//
// The wrapped ResponseWriter supports http.Flusher (flushing commits
// first, like writing), http.Hijacker (hijacking commits first too) and
// http.ResponseController through Unwrap.
func (e *Engine) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := e.NewSession(inUnitOfWork())
		cw := &commitWriter{ResponseWriter: w, s: s, r: r, log: e.cfg.logger}
		defer func() {
			if p := recover(); p != nil {
				s.Close()
				panic(p)
			}
			if !cw.wrote {
				cw.WriteHeader(http.StatusOK)
			} else if cw.committed && s.hasPendingWork() {
				// The handler changed more after its response was sent;
				// commit it, but the client already has its answer.
				if err := s.Commit(r.Context()); err != nil && cw.log != nil {
					cw.log.ErrorContext(r.Context(), "tally: commit after response failed", slog.String("error", err.Error()))
				}
			}
			s.Close()
		}()
		next.ServeHTTP(cw, r.WithContext(NewContext(r.Context(), s)))
	})
}

// commitWriter commits or rolls back the session when the status is decided.
type commitWriter struct {
	http.ResponseWriter
	s         *Session
	r         *http.Request
	log       *slog.Logger
	wrote     bool // the final status was decided
	committed bool
	failed    bool // the commit failed: the handler's output is discarded
}

func (cw *commitWriter) WriteHeader(code int) {
	if cw.wrote {
		return
	}
	// 1xx are informational, nothing decided yet; but net/http sends 101
	// Switching Protocols as the final answer to the request.
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		cw.ResponseWriter.WriteHeader(code)
		return
	}
	if cw.decide(code) {
		cw.ResponseWriter.WriteHeader(code)
	}
}

// decide ends the session's work for the final status code: it rolls back
// for 400 or more, commits otherwise. It reports whether the handler's
// status may go out; if the commit failed, the client has been sent 409
// or 500 instead.
func (cw *commitWriter) decide(code int) bool {
	cw.wrote = true
	if code >= 400 {
		cw.s.Rollback(cw.r.Context())
		return true
	}
	if err := cw.s.Commit(cw.r.Context()); err != nil {
		cw.failed = true
		status := http.StatusInternalServerError
		if errors.Is(err, ErrStaleData) || errors.Is(err, ErrUniqueViolation) || errors.Is(err, ErrRetryable) {
			status = http.StatusConflict
		}
		if cw.log != nil {
			cw.log.ErrorContext(cw.r.Context(), "tally: commit before response failed",
				slog.Int("handler_status", code), slog.Int("status", status), slog.String("error", err.Error()))
		}
		h := cw.ResponseWriter.Header()
		for k := range h {
			delete(h, k) // the handler's headers described a success
		}
		http.Error(cw.ResponseWriter, http.StatusText(status), status)
		return false
	}
	cw.committed = true
	return true
}

// Hijack commits first, as a success status does: a handler that takes
// over the connection (a websocket upgrade, through ResponseController)
// answers the client itself. If the commit fails, the client gets 409 or
// 500 and the handler no connection. Where the underlying writer cannot
// be hijacked (HTTP/2) it reports http.ErrNotSupported and decides nothing.
func (cw *commitWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !hijackable(cw.ResponseWriter) {
		return nil, nil, http.ErrNotSupported
	}
	if !cw.wrote {
		cw.decide(http.StatusSwitchingProtocols)
	}
	if cw.failed {
		return nil, nil, errCommitFailed
	}
	return http.NewResponseController(cw.ResponseWriter).Hijack()
}

// hijackable reports whether w, or a writer it unwraps to, is an
// http.Hijacker (the search http.ResponseController makes).
func hijackable(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

func (cw *commitWriter) Write(b []byte) (int, error) {
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	if cw.failed {
		return 0, errCommitFailed
	}
	return cw.ResponseWriter.Write(b)
}

var errCommitFailed = errors.New("orm: response discarded: the session's commit failed")

// Flush commits first if the status is not decided yet, then flushes.
func (cw *commitWriter) Flush() { _ = cw.FlushError() }

// FlushError is Flush for http.ResponseController; it reports a failed
// commit.
func (cw *commitWriter) FlushError() error {
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	if cw.failed {
		return errCommitFailed
	}
	switch f := cw.ResponseWriter.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
	}
	return nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (cw *commitWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// hasPendingWork reports whether the session has anything to flush.
func (s *Session) hasPendingWork() bool {
	if s.enter() != nil {
		return false
	}
	defer s.leave()
	if s.tx != nil || s.hasPendingRows() {
		return true
	}
	dirty := false
	s.idmap.Each(func(e *identityEntry) bool {
		if e.State() == stPersistent {
			s.cols = e.Table().Acc.Changed(e.Obj(), e.Snap(), s.cols[:0])
			dirty = len(s.cols) > 0
		}
		return !dirty
	})
	return dirty
}
