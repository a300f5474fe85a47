package orm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// Session is a unit of work: it tracks the objects loaded and added through
// it (at most one per primary key: the identity map), notices what changed,
// and turns it into ordered, batched INSERT, UPDATE and DELETE statements in
// one transaction at Flush or Commit.
//
// A Session is not safe for concurrent use, like SQLAlchemy's. Unlike
// SQLAlchemy's, misuse is detected: a call that overlaps another call on
// the same session returns ErrConcurrentUse and changes nothing. Give each
// request, job or goroutine its own session (Engine.Do and
// Engine.Middleware do), and always Close it.
//
// Transactions begin when they are needed. Until its first write or lock,
// a session talks to the database in autocommit: each read takes a pooled
// connection for its statement and gives it back at once, so a session
// that only reads sends no BEGIN and no ROLLBACK and holds no connection
// while service code works. The first flush that writes, Exec, a bulk
// UpdateAll or DeleteAll (unless it runs alone; see Q.UpdateAll),
// ForUpdate or Savepoint begins the transaction,
// and from then on every statement, reads included, runs in it (the
// session reads its own writes). A Commit that has exactly one statement
// to send and no transaction open sends that statement alone, in
// autocommit: one round trip, atomic by itself.
//
// What this means for reads before the first write: each is its own
// statement, so two of them can see different committed states. That is
// what PostgreSQL's default READ COMMITTED gives inside a transaction too;
// on MySQL/MariaDB, whose default REPEATABLE READ made every read of a
// transaction see one snapshot, it is a change. Version columns still
// catch a row that changed between a read and the commit (ErrStaleData).
// A session that needs its reads to agree asks for it with WithSnapshot
// (Snapshot for Do): its first statement, read or write, begins a
// REPEATABLE READ transaction (on SQLite, a deferred one; its snapshot is
// taken at the first read).
//
// On SQLite a transaction begun by a write (the usual case now) is
// IMMEDIATE, holding the write lock from the start, so it cannot fail
// halfway when it upgrades a read lock. A snapshot session begins
// deferred, so readers never queue behind each other or behind a writer;
// if it then writes and meets a concurrent writer, SQLite reports busy,
// classified ErrRetryable, and Engine.Do runs the work again in an
// IMMEDIATE transaction.
//
// With read replicas (WithReplicas), the reads before the first write,
// lock or transaction go to the session's replica, and everything from
// then on, until Close, to the primary: Commit and Rollback do not send a
// session back to a replica, which might not have applied its commit.
type Session struct {
	e         *Engine
	busy      atomic.Bool // set while a call runs: the concurrent-use guard
	inHook    atomic.Bool // set while a lifecycle hook runs (see hooks.go)
	closeReq  atomic.Bool // Close met the session busy: the call running closes it as it returns
	closed    bool
	autoflush bool
	immediate bool // begin write transactions even for reads (SQLite)
	snapshot  bool // begin at the first read, REPEATABLE READ (WithSnapshot)
	scoped    bool // made by Do or Middleware: bulk statements wait for the commit (see bulkalone.go)
	readOnly  bool // refuse writes; begin READ ONLY (WithReadOnly, txoptions.go)
	isolation sql.IsolationLevel

	// primary: every statement goes to the primary from now on (the
	// session wrote, locked or asked; see replicas.go); replica is the
	// replica its reads go to until then.
	primary bool
	replica *replica

	lockReads bool     // Get locks the rows it reads (a locking retry of Do; see lockretry.go)
	lockPlan  lockPlan // rows to lock first, in order, before fn runs

	tx       *sql.Tx
	cancelTx context.CancelCauseFunc // ends tx's context: only a BEGIN's or COMMIT's ctx ending while it runs does (commitctx.go)
	txWrite  bool                    // the transaction began IMMEDIATE or has written (SQLite's write lock)
	idmap    identity.Map

	// pending holds the added objects not yet inserted, in Add order;
	// pendingByObj indexes them by pointer.
	pending      []*identity.Entry
	pendingByObj map[any]*identity.Entry
	// deletes holds the objects marked deleted, flushed or not, until
	// commit or rollback.
	deletes []*identity.Entry
	// owned lists the entries whose objects Add registered in the
	// engine's owners index, to release them (see owners).
	owned []*identity.Entry
	// undeleted lists, while Add runs (adding set), the entries whose
	// delete mark it cancelled, so that a failed Add can restore them.
	undeleted []*identity.Entry
	adding    bool

	// flushLog undoes what flushes did to objects and entries since the
	// transaction began; intentLog undoes Add and Delete inside savepoints.
	flushLog  []undo
	intentLog []undo
	undoSeq   uint64 // the last undo record's seq (see undo.seq)
	sps       []savepoint

	// members holds, per cascade has-many relation of a tracked parent,
	// the children its slice had when loaded or last flushed: one missing
	// from the slice now is an orphan (see deleteOrphans).
	members map[memberKey][]any

	// lost is set when the database rolled the whole transaction back
	// behind the session's back (MySQL does on a deadlock, even inside a
	// savepoint): every statement fails with it until Rollback, so no
	// later work can commit without the work that was lost.
	lost error

	// alone is the single-statement commit in progress (see commitAlone);
	// rec records a flush planned for a batch (see commitBatch).
	alone aloneCommit
	rec   *batchRec

	// links holds the join rows of loaded or flushed many-to-many
	// relations (see m2m.go); nil until a session uses one.
	links map[linkKey][]link

	// hardDeletes marks the deleted entries of soft-delete models that
	// HardDelete asked to delete for good (see softdelete.go).
	hardDeletes map[*identity.Entry]bool

	// byKey marks the entries Delete attached for objects the session did
	// not track: deleted by key, never loaded, so their values are the
	// caller's and not known to be the row's.
	byKey map[*identity.Entry]bool

	seq      uint64
	stats    Stats
	direct   int              // reads sent to the driver directly (directread.go), for tests
	dest     []any            // scratch scan targets
	slab     []identity.Entry // entries not yet handed out; see newEntry
	slabNext int
	cols     []*mapper.Column
}

// SessionOption configures a Session.
type SessionOption func(*Session)

// WithoutAutoflush stops the session from flushing pending changes before
// queries and SQL-going Gets; they then do not see unflushed work.
func WithoutAutoflush() SessionOption { return func(s *Session) { s.autoflush = false } }

// beginImmediate makes a SQLite session take the write lock at its first
// statement. Do uses it when it retries work that failed busy: a deferred
// transaction that reads and then writes would likely fail the same way.
func beginImmediate() SessionOption { return func(s *Session) { s.immediate = true } }

// Stats counts a session's work, for tests and diagnostics.
type Stats struct {
	Statements int // every statement sent, including BEGIN and COMMIT
	Queries    int // SELECTs
	Execs      int // INSERT, UPDATE, DELETE and other statements
	Flushes    int // flushes that sent at least one statement
	Commits    int
	Rollbacks  int
	Tracked    int // objects in the identity map now
	Pending    int // objects added and not yet inserted
	// ReplicaReads counts the queries among Queries that a read replica
	// served (see WithReplicas).
	ReplicaReads int
}

// NewSession starts a session. It takes no connection until its first
// statement. Close it when done.
func (e *Engine) NewSession(opts ...SessionOption) *Session {
	s := &Session{e: e, autoflush: true}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Engine returns the session's engine.
func (s *Session) Engine() *Engine { return s.e }

// enter starts a call: it fails with ErrConcurrentUse when another call is
// running, and ErrSessionClosed after Close.
func (s *Session) enter() error {
	if !s.busy.CompareAndSwap(false, true) {
		if s.inHook.Load() {
			return ErrHookReentry
		}
		return ErrConcurrentUse
	}
	if s.closed {
		s.busy.Store(false)
		return ErrSessionClosed
	}
	return nil
}

func (s *Session) leave() {
	s.busy.Store(false)
	// A Close that met the session busy left the closing to the call
	// running; whoever takes the session next does it (see Close).
	if s.closeReq.Load() && s.busy.CompareAndSwap(false, true) {
		s.closeLocked()
		s.busy.Store(false)
	}
}

// tableOf checks that obj is a non-nil pointer to a model struct.
func (s *Session) tableOf(obj any) (*mapper.Table, error) {
	rv := reflect.ValueOf(obj)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("orm: want a non-nil pointer to a model struct, got %T", obj)
	}
	return s.e.fits(s.e.reg.Table(rv.Type().Elem()))
}

// Add makes transient objects pending: they are inserted at the next flush.
// Add sends no SQL.
//
//   - Adding a tracked object again is a no-op (and cancels its deletion
//     if it is marked deleted and not yet flushed). An object the session
//     never loaded but Delete marked by key is ErrDetachedObject instead:
//     its values are the caller's, not known to be the row's.
//   - An object whose key another tracked object has is
//     ErrIdentityConflict — except when that object's DELETE has been
//     flushed: the key is free then, and the new object is a new row.
//   - An untracked object whose database-generated (auto) key is set —
//     expunged, kept from an earlier session, decoded from JSON — is
//     ErrDetachedObject: inserting it would store its row a second time
//     under a new key. Use Merge to save its values.
//   - An object added to another session that still has it is
//     ErrOtherSession: an object belongs to one session at a time.
//     Objects another session loaded are not registered, so a loaded
//     object with a natural (client-set) key added here is a new row, and
//     the INSERT's unique violation at commit tells.
//
// Objects reachable through rel fields (belongs-to pointers and has-many
// slices) follow the same rule: an untracked one is added when its key is
// unset or not database-generated (a client-set key: a new row, whose
// unique violation at commit says if it existed). An untracked one whose
// database-generated key is set is a reference to an existing row: it is
// never inserted, updated or tracked, and its key fills the foreign key
// (child.Parent = &Parent{ID: 5} is how a child points at row 5). To
// point at an existing row whose key is client-set, use the tracked
// object (Get it) or set the foreign-key column and leave the field nil.
//
// Add is all or nothing: when it fails, the session is as it was before
// the call, whatever objects of objs were valid.
func (s *Session) Add(objs ...any) (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	pendingMark, intentMark := len(s.pending), len(s.intentLog)
	s.adding = true
	defer func() {
		s.adding = false
		if err != nil {
			if uerr := s.undoAdd(pendingMark, intentMark); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
		clear(s.undeleted)
		s.undeleted = s.undeleted[:0]
	}()
	// Size the per-Add structures once instead of growing them object by
	// object: entries come from one slab.
	if len(objs) > len(s.slab) {
		s.slab = make([]identity.Entry, len(objs))
	}
	s.pending = slices.Grow(s.pending, len(objs))
	s.owned = slices.Grow(s.owned, len(objs))
	if s.pendingByObj == nil && len(objs) > 8 {
		s.pendingByObj = make(map[any]*identity.Entry, len(objs))
	}
	for _, obj := range objs {
		if err := s.addLocked(obj); err != nil {
			return err
		}
	}
	return nil
}

// undoAdd puts the session back as it was before a failed Add: Add only
// appends to pending (after pendingMark) and cancels delete marks. An
// error is internal: a transition the identity map refused.
func (s *Session) undoAdd(pendingMark, intentMark int) error {
	var errs []error
	for _, e := range s.pending[pendingMark:] {
		delete(s.pendingByObj, e.Obj())
		if err := e.Drop(); err != nil {
			errs = append(errs, err)
		}
		s.release(e)
	}
	clear(s.pending[pendingMark:])
	s.pending = s.pending[:pendingMark]
	for _, e := range s.undeleted {
		if err := e.MarkDeleted(); err != nil {
			errs = append(errs, err)
		}
		s.deletes = append(s.deletes, e)
	}
	s.intentLog = s.intentLog[:intentMark] // undone already
	return errors.Join(errs...)
}

func (s *Session) addLocked(obj any) error {
	t, err := s.tableOf(obj)
	if err != nil {
		return err
	}
	if s.pendingByObj[obj] != nil {
		return nil
	}
	if !keyIsZero(t, obj) {
		k := t.Acc.Key(obj)
		// A pending object with an explicit key holds that key too.
		for _, p := range s.pending {
			if p.Table() == t && !keyIsZero(t, p.Obj()) && t.Acc.Key(p.Obj()) == k {
				return fmt.Errorf("%w: %s with key %v (pending)", ErrIdentityConflict, t.Name, keyValues(t, obj))
			}
		}
		e := s.idmap.Get(t, k)
		switch {
		case e != nil && e.State() == identity.Deleted && e.Flushed():
			// The row is gone in this transaction: the key is free for a
			// new row, which the flush inserts in the old entry's place.
			if autoKeySet(t, obj) {
				return fmt.Errorf("%w: %s with key %v was deleted in this session", ErrDetachedObject, t.Name, keyValues(t, obj))
			}
		case e != nil && e.Obj() != obj:
			return fmt.Errorf("%w: %s with key %v", ErrIdentityConflict, t.Name, keyValues(t, obj))
		case e != nil:
			if e.State() == identity.Deleted && s.byKey[e] {
				// Cancelling the mark would make the caller's values the
				// object's snapshot, as if read from the row, and a
				// change it carries would never be written.
				return fmt.Errorf("%w: %s with key %v is marked for deletion by key, never loaded in this session: its values are not known to be the row's; to keep the row, Rollback (or roll back to a savepoint) and Merge the object", ErrDetachedObject, t.Name, keyValues(t, obj))
			}
			if e.State() == identity.Deleted {
				// Adding back an object marked for deletion cancels the mark.
				if err := e.Undelete(); err != nil {
					return err
				}
				s.deletes = slices.DeleteFunc(s.deletes, func(d *identity.Entry) bool { return d == e })
				s.logIntent(undo{kind: undoUndelete, e: e})
				if s.adding {
					s.undeleted = append(s.undeleted, e)
				}
			}
			return nil
		case autoKeySet(t, obj):
			return fmt.Errorf("%w: %s with key %v", ErrDetachedObject, t.Name, keyValues(t, obj))
		}
	}
	s.seq++
	e := s.newEntry()
	if err := e.InitPending(t, obj, s.seq); err != nil {
		return fmt.Errorf("orm: %w", err)
	}
	if err := s.claim(e); err != nil {
		return err
	}
	s.pending = append(s.pending, e)
	s.trackPending(obj, e)
	s.logIntent(undo{kind: undoAdd, e: e})
	return s.cascadeAdd(t, obj)
}

// cascadeAdd adds the new objects reachable through obj's relations.
func (s *Session) cascadeAdd(t *mapper.Table, obj any) error {
	if len(t.Relations) == 0 {
		return nil
	}
	v := reflect.ValueOf(obj).Elem()
	for _, r := range t.Relations {
		f := v.FieldByIndex(r.Index)
		if r.IsSlice() {
			for i := range f.Len() {
				if c := f.Index(i); !c.IsNil() {
					if err := s.cascadeOne(c.Interface()); err != nil {
						return err
					}
				}
			}
		} else if !f.IsNil() {
			if err := s.cascadeOne(f.Interface()); err != nil {
				return err
			}
		}
	}
	return nil
}

// cascadeOne adds a related object by Add's rule (see Add): untracked
// and with its key unset or client-set, it is a new row; with its
// database-generated key set, it is a reference to an existing row, left
// alone.
func (s *Session) cascadeOne(obj any) error {
	if s.pendingByObj[obj] != nil {
		return nil
	}
	t, err := s.tableOf(obj)
	if err != nil {
		return err
	}
	if keyIsZero(t, obj) {
		return s.addLocked(obj)
	}
	if autoKeySet(t, obj) {
		return nil
	}
	if e := s.idmap.Get(t, t.Acc.Key(obj)); e != nil && e.Obj() == obj {
		return nil // tracked already
	}
	return s.addLocked(obj)
}

// keyIsZero reports whether obj has a database-generated key still unset.
func keyIsZero(t *mapper.Table, obj any) bool {
	for _, c := range t.PK {
		if !c.Auto {
			return false
		}
		if n, ok := keyval.Int64(t.Acc.Value(obj, c)); !ok || n != 0 {
			return false
		}
	}
	return true
}

// autoKeySet reports whether obj has a database-generated key column
// that is set: a value the database gave it, which an INSERT would not
// write.
func autoKeySet(t *mapper.Table, obj any) bool {
	for _, c := range t.PK {
		if !c.Auto {
			continue
		}
		if n, ok := keyval.Int64(t.Acc.Value(obj, c)); !ok || n != 0 {
			return true
		}
	}
	return false
}

func keyValues(t *mapper.Table, obj any) []any {
	out := make([]any, len(t.PK))
	for i, c := range t.PK {
		out[i] = t.Acc.Value(obj, c)
	}
	return out
}

// lookup returns obj's entry, or nil if the session does not track it.
func (s *Session) lookup(t *mapper.Table, obj any) *identity.Entry {
	if e := s.pendingByObj[obj]; e != nil {
		return e
	}
	if e := s.idmap.Get(t, t.Acc.Key(obj)); e != nil && e.Obj() == obj {
		return e
	}
	return nil
}

// Delete marks objects for deletion at the next flush. A pending object is
// simply dropped. An object the session does not track but whose key is set
// is deleted by key (and by its version, if it has one). Has-many and
// has-one relations tagged cascade delete the children too: those in the slice, and every
// other child the session tracks whose foreign key holds the parent's key
// (the database removes their rows with ON DELETE CASCADE, so the session
// must not keep them); the flush deletes the object's many-to-many join
// rows before it. Delete sends no SQL.
func (s *Session) Delete(objs ...any) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	for _, obj := range objs {
		e := s.hardDeleted(obj)
		if err := s.deleteLocked(obj); err != nil {
			return err
		}
		if e != nil && e.State() == identity.Deleted {
			delete(s.hardDeletes, e)
		}
	}
	return nil
}

func (s *Session) deleteLocked(obj any) error {
	t, err := s.tableOf(obj)
	if err != nil {
		return err
	}
	e := s.lookup(t, obj)
	switch {
	case e != nil && e.State() == identity.Pending:
		if err := s.dropPending(e); err != nil {
			return err
		}
		s.logIntent(undo{kind: undoDropPending, e: e})
		if len(s.sps) == 0 {
			s.release(e) // nothing can add it back: another session may take it
		}
		return nil
	case e != nil && e.State() == identity.Deleted:
		return nil
	case e == nil:
		if keyIsZero(t, obj) {
			return fmt.Errorf("orm: Delete of a %s that has no primary key: it was never inserted", t.Name)
		}
		k := t.Acc.Key(obj)
		if other := s.idmap.Get(t, k); other != nil {
			return fmt.Errorf("%w: %s with key %v", ErrIdentityConflict, t.Name, keyValues(t, obj))
		}
		s.seq++
		e = s.newEntry()
		s.idmap.Track(e, t, obj, t.Acc.Snapshot(obj), s.seq, k) // Get found nothing
		s.logIntent(undo{kind: undoAttach, e: e})
		if s.byKey == nil {
			s.byKey = map[*identity.Entry]bool{}
		}
		s.byKey[e] = true
	}
	if err := e.MarkDeleted(); err != nil {
		return err
	}
	s.deletes = append(s.deletes, e)
	s.logIntent(undo{kind: undoMarkDelete, e: e})
	return s.cascadeDelete(t, obj)
}

// cascadeDelete marks the children of a has-many cascade relation deleted
// with obj: those in the loaded slice, and every other child the session
// tracks whose foreign key holds obj's key (loaded by a separate query, or
// added pointing at it). The database removes their rows (ON DELETE
// CASCADE); the session must not keep serving them.
func (s *Session) cascadeDelete(t *mapper.Table, obj any) error {
	for _, r := range t.Relations {
		if !r.HasMany && !r.HasOne || !r.Cascade {
			continue
		}
		ct, err := s.e.reg.Table(r.Target)
		if err != nil {
			return err
		}
		var kids []any
		eachChild(field(obj, r.Index), r.HasOne, func(c any) { kids = append(kids, c) })
		// The current value of the column is the one to match: a child
		// moved away in memory is updated before the parent's DELETE runs,
		// and one moved to this parent is updated into the cascade. So is
		// a child moved out of this parent's slice into another live
		// parent's (its column still holds this key until the flush).
		col, key := ct.Column(r.Column), t.Acc.Value(obj, t.PK[0])
		if !keyIsZero(t, obj) {
			var found []*identity.Entry
			var listed map[any]bool
			inSlice := make(map[any]bool, len(kids))
			for _, c := range kids {
				inSlice[c] = true
			}
			match := func(e *identity.Entry) {
				if !sameKey(ct.Acc.Value(e.Obj(), col), key) {
					return
				}
				if !inSlice[e.Obj()] {
					if listed == nil {
						listed = s.listedChildren() // obj, marked deleted, lists none
					}
					if listed[e.Obj()] {
						return
					}
				}
				found = append(found, e)
			}
			s.idmap.EachIn(ct, func(e *identity.Entry) bool {
				if e.State() == identity.Persistent {
					match(e)
				}
				return true
			})
			for _, e := range s.pending {
				if e.Table() == ct {
					match(e)
				}
			}
			// In the order they entered the session, not the map's.
			slices.SortFunc(found, cmpSeq)
			for _, e := range found {
				kids = append(kids, e.Obj())
			}
		}
		for _, c := range kids {
			if ce := s.lookup(ct, c); ce != nil && ce.State() != identity.Deleted {
				if err := s.deleteLocked(c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// trackPending indexes a pending entry by its object; the index is made
// on first use, so read-only sessions never allocate it.
func (s *Session) trackPending(obj any, e *identity.Entry) {
	if s.pendingByObj == nil {
		s.pendingByObj = map[any]*identity.Entry{}
	}
	s.pendingByObj[obj] = e
}

func (s *Session) dropPending(e *identity.Entry) error {
	delete(s.pendingByObj, e.Obj())
	s.pending = slices.DeleteFunc(s.pending, func(p *identity.Entry) bool { return p == e })
	return e.Drop()
}

// IsDirty reports whether obj has changes the next flush would write: it is
// pending, marked deleted, or differs from its snapshot. It is false for an
// object the session does not track, and while another call is running.
func (s *Session) IsDirty(obj any) bool {
	if s.enter() != nil {
		return false
	}
	defer s.leave()
	t, err := s.tableOf(obj)
	if err != nil {
		return false
	}
	e := s.lookup(t, obj)
	switch {
	case e == nil:
		return false
	case e.State() == identity.Pending, e.State() == identity.Deleted && !e.Flushed():
		return true
	case e.State() == identity.Persistent:
		s.cols = t.Acc.Changed(obj, e.Snap(), s.cols[:0])
		return len(s.cols) > 0
	}
	return false
}

// Pending returns the objects added and not yet inserted, in Add order.
func (s *Session) Pending() []any {
	if s.enter() != nil {
		return nil
	}
	defer s.leave()
	out := make([]any, len(s.pending))
	for i, e := range s.pending {
		out[i] = e.Obj()
	}
	return out
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	if s.enter() != nil {
		return Stats{}
	}
	defer s.leave()
	st := s.stats
	st.Tracked = s.idmap.Len()
	st.Pending = len(s.pending)
	return st
}

// Expunge makes tracked objects detached: the session forgets them and
// their changes, and another session may Add them. Untracked objects are
// ignored. An expunged object whose key the database generated cannot be
// added back (ErrDetachedObject): Merge it to save its changes.
func (s *Session) Expunge(objs ...any) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	for _, obj := range objs {
		t, err := s.tableOf(obj)
		if err != nil {
			return err
		}
		e := s.lookup(t, obj)
		if e == nil {
			continue
		}
		if e.State() == identity.Pending {
			if err := s.dropPending(e); err != nil {
				return err
			}
		} else {
			s.deletes = slices.DeleteFunc(s.deletes, func(d *identity.Entry) bool { return d == e })
		}
		s.idmap.Detach(e)
		s.release(e)
	}
	return nil
}

// begin opens the transaction if none is open. write says whether the
// first statement writes; on SQLite it picks an IMMEDIATE transaction then,
// a deferred one otherwise (see Session). A snapshot session's
// transaction is REPEATABLE READ on the servers.
func (s *Session) begin(ctx context.Context, write bool) error {
	if s.lost != nil {
		return s.lost
	}
	if s.tx != nil {
		return nil
	}
	opts, err := s.txOptions(write) // see txoptions.go
	if err != nil {
		return err
	}
	obs := s.e.observe(OpBegin, "BEGIN", nil)
	// The transaction outlives this call's ctx: a ctx that ends must cancel
	// a statement, not silently roll back the session's transaction. Only the
	// ctx of its BEGIN or COMMIT, ending while they run, ends it (commitctx.go).
	txCtx, cancelTx := context.WithCancelCause(context.WithoutCancel(ctx))
	s.primary = true // read-your-writes: see replicas.go
	tx, err := beginUntil(ctx, s.e.db.DB, txCtx, cancelTx, opts)
	err = classify(s.e.dialect, err)
	obs.done(ctx, -1, err)
	s.stats.Statements++
	if err != nil {
		cancelTx(nil)
		return fmt.Errorf("orm: begin: %w", err)
	}
	s.tx, s.cancelTx = tx, cancelTx
	s.txWrite = opts == nil || !opts.ReadOnly
	return nil
}

// lockForUpdate makes sure the transaction can lock rows for update. On
// MySQL and PostgreSQL FOR UPDATE does it. SQLite has no row locks: a
// deferred transaction that has only read takes the database's write lock
// with a write that changes nothing, so a concurrent ForUpdate waits for
// this transaction to end, as it would on a server.
func (s *Session) lockForUpdate(ctx context.Context, t *mapper.Table) error {
	if s.readOnly {
		return refuseWrite("ForUpdate locks rows for writing")
	}
	if s.tx == nil {
		return s.begin(ctx, true)
	}
	if s.txWrite || s.e.caps.ForUpdate {
		return nil
	}
	if _, err := s.exec(ctx, noopWriteSQL(s.e.dialect, t.Name), nil); err != nil {
		return err
	}
	s.txWrite = true
	return nil
}

// exec runs a statement in the session's transaction, opening it; in a
// single-statement commit, alone (see commitAlone).
func (s *Session) exec(ctx context.Context, query string, args []any) (sql.Result, error) {
	if s.readOnly {
		return nil, refuseWrite("a statement that may write")
	}
	if s.alone.armed && s.tx == nil {
		return s.execAlone(ctx, query, args)
	}
	if s.rec != nil {
		return s.rec.record(args, query)
	}
	if err := s.begin(ctx, true); err != nil {
		return nil, err
	}
	s.stats.Statements++
	s.stats.Execs++
	s.txWrite = true
	return s.e.exec(ctx, s.tx, query, args)
}

// query runs a read: in the session's transaction if one is open (or a
// snapshot session's, opening it), else in autocommit on a pooled
// connection that goes back to the pool when the rows are closed.
func (s *Session) query(ctx context.Context, query string, args []any) (*sql.Rows, observation, error) {
	if s.rec != nil {
		return nil, observation{}, errNotBatchable
	}
	if s.tx == nil && !s.readsInTx() {
		if s.lost != nil {
			return nil, observation{}, s.lost
		}
		s.stats.Statements++
		s.stats.Queries++
		if s.e.replicas != nil {
			return s.readQuery(ctx, query, args)
		}
		return s.e.query(ctx, s.e.db, query, args)
	}
	if err := s.begin(ctx, false); err != nil {
		return nil, observation{}, err
	}
	s.stats.Statements++
	s.stats.Queries++
	return s.e.query(ctx, s.tx, query, args)
}

// endTx finishes the transaction with COMMIT or ROLLBACK.
func (s *Session) endTx(ctx context.Context, commit bool) error {
	tx := s.tx
	if tx == nil {
		return nil
	}
	cancelTx := s.cancelTx
	s.tx, s.cancelTx = nil, nil
	defer cancelTx(nil)
	s.sps = s.sps[:0]
	s.stats.Statements++
	op, fn := OpRollback, tx.Rollback
	if commit {
		op, fn = OpCommit, func() error { return commitUntil(ctx, cancelTx, tx.Commit) }
	}
	obs := s.e.observe(op, stringsToUpper(op), nil)
	err := classify(s.e.dialect, fn())
	obs.done(ctx, -1, err)
	if !commit && errors.Is(err, sql.ErrTxDone) {
		return nil // already rolled back, by the database or a dead connection
	}
	return err
}

func stringsToUpper(op Op) string {
	if op == OpCommit {
		return "COMMIT"
	}
	return "ROLLBACK"
}

// Commit flushes and commits. Afterwards every object is persistent with a
// fresh snapshot and deleted objects are detached; objects stay plain,
// readable structs. If the flush or the COMMIT fails, the transaction is
// rolled back and the session is as it was before Commit: pending objects
// pending again (generated keys cleared), changed objects still dirty,
// deletions still marked. Fix the cause and Commit again, or Rollback.
//
// With no transaction open and one statement to send (an insert, one
// batched multi-row insert, an update or a delete), Commit sends it alone
// in autocommit, with no BEGIN and no COMMIT: one round trip. Its failures
// mean what they mean in a transaction: zero rows matched by a versioned
// statement is ErrStaleData, a constraint violation is classified, and
// the session is restored either way. Otherwise the statements go in one
// transaction, begun by the first of them; on PostgreSQL through pgx, and
// on MySQL/MariaDB as one multi-statement query, they are pipelined:
// BEGIN, the statements and COMMIT in one round trip, plus
// one per INSERT whose generated keys a later statement needs (see
// batchcommit.go); a version check is made at the server, so a stale row
// stops the round trip before its COMMIT.
//
// A lost connection during COMMIT, or during a statement sent alone,
// returns an error matching ErrCommitUnknown: the work may or may not be
// committed. ctx governs the flush statements and the wait for COMMIT's
// reply: when ctx ends while COMMIT is in flight (a stalled server or
// network), Commit returns at once an error matching both ErrCommitUnknown
// and ctx's error, and the connection is closed. A COMMIT sent with a ctx
// that has already ended is not interrupted.
func (s *Session) Commit(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if s.lost != nil {
		return s.lost
	}
	if err := s.refuseFlush(); err != nil {
		return err
	}
	if s.tx == nil && s.idmap.Len() == 0 && len(s.pending) == 0 && len(s.deletes) == 0 && len(s.links) == 0 {
		// Nothing tracked, nothing added or deleted, no transaction: a
		// flush would find nothing to write and there is nothing to
		// commit (the session only read with NoTrack, or ran a bulk
		// statement alone), so skip planning one.
		return nil
	}
	// With an isolation level every write runs in a transaction at that
	// level: a statement alone in autocommit, or a batch's own BEGIN,
	// would run at the server's default (see txoptions.go).
	if s.tx == nil && s.isolation == sql.LevelDefault {
		if s.flushSize() <= 1 || miscountFlushes.Load() {
			return s.commitAlone(ctx)
		}
		if done, err := s.commitBatch(ctx); done {
			return err
		}
	}
	if err := s.flushLocked(ctx, false); err != nil {
		s.sweepOwned(false) // a failed insert-then-delete left the session
		return err
	}
	if s.tx == nil {
		return nil
	}
	if err := s.endTx(ctx, true); err != nil {
		s.undoFlushes(0)
		s.flushLog = s.flushLog[:0]
		s.sweepOwned(false)
		if !s.e.serverReply(err) {
			// The COMMIT may have reached the server before the connection
			// failed: only an error the server sent proves it did not commit.
			return s.e.commitLost(err, false)
		}
		return fmt.Errorf("orm: commit: %w", err)
	}
	s.committed()
	return nil
}

// committed does a successful commit's bookkeeping, whichever way the
// work was sent (a transaction, one statement alone, a batch): the undo
// logs are dropped; deleted objects are detached and released from the
// engine's ownership index, and so are objects the session let go; the
// delete-orphan records forget the children that left.
func (s *Session) committed() {
	s.stats.Commits++
	s.flushLog = s.flushLog[:0]
	s.intentLog = s.intentLog[:0]
	for _, e := range s.deletes {
		s.idmap.Detach(e)
		s.release(e)
	}
	s.deletes = s.deletes[:0]
	clear(s.hardDeletes)
	clear(s.byKey)
	if len(s.owned) > 0 {
		s.sweepOwned(false)
	}
	s.noteMembers(false)
}

// Rollback rolls back the transaction and discards the session's state:
// pending objects are dropped and every tracked object is detached. What
// the rolled-back flushes wrote into objects is undone, as after a failed
// commit: an object whose INSERT was rolled back has no generated key
// again (Add it to store it), and one whose UPDATE was rolled back has
// its version back (the row's). The session stays usable.
func (s *Session) Rollback(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.rollbackLocked(ctx)
}

func (s *Session) rollbackLocked(ctx context.Context) error {
	// A ROLLBACK that fails (a cancelled statement or a lost connection
	// left the connection unusable) changes nothing for the caller: the
	// database rolls back a transaction whose connection is gone, the pool
	// discards the connection, and the session is reset either way.
	_ = s.endTx(context.WithoutCancel(ctx), false)
	s.stats.Rollbacks++
	s.reset()
	return nil
}

// reset detaches everything. What the rolled-back flushes wrote into
// objects is undone first: an object whose INSERT was rolled back must
// not keep the generated key (nor a version a rolled-back UPDATE bumped)
// of a row that does not exist, or Add would refuse it as detached and
// Merge would find the row that next takes the key (SQLite hands it out
// again) and overwrite it.
func (s *Session) reset() {
	s.undoFlushes(0)
	s.lost = nil
	s.idmap.DetachAll()
	for _, e := range s.pending {
		s.broken(e.Drop())
	}
	s.pending = s.pending[:0]
	clear(s.pendingByObj)
	s.deletes = s.deletes[:0]
	s.flushLog = s.flushLog[:0]
	s.intentLog = s.intentLog[:0]
	s.sps = s.sps[:0]
	s.links = nil
	clear(s.hardDeletes)
	clear(s.byKey)
	s.sweepOwned(true)
	clear(s.members)
}

// Close rolls back whatever is uncommitted, detaches every object and
// returns the connection to the pool. Further calls fail with
// ErrSessionClosed; Close itself may be called again. Called while
// another goroutine's call is running in the session, it returns
// ErrConcurrentUse and the session closes as that call returns.
func (s *Session) Close() error {
	if !s.busy.CompareAndSwap(false, true) {
		if s.inHook.Load() {
			return ErrConcurrentUse // a hook's own call: the session stays open, as before
		}
		// A call is running (in another goroutine: a scope's session left
		// to one). Ask it to close the session as it returns, so that the
		// transaction and its connection are not held for ever, and take
		// the session now if it returned meanwhile.
		s.closeReq.Store(true)
		if !s.busy.CompareAndSwap(false, true) {
			return ErrConcurrentUse
		}
	}
	defer s.leave()
	return s.closeLocked()
}

// closeLocked closes the session; the caller holds it (busy).
func (s *Session) closeLocked() error {
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.endTx(context.Background(), false)
	s.reset()
	if err != nil {
		return fmt.Errorf("orm: close: %w", err)
	}
	return nil
}

// Short names for the identity types used across the orm files.
type identityEntry = identity.Entry

const stPersistent = identity.Persistent

// newEntry takes an entry from the slab Add sized, else allocates one.
// When the slab is empty it is refilled, each refill twice the last (up to
// 63), so a session reading one row allocates one entry and a session
// reading thousands allocates one per 63. Not 64: an allocation of over
// 512 bytes that holds pointers carries an 8-byte header, and 64 entries
// (2,048 bytes) would take the 2,304-byte size class, 4 bytes an entry
// more.
func (s *Session) newEntry() *identity.Entry {
	if len(s.slab) == 0 {
		s.slabNext = min(max(s.slabNext*2, 1), 63)
		s.slab = make([]identity.Entry, s.slabNext)
	}
	e := &s.slab[0]
	s.slab = s.slab[1:]
	return e
}
