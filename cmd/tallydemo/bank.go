package main

// The models' mappers are compiled (tally_gen.go): no reflection per field,
// and typed column names (AccountCols.ID) in the queries below.
//go:generate go run github.com/tallyorm/tally/cmd/tallygen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tallyorm/tally/orm"
)

// Account is a bank account. Version makes every UPDATE carry
// "AND version = ?": the transfer locks its rows, so the check never fires
// here, but it would catch a code path that forgot to.
//
//tally:model
type Account struct {
	ID      int64  `db:"id,pk,auto" json:"id"`
	Owner   string `db:"owner,unique,size=64" json:"owner"`
	Balance int64  `db:"balance" json:"balance"`
	Version int64  `db:"version,version" json:"version"`
}

// Transfer is the journal: one row per committed transfer, never updated.
// Its two entries are the double-entry postings (−amount on From, +amount
// on To); inserting them with it shows the unit of work copying the new
// transfer's key into its children.
//
// RequestID is the client's name for the request (HTTP Idempotency-Key,
// the TCP line's fifth field), unique: it is what makes a retry after an
// unknown outcome safe (see Bank.Transfer). A request without one gets a
// random id from the server, so every row has one.
//
//tally:model
type Transfer struct {
	ID        int64     `db:"id,pk,auto" json:"id"`
	RequestID string    `db:"request_id,unique,size=64" json:"request_id"`
	FromID    int64     `db:"from_id" json:"from"`
	ToID      int64     `db:"to_id" json:"to"`
	Amount    int64     `db:"amount" json:"amount"`
	Created   time.Time `db:"created_at" json:"created"`
	Entries   []*Entry  `rel:"transfer_id,cascade" json:"entries,omitempty"`
}

// Rejection records a transfer refused for insufficient funds under its
// request id, committed like a transfer: the refusal is an outcome too.
// Without it, a retry refused for funds could be answered while the first
// attempt, cut off but still running, later commits — and the client,
// told "refused", would never hear of the transfer that moved its money.
// With it, whichever attempt decides first decides for both.
//
//tally:model
type Rejection struct {
	ID        int64     `db:"id,pk,auto" json:"id"`
	RequestID string    `db:"request_id,unique,size=64" json:"request_id"`
	AccountID int64     `db:"account_id" json:"account"`
	Balance   int64     `db:"balance" json:"balance"`
	Amount    int64     `db:"amount" json:"amount"`
	Created   time.Time `db:"created_at" json:"created"`
}

// Entry is one posting of a transfer on one account.
//
//tally:model
type Entry struct {
	ID         int64 `db:"id,pk,auto" json:"id"`
	TransferID int64 `db:"transfer_id,index" json:"transfer"`
	AccountID  int64 `db:"account_id,index" json:"account"`
	Amount     int64 `db:"amount" json:"amount"`
}

// models lists the bank's models, parents first.
var models = []any{Account{}, Transfer{}, Entry{}, Rejection{}}

// Business errors. They are not retried: running the transfer again would
// give the same answer.
var (
	ErrUnknownAccount  = errors.New("unknown account")
	ErrInvalidTransfer = errors.New("invalid transfer")
	// ErrRequestIDReused: the request id names a committed transfer with
	// other accounts or amount. A client bug; never retried.
	ErrRequestIDReused = errors.New("request id already used for another transfer")
	// ErrRequestInFlight: another request with the same id was committing
	// at the same moment (the unique key refused the second insert).
	// Retrying finds that transfer once it has committed.
	ErrRequestInFlight = errors.New("a request with this id is in flight")
)

// InsufficientFundsError rejects a transfer larger than the balance.
type InsufficientFundsError struct {
	Account, Balance, Amount int64
}

func (e *InsufficientFundsError) Error() string {
	return fmt.Sprintf("account %d has %d, transfer needs %d", e.Account, e.Balance, e.Amount)
}

// Bank moves money between accounts. It is safe for concurrent use: every
// call works in its own session (or in a savepoint of the one its ctx
// carries), and the counters are atomic.
type Bank struct {
	eng *orm.Engine
	// unordered is the fraction of transfers that lock their two accounts
	// in transfer order (from, then to) instead of id order. Real services
	// must not do this; the demo does, so that deadlocks happen and the
	// retries that resolve them can be seen and counted.
	unordered float64
	// attempts bounds eng.Do's runs of one transfer.
	attempts int

	Stats BankStats
}

// BankStats counts the conflicts the bank met and the retries they cost;
// the clients count the outcomes. All fields are updated atomically.
type BankStats struct {
	Retries   atomic.Int64 // extra runs of a transfer by eng.Do
	Conflicts atomic.Int64 // statements that failed retryably: deadlock, lock wait timeout, serialization failure, SQLite busy
	Stale     atomic.Int64 // transfers whose last attempt failed with ErrStaleData
	Replays   atomic.Int64 // transfers answered from the journal: the request id had committed before
	// CommitUnknown counts transfers whose eng.Do returned
	// orm.ErrCommitUnknown (the TCP path; the HTTP middleware commits
	// outside Transfer). Each is answered "internal", and the client's
	// retry with the same request id settles it.
	CommitUnknown atomic.Int64
}

// countConflicts is an orm query hook: every statement the database
// refused retryably, whichever transfer ran it and whether or not the
// retry then succeeded. A hook also sees conflicts at COMMIT, which fn
// never does.
func (st *BankStats) countConflicts(_ context.Context, ev orm.QueryEvent) {
	if ev.Err != nil && errors.Is(ev.Err, orm.ErrRetryable) {
		st.Conflicts.Add(1)
	}
}

// NewBank returns a bank working through eng.
func NewBank(eng *orm.Engine, unordered float64) *Bank {
	return &Bank{eng: eng, unordered: unordered, attempts: 10}
}

// Transfer moves amount from one account to another and journals it under
// the client's request id, in one eng.Do: both accounts are locked and the
// journal searched for the id; if absent, the balance is checked (a
// refusal is recorded as a Rejection under the id, and committed), both
// updated and a Transfer with its two entries added and flushed; Do
// commits. A deadlock or other retryable failure runs the whole function
// again, up to the bank's attempt limit. Called with a ctx that carries a
// session (the HTTP middleware's), it runs in a savepoint of that session
// instead, without retries; the caller commits, or reports the retryable
// error onwards.
//
// Exactly once: the id is stored in the transfer's row, under a unique
// key, in the same transaction as the balances. A client that lost the
// answer (ErrCommitUnknown on the server, a cut connection, a timeout)
// sends the same request with the same id again: either the first attempt
// never committed, and this one commits, or it did, and Transfer finds the
// row and returns it with replayed true — the original result, with no
// money moved twice; a recorded refusal is returned again the same way. Two attempts racing each other meet at the unique
// key: the loser gets ErrRequestInFlight, and its retry finds the row.
//
// An empty reqID gets a random one (no retry can reuse it). An unknown
// account is ErrUnknownAccount, a bad amount, from == to or a malformed
// reqID is ErrInvalidTransfer, too small a balance is
// *InsufficientFundsError (the refusal is committed: in the middleware's
// session the caller must commit it, as postTransfer does), and reqID
// naming a different transfer is ErrRequestIDReused.
func (b *Bank) Transfer(ctx context.Context, reqID string, from, to, amount int64) (t *Transfer, replayed bool, err error) {
	if from == to || amount <= 0 {
		return nil, false, fmt.Errorf("%w: need two different accounts and a positive amount", ErrInvalidTransfer)
	}
	if reqID == "" {
		reqID = newRequestID("s-")
	} else if err := checkRequestID(reqID); err != nil {
		return nil, false, err
	}
	attempt := 0
	var refused *InsufficientFundsError
	err = b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		attempt++
		t, replayed, refused = nil, false, nil
		// The accounts are locked before the journal is searched: an
		// earlier attempt still in flight holds the same locks until it
		// commits or rolls back, so the search then sees its outcome.
		// Searching first could miss a commit that lands in between and
		// then refuse the retry for the balance that commit spent.
		src, dst, err := b.lock(ctx, s, from, to)
		if err != nil {
			return err
		}
		prev, err := orm.Query[Transfer](s).Where(TransferCols.RequestID+" = ?", reqID).Load("Entries").One(ctx)
		switch {
		case err == nil:
			if prev.FromID != from || prev.ToID != to || prev.Amount != amount {
				return fmt.Errorf("%w: %q is transfer %d", ErrRequestIDReused, reqID, prev.ID)
			}
			t, replayed = prev, true
			return nil
		case !errors.Is(err, orm.ErrNotFound):
			return err
		}
		rej, err := orm.Query[Rejection](s).Where(RejectionCols.RequestID+" = ?", reqID).One(ctx)
		switch {
		case err == nil:
			if rej.AccountID != from || rej.Amount != amount {
				return fmt.Errorf("%w: %q was refused for another transfer", ErrRequestIDReused, reqID)
			}
			refused, replayed = &InsufficientFundsError{Account: from, Balance: rej.Balance, Amount: amount}, true
			return nil
		case !errors.Is(err, orm.ErrNotFound):
			return err
		}
		if src.Balance < amount {
			refused = &InsufficientFundsError{Account: from, Balance: src.Balance, Amount: amount}
			// Committed (fn returns nil), so that no other attempt of
			// this request can commit the transfer after this answer.
			if err := s.Add(&Rejection{RequestID: reqID, AccountID: from, Balance: src.Balance, Amount: amount,
				Created: time.Now().UTC().Truncate(time.Microsecond)}); err != nil {
				return err
			}
			return s.Flush(ctx)
		}
		src.Balance -= amount
		dst.Balance += amount
		t = &Transfer{RequestID: reqID, FromID: from, ToID: to, Amount: amount,
			// Microseconds are what MySQL and PostgreSQL keep: the 201's
			// body then matches a later GET.
			Created: time.Now().UTC().Truncate(time.Microsecond),
			Entries: []*Entry{{AccountID: from, Amount: -amount}, {AccountID: to, Amount: amount}}}
		if err := s.Add(t); err != nil {
			return err
		}
		// Flushed here, not at COMMIT, so that a duplicate request id is
		// seen by this function on both paths (Do's and the middleware's).
		return s.Flush(ctx)
	}, orm.MaxAttempts(b.attempts), orm.RetryOnStale())
	b.Stats.Retries.Add(int64(max(attempt-1, 0)))
	if err != nil {
		if errors.Is(err, orm.ErrStaleData) {
			b.Stats.Stale.Add(1)
		}
		if errors.Is(err, orm.ErrCommitUnknown) {
			b.Stats.CommitUnknown.Add(1)
		}
		if errors.Is(err, orm.ErrUniqueViolation) {
			// The only unique key a transfer writes is its request id.
			err = fmt.Errorf("%w: %q: %w", ErrRequestInFlight, reqID, err)
		}
		return nil, false, err
	}
	if replayed {
		b.Stats.Replays.Add(1)
	}
	if refused != nil {
		return nil, replayed, refused
	}
	return t, replayed, nil
}

// maxRequestID is the request id column's size.
const maxRequestID = 64

// checkRequestID accepts 1 to 64 of the characters a client can put in an
// HTTP header or a TCP field unescaped: letters, digits and "-_.:".
func checkRequestID(id string) error {
	if id == "" || len(id) > maxRequestID {
		return fmt.Errorf("%w: a request id has 1 to %d characters", ErrInvalidTransfer, maxRequestID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fmt.Errorf("%w: a request id has only letters, digits and -_.: (byte %d is %#x)", ErrInvalidTransfer, i, c)
		}
	}
	return nil
}

// newRequestID returns prefix and 24 random hex digits.
func newRequestID(prefix string) string {
	return fmt.Sprintf("%s%012x%012x", prefix, rand.Int64N(1<<48), rand.Int64N(1<<48))
}

// lock loads and locks both accounts (SELECT ... FOR UPDATE; on SQLite the
// transaction's write lock). Locking in id order, in one statement, is what
// keeps two opposite transfers from deadlocking; a fraction of calls lock
// one row at a time in transfer order on purpose (see Bank.unordered).
func (b *Bank) lock(ctx context.Context, s *orm.Session, from, to int64) (src, dst *Account, err error) {
	if b.unordered > 0 && rand.Float64() < b.unordered {
		if src, err = b.lockOne(ctx, s, from); err != nil {
			return nil, nil, err
		}
		if dst, err = b.lockOne(ctx, s, to); err != nil {
			return nil, nil, err
		}
		return src, dst, nil
	}
	accts, err := orm.Query[Account](s).Where(AccountCols.ID+" IN (?)", []int64{from, to}).OrderBy(AccountCols.ID).ForUpdate().All(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range accts {
		switch a.ID {
		case from:
			src = a
		case to:
			dst = a
		}
	}
	if src == nil {
		return nil, nil, fmt.Errorf("%w: %d", ErrUnknownAccount, from)
	}
	if dst == nil {
		return nil, nil, fmt.Errorf("%w: %d", ErrUnknownAccount, to)
	}
	return src, dst, nil
}

func (b *Bank) lockOne(ctx context.Context, s *orm.Session, id int64) (*Account, error) {
	a, err := orm.Query[Account](s).Where(AccountCols.ID+" = ?", id).ForUpdate().One(ctx)
	if errors.Is(err, orm.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownAccount, id)
	}
	return a, err
}

// Balance returns an account's balance.
func (b *Bank) Balance(ctx context.Context, id int64) (int64, error) {
	var bal int64
	err := b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		a, err := orm.Get[Account](ctx, s, id)
		if errors.Is(err, orm.ErrNotFound) {
			return fmt.Errorf("%w: %d", ErrUnknownAccount, id)
		}
		if err != nil {
			return err
		}
		bal = a.Balance
		return nil
	})
	return bal, err
}

// Reset drops and recreates the bank's tables and opens n accounts with
// balance each, so that every run starts from the same state. It returns
// the accounts' ids.
func (b *Bank) Reset(ctx context.Context, n int, balance int64) ([]int64, error) {
	if err := b.eng.DropTables(ctx, models...); err != nil {
		return nil, err
	}
	if err := b.eng.CreateTables(ctx, models...); err != nil {
		return nil, err
	}
	accts := make([]*Account, n)
	err := b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		for i := range accts {
			accts[i] = &Account{Owner: ownerName(i), Balance: balance}
			if err := s.Add(accts[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open accounts: %w", err)
	}
	ids := make([]int64, n)
	for i, a := range accts {
		ids[i] = a.ID
	}
	return ids, nil
}

var owners = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}

func ownerName(i int) string {
	if i < len(owners) {
		return owners[i]
	}
	return fmt.Sprintf("%s%d", owners[i%len(owners)], i/len(owners)+1)
}

// Check is one verified invariant.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Verify checks the bank's invariants after a run, reading everything in
// one session:
//   - the money is all there: the balances add up to opening;
//   - no balance is negative;
//   - the journal matches what clients were told: each request id in
//     committed has exactly one row, with the transfer id the client got,
//     and there is no row no client heard of;
//   - each transfer has its two entries (−amount on from, +amount on to),
//     and each account's balance is its opening balance plus its entries.
func (b *Bank) Verify(ctx context.Context, committed, refused []Receipt, opening int64) ([]Check, error) {
	var checks []Check
	err := b.eng.Do(ctx, func(ctx context.Context, s *orm.Session) error {
		checks = checks[:0]
		accts, err := orm.Query[Account](s).OrderBy(AccountCols.ID).All(ctx)
		if err != nil {
			return err
		}
		transfers, err := orm.Query[Transfer](s).OrderBy(TransferCols.ID).Load("Entries").All(ctx)
		if err != nil {
			return err
		}
		rejections, err := orm.Query[Rejection](s).All(ctx)
		if err != nil {
			return err
		}
		checks = append(checks,
			checkTotal(accts, opening),
			checkNegative(accts),
			checkJournal(transfers, committed),
			checkRefused(transfers, rejections, refused),
			checkEntries(accts, transfers, opening/int64(max(len(accts), 1))))
		return nil
	}, orm.Snapshot()) // the accounts and the journal as of one moment
	return checks, err
}

func checkTotal(accts []*Account, opening int64) Check {
	var sum int64
	for _, a := range accts {
		sum += a.Balance
	}
	return Check{Name: "total money unchanged", OK: sum == opening,
		Detail: fmt.Sprintf("%d in %d accounts, opened with %d", sum, len(accts), opening)}
}

func checkNegative(accts []*Account) Check {
	c := Check{Name: "no negative balance", OK: true, Detail: "lowest "}
	low := int64(0)
	for i, a := range accts {
		if i == 0 || a.Balance < low {
			low = a.Balance
		}
		if a.Balance < 0 {
			c.OK = false
		}
	}
	c.Detail += fmt.Sprint(low)
	return c
}

// checkJournal compares the transfers clients were told committed with
// the rows: exactly once means one row per request id, the row the client
// was told of, and no row that no client heard of (an unknown outcome
// left unresolved).
func checkJournal(transfers []*Transfer, committed []Receipt) Check {
	c := Check{Name: "each transfer applied exactly once (one journal row per request id, as reported)", OK: true}
	told := make(map[string]int64, len(committed)) // request id → transfer id
	byID := make(map[int64]int, len(committed))
	var dupReq []string
	var dup, missing, unknown, wrong []int64
	for _, r := range committed {
		if _, ok := told[r.RequestID]; ok {
			dupReq = append(dupReq, r.RequestID)
		}
		told[r.RequestID] = r.TransferID
		if byID[r.TransferID]++; byID[r.TransferID] == 2 {
			dup = append(dup, r.TransferID)
		}
	}
	rows := make(map[string]int, len(transfers))
	for _, t := range transfers {
		if rows[t.RequestID]++; rows[t.RequestID] == 2 {
			dupReq = append(dupReq, t.RequestID)
		}
		id, ok := told[t.RequestID]
		switch {
		case !ok:
			unknown = append(unknown, t.ID)
		case id != t.ID:
			wrong = append(wrong, t.ID)
		}
	}
	for req, id := range told {
		if rows[req] == 0 {
			missing = append(missing, id)
		}
	}
	c.Detail = fmt.Sprintf("%d reported to clients, %d rows", len(committed), len(transfers))
	if len(dupReq) > 0 {
		c.OK = false
		c.Detail += fmt.Sprintf("; %d request ids reported or stored twice (first %q)", len(dupReq), dupReq[0])
	}
	for _, p := range []struct {
		ids  []int64
		what string
	}{{dup, "reported twice"}, {missing, "reported but no row"}, {unknown, "row no client heard of"}, {wrong, "row of a request id reported with another transfer id"}} {
		if len(p.ids) > 0 {
			c.OK = false
			slices.Sort(p.ids)
			c.Detail += fmt.Sprintf("; %d %s (first %v)", len(p.ids), p.what, p.ids[:min(len(p.ids), 5)])
		}
	}
	return c
}

// checkRefused checks that no transfer a client was told was refused for
// funds was applied after all, and that each such refusal is recorded.
func checkRefused(transfers []*Transfer, rejections []*Rejection, refused []Receipt) Check {
	c := Check{Name: "no refused transfer applied", OK: true}
	applied := make(map[string]int64, len(transfers))
	for _, t := range transfers {
		applied[t.RequestID] = t.ID
	}
	recorded := make(map[string]bool, len(rejections))
	for _, r := range rejections {
		recorded[r.RequestID] = true
	}
	var bad, unrecorded []string
	for _, r := range refused {
		if _, ok := applied[r.RequestID]; ok {
			bad = append(bad, r.RequestID)
		}
		if !recorded[r.RequestID] {
			unrecorded = append(unrecorded, r.RequestID)
		}
	}
	both := 0
	for _, r := range rejections {
		if _, ok := applied[r.RequestID]; ok {
			both++
		}
	}
	c.Detail = fmt.Sprintf("%d refused to clients, %d rejections recorded", len(refused), len(rejections))
	if len(bad) > 0 || len(unrecorded) > 0 || both > 0 {
		c.OK = false
		c.Detail += fmt.Sprintf("; %d refused but applied %.3q, %d refused but not recorded %.3q, %d request ids both refused and applied",
			len(bad), bad, len(unrecorded), unrecorded, both)
	}
	return c
}

// checkEntries reconciles the postings with the transfers and balances.
func checkEntries(accts []*Account, transfers []*Transfer, each int64) Check {
	c := Check{Name: "entries match transfers and balances", OK: true}
	posted := map[int64]int64{}
	bad := 0
	for _, t := range transfers {
		ok := len(t.Entries) == 2
		for _, e := range t.Entries {
			posted[e.AccountID] += e.Amount
			ok = ok && (e.AccountID == t.FromID && e.Amount == -t.Amount || e.AccountID == t.ToID && e.Amount == t.Amount)
		}
		if !ok {
			if bad == 0 {
				c.Detail = fmt.Sprintf("transfer %d has entries %s; ", t.ID, fmtEntries(t.Entries))
			}
			bad++
		}
	}
	off := 0
	for _, a := range accts {
		if each+posted[a.ID] != a.Balance {
			if off == 0 {
				c.Detail += fmt.Sprintf("account %d: balance %d, opening %d + entries %d; ", a.ID, a.Balance, each, posted[a.ID])
			}
			off++
		}
	}
	c.OK = bad == 0 && off == 0
	c.Detail += fmt.Sprintf("%d transfers with wrong entries, %d accounts not reconciled", bad, off)
	return c
}

func fmtEntries(es []*Entry) string {
	s := "["
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d:%+d", e.AccountID, e.Amount)
	}
	return s + "]"
}
