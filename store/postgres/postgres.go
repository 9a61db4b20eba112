// Package postgres is the shared payments journal: coinop's record of every
// payment it has accepted, kept in PostgreSQL through pgx's native API so
// that several gateway instances can serve one set of payments.
//
// The journal is written before the engine acts on a payment, so every write
// is one transaction committed with synchronous_commit on (the WAL is
// flushed) before the method returns. Times are stored as timestamptz, which
// keeps microseconds: the store's clock is truncated to the microsecond
// before it is stored, and times are read back in UTC. Amounts are numeric
// integers of atomic units.
//
// Every write is a single statement (an insert that may conflict, or a
// compare-and-set on a payment's state or served time) whose outcome
// PostgreSQL decides under its unique indexes and row locks, so the
// guarantees of Reserve, Transition and MarkServed hold across any number of
// processes sharing the database.
package postgres

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the pg_advisory_xact_lock key that serializes
// migrations. Advisory locks are database-wide, so instances migrating
// different schemas of one database also wait for each other, briefly.
const migrationLock int64 = 0x636f696e6f70 // "coinop"

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Now is the store's clock, read for Created, Updated and event times.
	// It is truncated to the microsecond, PostgreSQL's precision.
	// If nil, the default is time.Now.
	Now func() time.Time
	// Owner names this store in the leases it takes (see Claim): instances
	// sharing a database must have distinct owners. If "", the default is
	// a random name per OpenWith, read from Rand.
	Owner string
	// Rand is the randomness of the default Owner. If nil, the default is
	// crypto/rand.Reader.
	Rand io.Reader
	// Lease is how long a write keeps a payment this store's (see Claim).
	// If zero, the default is store.DefaultLease.
	Lease time.Duration
}

// Store is a payments journal in a PostgreSQL database. Its methods are safe
// for concurrent use, also by other processes using the same database; every
// method that writes returns only after its transaction is durable, and a
// method that returns an error has changed nothing.
//
// Errors caused by the database or the connection to it (server down, a
// closed store, a cancelled context) are *coinop.Error of kind
// KindUnavailable wrapping the cause: nothing paid-for may be served while
// the journal cannot record it. A value the database refuses (a data
// exception or a violated constraint, which retrying cannot fix) is
// KindInternal.
type Store struct {
	pool  *pgxpool.Pool
	q     querier // pool, or the transaction of Atomically
	now   func() time.Time
	owner string
	lease time.Duration
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as pgx reads it, including pool settings such as pool_max_conns)
// with default Options and brings the schema up to date. Tables live in the
// connection's current schema, so a search_path parameter in dsn selects
// where the journal is kept.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options. Any number of instances may open the same
// database at once: migrations are applied exactly once, by whichever takes
// the migration lock first.
//
// The journal's durability depends on synchronous_commit: Open sets it to
// on unless dsn chooses a value, and refuses "off".
func OpenWith(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	params := cfg.ConnConfig.RuntimeParams
	switch params["synchronous_commit"] {
	case "":
		params["synchronous_commit"] = "on"
	case "off":
		return nil, errors.New("postgres: open: synchronous_commit=off would acknowledge journal writes before they are durable")
	}
	if params["application_name"] == "" {
		params["application_name"] = "coinop"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, q: pool, now: opts.Now, owner: opts.Owner, lease: opts.Lease}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lease <= 0 {
		s.lease = store.DefaultLease
	}
	if s.owner == "" {
		r := opts.Rand
		if r == nil {
			r = rand.Reader
		}
		var b [12]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: open: owner: %w", err)
		}
		s.owner = "postgres:" + hex.EncodeToString(b[:])
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return s, nil
}

// querier is what the journal's statements run on: the pool, or one
// transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Atomically runs fn in one PostgreSQL transaction and commits it if fn
// and every Tx method it called succeeded; otherwise it rolls back and
// returns the error (see store.Tx). The journal writes made through tx keep
// their guarantees: each is still a compare-and-set that PostgreSQL decides
// under its row locks and unique indexes, now committed with the rail's
// statements. Reads outside tx (Get) do not see its writes before commit.
func (s *Store) Atomically(ctx context.Context, fn func(tx store.Tx) error) error {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError("atomically", err)
	}
	defer ptx.Rollback(ctx)
	in := *s
	in.q = ptx
	t := &txn{s: &in}
	if err := fn(t); err != nil {
		return err
	}
	if t.err != nil {
		return t.err
	}
	if err := ptx.Commit(ctx); err != nil {
		return dbError("atomically", err)
	}
	return nil
}

// txn is a store.Tx over a Store bound to one transaction; it remembers
// the first error, which dooms the transaction.
type txn struct {
	s   *Store
	err error
}

func (t *txn) doom(err error) error {
	if err != nil && t.err == nil {
		t.err = err
	}
	return err
}

func (t *txn) Reserve(ctx context.Context, p *coinop.Payment) error {
	return t.doom(t.s.Reserve(ctx, p))
}
func (t *txn) Transition(ctx context.Context, id string, from, to coinop.State, ref, reason string) error {
	return t.doom(t.s.Transition(ctx, id, from, to, ref, reason))
}
func (t *txn) MarkServed(ctx context.Context, id string) error {
	return t.doom(t.s.MarkServed(ctx, id))
}
func (t *txn) RecordTx(ctx context.Context, id, ref, prepared string) error {
	return t.doom(t.s.RecordTx(ctx, id, ref, prepared))
}
func (t *txn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.s.q.Exec(ctx, store.Rebind(query), args...)
	if err != nil {
		return 0, t.doom(dbError("exec", err))
	}
	return tag.RowsAffected(), nil
}
func (t *txn) QueryRow(ctx context.Context, query string, args []any, dest ...any) error {
	err := t.s.q.QueryRow(ctx, store.Rebind(query), args...).Scan(dest...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return t.doom(fmt.Errorf("postgres: query row: %w", store.ErrNotFound))
	case err != nil:
		return t.doom(dbError("query row", err))
	}
	return nil
}

// Migrate applies a rail's own migration ddl once per name, whichever
// instance comes first, and records it in schema_migrations (under
// store.RailMigration(name)) in the same transaction, so that a rail can
// own tables beside the journal's.
func (s *Store) Migrate(ctx context.Context, name, ddl string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", name, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", name, err)
	}
	var applied bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)`, store.RailMigration(name)).Scan(&applied); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", name, err)
	}
	if applied {
		return nil
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)`, store.RailMigration(name), s.timestamp()); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", name, err)
	}
	return nil
}

// Close closes the connections, waiting for methods in progress to finish.
// Every write that returned has already been made durable; the Store must
// not be used after Close.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, in name order, all in one transaction. The transaction
// first takes an advisory lock, so instances starting together queue: the
// first applies the migrations and commits, and the others, each reading
// schema_migrations only once it holds the lock, find nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name       text PRIMARY KEY,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		var applied bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)`, base).Scan(&applied); err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
		if applied {
			continue
		}
		ddl, err := fs.ReadFile(migrations, name)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
		// Without arguments pgx uses the simple protocol, which runs a
		// file of several statements.
		if _, err := tx.Exec(ctx, string(ddl)); err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)`, base, s.timestamp()); err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
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
// for one key, from any number of processes, exactly one succeeds. A payment
// journaled as released under the same ID (its upstream failed and nothing
// was charged) is reserved again: it goes back to verified, keeps its
// Created time, takes p's other fields (Mode, Payload and IdempotencyKey
// included) and is no longer served. An ID already journaled under a
// different key is a fault of the caller (KindInternal).
//
// If another payment that is not released holds the idempotency key,
// Reserve returns KindReplayed with reason "idempotency_key_used" and changes
// nothing; of many concurrent calls with one payer and key, from any number
// of processes, exactly one succeeds. A released payment gives its key up:
// it keeps it in its row, but another payment may take it, and
// ByIdempotencyKey no longer finds it. A replayed payment is reported as
// such even when its idempotency key is also taken.
func (s *Store) Reserve(ctx context.Context, p *coinop.Payment) error {
	if err := store.CheckReserve("postgres", p); err != nil {
		return err
	}
	mode := store.ModeOf(p)
	now := s.timestamp()
	// An attempt that writes nothing names the payment in the way, unless
	// that payment was released in the meantime and so gave its keys up;
	// then the next attempt may succeed. Only a payment being reserved and
	// released over and over, by others, can exhaust the attempts.
	for range reserveAttempts {
		if done, err := s.reserve(ctx, p, mode, now); done || err != nil {
			return err
		}
	}
	return coinop.Wrap(coinop.KindInFlight, "payment_state_conflict",
		fmt.Errorf("postgres: reserve %s: the payment holding its keys kept changing", p.ID),
		"this payment is being processed by another request")
}

const reserveAttempts = 3

// reserve makes one attempt at Reserve. It reports done when p was reserved
// or err says why it cannot be; (false, nil) means try again.
func (s *Store) reserve(ctx context.Context, p *coinop.Payment, mode string, now time.Time) (done bool, err error) {
	details := store.EncodeDetails(p.Details)
	// First, a new key. ON CONFLICT DO NOTHING without a conflict target
	// makes every unique index an arbiter: the ID and the
	// idempotency key alike (the last only for rows its partial index
	// covers). PostgreSQL resolves a conflict with a concurrent, uncommitted
	// insert by waiting for it to end: if it commits, nothing is inserted
	// here; if it aborts, the insert goes ahead. So of concurrent inserts of
	// one key exactly one inserts a row, and the others see a committed row.
	//
	// (ON CONFLICT (replay key) DO UPDATE … WHERE state = 'released' would
	// fold the released case below into this statement, but it leaves the
	// primary key out of the arbiters: now and then, two concurrent inserts
	// of the same ID and key then fail with a unique violation on the ID
	// instead of resolving to one insert and one replay.)
	//
	// The event is written by the same statement, hence in the same
	// transaction, and only when the row was.
	tag, err := s.q.Exec(ctx, `WITH reserved AS (
			INSERT INTO payments
				(id, rail, network, asset, payer, pay_to, replay_key, amount, resource, state, reference, reason, created_at, updated_at,
				 mode, payload, idempotency_key, served_at, route, bearer, details, lease_owner, lease_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, NULLIF($16, ''), NULL, $17, $18, $19,
				$20, $21)
			ON CONFLICT DO NOTHING
			RETURNING id
		)
		INSERT INTO payment_events (payment_id, from_state, to_state, reference, reason, at)
		SELECT id, '', $10, $11, $12, $13 FROM reserved`,
		p.ID, p.Rail, p.Network, p.Asset, p.Payer, p.PayTo, p.ReplayKey, p.Amount.String(), p.Resource,
		string(coinop.StateVerified), p.Reference, p.Reason, now, mode, p.Payload, p.IdempotencyKey,
		p.Route, p.Bearer, details, s.owner, s.until(now))
	if err != nil {
		return true, dbError("reserve", err)
	}
	if tag.RowsAffected() == 1 {
		p.State, p.Created, p.Updated, p.Mode, p.Served = coinop.StateVerified, now, now, mode, time.Time{}
		return true, nil
	}

	// The key or the ID is taken by a committed payment. If it is this very
	// payment, released, take it back with a compare-and-set on its state:
	// the UPDATE locks the row and re-checks state = released on the latest
	// version, so of concurrent retries exactly one moves it to verified and
	// the others, finding it verified, match nothing. Leaving released, the
	// row enters the idempotency key's index: if another payment holds the
	// key, committed or about to be, the statement fails on it.
	var created time.Time
	err = s.q.QueryRow(ctx, `WITH reserved AS (
			UPDATE payments
			SET rail = $2, pay_to = $3, amount = $4, resource = $5, state = $6, reference = $7, reason = $8, updated_at = $9,
				mode = $15, payload = $16, idempotency_key = NULLIF($17, ''), served_at = NULL, prepared = '',
				route = $18, details = $19, lease_owner = $21, lease_until = $22
			WHERE network = $10 AND asset = $11 AND payer = $12 AND replay_key = $13 AND id = $1 AND state = $14
				AND bearer = $20
			RETURNING id, created_at
		), event AS (
			INSERT INTO payment_events (payment_id, from_state, to_state, reference, reason, at)
			SELECT id, $14, $6, $7, $8, $9 FROM reserved
		)
		SELECT created_at FROM reserved`,
		p.ID, p.Rail, p.PayTo, p.Amount.String(), p.Resource, string(coinop.StateVerified), p.Reference, p.Reason, now,
		p.Network, p.Asset, p.Payer, p.ReplayKey, string(coinop.StateReleased),
		mode, p.Payload, p.IdempotencyKey, p.Route, details, p.Bearer, s.owner, s.until(now)).Scan(&created)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		p.State, p.Created, p.Updated, p.Mode, p.Served = coinop.StateVerified, created.UTC(), now, mode, time.Time{}
		return true, nil
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.ConstraintName == idempotencyKeyIndex:
		return true, idempotencyKeyUsed(err)
	case !errors.Is(err, pgx.ErrNoRows):
		return true, dbError("reserve", err)
	}

	// Nothing was written; say why. Journal rows are never deleted, so the
	// row that blocked the insert is still there, though it may have been
	// released since.
	var (
		holder string
		state  coinop.State
		same   bool
	)
	err = s.q.QueryRow(ctx, `SELECT id, state, network = $2 AND asset = $3 AND payer = $4 AND replay_key = $5 AND bearer = $6
		FROM payments WHERE id = $1`,
		p.ID, p.Network, p.Asset, p.Payer, p.ReplayKey, p.Bearer).Scan(&holder, &state, &same)
	switch {
	case err == nil && !same:
		return true, coinop.Wrap(coinop.KindInternal, "internal_error",
			fmt.Errorf("postgres: reserve: payment %s is journaled under another replay key", p.ID), "internal error")
	case err == nil && state == coinop.StateReleased:
		return false, nil // released again since the update above
	case err == nil:
		return true, coinop.Wrap(coinop.KindReplayed, "payment_replayed",
			fmt.Errorf("replay key held by payment %s in state %s", holder, state), "this payment was already used")
	case !errors.Is(err, pgx.ErrNoRows):
		return true, dbError("reserve", err)
	}
	if p.IdempotencyKey == "" {
		return false, nil
	}
	err = s.q.QueryRow(ctx, `SELECT id FROM payments
		WHERE payer = $1 AND idempotency_key = $2 AND state <> 'released'`,
		p.Payer, p.IdempotencyKey).Scan(&holder)
	switch {
	case err == nil:
		return true, idempotencyKeyUsed(fmt.Errorf("idempotency key held by payment %s", holder))
	case !errors.Is(err, pgx.ErrNoRows):
		return true, dbError("reserve", err)
	}
	return false, nil // the holder was released since the insert
}

// idempotencyKeyIndex is the partial unique index on (payer,
// idempotency_key) of the payments that are not released.
const idempotencyKeyIndex = "payments_idempotency_key"

const uniqueViolation = "23505"

func idempotencyKeyUsed(cause error) error {
	return coinop.Wrap(coinop.KindReplayed, "idempotency_key_used", cause,
		"another payment with this idempotency key exists")
}

// Transition moves payment id from state from to state to, in one durable
// transaction with its event. A non-empty tx or reason replaces the stored
// one; an empty one keeps it.
//
// It is a compare-and-set: if the payment is not in state from, it returns a
// *coinop.Error of kind KindInFlight (reason "payment_state_conflict") and
// changes nothing, so of concurrent calls with the same from, from any
// number of processes, exactly one succeeds. An unknown id yields an error
// wrapping store.ErrNotFound. A transition outside verified→{settling,
// released, failed}, settling→{settled, failed, settling} and
// settled→released (a bearer charge given back) is refused with KindInternal
// before the journal is read.
func (s *Store) Transition(ctx context.Context, id string, from, to coinop.State, txHash, reason string) error {
	if !store.Legal(from, to) {
		return coinop.Wrap(coinop.KindInternal, "internal_error",
			fmt.Errorf("postgres: transition %s: illegal transition %q → %q", id, from, to), "internal error")
	}
	now := s.timestamp()
	owner, until := s.owner, s.until(now)
	if to.Final() {
		owner, until = "", nil
	}
	// A concurrent UPDATE of the row makes this one wait, then re-check
	// state = from on the row it left: the loser matches nothing. The event
	// is inserted by the same statement, only for a row that moved.
	tag, err := s.q.Exec(ctx, `WITH moved AS (
			UPDATE payments
			SET state = $3, reference = COALESCE(NULLIF($4, ''), reference), reason = COALESCE(NULLIF($5, ''), reason), updated_at = $6,
				lease_owner = $7, lease_until = $8
			WHERE id = $1 AND state = $2
			RETURNING id
		)
		INSERT INTO payment_events (payment_id, from_state, to_state, reference, reason, at)
		SELECT id, $2, $3, $4, $5, $6 FROM moved`,
		id, string(from), string(to), txHash, reason, now, owner, until)
	if err != nil {
		return dbError("transition", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.conflict(ctx, "transition", id, from)
}

// exposureLock is the first key of the pg_advisory_xact_lock(int, int)
// that serializes OweWithin per payer; the second is the hash of the
// payer's network, asset and address. Two-key advisory locks never
// collide with the one-key migrationLock.
const exposureLock int32 = 0x636f696e // "coin"

// OweWithin moves verified payment id to settling, in one transaction with
// its verified→settling event, and decides there the mode it is owed in:
// async (its response may leave before it settles) when the amounts its
// payer owes asynchronously on its network and asset, plus its own amount,
// stay within limit; sync otherwise, and always when limit is nil. It
// reports whether it chose async. Like Transition it is a compare-and-set:
// a payment that is not verified is KindInFlight ("payment_state_conflict")
// and an unknown id wraps store.ErrNotFound.
//
// What a payer owes asynchronously is the sum, exact (numeric), of its
// payments in state settling and mode async: served, or about to be, and
// not yet paid. A verified payment owes nothing yet (its response is held
// until it is owed); one settled, failed or released owes nothing more. A
// settling payment whose transaction is pending or was never sent still
// owes: it can revert, and counting it until recovery finishes it keeps a
// payer who keeps settlements pending from a fresh cap each time.
//
// Every instance on the database decides one payer's cap one at a time: the
// transaction takes a transaction-scoped advisory lock on the payer's key
// before it sums, and holds it until its move commits. Under READ
// COMMITTED the sum, a statement begun after the lock was granted, sees
// every move committed by the lock's earlier holders. An advisory lock
// needs no row to exist (a row lock on an exposure table would need one
// upserted per payer, and a first owe by two instances at once would race
// to create it) and is gone with the transaction, whatever ends it. Two
// payers whose keys hash alike only wait for each other. Payments that
// leave settling (settled, failed) take no lock: they only lower a sum.
func (s *Store) OweWithin(ctx context.Context, id string, limit *big.Int) (bool, error) {
	return s.owe(ctx, id, limit, false)
}

// OweServed is OweWithin that, when it owes payment id async, also marks
// it served (as MarkServed does) in the same transaction: an async
// payment's response leaves as soon as it is owed.
func (s *Store) OweServed(ctx context.Context, id string, limit *big.Int) (bool, error) {
	return s.owe(ctx, id, limit, true)
}

func (s *Store) owe(ctx context.Context, id string, limit *big.Int, serve bool) (bool, error) {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, dbError("owe", err)
	}
	defer ptx.Rollback(ctx)
	in := *s
	in.q = ptx
	mode := coinop.ModeSync
	if limit != nil {
		var network, asset, payer, amount string
		err := ptx.QueryRow(ctx, `SELECT network, asset, payer, amount::text FROM payments WHERE id = $1`, id).
			Scan(&network, &asset, &payer, &amount)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return false, fmt.Errorf("postgres: owe %s: %w", id, store.ErrNotFound)
		case err != nil:
			return false, dbError("owe", err)
		}
		if _, err := ptx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, exposureLock, network+"|"+asset+"|"+payer); err != nil {
			return false, dbError("owe", err)
		}
		var owed string
		if err := ptx.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0)::text FROM payments
			WHERE network = $1 AND asset = $2 AND payer = $3 AND state = 'settling' AND mode = 'async'`,
			network, asset, payer).Scan(&owed); err != nil {
			return false, dbError("owe", err)
		}
		total, ok1 := new(big.Int).SetString(amount, 10)
		sum, ok2 := new(big.Int).SetString(owed, 10)
		if !ok1 || !ok2 {
			return false, unavailable("owe", fmt.Errorf("payment %s: amounts %q, %q are not integers", id, amount, owed))
		}
		if total.Add(total, sum).Cmp(limit) <= 0 {
			mode = coinop.ModeAsync
		}
	}
	if _, err := ptx.Exec(ctx, `UPDATE payments SET mode = $2 WHERE id = $1 AND state = 'verified'`, id, mode); err != nil {
		return false, dbError("owe", err)
	}
	if err := in.Transition(ctx, id, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
		return false, err
	}
	if serve && mode == coinop.ModeAsync {
		if err := in.MarkServed(ctx, id); err != nil {
			return false, err
		}
	}
	if err := ptx.Commit(ctx); err != nil {
		return false, dbError("owe", err)
	}
	return mode == coinop.ModeAsync, nil
}

// conflict explains why a compare-and-set on payment id being in state from
// matched nothing: the payment is unknown, or in another state.
func (s *Store) conflict(ctx context.Context, op, id string, from coinop.State) error {
	var current coinop.State
	err := s.q.QueryRow(ctx, `SELECT state FROM payments WHERE id = $1`, id).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: %s %s: %w", op, id, store.ErrNotFound)
	case err != nil:
		return dbError(op, err)
	}
	return coinop.Wrap(coinop.KindInFlight, "payment_state_conflict",
		fmt.Errorf("payment %s is %s, not %s", id, current, from),
		"this payment is being processed by another request")
}

// RecordTx journals the settlement transaction of payment id, which must be
// settling: its hash tx and its signed bytes raw (0x-prefixed hex), in one
// durable statement with a settling→settling event carrying tx. It is
// called after the transaction is signed and before it is first broadcast,
// so that whatever happens next, the exact bytes can be looked up by hash and
// broadcast again; a transaction signed anew could spend the settlement
// key's next nonce while the first one may still land.
//
// Like Transition it is a compare-and-set: a payment that is not settling is
// KindInFlight ("payment_state_conflict"), an unknown id wraps
// store.ErrNotFound, and an empty tx or raw is refused with KindInternal.
func (s *Store) RecordTx(ctx context.Context, id, txHash, raw string) error {
	if err := store.CheckRecordTx("postgres", id, txHash, raw); err != nil {
		return err
	}
	now := s.timestamp()
	settling := string(coinop.StateSettling)
	tag, err := s.q.Exec(ctx, `WITH moved AS (
			UPDATE payments SET reference = $3, prepared = $4, updated_at = $5, lease_owner = $6, lease_until = $7
			WHERE id = $1 AND state = $2
			RETURNING id
		)
		INSERT INTO payment_events (payment_id, from_state, to_state, reference, reason, at)
		SELECT id, $2, $2, $3, '', $5 FROM moved`,
		id, settling, txHash, raw, now, s.owner, s.until(now))
	if err != nil {
		return dbError("record tx", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.conflict(ctx, "record tx", id, coinop.StateSettling)
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
// concurrent calls for one payment, from any number of processes, exactly
// one succeeds. A payment that is not served yet may be marked only while
// verified, settling or settled; in any other state MarkServed is refused
// with KindInternal. An unknown id yields an error wrapping store.ErrNotFound.
func (s *Store) MarkServed(ctx context.Context, id string) error {
	now := s.timestamp()
	// As in Transition, a concurrent UPDATE of the row makes this one wait
	// and re-check its condition on the row it left: of concurrent calls,
	// one sets served_at and the others match nothing.
	tag, err := s.q.Exec(ctx, `WITH served AS (
			UPDATE payments SET served_at = $2, updated_at = $2,
				lease_owner = CASE WHEN state = $6 THEN '' ELSE $7 END,
				lease_until = CASE WHEN state = $6 THEN NULL ELSE $8::timestamptz END
			WHERE id = $1 AND served_at IS NULL AND state IN ($4, $5, $6)
			RETURNING id, state
		)
		INSERT INTO payment_events (payment_id, from_state, to_state, reference, reason, at)
		SELECT id, state, state, '', $3, $2 FROM served`,
		id, now, store.ReasonServed,
		string(coinop.StateVerified), string(coinop.StateSettling), string(coinop.StateSettled), s.owner, s.until(now))
	if err != nil {
		return dbError("mark served", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var (
		state  string
		served *time.Time
	)
	err = s.q.QueryRow(ctx, `SELECT state, served_at FROM payments WHERE id = $1`, id).Scan(&state, &served)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: mark served %s: %w", id, store.ErrNotFound)
	case err != nil:
		return dbError("mark served", err)
	case served != nil:
		return coinop.Wrap(coinop.KindReplayed, "payment_replayed",
			fmt.Errorf("payment %s was served at %v", id, served.UTC()),
			"this payment's response was already served")
	case !servable(coinop.State(state)):
		return coinop.Wrap(coinop.KindInternal, "internal_error",
			fmt.Errorf("postgres: mark served %s: payment is %s", id, state), "internal error")
	}
	// Servable and not served, yet the update matched nothing: the payment
	// was released and reserved again in between.
	return coinop.Wrap(coinop.KindInFlight, "payment_state_conflict",
		fmt.Errorf("payment %s changed while being marked served", id),
		"this payment is being processed by another request")
}

const paymentColumns = `id, rail, network, asset, payer, pay_to, replay_key, amount::text, resource, state, reference, reason, created_at, updated_at,
	mode, payload, COALESCE(idempotency_key, ''), served_at, prepared, route, bearer, details`

// Get returns the journaled payment id, or an error wrapping
// store.ErrNotFound. The result is the caller's to keep; its Credential is nil.
func (s *Store) Get(ctx context.Context, id string) (*coinop.Payment, error) {
	ps, err := s.query(ctx, "get", `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("postgres: get %s: %w", id, store.ErrNotFound)
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
			WHERE payer = $1 AND idempotency_key = $2 AND state <> 'released'`, payer, key)
		if err != nil {
			return nil, err
		}
		if len(ps) > 0 {
			return ps[0], nil
		}
	}
	return nil, fmt.Errorf("postgres: payment by %s with idempotency key %q: %w", payer, key, store.ErrNotFound)
}

// Unfinished returns the payments in state verified or settling, oldest
// (by Created, then ID) first: what crash recovery must finish or release.
// With several instances sharing the journal, this includes payments that
// another, live instance is working on.
func (s *Store) Unfinished(ctx context.Context) ([]*coinop.Payment, error) {
	return s.query(ctx, "unfinished", `SELECT `+paymentColumns+` FROM payments
		WHERE state IN ($1, $2) ORDER BY created_at, id`,
		string(coinop.StateVerified), string(coinop.StateSettling))
}

// List returns up to limit payments in state state, newest (by Created, then
// ID) first. state "" means every state; limit <= 0 means no limit.
func (s *Store) List(ctx context.Context, state coinop.State, limit int) ([]*coinop.Payment, error) {
	var limitArg any // LIMIT NULL is no limit
	if limit > 0 {
		limitArg = limit
	}
	if state == "" {
		return s.query(ctx, "list", `SELECT `+paymentColumns+` FROM payments
			ORDER BY created_at DESC, id DESC LIMIT $1`, limitArg)
	}
	return s.query(ctx, "list", `SELECT `+paymentColumns+` FROM payments
		WHERE state = $1 ORDER BY created_at DESC, id DESC LIMIT $2`, string(state), limitArg)
}

// ListPage returns one page of the payments f selects, by (Created, ID)
// in f's order, for operators; see store.Filter and store.Page. A
// malformed cursor is KindMalformed.
func (s *Store) ListPage(ctx context.Context, f store.Filter) (store.Page, error) {
	l, err := store.Plan(f, func(n int) string { return "$" + strconv.Itoa(n) }, func(t time.Time) any { return t.UTC() })
	if err != nil {
		return store.Page{}, err
	}
	ps, err := s.query(ctx, "list page", `SELECT `+paymentColumns+` FROM payments`+l.Where+l.Order+
		` LIMIT `+strconv.Itoa(l.Limit), l.Args...)
	if err != nil {
		return store.Page{}, err
	}
	return l.Paginate(ps), nil
}

func (s *Store) query(ctx context.Context, op, query string, args ...any) ([]*coinop.Payment, error) {
	rows, err := s.q.Query(ctx, query, args...)
	if err != nil {
		return nil, dbError(op, err)
	}
	defer rows.Close()
	var ps []*coinop.Payment
	for rows.Next() {
		var (
			p                coinop.Payment
			state, amount    string
			created, updated time.Time
			served           *time.Time
			details          string
		)
		if err := rows.Scan(&p.ID, &p.Rail, &p.Network, &p.Asset, &p.Payer, &p.PayTo, &p.ReplayKey,
			&amount, &p.Resource, &state, &p.Reference, &p.Reason, &created, &updated,
			&p.Mode, &p.Payload, &p.IdempotencyKey, &served, &p.Prepared, &p.Route, &p.Bearer, &details); err != nil {
			return nil, dbError(op, err)
		}
		var err error
		if p.Details, err = store.DecodeDetails(details); err != nil {
			return nil, coinop.Wrap(coinop.KindInternal, "internal_error",
				fmt.Errorf("postgres: %s: payment %s: %w", op, p.ID, err), "internal error")
		}
		var ok bool
		if p.Amount, ok = new(big.Int).SetString(amount, 10); !ok {
			return nil, coinop.Wrap(coinop.KindInternal, "internal_error",
				fmt.Errorf("postgres: %s: payment %s has amount %q", op, p.ID, amount), "internal error")
		}
		p.State = coinop.State(state)
		p.Created, p.Updated = created.UTC(), updated.UTC()
		if served != nil {
			p.Served = served.UTC()
		}
		ps = append(ps, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(op, err)
	}
	return ps, nil
}

// Events returns the history of payment id, oldest first, or an error
// wrapping store.ErrNotFound.
func (s *Store) Events(ctx context.Context, id string) ([]store.Event, error) {
	rows, err := s.q.Query(ctx, `SELECT from_state, to_state, reference, reason, at
		FROM payment_events WHERE payment_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, dbError("events", err)
	}
	defer rows.Close()
	var events []store.Event
	for rows.Next() {
		var (
			from, to string
			at       time.Time
		)
		e := store.Event{PaymentID: id}
		if err := rows.Scan(&from, &to, &e.Reference, &e.Reason, &at); err != nil {
			return nil, dbError("events", err)
		}
		e.From, e.To, e.At = coinop.State(from), coinop.State(to), at.UTC()
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("events", err)
	}
	if len(events) == 0 {
		// Every journaled payment has at least its reservation event.
		return nil, fmt.Errorf("postgres: events %s: %w", id, store.ErrNotFound)
	}
	return events, nil
}

// Ping reports whether the journal can be read. An error is a
// *coinop.Error of kind KindUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.q.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// timestamp reads the clock as stored: to the microsecond, in UTC.
// until is when a lease taken at now ends.
func (s *Store) until(now time.Time) *time.Time {
	t := now.Add(s.lease)
	return &t
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
// store.ErrNotFound. Of concurrent claims, from any number of processes,
// exactly one succeeds: the UPDATE re-checks the lease on the row version
// it locks. Leases are written and compared with each instance's clock
// (Now): instances sharing a database must keep their clocks within a small
// fraction of Lease of each other.
func (s *Store) Claim(ctx context.Context, id string) (*coinop.Payment, error) {
	now := s.timestamp()
	ps, err := s.query(ctx, "claim", `UPDATE payments SET lease_owner = $2, lease_until = $3
		WHERE id = $1 AND state IN ('verified', 'settling')
			AND (lease_owner IN ('', $2) OR lease_until IS NULL OR lease_until <= $4)
		RETURNING `+paymentColumns, id, s.owner, s.until(now), now)
	if err != nil {
		return nil, err
	}
	if len(ps) == 1 {
		return ps[0], nil
	}
	var (
		state string
		owner string
	)
	err = s.q.QueryRow(ctx, `SELECT state, lease_owner FROM payments WHERE id = $1`, id).Scan(&state, &owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("postgres: claim %s: %w", id, store.ErrNotFound)
	case err != nil:
		return nil, dbError("claim", err)
	}
	return nil, store.NotClaimed(id, coinop.State(state), owner)
}

// Renew extends this store's leases on payments ids by Lease, from now:
// a settlement waiting for its network calls it so that no other instance
// claims the payment meanwhile. Payments that are final, unknown or leased
// by another store are left as they are.
func (s *Store) Renew(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.q.Exec(ctx, `UPDATE payments SET lease_until = $3
		WHERE id = ANY($1) AND lease_owner = $2 AND state IN ('verified', 'settling')`,
		ids, s.owner, s.until(s.timestamp())); err != nil {
		return dbError("renew", err)
	}
	return nil
}

func (s *Store) timestamp() time.Time { return s.now().Truncate(time.Microsecond).UTC() }

// dbError classifies an error from the database. Data exceptions (class 22)
// and integrity constraint violations (class 23) mean the journal refused a
// value; retrying cannot help, so they are internal. Anything else (the
// connection, the server, a cancelled context) makes the journal unavailable.
func dbError(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")) {
		return coinop.Wrap(coinop.KindInternal, "internal_error", fmt.Errorf("postgres: %s: %w", op, err), "internal error")
	}
	return unavailable(op, err)
}

func unavailable(op string, err error) error {
	return coinop.Wrap(coinop.KindUnavailable, "store_unavailable",
		fmt.Errorf("postgres: %s: %w", op, err), "the payment journal is unavailable; try again later")
}
