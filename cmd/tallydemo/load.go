package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Load drives the bank through both protocols, as its users would: Clients
// goroutines (the first half over HTTP, the rest over TCP), each sending
// one request at a time for Duration. Nine requests in ten are transfers
// of 1..MaxAmount between two random accounts; the tenth reads a balance.
//
// Every transfer carries a request id the client chose. An answer that
// leaves the outcome unknown — the server's "internal" (it may have
// committed), a 5xx without the bank's JSON, a cut connection, a timeout —
// is retried with the same id, so the transfer is applied once whatever
// happened to the first attempt (see Bank.Transfer).
type Load struct {
	Clients   int
	Duration  time.Duration
	Accounts  []int64
	MaxAmount int64
	HTTPURL   string // "http://host:port"
	TCPAddr   string

	// Progress receives the live line; Terminal says it is a terminal, so
	// the line is rewritten in place (\r) instead of printed every second.
	Progress io.Writer
	Terminal bool
	// Server, if set, adds the bank's retries and conflicts to the line.
	Server *BankStats
	// Cut is the fraction of transfer attempts the client cuts off after
	// sending: it closes its TCP connection without reading the reply, or
	// gives its HTTP request a deadline of a few milliseconds. The server
	// may or may not commit; the client retries with the same request id.
	Cut float64

	live liveCounters
}

// liveCounters feed the progress line while the clients run.
type liveCounters struct {
	requests, commits, rejected, retries, errors, unknown atomic.Int64
}

// LoadResult is what the clients saw.
type LoadResult struct {
	Elapsed                 time.Duration
	HTTPClients             int
	TCPClients              int
	Requests                int64 // logical requests; a retried one counts once
	Transfers, Reads        int64
	Commits                 int64 // transfers the server said it committed
	Rejected                int64 // insufficient funds
	Retries                 int64 // requests sent again after a "busy" answer
	Errors                  int64
	ErrorSamples            []string
	P50, P99, Max           time.Duration
	Committed               []Receipt // the committed transfers, as the clients were told
	Refused                 []Receipt // the transfers refused for insufficient funds
	HTTPCommits, TCPCommits int64

	Cuts     int64 // attempts the clients cut off on purpose (Load.Cut)
	Unknown  int64 // attempts whose outcome the client could not know, retried with the same id
	Resolved int64 // requests with an unknown attempt that then got a definite answer
	Replayed int64 // answers "already committed": the original result of an earlier attempt
}

// Receipt is a committed transfer as its client heard of it.
type Receipt struct {
	RequestID  string
	TransferID int64
}

// clientStats is one client's tally; only its goroutine writes it.
type clientStats struct {
	lat                                           []time.Duration
	committed, refused                            []Receipt
	requests, transfers, reads, rejected, retries int64
	errors, cuts, unknown, resolved, replayed     int64
	errSamples                                    []string
}

const (
	clientAttempts = 20               // a request answered "busy" or unknown this often counts as an error
	clientTimeout  = 30 * time.Second // per request, retries included
)

// bankClient is one protocol's client; it is used by one goroutine.
type bankClient interface {
	// transfer sends one attempt; cut asks to abandon it once sent.
	transfer(ctx context.Context, reqID string, from, to, amount int64, cut bool) (id int64, replayed bool, err error)
	balance(ctx context.Context, id int64) error
	close()
}

// replyError is an error answer of the server, in either protocol.
type replyError struct {
	Code, Msg string
}

func (e *replyError) Error() string { return e.Code + ": " + e.Msg }

// errCut is the outcome of an attempt the client cut off on purpose.
var errCut = errors.New("cut off by the client after sending")

// outcomeUnknown reports whether err leaves open that the server
// committed: anything but a definite answer of the bank. "internal" is
// unknown too: the server says so when COMMIT's outcome is unknown
// (orm.ErrCommitUnknown), and it may also be an error before COMMIT.
func outcomeUnknown(err error) bool {
	var re *replyError
	if errors.As(err, &re) {
		return re.Code == codeInternal
	}
	return err != nil
}

// Run runs the clients until Duration has passed or ctx ends, whichever
// is first; then each finishes the request it is sending. A request that
// started is never cut short, so every transfer the server commits is one
// a client hears of.
func (l *Load) Run(ctx context.Context) (*LoadResult, error) {
	nHTTP := l.Clients / 2
	tr := &http.Transport{MaxIdleConnsPerHost: nHTTP, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	clients := make([]bankClient, l.Clients)
	for i := range clients {
		if i < nHTTP {
			clients[i] = &httpClient{hc: &http.Client{Transport: tr}, base: l.HTTPURL}
			continue
		}
		c, err := dialTCP(ctx, l.TCPAddr)
		if err != nil {
			for _, c := range clients[:i] {
				c.close()
			}
			return nil, err
		}
		clients[i] = c
	}

	stop, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	stats := make([]clientStats, len(clients))
	progressDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(progressDone)
		l.progress(stop, start)
	}()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			defer c.close()
			l.client(stop, c, &stats[i])
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	<-progressDone
	l.progressLine(elapsed, true)

	res := &LoadResult{Elapsed: elapsed, HTTPClients: nHTTP, TCPClients: l.Clients - nHTTP}
	var lat []time.Duration
	for i, st := range stats {
		lat = append(lat, st.lat...)
		res.Committed = append(res.Committed, st.committed...)
		res.Refused = append(res.Refused, st.refused...)
		res.Requests += st.requests
		res.Transfers += st.transfers
		res.Reads += st.reads
		res.Rejected += st.rejected
		res.Retries += st.retries
		res.Errors += st.errors
		res.Cuts += st.cuts
		res.Unknown += st.unknown
		res.Resolved += st.resolved
		res.Replayed += st.replayed
		if len(res.ErrorSamples) < 5 {
			res.ErrorSamples = append(res.ErrorSamples, st.errSamples[:min(len(st.errSamples), 5-len(res.ErrorSamples))]...)
		}
		if i < nHTTP {
			res.HTTPCommits += int64(len(st.committed))
		} else {
			res.TCPCommits += int64(len(st.committed))
		}
	}
	res.Commits = int64(len(res.Committed))
	slices.Sort(lat)
	res.P50, res.P99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, nil
}

// percentile is the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n·p/100), 1-based
	return sorted[max(i, 1)-1]
}

// client sends requests until stop ends.
func (l *Load) client(stop context.Context, c bankClient, st *clientStats) {
	for stop.Err() == nil {
		// The request is not tied to stop: once sent, it runs to its answer.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), clientTimeout)
		t0 := time.Now()
		if rand.IntN(10) == 0 {
			st.reads++
			err := retry(ctx, st, &l.live, func() error {
				return c.balance(ctx, l.Accounts[rand.IntN(len(l.Accounts))])
			})
			if err != nil {
				l.fail(st, "BALANCE", err)
			}
		} else {
			st.transfers++
			i := rand.IntN(len(l.Accounts))
			j := (i + 1 + rand.IntN(len(l.Accounts)-1)) % len(l.Accounts) // any account but i
			from, to, amount := l.Accounts[i], l.Accounts[j], 1+rand.Int64N(l.MaxAmount)
			reqID := newRequestID("c-")
			var id int64
			var replayed, unknown bool
			err := retry(ctx, st, &l.live, func() (err error) {
				cut := l.Cut > 0 && rand.Float64() < l.Cut
				id, replayed, err = c.transfer(ctx, reqID, from, to, amount, cut)
				if cut && err != nil {
					st.cuts++
				}
				unknown = unknown || outcomeUnknown(err)
				return err
			})
			if unknown && !outcomeUnknown(err) {
				st.resolved++
			}
			if replayed {
				st.replayed++
			}
			var re *replyError
			switch {
			case err == nil:
				st.committed = append(st.committed, Receipt{RequestID: reqID, TransferID: id})
				l.live.commits.Add(1)
			case errors.As(err, &re) && re.Code == codeFunds:
				st.refused = append(st.refused, Receipt{RequestID: reqID})
				st.rejected++
				l.live.rejected.Add(1)
			default:
				l.fail(st, fmt.Sprintf("TRANSFER %d %d %d", from, to, amount), err)
			}
		}
		st.lat = append(st.lat, time.Since(t0))
		st.requests++
		l.live.requests.Add(1)
		cancel()
	}
}

func (l *Load) fail(st *clientStats, req string, err error) {
	st.errors++
	l.live.errors.Add(1)
	if len(st.errSamples) < 5 {
		st.errSamples = append(st.errSamples, req+": "+err.Error())
	}
}

// retry runs fn again while the server answers "busy" (a conflict it
// rolled back) or the outcome is unknown, after a short jittered pause;
// the server's Retry-After of 1 s is meant for people with curl, not for
// a load test about conflicts. fn must be safe to repeat: a transfer
// sends the same request id each time.
func retry(ctx context.Context, st *clientStats, live *liveCounters, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		var re *replyError
		busy := errors.As(err, &re) && re.Code == codeBusy
		unknown := outcomeUnknown(err)
		if err == nil || !busy && !unknown || attempt == clientAttempts || ctx.Err() != nil {
			return err
		}
		if unknown {
			st.unknown++
			live.unknown.Add(1)
		}
		st.retries++
		live.retries.Add(1)
		wait := time.Millisecond << min(attempt, 6) // up to 64 ms
		t := time.NewTimer(rand.N(wait) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// progress prints the live line until stop ends.
func (l *Load) progress(stop context.Context, start time.Time) {
	if l.Progress == nil {
		return
	}
	every := time.Second
	if l.Terminal {
		every = 200 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-tick.C:
			l.progressLine(time.Since(start), false)
		}
	}
}

func (l *Load) progressLine(elapsed time.Duration, final bool) {
	if l.Progress == nil {
		return
	}
	n, retries, conflicts := l.live.requests.Load(), l.live.retries.Load(), int64(0)
	if l.Server != nil {
		retries += l.Server.Retries.Load()
		conflicts = l.Server.Conflicts.Load()
	}
	line := fmt.Sprintf("%5.1fs  %7d requests %6.0f/s  commits %d  rejected %d  retries %d  conflicts %d  unknown %d  errors %d",
		elapsed.Seconds(), n, float64(n)/max(elapsed.Seconds(), 1e-9), l.live.commits.Load(),
		l.live.rejected.Load(), retries, conflicts, l.live.unknown.Load(), l.live.errors.Load())
	switch {
	case l.Terminal && final:
		fmt.Fprintf(l.Progress, "\r%s\033[K\n", line)
	case l.Terminal:
		fmt.Fprintf(l.Progress, "\r%s\033[K", line)
	case !final:
		fmt.Fprintln(l.Progress, line)
	}
}

// httpClient speaks JSON over HTTP.
type httpClient struct {
	hc   *http.Client
	base string
}

func (c *httpClient) transfer(ctx context.Context, reqID string, from, to, amount int64, cut bool) (int64, bool, error) {
	body := fmt.Sprintf(`{"from":%d,"to":%d,"amount":%d}`, from, to, amount)
	var t struct {
		ID int64 `json:"id"`
	}
	if cut {
		// Gone before the server can answer, mostly: sometimes before the
		// request is read, sometimes mid-transaction, sometimes at COMMIT.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rand.N(3*time.Millisecond))
		defer cancel()
	}
	status, err := c.do(ctx, http.MethodPost, "/transfers", body, reqID, &t)
	if cut && err != nil {
		return 0, false, fmt.Errorf("%w: %w", errCut, err)
	}
	return t.ID, status == http.StatusOK, err
}

func (c *httpClient) balance(ctx context.Context, id int64) error {
	var a Account
	_, err := c.do(ctx, http.MethodGet, "/accounts/"+strconv.FormatInt(id, 10), "", "", &a)
	return err
}

// do sends one request and decodes a 200 or 201 into v; it returns the
// status.
func (c *httpClient) do(ctx context.Context, method, path, body, key string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		return resp.StatusCode, json.Unmarshal(data, v)
	}
	var e errorBody
	if json.Unmarshal(data, &e) != nil || e.Code == "" {
		if resp.StatusCode == http.StatusConflict {
			// eng.Middleware's own answer when the database refused the
			// COMMIT (a conflict: on a Galera cluster, a certification
			// failure): nothing was committed, so it is "busy", not an
			// unknown outcome.
			return resp.StatusCode, &replyError{Code: codeBusy, Msg: "the commit conflicted; nothing was committed"}
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %.200q", method, path, resp.Status, data)
	}
	return resp.StatusCode, &replyError{Code: e.Code, Msg: e.Error}
}

func (c *httpClient) close() {}

// tcpClient speaks the line protocol over one connection, dialled again
// after a transport error (the connection's state is then unknown).
type tcpClient struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

func dialTCP(ctx context.Context, addr string) (*tcpClient, error) {
	c := &tcpClient{addr: addr}
	return c, c.dial(ctx)
}

func (c *tcpClient) dial(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn, c.r = conn, bufio.NewReader(conn)
	return nil
}

// drop closes the connection; the next request dials a new one.
func (c *tcpClient) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// do sends one line and returns the text after "OK ". With cut, it
// closes the connection once the line is sent and returns errCut.
func (c *tcpClient) do(ctx context.Context, line string, cut bool) (string, error) {
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return "", err
		}
	}
	deadline, _ := ctx.Deadline()
	c.conn.SetDeadline(deadline)
	if _, err := io.WriteString(c.conn, line+"\n"); err != nil {
		c.drop()
		return "", err
	}
	if cut {
		c.drop()
		return "", errCut
	}
	reply, err := c.r.ReadString('\n')
	if err != nil {
		c.drop()
		return "", fmt.Errorf("%s: reading the reply: %w", line, err)
	}
	reply = strings.TrimRight(reply, "\r\n")
	if ok, found := strings.CutPrefix(reply, "OK "); found {
		return ok, nil
	}
	if e, found := strings.CutPrefix(reply, "ERR "); found {
		code, msg, _ := strings.Cut(e, ": ")
		return "", &replyError{Code: code, Msg: msg}
	}
	return "", fmt.Errorf("%s: unexpected reply %q", line, reply)
}

func (c *tcpClient) transfer(ctx context.Context, reqID string, from, to, amount int64, cut bool) (int64, bool, error) {
	out, err := c.do(ctx, fmt.Sprintf("TRANSFER %d %d %d %s", from, to, amount, reqID), cut)
	if err != nil {
		return 0, false, err
	}
	idText, replayed := strings.CutSuffix(out, " replayed")
	id, err := strconv.ParseInt(idText, 10, 64)
	return id, replayed, err
}

func (c *tcpClient) balance(ctx context.Context, id int64) error {
	out, err := c.do(ctx, fmt.Sprintf("BALANCE %d", id), false)
	if err != nil {
		return err
	}
	_, err = strconv.ParseInt(out, 10, 64)
	return err
}

func (c *tcpClient) close() {
	if c.conn == nil {
		return
	}
	// Say goodbye so the server's goroutine ends now, not at its deadline.
	c.conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c.conn, "QUIT\n"); err == nil {
		c.r.ReadString('\n')
	}
	c.drop()
}

// Report is the outcome of a load run: what the clients saw, what the
// bank and the audit counted, and the invariants checked afterwards.
type Report struct {
	Driver      string
	Accounts    int
	Planned     time.Duration // the -duration asked for
	Interrupted bool          // a signal stopped the clients early
	Load        *LoadResult

	BankRetries, Conflicts, Stale int64
	AuditRuns, AuditFailures      int64
	AuditErr                      error
	Replays                       int64 // transfers the bank answered from the journal
	CommitUnknown                 int64 // transfers whose COMMIT outcome the bank could not know
	Kills, KillFailures           int64 // -faults kill: connections the server ended; attempts that ended none

	Leaks Leaks

	Cluster *ClusterReport // several -dsn: per-node figures; else nil

	Checks []Check
}

// OK reports whether every check passed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	l := r.Load
	secs := max(l.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "tallydemo report: %s, %.1fs, %d clients (%d HTTP, %d TCP), %d accounts\n",
		r.Driver, l.Elapsed.Seconds(), l.HTTPClients+l.TCPClients, l.HTTPClients, l.TCPClients, r.Accounts)
	if r.Interrupted {
		fmt.Fprintf(w, "  (interrupted: the clients stopped before the %s planned)\n", r.Planned)
	}
	fmt.Fprintf(w, "  requests   %d  %.0f/s  (%d transfers, %d balance reads)\n", l.Requests, float64(l.Requests)/secs, l.Transfers, l.Reads)
	fmt.Fprintf(w, "  latency    p50 %s  p99 %s  max %s\n", round(l.P50), round(l.P99), round(l.Max))
	fmt.Fprintf(w, "  commits    %d  %.0f/s  (HTTP %d, TCP %d)\n", l.Commits, float64(l.Commits)/secs, l.HTTPCommits, l.TCPCommits)
	fmt.Fprintf(w, "  rejected   %d  (insufficient funds)\n", l.Rejected)
	fmt.Fprintf(w, "  retries    %d  (%d by eng.Do, %d by clients answered \"busy\" or with an unknown outcome)\n", r.BankRetries+l.Retries, r.BankRetries, l.Retries)
	fmt.Fprintf(w, "  conflicts  %d  (statements refused retryably: deadlock, lock wait, serialization, busy; %d stale)\n", r.Conflicts, r.Stale)
	if l.Cuts > 0 || r.Kills > 0 || l.Unknown > 0 {
		fmt.Fprintf(w, "  faults     %d connections killed by the server (%d attempts ended none), %d requests cut off by clients\n", r.Kills, r.KillFailures, l.Cuts)
		fmt.Fprintf(w, "  unknown    %d attempts with an unknown outcome (%d of them ErrCommitUnknown at the bank), retried with their request id; %d requests resolved, %d answered \"already committed\"\n",
			l.Unknown, r.CommitUnknown, l.Resolved, l.Replayed)
	}
	r.Cluster.print(w)
	fmt.Fprintf(w, "  errors     %d  (%.3f%% of requests)\n", l.Errors, 100*float64(l.Errors)/max(float64(l.Requests), 1))
	for _, s := range l.ErrorSamples {
		fmt.Fprintf(w, "             %s\n", s)
	}
	fmt.Fprintf(w, "  audits     %d runs, %d failed\n", r.AuditRuns, r.AuditFailures)
	fmt.Fprintf(w, "  resources  %s\n", r.Leaks)
	fmt.Fprintln(w, "checks")
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, c.Name, c.Detail)
	}
}

// round shortens a latency for printing.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
