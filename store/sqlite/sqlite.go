// Package sqlite is the embedded payments journal: coinop's record of every
// payment it has accepted, kept in one SQLite file through the pure-Go
// modernc.org/sqlite driver.
//
// The journal is written before the engine acts on a payment, so every write
// is in a transaction that is on disk (WAL, synchronous=FULL: fsync on every
// commit) before the method returns. Times are stored as unix nanoseconds and
// read back in UTC; amounts as decimal strings of atomic units.
//
// Writes are group-committed. One writer goroutine owns the only connection
// that writes. Reserve, Transition and MarkServed hand it their
// read-check-write and wait; the writer takes every write queued (up to
// maxGroup), begins one transaction, which takes SQLite's write lock at
// BEGIN, runs each write inside its own savepoint, one after the other, and
// commits them all at once: one fsync for the whole group. Only then does it
// answer the callers. A write that fails is rolled back to its savepoint and
// fails alone; the others in its group are unaffected. The writes of a group
// are still serialized, so the read-check-write of one cannot interleave
// with another's, in this process or in another one (such as the audit
// command) sharing the file. A lone write is begun as soon as it is queued:
// grouping costs it no waiting.
//
// Reads use a separate pool of read-only connections. WAL lets them read the
// last committed state while the writer works, so they never wait for an
// fsync, and a read begun after a write returned sees that write.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// maxGroup is the most writes one transaction commits. A larger group
// shares its fsync more widely but holds the write lock, and its first
// caller, longer.
const maxGroup = 128

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Now is the store's clock, read for Created, Updated and event times.
	// If nil, the default is time.Now. It is called from the store's writer
	// goroutine, as each write is applied.
	Now func() time.Time
	// Owner names this store in the leases it takes (see Claim). If "",
	// the default is one name per journal file: a SQLite journal belongs
	// to one gateway instance, so a process that restarts on the same file
	// takes its predecessor's leases back at once, and a crash is
	// recovered on the next start without waiting for leases to expire.
	// Processes that open the same file to read or audit it share that
	// name; recovery still leaves alone what was updated after it started.
	Owner string
	// Lease is how long a write keeps a payment this store's (see Claim).
	// If zero, the default is store.DefaultLease.
	Lease time.Duration
}

// Store is a payments journal in one SQLite file. Its methods are safe for
// concurrent use; every method that writes returns only after the
// transaction holding its write is durable, and a method that returns an
// error has changed nothing.
//
// Errors caused by the database itself (I/O, a closed store, a cancelled
// context) are *coinop.Error of kind KindUnavailable wrapping the cause:
// nothing paid-for may be served while the journal cannot record it.
//
// A write's context is honoured while the write waits for the writer: if it
// ends then, the method returns KindUnavailable wrapping ctx.Err() and the
// write is never applied. Once the writer has begun applying a write, the
// write runs to completion and the method returns its outcome after its
// group's commit, even if ctx ends in the meantime; that wait is bounded by
// one group's work and fsync. A write whose own outcome was an error (a
// replay, a state conflict) is refused with that error; if the group's
// commit fails, every write of the group, refused or not, returns
// KindUnavailable, because a refusal may have rested on a write of the same
// group that was not committed.
type Store struct {
	w   *sql.DB // the writer's one connection; only the writer goroutine uses it after Open
	r   *sql.DB // read-only connections
	ws  *writerStatements
	rs  *readerStatements
	now func() time.Time

	owner string
	lease time.Duration

	mu     sync.Mutex
	cond   *sync.Cond // signalled when queue grows or closed is set
	queue  []*request
	closed bool

	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// A request is one write waiting for, or applied by, the writer.
type request struct {
	op string // names the method in errors: "reserve", "transition", "mark served"
	// apply runs the write's statements in tx, inside a savepoint of its own.
	apply func(ctx context.Context, tx *wtx) error
	state atomic.Int32 // queued, taken or cancelled
	err   error        // apply's outcome; the writer's alone until done is sent
	done  chan error   // buffered: the writer never blocks answering
}

const (
	queued    int32 = iota
	taken           // the writer applies it; its caller waits for the outcome
	cancelled       // its caller gave up first; the writer skips it
)

// errClosed is the cause of a write refused because the store is closed.
var errClosed = errors.New("store is closed")

// Open opens the journal at path with default Options, creating the file
// and its parent directories if needed and bringing the schema up to date.
func Open(path string) (*Store, error) {
	return OpenWith(path, Options{})
}

// OpenWith is Open with options. Opening the same file again, from this
// process or another, is safe: migrations already applied are skipped.
func OpenWith(path string, opts Options) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: open %q: path must be non-empty and free of '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := restrictMode(path); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// The driver applies these to every connection it opens. busy_timeout
	// makes a second process wait for the write lock instead of failing;
	// _txlock=immediate takes that lock at BEGIN, so a transaction never has
	// to upgrade a read lock, which SQLite may refuse without waiting.
	w, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)"+
		"&_pragma=journal_mode(WAL)"+
		"&_pragma=synchronous(FULL)"+
		"&_pragma=foreign_keys(1)"+
		"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	s := &Store{w: w, now: opts.Now, owner: opts.Owner, lease: opts.Lease, writerDone: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	if s.now == nil {
		s.now = time.Now
	}
	if s.owner == "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite: open: %w", err)
		}
		s.owner = "sqlite:" + abs
	}
	if s.lease <= 0 {
		s.lease = store.DefaultLease
	}
	if err := s.migrate(context.Background()); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	// Readers: query_only refuses any write on them. The file is in WAL
	// mode already (the writer set it), which is what lets them read
	// while the writer commits.
	r, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)"+
		"&_pragma=query_only(1)"+
		"&_pragma=foreign_keys(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	s.r = r
	s.ws = newWriterStatements(w)
	s.rs = &readerStatements{db: r}

	go s.writer()
	return s, nil
}

// restrictMode creates the journal file readable and writable by its owner
// only (0600, whatever the umask), or takes group and other access away
// from one that exists, with its -wal and -shm files. The journal holds
// signed payloads: anyone who can read one may submit it. SQLite creates
// the -wal and -shm files with the database file's mode.
func restrictMode(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		switch f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); {
		case errors.Is(err, fs.ErrExist): // another process created it meanwhile
		case err != nil:
			return err
		default:
			f.Close()
			// The umask may have taken more than group and other access.
			if err := os.Chmod(path, 0o600); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close stops the writer and closes the database. Writes queued before
// Close are applied and answered first; writes begun after it return
// KindUnavailable. Every write that returned without error is durable.
// The Store must not be used after Close; closing it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.cond.Broadcast()
		s.mu.Unlock()
		<-s.writerDone
		// Readers first, so that the writer's connection is the file's
		// last and checkpoints the WAL as it closes.
		s.rs.close()
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	return s.closeErr
}

// write queues a write for the writer and waits for its outcome (see Store
// for how ctx is honoured).
func (s *Store) write(ctx context.Context, op string, apply func(ctx context.Context, tx *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return unavailable(op, err)
	}
	req := &request{op: op, apply: apply, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return unavailable(op, errClosed)
	}
	s.queue = append(s.queue, req)
	s.cond.Signal()
	s.mu.Unlock()

	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(queued, cancelled) {
			return unavailable(op, ctx.Err())
		}
		// Already applied or being applied: its outcome stands.
		return <-req.done
	}
}

// writer commits the queued writes, a group at a time, until the store is
// closed and nothing is left queued.
func (s *Store) writer() {
	defer close(s.writerDone)
	defer s.ws.close()
	var group []*request
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		n := min(len(s.queue), maxGroup)
		group = append(group[:0], s.queue[:n]...)
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.mu.Unlock()

		s.commitGroup(group)
		clear(group)
		s.ws.prepareWanted(context.Background())
	}
}

// commitGroup applies the writes of group that are still wanted, each in its
// own savepoint of one transaction, commits that transaction, and answers
// their callers.
func (s *Store) commitGroup(group []*request) {
	// The writer's statements do not use the callers' contexts: a write
	// once begun is not interrupted, and a cancellation cannot reach into
	// the statements of another write of the group.
	ctx := context.Background()
	applied := make([]*request, 0, len(group)) // the requests taken
	fail := func(err error) {
		for _, req := range applied {
			req.done <- unavailable(req.op, err)
		}
	}
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		for _, req := range group {
			if req.state.CompareAndSwap(queued, taken) {
				applied = append(applied, req)
			}
		}
		fail(err)
		return
	}
	tx := &wtx{tx: sqlTx, stmts: s.ws}
	for i, req := range group {
		if !req.state.CompareAndSwap(queued, taken) {
			continue // its caller has gone and was told so
		}
		applied = append(applied, req)
		if err := s.applyOne(ctx, tx, req); err != nil {
			// The transaction is no longer sound: the group fails, and
			// so do the writes not yet applied.
			sqlTx.Rollback()
			for _, later := range group[i+1:] {
				if later.state.CompareAndSwap(queued, taken) {
					applied = append(applied, later)
				}
			}
			fail(err)
			return
		}
	}
	if err := sqlTx.Commit(); err != nil {
		// Leave no transaction open on the connection, whatever state the
		// failed COMMIT left it in; "no transaction is active" is fine.
		s.w.ExecContext(ctx, `ROLLBACK`)
		fail(err)
		return
	}
	for _, req := range applied {
		req.done <- req.err
	}
}

// applyOne runs req inside a savepoint of tx, recording its outcome in
// req.err; if req fails, its savepoint is rolled back and the rest of the
// transaction is kept. An error returned means the transaction itself
// failed and must be rolled back.
func (s *Store) applyOne(ctx context.Context, tx *wtx, req *request) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT write`); err != nil {
		return err
	}
	req.err = req.apply(ctx, tx)
	if req.err != nil {
		_, err := tx.ExecContext(ctx, `ROLLBACK TO write; RELEASE write`)
		return err
	}
	_, err := tx.ExecContext(ctx, `RELEASE write`)
	return err
}

// migrate applies the embedded migrations in name order, each in its own
// transaction with its schema_migrations row, skipping those already applied.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name       TEXT PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.migrateFile(ctx, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (s *Store) migrateFile(ctx context.Context, name string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var applied int
	base := strings.TrimPrefix(name, "migrations/")
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, base).Scan(&applied); err != nil {
		return err
	}
	if applied > 0 {
		return nil
	}
	ddl, err := fs.ReadFile(migrations, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(ddl)); err != nil {
		return err
	}
	if base == owedMigration {
		if err := rebuildOwed(ctx, tx); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, base, s.now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}

// Reserve records p in state verified and claims its ID, the journal's one
// unique key and its replay guard (a rail of single-use credentials derives
// the ID from the replay key; a bearer charge's ID is fresh), and, when p
// has one, its idempotency key (Payer, IdempotencyKey). On success it sets p.State, p.Created, p.Updated, p.Mode
// ("" is recorded as coinop.ModeSync) and p.Served (zero: not served) to
// what was recorded. p.Credential is not journaled; p.Payload is, as given.
// A Mode other than "", sync and async is refused with KindInternal.
//
// If the ID is already journaled in any state but released, Reserve
// returns a *coinop.Error of kind KindReplayed (reason "payment_replayed") and changes nothing; of many concurrent calls
// for one key exactly one succeeds. A payment journaled as released under
// the same ID (its upstream failed and nothing was charged) is reserved
// again: it goes back to verified, keeps its Created time, takes p's other
// fields (Mode, Payload and IdempotencyKey included) and is no longer
// served. An ID already journaled under a different key is a fault of the
// caller (KindInternal).
//
// If another payment that is not released holds the idempotency key,
// Reserve returns KindReplayed with reason "idempotency_key_used" and changes
// nothing; of many concurrent calls with one payer and key exactly one
// succeeds. A released payment gives its key up: it keeps it in its row, but
// another payment may take it, and ByIdempotencyKey no longer finds it.
// A replayed payment is reported as such even when its idempotency key is
// also taken.
func (s *Store) Reserve(ctx context.Context, p *coinop.Payment) error {
	if err := store.CheckReserve("sqlite", p); err != nil {
		return err
	}
	mode := store.ModeOf(p)
	var created, now int64
	err := s.write(ctx, "reserve", func(ctx context.Context, tx *wtx) error {
		var err error
		at := s.timestamp()
		created, now, err = reserve(ctx, tx, p, mode, at, s.leaseAt(coinop.StateVerified, at))
		return err
	})
	if err != nil {
		return err
	}
	p.State = coinop.StateVerified
	p.Created = fromNanos(created)
	p.Updated = fromNanos(now)
	p.Mode = mode
	p.Served = time.Time{}
	return nil
}

// reserve is Reserve's read-check-write in tx, at time now. It returns the
// payment's recorded creation time and now.
func reserve(ctx context.Context, tx *wtx, p *coinop.Payment, mode string, now int64, l lease) (created, updated int64, err error) {
	details := store.EncodeDetails(p.Details)
	var (
		id    string
		state coinop.State
	)
	var same bool
	err = tx.QueryRowContext(ctx, `SELECT id, state, created_at,
			network = ? AND asset = ? AND payer = ? AND replay_key = ? AND bearer = ?
		FROM payments WHERE id = ?`,
		p.Network, p.Asset, p.Payer, p.ReplayKey, p.Bearer, p.ID).Scan(&id, &state, &created, &same)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := checkIdempotencyKey(ctx, tx, p); err != nil {
			return 0, 0, err
		}
		created = now
		if _, err := tx.ExecContext(ctx, `INSERT INTO payments
			(id, rail, route, network, asset, payer, pay_to, replay_key, bearer, amount, resource, state, reference, details,
			 reason, created_at, updated_at, mode, payload, idempotency_key, served_at, lease_owner, lease_until)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), NULL, ?, ?)`,
			p.ID, p.Rail, p.Route, p.Network, p.Asset, p.Payer, p.PayTo, p.ReplayKey, p.Bearer, p.Amount.String(), p.Resource,
			coinop.StateVerified, p.Reference, details, p.Reason, created, now,
			mode, p.Payload, p.IdempotencyKey, l.owner, l.until); err != nil {
			return 0, 0, unavailable("reserve", err)
		}
		state = ""
	case err != nil:
		return 0, 0, unavailable("reserve", err)
	case !same:
		return 0, 0, coinop.Wrap(coinop.KindInternal, "internal_error",
			fmt.Errorf("sqlite: reserve: payment %s is journaled under another replay key", p.ID), "internal error")
	case state != coinop.StateReleased:
		return 0, 0, coinop.Wrap(coinop.KindReplayed, "payment_replayed",
			fmt.Errorf("replay key held by payment %s in state %s", id, state), "this payment was already used")
	default:
		if err := checkIdempotencyKey(ctx, tx, p); err != nil {
			return 0, 0, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE payments
			SET rail = ?, route = ?, pay_to = ?, amount = ?, resource = ?, state = ?, reference = ?, details = ?, reason = ?,
				updated_at = ?, mode = ?, payload = ?, idempotency_key = NULLIF(?, ''), served_at = NULL, prepared = '',
				lease_owner = ?, lease_until = ?
			WHERE id = ?`,
			p.Rail, p.Route, p.PayTo, p.Amount.String(), p.Resource, coinop.StateVerified, p.Reference, details, p.Reason, now,
			mode, p.Payload, p.IdempotencyKey, l.owner, l.until, p.ID); err != nil {
			return 0, 0, unavailable("reserve", err)
		}
	}
	if err := addEvent(ctx, tx, p.ID, state, coinop.StateVerified, p.Reference, p.Reason, now); err != nil {
		return 0, 0, unavailable("reserve", err)
	}
	return created, now, nil
}

// checkIdempotencyKey refuses p if another payment that is not released
// holds its idempotency key. The transaction holds the write lock, so the
// key cannot be taken between this check and p's write; the unique index
// payments_idempotency_key stands behind it all the same.
func checkIdempotencyKey(ctx context.Context, tx *wtx, p *coinop.Payment) error {
	if p.IdempotencyKey == "" {
		return nil
	}
	var holder string
	err := tx.QueryRowContext(ctx, `SELECT id FROM payments
		WHERE payer = ? AND idempotency_key = ? AND state <> 'released'`,
		p.Payer, p.IdempotencyKey).Scan(&holder)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return unavailable("reserve", err)
	}
	return coinop.Wrap(coinop.KindReplayed, "idempotency_key_used",
		fmt.Errorf("idempotency key held by payment %s", holder), "another payment with this idempotency key exists")
}

// Transition moves payment id from state from to state to, in one durable
// transaction with its event. A non-empty tx or reason replaces the stored
// one; an empty one keeps it.
//
// It is a compare-and-set: if the payment is not in state from, it returns a
// *coinop.Error of kind KindInFlight (reason "payment_state_conflict") and
// changes nothing, so of concurrent calls with the same from exactly one
// succeeds. An unknown id yields an error wrapping store.ErrNotFound. A
// transition outside verified→{settling, released, failed},
// settling→{settled, failed, settling} is refused with KindInternal before
// the journal is read.
func (s *Store) Transition(ctx context.Context, id string, from, to coinop.State, txHash, reason string) error {
	if !store.Legal(from, to) {
		return coinop.Wrap(coinop.KindInternal, "internal_error",
			fmt.Errorf("sqlite: transition %s: illegal transition %q → %q", id, from, to), "internal error")
	}
	return s.write(ctx, "transition", func(ctx context.Context, tx *wtx) error {
		now := s.timestamp()
		return transition(ctx, tx, id, from, to, txHash, reason, now, s.leaseAt(to, now))
	})
}

// transition is Transition's compare-and-set in tx, at time now.
func transition(ctx context.Context, tx *wtx, id string, from, to coinop.State, txHash, reason string, now int64, l lease) error {
	res, err := tx.ExecContext(ctx, `UPDATE payments
		SET state = ?,
			reference = CASE WHEN ? = '' THEN reference ELSE ? END,
			reason = CASE WHEN ? = '' THEN reason ELSE ? END,
			updated_at = ?, lease_owner = ?, lease_until = ?
		WHERE id = ? AND state = ?`,
		to, txHash, txHash, reason, reason, now, l.owner, l.until, id, from)
	if err != nil {
		return unavailable("transition", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return unavailable("transition", err)
	}
	if n == 0 {
		var current coinop.State
		err := tx.QueryRowContext(ctx, `SELECT state FROM payments WHERE id = ?`, id).Scan(&current)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: transition %s: %w", id, store.ErrNotFound)
		case err != nil:
			return unavailable("transition", err)
		}
		return coinop.Wrap(coinop.KindInFlight, "payment_state_conflict",
			fmt.Errorf("payment %s is %s, not %s", id, current, from),
			"this payment is being processed by another request")
	}
	if (from == coinop.StateSettling) != (to == coinop.StateSettling) {
		if err := owedMoves(ctx, tx, id, to == coinop.StateSettling); err != nil {
			return err
		}
	}
	if err := addEvent(ctx, tx, id, from, to, txHash, reason, now); err != nil {
		return unavailable("transition", err)
	}
	return nil
}

// RecordTx journals the settlement transaction of payment id, which must be
// settling: its hash tx and its signed bytes raw (0x-prefixed hex), in one
// durable transaction with a settling→settling event carrying tx. It is
// called after the transaction is signed and before it is first broadcast,
// so that whatever happens next, the exact bytes can be looked up by hash and
// broadcast again; a transaction signed anew could spend the settlement
// key's next nonce while the first one may still land.
//
// Like Transition it is a compare-and-set: a payment that is not settling is
// KindInFlight ("payment_state_conflict"), an unknown id wraps
// store.ErrNotFound, and an empty tx or raw is refused with KindInternal.
func (s *Store) RecordTx(ctx context.Context, id, txHash, raw string) error {
	if err := store.CheckRecordTx("sqlite", id, txHash, raw); err != nil {
		return err
	}
	return s.write(ctx, "record tx", func(ctx context.Context, tx *wtx) error {
		return recordTx(ctx, tx, id, txHash, raw, s.timestamp(), s)
	})
}

// recordTx is RecordTx's compare-and-set in tx, at time now.
func recordTx(ctx context.Context, tx *wtx, id, txHash, raw string, now int64, s *Store) error {
	if _, err := tx.ExecContext(ctx, `UPDATE payments SET prepared = ? WHERE id = ? AND state = ?`,
		raw, id, coinop.StateSettling); err != nil {
		return unavailable("record tx", err)
	}
	return transition(ctx, tx, id, coinop.StateSettling, coinop.StateSettling, txHash, "", now, s.leaseAt(coinop.StateSettling, now))
}

// OweWithin moves verified payment id to settling, in one durable
// transaction with its verified→settling event, and decides there the mode
// it is owed in: async (its response may leave before it settles) when the
// amounts its payer owes asynchronously on its network and asset, plus its
// own amount, stay within limit; sync otherwise, and always when limit is
// nil. It reports whether it chose async. Like Transition it is a
// compare-and-set: a payment that is not verified is KindInFlight
// ("payment_state_conflict") and an unknown id wraps store.ErrNotFound.
//
// What a payer owes asynchronously is the sum, exact, of its payments in
// state settling and mode async: served, or about to be, and not yet paid.
// A verified payment owes nothing yet (its response is held until it is
// owed); one settled, failed or released owes nothing more. A settling
// payment whose transaction is pending or was never sent still owes: it
// can revert, and counting it until recovery finishes it keeps a payer who
// keeps settlements pending from a fresh cap each time.
//
// The sum and the move are one write of the single writer, and SQLite
// takes its write lock at BEGIN (_txlock=immediate), so two stores on one
// file, in one process or two, decide one payer's cap one at a time.
func (s *Store) OweWithin(ctx context.Context, id string, limit *big.Int) (async bool, err error) {
	return s.owe(ctx, id, limit, false)
}

// OweServed is OweWithin that, when it owes payment id async, also marks
// it served (as MarkServed does) in the same durable write: an async
// payment's response leaves as soon as it is owed.
func (s *Store) OweServed(ctx context.Context, id string, limit *big.Int) (async bool, err error) {
	return s.owe(ctx, id, limit, true)
}

func (s *Store) owe(ctx context.Context, id string, limit *big.Int, serve bool) (async bool, err error) {
	err = s.write(ctx, "owe", func(ctx context.Context, tx *wtx) error {
		async = false
		mode := coinop.ModeSync
		if limit != nil {
			var network, asset, payer, amount string
			err := tx.QueryRowContext(ctx, `SELECT network, asset, payer, amount FROM payments WHERE id = ?`, id).
				Scan(&network, &asset, &payer, &amount)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("sqlite: owe %s: %w", id, store.ErrNotFound)
			case err != nil:
				return unavailable("owe", err)
			}
			total, ok := new(big.Int).SetString(amount, 10)
			if !ok {
				return unavailable("owe", fmt.Errorf("payment %s: amount %q is not an integer", id, amount))
			}
			owed, err := owedBy(ctx, tx, network, asset, payer)
			if err != nil {
				return err
			}
			if owed.Add(owed, total).Cmp(limit) <= 0 {
				mode = coinop.ModeAsync
			}
		}
		// The transition to settling adds an async payment to its
		// payer's running total (owedMoves).
		if _, err := tx.ExecContext(ctx, `UPDATE payments SET mode = ? WHERE id = ? AND state = 'verified'`, mode, id); err != nil {
			return unavailable("owe", err)
		}
		now := s.timestamp()
		if err := transition(ctx, tx, id, coinop.StateVerified, coinop.StateSettling, "", "", now, s.leaseAt(coinop.StateSettling, now)); err != nil {
			return err
		}
		async = mode == coinop.ModeAsync
		if async && serve {
			return markServed(ctx, tx, id, now, s.leaseAt(coinop.StateSettling, now))
		}
		return nil
	})
	return async && err == nil, err
}

// owedMigration is the migration that creates async_owed; its Go step
// (rebuildOwed) fills the table from the payments.
const owedMigration = "0006_async_owed.sql"

// querier is what the owed-total statements need of a transaction: the
// writer's (*wtx), or a migration's (*sql.Tx).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// owedBy reads what payer owes asynchronously on network and asset (see
// OweWithin): its running total in async_owed, zero when it has no row.
func owedBy(ctx context.Context, q querier, network, asset, payer string) (*big.Int, error) {
	var a string
	err := q.QueryRowContext(ctx, `SELECT amount FROM async_owed WHERE network = ? AND asset = ? AND payer = ?`,
		network, asset, payer).Scan(&a)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return new(big.Int), nil
	case err != nil:
		return nil, unavailable("owe", err)
	}
	n, ok := new(big.Int).SetString(a, 10)
	if !ok {
		return nil, unavailable("owe", fmt.Errorf("async_owed: amount %q is not an integer", a))
	}
	return n, nil
}

// setOwed writes payer's running total; a total of zero or less removes
// the row.
func setOwed(ctx context.Context, q querier, network, asset, payer string, total *big.Int) error {
	var err error
	if total.Sign() <= 0 {
		_, err = q.ExecContext(ctx, `DELETE FROM async_owed WHERE network = ? AND asset = ? AND payer = ?`, network, asset, payer)
	} else {
		_, err = q.ExecContext(ctx, `INSERT INTO async_owed (network, asset, payer, amount) VALUES (?, ?, ?, ?)
			ON CONFLICT (network, asset, payer) DO UPDATE SET amount = excluded.amount`,
			network, asset, payer, total.String())
	}
	if err != nil {
		return unavailable("owe", err)
	}
	return nil
}

// owedMoves keeps payment id's payer's running total when the payment has
// just entered settling (in) or left it: an async payment's amount is
// added, or taken off. A total that would fall below zero is removed: it
// can only be that low if the table lost a write, and an owed amount is
// never negative.
func owedMoves(ctx context.Context, q querier, id string, in bool) error {
	var mode, network, asset, payer, amount string
	if err := q.QueryRowContext(ctx, `SELECT mode, network, asset, payer, amount FROM payments WHERE id = ?`, id).
		Scan(&mode, &network, &asset, &payer, &amount); err != nil {
		return unavailable("transition", err)
	}
	if mode != coinop.ModeAsync {
		return nil
	}
	a, ok := new(big.Int).SetString(amount, 10)
	if !ok {
		return unavailable("transition", fmt.Errorf("payment %s: amount %q is not an integer", id, amount))
	}
	owed, err := owedBy(ctx, q, network, asset, payer)
	if err != nil {
		return err
	}
	if in {
		return setOwed(ctx, q, network, asset, payer, owed.Add(owed, a))
	}
	return setOwed(ctx, q, network, asset, payer, owed.Sub(owed, a))
}

// rebuildOwed fills async_owed from the payments settling in mode async,
// summed exactly per network, asset and payer.
func rebuildOwed(ctx context.Context, q querier) error {
	sums, err := sumOwed(ctx, q)
	if err != nil {
		return err
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM async_owed`); err != nil {
		return err
	}
	for k, sum := range sums {
		if err := setOwed(ctx, q, k[0], k[1], k[2], sum); err != nil {
			return err
		}
	}
	return nil
}

// sumOwed sums, exactly, what every payer owes asynchronously, from the
// payments themselves (the payments_async_owed index): keyed by network,
// asset and payer.
func sumOwed(ctx context.Context, q querier) (map[[3]string]*big.Int, error) {
	rows, err := q.QueryContext(ctx, `SELECT network, asset, payer, amount FROM payments
		WHERE state = 'settling' AND mode = 'async'`)
	if err != nil {
		return nil, unavailable("owe", err)
	}
	defer rows.Close()
	sums := map[[3]string]*big.Int{}
	for rows.Next() {
		var k [3]string
		var a string
		if err := rows.Scan(&k[0], &k[1], &k[2], &a); err != nil {
			return nil, unavailable("owe", err)
		}
		n, ok := new(big.Int).SetString(a, 10)
		if !ok {
			return nil, unavailable("owe", fmt.Errorf("amount %q is not an integer", a))
		}
		if sums[k] == nil {
			sums[k] = new(big.Int)
		}
		sums[k].Add(sums[k], n)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("owe", err)
	}
	return sums, nil
}

// servable reports whether a payment's response may be served in state st:
// once verified and reserved, and for as long as it is not known to have
// failed or been released.
func servable(st coinop.State) bool {
	return st == coinop.StateVerified || st == coinop.StateSettling || st == coinop.StateSettled
}

// MarkServed records that the paid response of payment id was released to
// the client, at the store's clock, in one durable transaction with an event
// whose From and To are the payment's state and whose Reason is
// store.ReasonServed. It also sets the payment's Updated time.
//
// A response is served at most once: MarkServed is a compare-and-set on the
// payment not being served yet, and if it is, returns a *coinop.Error of
// kind KindReplayed (reason "payment_replayed") and changes nothing, so of
// concurrent calls for one payment exactly one succeeds. A payment that is
// not served yet may be marked only while verified, settling or settled;
// in any other state MarkServed is refused with KindInternal. An unknown id
// yields an error wrapping store.ErrNotFound.
func (s *Store) MarkServed(ctx context.Context, id string) error {
	return s.write(ctx, "mark served", func(ctx context.Context, tx *wtx) error {
		now := s.timestamp()
		return markServed(ctx, tx, id, now, s.leaseAt(coinop.StateSettling, now))
	})
}

// markServed is MarkServed's compare-and-set in tx, at time now.
func markServed(ctx context.Context, tx *wtx, id string, now int64, l lease) error {
	var (
		state  coinop.State
		served sql.NullInt64
	)
	// The transaction holds the write lock and the writer applies one
	// write at a time: nothing changes the payment between this read and
	// the update.
	err := tx.QueryRowContext(ctx, `SELECT state, served_at FROM payments WHERE id = ?`, id).Scan(&state, &served)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: mark served %s: %w", id, store.ErrNotFound)
	case err != nil:
		return unavailable("mark served", err)
	case served.Valid:
		return coinop.Wrap(coinop.KindReplayed, "payment_replayed",
			fmt.Errorf("payment %s was served at %v", id, fromNanos(served.Int64)),
			"this payment's response was already served")
	case !servable(state):
		return coinop.Wrap(coinop.KindInternal, "internal_error",
			fmt.Errorf("sqlite: mark served %s: payment is %s", id, state), "internal error")
	}
	if _, err := tx.ExecContext(ctx, `UPDATE payments SET served_at = ?, updated_at = ?,
		lease_owner = CASE WHEN state IN ('verified', 'settling') THEN ? ELSE '' END,
		lease_until = CASE WHEN state IN ('verified', 'settling') THEN ? ELSE 0 END
		WHERE id = ?`, now, now, l.owner, l.until, id); err != nil {
		return unavailable("mark served", err)
	}
	if err := addEvent(ctx, tx, id, state, state, "", store.ReasonServed, now); err != nil {
		return unavailable("mark served", err)
	}
	return nil
}

func addEvent(ctx context.Context, tx *wtx, id string, from, to coinop.State, txHash, reason string, at int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO payment_events (payment_id, from_state, to_state, reference, reason, at)
		VALUES (?, ?, ?, ?, ?, ?)`, id, from, to, txHash, reason, at)
	return err
}

const paymentColumns = `id, rail, route, network, asset, payer, pay_to, replay_key, bearer, amount, resource, state, reference, reason,
	created_at, updated_at, mode, payload, COALESCE(idempotency_key, ''), served_at, prepared, details`

// Get returns the journaled payment id, or an error wrapping
// store.ErrNotFound. The result is the caller's to keep; its Credential is nil.
func (s *Store) Get(ctx context.Context, id string) (*coinop.Payment, error) {
	ps, err := s.query(ctx, "get", `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("sqlite: get %s: %w", id, store.ErrNotFound)
	}
	return ps[0], nil
}

// ByIdempotencyKey returns the payment by payer that holds idempotency key
// key: the one that is not released, if any. Otherwise, and for key "", it
// returns an error wrapping store.ErrNotFound. The result is the caller's to
// keep; its Credential is nil.
func (s *Store) ByIdempotencyKey(ctx context.Context, payer, key string) (*coinop.Payment, error) {
	if key != "" {
		// The predicate repeats the index's, so that the index is used.
		ps, err := s.query(ctx, "by idempotency key", `SELECT `+paymentColumns+` FROM payments
			WHERE payer = ? AND idempotency_key = ? AND state <> 'released'`, payer, key)
		if err != nil {
			return nil, err
		}
		if len(ps) > 0 {
			return ps[0], nil
		}
	}
	return nil, fmt.Errorf("sqlite: payment by %s with idempotency key %q: %w", payer, key, store.ErrNotFound)
}

// Unfinished returns the payments in state verified or settling, oldest
// (by Created, then ID) first: what crash recovery must finish or release.
func (s *Store) Unfinished(ctx context.Context) ([]*coinop.Payment, error) {
	return s.query(ctx, "unfinished", `SELECT `+paymentColumns+` FROM payments
		WHERE state IN (?, ?) ORDER BY created_at, id`,
		coinop.StateVerified, coinop.StateSettling)
}

// List returns up to limit payments in state state, newest (by Created, then
// ID) first. state "" means every state; limit <= 0 means no limit.
func (s *Store) List(ctx context.Context, state coinop.State, limit int) ([]*coinop.Payment, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	if state == "" {
		return s.query(ctx, "list", `SELECT `+paymentColumns+` FROM payments
			ORDER BY created_at DESC, id DESC LIMIT ?`, limit)
	}
	return s.query(ctx, "list", `SELECT `+paymentColumns+` FROM payments
		WHERE state = ? ORDER BY created_at DESC, id DESC LIMIT ?`, state, limit)
}

// ListPage returns one page of the payments f selects, by (Created, ID)
// in f's order, for operators; see store.Filter and store.Page. A
// malformed cursor is KindMalformed.
func (s *Store) ListPage(ctx context.Context, f store.Filter) (store.Page, error) {
	l, err := store.Plan(f, func(int) string { return "?" }, func(t time.Time) any { return t.UnixNano() })
	if err != nil {
		return store.Page{}, err
	}
	ps, err := s.query(ctx, "list page", `SELECT `+paymentColumns+` FROM payments`+l.Where+l.Order+
		` LIMIT ?`, append(l.Args, l.Limit)...)
	if err != nil {
		return store.Page{}, err
	}
	return l.Paginate(ps), nil
}

func (s *Store) query(ctx context.Context, op, query string, args ...any) ([]*coinop.Payment, error) {
	rows, err := s.rs.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, unavailable(op, err)
	}
	defer rows.Close()
	var ps []*coinop.Payment
	for rows.Next() {
		var (
			p                coinop.Payment
			amount           string
			created, updated int64
			served           sql.NullInt64
			details          string
		)
		if err := rows.Scan(&p.ID, &p.Rail, &p.Route, &p.Network, &p.Asset, &p.Payer, &p.PayTo, &p.ReplayKey, &p.Bearer,
			&amount, &p.Resource, &p.State, &p.Reference, &p.Reason, &created, &updated,
			&p.Mode, &p.Payload, &p.IdempotencyKey, &served, &p.Prepared, &details); err != nil {
			return nil, unavailable(op, err)
		}
		var err error
		if p.Details, err = store.DecodeDetails(details); err != nil {
			return nil, coinop.Wrap(coinop.KindInternal, "internal_error",
				fmt.Errorf("sqlite: %s: payment %s: %w", op, p.ID, err), "internal error")
		}
		var ok bool
		if p.Amount, ok = new(big.Int).SetString(amount, 10); !ok {
			return nil, coinop.Wrap(coinop.KindInternal, "internal_error",
				fmt.Errorf("sqlite: %s: payment %s has amount %q", op, p.ID, amount), "internal error")
		}
		p.Created, p.Updated = fromNanos(created), fromNanos(updated)
		if served.Valid {
			p.Served = fromNanos(served.Int64)
		}
		ps = append(ps, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(op, err)
	}
	return ps, nil
}

// Events returns the history of payment id, oldest first, or an error
// wrapping store.ErrNotFound.
func (s *Store) Events(ctx context.Context, id string) ([]store.Event, error) {
	rows, err := s.rs.QueryContext(ctx, `SELECT from_state, to_state, reference, reason, at
		FROM payment_events WHERE payment_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, unavailable("events", err)
	}
	defer rows.Close()
	var events []store.Event
	for rows.Next() {
		e := store.Event{PaymentID: id}
		var at int64
		if err := rows.Scan(&e.From, &e.To, &e.Reference, &e.Reason, &at); err != nil {
			return nil, unavailable("events", err)
		}
		e.At = fromNanos(at)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("events", err)
	}
	if len(events) == 0 {
		// Every journaled payment has at least its reservation event.
		return nil, fmt.Errorf("sqlite: events %s: %w", id, store.ErrNotFound)
	}
	return events, nil
}

// Ping reports whether the journal can be read. An error is a
// *coinop.Error of kind KindUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.rs.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Atomically runs fn as one write of the group-committing writer: inside
// its own savepoint, after and before the other writes of its group, in the
// transaction that holds SQLite's write lock. Its journal writes and its
// statements on a rail's tables commit together, with the group, or, if fn
// or any Tx method it called fails, are rolled back to the savepoint
// together while the rest of the group commits (see store.Tx). fn runs on
// the writer goroutine: it must not call the Store's own methods (they
// would wait for the writer), only tx's, and it holds up the other writes
// of its group while it runs. As with other writes, a context that ends
// before the writer takes fn means fn never runs.
func (s *Store) Atomically(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.write(ctx, "atomically", func(ctx context.Context, tx *wtx) error {
		t := &txn{s: s, tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		return t.err
	})
}

// txn is a store.Tx inside the writer's transaction; it remembers the first
// error, which dooms fn's savepoint. Its statements use the writer's
// context, like every write once begun.
type txn struct {
	s   *Store
	tx  *wtx
	err error
}

func (t *txn) doom(err error) error {
	if err != nil && t.err == nil {
		t.err = err
	}
	return err
}

func (t *txn) Reserve(_ context.Context, p *coinop.Payment) error {
	if err := store.CheckReserve("sqlite", p); err != nil {
		return t.doom(err)
	}
	mode := store.ModeOf(p)
	at := t.s.timestamp()
	created, now, err := reserve(context.Background(), t.tx, p, mode, at, t.s.leaseAt(coinop.StateVerified, at))
	if err != nil {
		return t.doom(err)
	}
	p.State, p.Created, p.Updated, p.Mode, p.Served = coinop.StateVerified, fromNanos(created), fromNanos(now), mode, time.Time{}
	return nil
}

func (t *txn) Transition(_ context.Context, id string, from, to coinop.State, ref, reason string) error {
	if !store.Legal(from, to) {
		return t.doom(coinop.Wrap(coinop.KindInternal, "internal_error",
			fmt.Errorf("sqlite: transition %s: illegal transition %q → %q", id, from, to), "internal error"))
	}
	now := t.s.timestamp()
	return t.doom(transition(context.Background(), t.tx, id, from, to, ref, reason, now, t.s.leaseAt(to, now)))
}

func (t *txn) MarkServed(_ context.Context, id string) error {
	now := t.s.timestamp()
	return t.doom(markServed(context.Background(), t.tx, id, now, t.s.leaseAt(coinop.StateSettling, now)))
}

func (t *txn) RecordTx(_ context.Context, id, ref, prepared string) error {
	if err := store.CheckRecordTx("sqlite", id, ref, prepared); err != nil {
		return t.doom(err)
	}
	return t.doom(recordTx(context.Background(), t.tx, id, ref, prepared, t.s.timestamp(), t.s))
}

func (t *txn) Exec(_ context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(context.Background(), query, args...)
	if err != nil {
		return 0, t.doom(unavailable("exec", err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, t.doom(unavailable("exec", err))
	}
	return n, nil
}

func (t *txn) QueryRow(_ context.Context, query string, args []any, dest ...any) error {
	err := t.tx.QueryRowContext(context.Background(), query, args...).Scan(dest...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return t.doom(fmt.Errorf("sqlite: query row: %w", store.ErrNotFound))
	case err != nil:
		return t.doom(unavailable("query row", err))
	}
	return nil
}

// Migrate applies a rail's own migration ddl once per name and records it
// in schema_migrations (under store.RailMigration(name)) in the same write,
// so that a rail can own tables beside the journal's.
func (s *Store) Migrate(ctx context.Context, name, ddl string) error {
	return s.write(ctx, "migrate "+name, func(ctx context.Context, tx *wtx) error {
		var applied int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, store.RailMigration(name)).Scan(&applied); err != nil {
			return unavailable("migrate "+name, err)
		}
		if applied > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, ddl); err != nil {
			return coinop.Wrap(coinop.KindInternal, "internal_error", fmt.Errorf("sqlite: migrate %s: %w", name, err), "internal error")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, store.RailMigration(name), s.timestamp()); err != nil {
			return unavailable("migrate "+name, err)
		}
		return nil
	})
}

// A lease is what a write stores in lease_owner and lease_until.
type lease struct {
	owner string
	until int64 // unix nanoseconds; 0: none
}

// leaseAt is the lease a write at now leaves on a payment it moves to
// state to: this store's for Lease, or none once the payment is final.
func (s *Store) leaseAt(to coinop.State, now int64) lease {
	if to.Final() {
		return lease{}
	}
	return lease{s.owner, now + s.lease.Nanoseconds()}
}

// Owner is the name this store takes leases under.
func (s *Store) Owner() string { return s.owner }

// Claim takes payment id's lease for this store, for Lease, if the payment
// is not final and its lease is expired, absent (payments journaled before
// leases existed have none) or already this store's; it returns the
// payment as journaled once claimed. Recovery claims a payment before it
// acts on it, so that an instance never finishes a payment another live
// instance is still working on: that one keeps its lease fresh with every
// write and with Renew. Otherwise Claim returns KindInFlight
// ("payment_state_conflict") and changes nothing; an unknown id wraps
// store.ErrNotFound. Of concurrent claims, exactly one succeeds.
func (s *Store) Claim(ctx context.Context, id string) (*coinop.Payment, error) {
	err := s.write(ctx, "claim", func(ctx context.Context, tx *wtx) error {
		now := s.timestamp()
		l := s.leaseAt(coinop.StateVerified, now)
		res, err := tx.ExecContext(ctx, `UPDATE payments SET lease_owner = ?, lease_until = ?
			WHERE id = ? AND state IN ('verified', 'settling') AND (lease_owner IN ('', ?) OR lease_until <= ?)`,
			l.owner, l.until, id, s.owner, now)
		if err != nil {
			return unavailable("claim", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var state coinop.State
		var owner string
		err = tx.QueryRowContext(ctx, `SELECT state, lease_owner FROM payments WHERE id = ?`, id).Scan(&state, &owner)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: claim %s: %w", id, store.ErrNotFound)
		case err != nil:
			return unavailable("claim", err)
		}
		return store.NotClaimed(id, state, owner)
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// Renew extends this store's leases on payments ids by Lease, from now:
// a settlement waiting for its network calls it so that no other instance
// claims the payment meanwhile. Payments that are final, unknown or leased
// by another store are left as they are.
func (s *Store) Renew(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.write(ctx, "renew", func(ctx context.Context, tx *wtx) error {
		l := s.leaseAt(coinop.StateVerified, s.timestamp())
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE payments SET lease_until = ?
				WHERE id = ? AND lease_owner = ? AND state IN ('verified', 'settling')`, l.until, id, s.owner); err != nil {
				return unavailable("renew", err)
			}
		}
		return nil
	})
}

// timestamp reads the clock as stored: unix nanoseconds.
func (s *Store) timestamp() int64 { return s.now().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func unavailable(op string, err error) error {
	return coinop.Wrap(coinop.KindUnavailable, "store_unavailable",
		fmt.Errorf("sqlite: %s: %w", op, err), "the payment journal is unavailable; try again later")
}
