package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tallyorm/tally/orm"
)

// Error codes shared by both protocols: the TCP reply's "ERR <code>:" and
// the HTTP JSON error's "code".
const (
	codeBadRequest = "bad-request"
	codeNotFound   = "not-found"
	codeFunds      = "insufficient-funds"
	codeBusy       = "busy"     // a conflict that retrying can resolve: try again
	codeConflict   = "conflict" // the client's copy is stale, or its change collides: reload and redo
	codeInternal   = "internal"
)

// errorCode maps an error of the bank to a protocol code and HTTP status.
func errorCode(err error) (code string, status int) {
	var funds *InsufficientFundsError
	switch {
	case errors.As(err, &funds):
		return codeFunds, http.StatusUnprocessableEntity
	case errors.Is(err, ErrUnknownAccount), errors.Is(err, orm.ErrNotFound):
		return codeNotFound, http.StatusNotFound
	case errors.Is(err, ErrInvalidTransfer):
		return codeBadRequest, http.StatusBadRequest
	case errors.Is(err, ErrRequestIDReused):
		return codeConflict, http.StatusConflict
	case errors.Is(err, ErrRequestInFlight):
		return codeBusy, http.StatusServiceUnavailable
	case errors.Is(err, orm.ErrCommitUnknown):
		// Never "busy": trying again might move the money twice.
		return codeInternal, http.StatusInternalServerError
	case errors.Is(err, orm.ErrRetryable), errors.Is(err, orm.ErrStaleData):
		return codeBusy, http.StatusServiceUnavailable
	}
	return codeInternal, http.StatusInternalServerError
}

// API is the bank's HTTP interface:
//
//	POST /transfers        {"from":1,"to":2,"amount":5} → 201 and the transfer
//	                       (Idempotency-Key: <id>, or "request_id":"<id>" in the body:
//	                       the same request again → 200, Idempotent-Replayed: true,
//	                       and the transfer it committed the first time)
//	GET  /transfers/{id}   → the transfer with its entries
//	GET  /accounts         → every account
//	GET  /accounts/{id}    → one account
//	PUT  /accounts/{id}    {"id":1,"owner":"ann","balance":995,"version":3} → 200 and the saved account
//
// PUT is the edit-form path: the body is the account as the client read
// it (GET), with its changes. orm.Merge saves it through the session's own
// object, checking the version: a client that read version 3 after
// someone else saved version 4 gets 409 instead of overwriting that save.
// The balance cannot be edited (money moves only through transfers).
//
// Errors are JSON {"code": ..., "error": ...} with the codes of errorCode.
// Handler wraps the routes in eng.Middleware, so each request has its own
// session, committed before a success status is sent.
type API struct {
	Bank *Bank
	Log  *slog.Logger
}

// Handler returns the routes wrapped in the engine's middleware.
func (api *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /transfers", api.postTransfer)
	mux.HandleFunc("GET /transfers/{id}", api.getTransfer)
	mux.HandleFunc("GET /accounts", api.listAccounts)
	mux.HandleFunc("GET /accounts/{id}", api.getAccount)
	mux.HandleFunc("PUT /accounts/{id}", api.putAccount)
	return api.Bank.eng.Middleware(mux)
}

// NewHTTPServer returns a server for h with timeouts, so that a slow or
// idle client cannot hold a connection (and a pooled session) forever.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      requestTimeout + 5*time.Second,
		IdleTimeout:       tcpIdleTimeout,
		MaxHeaderBytes:    16 << 10, // a few headers; a flood is answered 431
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

type transferRequest struct {
	From      int64  `json:"from"`
	To        int64  `json:"to"`
	Amount    int64  `json:"amount"`
	RequestID string `json:"request_id,omitempty"`
}

// maxBody bounds a request body: a transfer or an account is far smaller.
const maxBody = 1 << 10

// decodeTransfer reads a POST /transfers body and the Idempotency-Key
// header (which, when both are given, must agree with "request_id").
func decodeTransfer(body io.Reader, key string) (transferRequest, error) {
	var req transferRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%w: body must be {\"from\":ID,\"to\":ID,\"amount\":N}: %v", ErrInvalidTransfer, err)
	}
	if dec.More() {
		return req, fmt.Errorf("%w: body must be one JSON object", ErrInvalidTransfer)
	}
	switch {
	case key != "" && req.RequestID != "" && key != req.RequestID:
		return req, fmt.Errorf("%w: Idempotency-Key and request_id differ", ErrInvalidTransfer)
	case key != "":
		req.RequestID = key
	}
	if req.RequestID != "" {
		if err := checkRequestID(req.RequestID); err != nil {
			return req, err
		}
	}
	return req, nil
}

func (api *API) postTransfer(w http.ResponseWriter, r *http.Request) {
	req, err := decodeTransfer(http.MaxBytesReader(w, r.Body, maxBody), r.Header.Get("Idempotency-Key"))
	if err != nil {
		api.error(w, r, err)
		return
	}
	// The middleware's session is in r.Context(), so Bank's eng.Do runs in
	// a savepoint of it and does not retry: a conflict becomes 503 and the
	// client retries. The middleware commits when the 201 is written.
	t, replayed, err := api.Bank.Transfer(r.Context(), req.RequestID, req.From, req.To, req.Amount)
	var funds *InsufficientFundsError
	if errors.As(err, &funds) {
		// The refusal is recorded under the request id in the session:
		// commit it before answering, as a 201 would be (the middleware
		// rolls back behind any 4xx). Its outcome is then known.
		if cerr := orm.SessionFrom(r.Context()).Commit(r.Context()); cerr != nil {
			err = cerr
		}
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
	}
	if err != nil {
		api.error(w, r, err)
		return
	}
	w.Header().Set("Location", "/transfers/"+strconv.FormatInt(t.ID, 10))
	if replayed {
		// The first attempt's transfer, as it was committed then.
		w.Header().Set("Idempotent-Replayed", "true")
		api.json(w, http.StatusOK, t)
		return
	}
	api.json(w, http.StatusCreated, t)
}

func (api *API) getTransfer(w http.ResponseWriter, r *http.Request) {
	id, ok := api.pathID(w, r)
	if !ok {
		return
	}
	s := orm.SessionFrom(r.Context())
	t, err := orm.Query[Transfer](s).Where(TransferCols.ID+" = ?", id).Load("Entries").One(r.Context())
	if err != nil {
		api.error(w, r, err)
		return
	}
	api.json(w, http.StatusOK, t)
}

func (api *API) listAccounts(w http.ResponseWriter, r *http.Request) {
	s := orm.SessionFrom(r.Context())
	accts, err := orm.Query[Account](s).OrderBy(AccountCols.ID).All(r.Context())
	if err != nil {
		api.error(w, r, err)
		return
	}
	api.json(w, http.StatusOK, accts)
}

func (api *API) getAccount(w http.ResponseWriter, r *http.Request) {
	id, ok := api.pathID(w, r)
	if !ok {
		return
	}
	a, err := orm.Get[Account](r.Context(), orm.SessionFrom(r.Context()), id)
	if err != nil {
		api.error(w, r, err)
		return
	}
	api.json(w, http.StatusOK, a)
}

func (api *API) putAccount(w http.ResponseWriter, r *http.Request) {
	id, ok := api.pathID(w, r)
	if !ok {
		return
	}
	var in Account
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || (in.ID != 0 && in.ID != id) || in.Owner == "" || len(in.Owner) > 64 {
		api.json(w, http.StatusBadRequest, errorBody{Code: codeBadRequest,
			Error: `body must be the account as read, {"id":ID,"owner":"name","balance":N,"version":V}, with the path's id and an owner of 1 to 64 bytes`})
		return
	}
	in.ID = id
	ctx := r.Context()
	s := orm.SessionFrom(ctx)
	// Read first, to refuse a balance change below: Merge then finds the
	// account in the identity map and sends no second SELECT.
	cur, err := orm.Get[Account](ctx, s, id)
	if err != nil {
		api.error(w, r, err)
		return
	}
	balance := cur.Balance
	a, err := orm.Merge(ctx, s, &in)
	if err == nil && a.Balance != balance {
		api.json(w, http.StatusBadRequest, errorBody{Code: codeBadRequest,
			Error: "the balance changes only through transfers"}) // a 400 rolls the merge back
		return
	}
	if err == nil {
		// Flushed now, so that the response carries the new version; the
		// middleware commits when the 200 is written.
		err = s.Flush(ctx)
	}
	switch {
	case errors.Is(err, orm.ErrStaleData):
		api.json(w, http.StatusConflict, errorBody{Code: codeConflict,
			Error: "the account changed since it was read (version " + strconv.FormatInt(in.Version, 10) + "): reload it and redo the edit"})
	case errors.Is(err, orm.ErrUniqueViolation):
		api.json(w, http.StatusConflict, errorBody{Code: codeConflict, Error: "another account has this owner"})
	case err != nil:
		api.error(w, r, err)
	default:
		api.json(w, http.StatusOK, a)
	}
}

func (api *API) pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		api.json(w, http.StatusBadRequest, errorBody{Code: codeBadRequest, Error: "id must be an integer"})
		return 0, false
	}
	return id, true
}

type errorBody struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

func (api *API) error(w http.ResponseWriter, r *http.Request, err error) {
	code, status := errorCode(err)
	msg := err.Error()
	switch status {
	case http.StatusServiceUnavailable:
		// A conflict with another transaction; nothing was written.
		// Clients that know better (the load clients) retry sooner.
		w.Header().Set("Retry-After", "1")
	case http.StatusInternalServerError:
		if api.Log != nil && (r.Context().Err() == nil || !errors.Is(err, context.Canceled)) {
			// (A client that went away is no server failure.)
			api.Log.ErrorContext(r.Context(), "http request failed",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", msg))
		}
		msg = "the server logged the details"
	}
	api.json(w, status, errorBody{Code: code, Error: msg})
}

// json writes v with status. It encodes before writing the header: the
// middleware commits when the header is written, and a value that fails to
// encode must not leave a committed 201 with no body.
func (api *API) json(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, "{\"code\":%q,\"error\":\"encoding the response failed\"}\n", codeInternal)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// shutdownHTTP stops srv gracefully: no new connections, in-flight
// requests finish (each commits or rolls back in the middleware), idle
// connections close; after timeout, the rest are closed.
func shutdownHTTP(srv *http.Server, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("http: shutdown: %w", err)
	}
	return nil
}
