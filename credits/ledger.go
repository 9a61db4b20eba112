// Package credits is a prepaid ledger beside the payments journal: accounts
// that hold credits (bought in packs) and passes (bought for a time, with an
// optional request cap), each reached through a bearer token, and the rail
// that charges them per request on the engine's contract (Rail).
//
// Every change of an account is a row of the movements table: a purchase
// (credits or pass time in), a debit (credits or one pass request out), a
// release (a debit given back because its response was never served), an
// expiry (a pass's unused requests gone at its end). An account's balance is
// the sum of its done movements' credits; Check verifies it for every
// account.
//
// The ledger's writes go through the journal's transaction scope
// (store.Tx, Atomically) in portable SQL, so they run on SQLite and on
// PostgreSQL shared by several gateway instances alike, and a debit commits
// together with the journal entry of the charge it pays for.
package credits

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Store is the journal the ledger lives beside: its transaction scope, its
// migrations for the ledger's tables, and its payments (a purchase counts
// once the payment that bought it settled).
type Store interface {
	Atomically(ctx context.Context, fn func(tx store.Tx) error) error
	Migrate(ctx context.Context, name, ddl string) error
	Get(ctx context.Context, id string) (*coinop.Payment, error)
}

// migrations are the ledger's tables, in SQL both journals run (text and
// integers only; times are unix nanoseconds). Applied in order, once each.
var migrations = []struct{ name, ddl string }{
	{"credits-0001", `CREATE TABLE credit_accounts (
	id TEXT PRIMARY KEY,
	wallet TEXT NOT NULL DEFAULT '',
	balance BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
	pass_until BIGINT NOT NULL DEFAULT 0,
	pass_cap BIGINT NOT NULL DEFAULT 0 CHECK (pass_cap >= 0),
	pass_used BIGINT NOT NULL DEFAULT 0 CHECK (pass_used >= 0),
	created BIGINT NOT NULL
);
CREATE INDEX credit_accounts_wallet ON credit_accounts (wallet);
CREATE TABLE credit_tokens (
	hash TEXT PRIMARY KEY,
	account TEXT NOT NULL,
	revoked BIGINT NOT NULL DEFAULT 0,
	created BIGINT NOT NULL
);
CREATE TABLE credit_movements (
	id TEXT PRIMARY KEY,
	account TEXT NOT NULL,
	kind TEXT NOT NULL,
	state TEXT NOT NULL,
	credits BIGINT NOT NULL,
	requests BIGINT NOT NULL,
	pass_ns BIGINT NOT NULL DEFAULT 0,
	plan TEXT NOT NULL DEFAULT '',
	payment TEXT NOT NULL,
	at BIGINT NOT NULL
);
CREATE UNIQUE INDEX credit_movements_payment ON credit_movements (payment, kind);
CREATE INDEX credit_movements_account ON credit_movements (account, state)`},
	{"credits-0002", `CREATE TABLE credit_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)`},
}

// Movement kinds.
const (
	KindPurchase = "purchase"
	KindDebit    = "debit"
	KindRelease  = "release"
	KindExpiry   = "expiry"
)

// Movement states: a purchase is pending until the payment that bought it
// settled (then done) or failed (then void); every other movement is done
// when written.
const (
	statePending = "pending"
	stateDone    = "done"
	stateVoid    = "void"
)

// Plan is what can be bought: a pack of Credits, or a pass of Duration
// (with at most Requests requests; 0: unlimited), or both.
type Plan struct {
	Name     string
	Credits  int64
	Duration time.Duration
	Requests int64
}

// Holder names an account: by its bearer token's hash, or by the wallet
// that bought it (signed in with sign-in-with-x).
type Holder struct {
	TokenHash string
	// Wallet is a lower-case hex address.
	Wallet string
}

// account finds h's account in tx: its ID, and whether the token that
// names it was revoked. An unknown holder is errStop(ReasonTokenUnknown).
func (h Holder) account(ctx context.Context, tx store.Tx) (string, bool, error) {
	var n, revoked int64
	var acct string
	var err error
	if h.TokenHash != "" {
		err = tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(account), ''), COALESCE(MAX(revoked), 0) FROM credit_tokens WHERE hash = ?`,
			[]any{h.TokenHash}, &n, &acct, &revoked)
	} else {
		err = tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(id), ''), 0 FROM credit_accounts WHERE wallet = ? AND wallet <> ''`,
			[]any{h.Wallet}, &n, &acct, &revoked)
	}
	switch {
	case err != nil:
		return "", false, err
	case n == 0:
		return "", false, errStop{coinop.Errorf(coinop.KindRejected, ReasonTokenUnknown, "no account is known here for this credential (buy a plan)")}
	}
	return acct, revoked != 0, nil
}

// Standing is where an account stands.
type Standing struct {
	Account string
	Balance int64
	// PassUntil is when the account's pass ends; zero when it has none.
	PassUntil time.Time
	// PassLeft is how many requests the pass has left; -1 when unlimited.
	PassLeft int64
	Revoked  bool
}

// PassActive reports whether the pass covers a request at now.
func (s Standing) PassActive(now time.Time) bool {
	return !s.PassUntil.IsZero() && now.Before(s.PassUntil) && s.PassLeft != 0
}

// Ledger is the credits ledger over one journal. It is safe for concurrent
// use, within one process and across processes sharing the journal.
type Ledger struct {
	s    Store
	now  func() time.Time
	rand io.Reader
}

// Open migrates the ledger's tables in s (once, whichever instance comes
// first) and returns the ledger. now is its clock (pass ends, movement
// times); rand the source of tokens and account IDs.
func Open(ctx context.Context, s Store, now func() time.Time, rand io.Reader) (*Ledger, error) {
	for _, m := range migrations {
		if err := s.Migrate(ctx, m.name, m.ddl); err != nil {
			return nil, fmt.Errorf("credits: %w", err)
		}
	}
	return &Ledger{s: s, now: now, rand: rand}, nil
}

// Errors of the ledger, as *coinop.Error with the reasons below.
const (
	ReasonTokenMalformed = "credits_token_malformed"
	ReasonTokenUnknown   = "credits_token_unknown"
	ReasonTokenRevoked   = "credits_token_revoked"
	ReasonBalanceTooLow  = "credits_balance_too_low"
	ReasonNoPurchase     = "credits_no_purchase"
)

// tokenPrefix starts every token, so that a token is recognized (and a
// leaked one found by secret scanners) without a lookup.
const tokenPrefix = "cop_"

// tokenBytes is a token's randomness: 256 bits, beyond any guessing.
const tokenBytes = 32

// newToken draws a token and returns it with its hash.
func (l *Ledger) newToken() (token, hash string, err error) {
	var b [tokenBytes]byte
	if _, err := io.ReadFull(l.rand, b[:]); err != nil {
		return "", "", coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken is how a token is stored and looked up: its SHA-256, hex. A
// token has 256 random bits, so a plain hash is as strong as a slow one
// and lets every request find its account with one indexed read; the
// database never holds a token that would let its reader spend a balance.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ParseToken checks a presented token's form (prefix, length, alphabet)
// without I/O and returns its hash. It never echoes the token in errors.
func ParseToken(s string) (hash string, err error) {
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok || base64.RawURLEncoding.EncodedLen(tokenBytes) != len(rest) {
		return "", coinop.Errorf(coinop.KindMalformed, ReasonTokenMalformed, "the bearer token is not a credits token")
	}
	if b, err := base64.RawURLEncoding.DecodeString(rest); err != nil || len(b) != tokenBytes ||
		base64.RawURLEncoding.EncodeToString(b) != rest {
		return "", coinop.Errorf(coinop.KindMalformed, ReasonTokenMalformed, "the bearer token is not a credits token")
	}
	return HashToken(s), nil
}

// unavailable is a store error as the engine must see it: fail closed.
func unavailable(err error) error {
	var e *coinop.Error
	if errors.As(err, &e) && e.Kind != coinop.KindInternal && e.Kind != coinop.KindUnavailable {
		return err
	}
	return coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the credits ledger is unavailable; nothing was charged")
}

func (l *Ledger) nanos() int64 { return l.now().UnixNano() }

// Purchase is what the purchase of a plan through payment Payment (a
// journaled payment, usually not settled yet) is credited to.
type Purchase struct {
	Plan    Plan
	Payment string
	// TokenHash, when set, is the account to top up (the buyer presented
	// its token); else the account the payment bought before (a retry of a
	// purchase whose answer was lost), else a new one.
	TokenHash string
	// Wallet is the payer of the payment (lower-case hex), kept with the
	// account: a wallet has one account, topped up by each purchase.
	Wallet string
}

// Bought is the answer to a purchase: the account and a token for it.
type Bought struct {
	Account string
	Token   string
	// Pending is true until the purchase's payment settled.
	Pending bool
}

// Buy records a purchase as pending on its account, and returns a fresh
// token for the account (a top-up keeps the buyer's token; the token is
// "" then). Claims:
//
//   - One payment buys once: the movement is unique per payment, so a retry
//     of the same purchase (the engine serves a settled payment's lost
//     answer again) credits nothing more; it adds a token to the account
//     (the earlier one may never have reached the buyer).
//   - One account per wallet: a purchase without a token, by a wallet that
//     bought before, tops that wallet's account up and gives it one more
//     token; tokens are revoked one by one.
//   - Nothing is credited before the money moved: the movement stays
//     pending until the journal says its payment settled (confirm), and is
//     voided when it says the payment failed or was released.
func (l *Ledger) Buy(ctx context.Context, pu Purchase) (Bought, error) {
	if pu.Payment == "" || (pu.Plan.Credits <= 0 && pu.Plan.Duration <= 0) || pu.Plan.Credits < 0 || pu.Plan.Requests < 0 {
		return Bought{}, coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "credits: purchase of plan %q without payment or contents", pu.Plan.Name)
	}
	token, hash, err := l.newToken()
	if err != nil {
		return Bought{}, err
	}
	var idb [16]byte
	if _, err := io.ReadFull(l.rand, idb[:]); err != nil {
		return Bought{}, coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
	}
	fresh := "acct_" + hex.EncodeToString(idb[:])
	var out Bought
	err = l.s.Atomically(ctx, func(tx store.Tx) error {
		now := l.nanos()
		var acct, state string
		var found int64
		// A purchase already recorded for this payment names its account.
		// (Aggregates: a query that finds no row dooms the scope.)
		if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(account), ''), COALESCE(MAX(state), '') FROM credit_movements WHERE payment = ? AND kind = ?`,
			[]any{pu.Payment, KindPurchase}, &found, &acct, &state); err != nil {
			return err
		}
		addToken := func() error {
			_, err := tx.Exec(ctx, `INSERT INTO credit_tokens (hash, account, created) VALUES (?, ?, ?)`, hash, acct, now)
			return err
		}
		if found > 0 {
			// A retry of this purchase: a new token for its account.
			if err := addToken(); err != nil {
				return err
			}
			out = Bought{Account: acct, Token: token, Pending: state == statePending}
			return nil
		}
		switch {
		case pu.TokenHash != "":
			var revoked bool
			var err error
			if acct, revoked, err = (Holder{TokenHash: pu.TokenHash}).account(ctx, tx); err != nil {
				return err
			}
			if revoked {
				return errStop{coinop.Errorf(coinop.KindRejected, ReasonTokenRevoked, "the bearer token to top up was revoked")}
			}
			token = "" // a top-up: the buyer keeps its token
		default:
			// One account per wallet: a wallet that bought before tops its
			// account up, with a token of its own for this purchase.
			var n int64
			if pu.Wallet != "" {
				if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(id), '') FROM credit_accounts WHERE wallet = ?`,
					[]any{pu.Wallet}, &n, &acct); err != nil {
					return err
				}
			}
			if n == 0 {
				acct = fresh
				if _, err := tx.Exec(ctx, `INSERT INTO credit_accounts (id, wallet, created) VALUES (?, ?, ?)`, acct, pu.Wallet, now); err != nil {
					return err
				}
			}
			if err := addToken(); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO credit_movements (id, account, kind, state, credits, requests, pass_ns, plan, payment, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			"purchase:"+pu.Payment, acct, KindPurchase, statePending, pu.Plan.Credits, pu.Plan.Requests,
			int64(pu.Plan.Duration), pu.Plan.Name, pu.Payment, now); err != nil {
			return err
		}
		out = Bought{Account: acct, Token: token, Pending: true}
		return nil
	})
	if err != nil {
		var stop errStop
		if errors.As(err, &stop) {
			return Bought{}, stop.err
		}
		return Bought{}, unavailable(err)
	}
	return out, nil
}

// errStop carries a refusal out of a transaction scope, rolling it back.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// confirm settles the pending purchases of h's account
// against the journal: done (credited) when their payment settled, void
// when it failed or was released, left pending otherwise. The state change
// is a compare-and-set (pending → done) in the same transaction as the
// credit, so concurrent confirmations credit once.
func (l *Ledger) confirm(ctx context.Context, h Holder) error {
	for after := ""; ; {
		var id, payment string
		err := l.s.Atomically(ctx, func(tx store.Tx) error {
			acct, _, err := h.account(ctx, tx)
			if err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT id, payment FROM credit_movements WHERE account = ? AND state = ? AND id > ? ORDER BY id LIMIT 1`,
				[]any{acct, statePending, after}, &id, &payment)
		})
		var stop errStop
		if errors.As(err, &stop) {
			return nil // unknown: Standing says so
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		after = id
		p, err := l.s.Get(ctx, payment)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		switch p.State {
		case coinop.StateSettled:
			err = l.apply(ctx, id)
		case coinop.StateFailed, coinop.StateReleased:
			err = l.s.Atomically(ctx, func(tx store.Tx) error {
				_, err := tx.Exec(ctx, `UPDATE credit_movements SET state = ? WHERE id = ? AND state = ?`, stateVoid, id, statePending)
				return err
			})
		}
		if err != nil {
			return err
		}
	}
}

// apply credits pending purchase movement id to its account, once.
//
// A pass runs from the moment it was bought. One bought while another is
// active extends it: its time is added to the end, its requests to the cap
// (an unlimited pass stays unlimited). One bought after the last one ended
// starts at its purchase; the lapsed one's unused requests are expired
// first.
func (l *Ledger) apply(ctx context.Context, id string) error {
	return l.s.Atomically(ctx, func(tx store.Tx) error {
		now := l.nanos()
		n, err := tx.Exec(ctx, `UPDATE credit_movements SET state = ? WHERE id = ? AND state = ?`, stateDone, id, statePending)
		if err != nil || n == 0 {
			return err // confirmed concurrently: nothing more to do
		}
		var acct string
		var credits, requests, passNS, bought int64
		if err := tx.QueryRow(ctx, `SELECT account, credits, requests, pass_ns, at FROM credit_movements WHERE id = ?`,
			[]any{id}, &acct, &credits, &requests, &passNS, &bought); err != nil {
			return err
		}
		if credits != 0 {
			if _, err := tx.Exec(ctx, `UPDATE credit_accounts SET balance = balance + ? WHERE id = ?`, credits, acct); err != nil {
				return err
			}
		}
		if passNS <= 0 {
			return nil
		}
		if err := expire(ctx, tx, acct, now); err != nil {
			return err
		}
		// The pass runs from its purchase (bought), not from this
		// confirmation, which may come later.
		_, err = tx.Exec(ctx, `UPDATE credit_accounts SET
			pass_cap = CASE WHEN pass_until > ? THEN (CASE WHEN pass_cap = 0 THEN 0 WHEN ? = 0 THEN 0 ELSE pass_cap + ? END) ELSE ? END,
			pass_used = CASE WHEN pass_until > ? THEN pass_used ELSE 0 END,
			pass_until = CASE WHEN pass_until > ? THEN pass_until + ? ELSE ? END
			WHERE id = ?`,
			bought, requests, requests, requests, bought, bought, passNS, bought+passNS, acct)
		return err
	})
}

// expire ends account acct's pass if it ended by now: one expiry movement
// recording the requests it left unused, and the pass cleared, once.
func expire(ctx context.Context, tx store.Tx, acct string, now int64) error {
	var found, until, cap, used int64
	if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(pass_until), 0), COALESCE(MAX(pass_cap), 0), COALESCE(MAX(pass_used), 0)
		FROM credit_accounts WHERE id = ? AND pass_until <> 0 AND pass_until <= ?`,
		[]any{acct, now}, &found, &until, &cap, &used); err != nil || found == 0 {
		return err
	}
	n, err := tx.Exec(ctx, `UPDATE credit_accounts SET pass_until = 0, pass_cap = 0, pass_used = 0 WHERE id = ? AND pass_until = ?`, acct, until)
	if err != nil || n == 0 {
		return err
	}
	left := int64(0)
	if cap > 0 {
		left = cap - used
	}
	_, err = tx.Exec(ctx, `INSERT INTO credit_movements (id, account, kind, state, credits, requests, payment, at)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?)`,
		fmt.Sprintf("expiry:%s:%d", acct, until), acct, KindExpiry, stateDone, -left, fmt.Sprintf("pass:%s:%d", acct, until), now)
	return err
}

// Standing confirms the pending purchases of h's account,
// ends its pass if it ended, and says where it stands. An unknown token is
// a KindRejected error.
func (l *Ledger) Standing(ctx context.Context, h Holder) (Standing, error) {
	if err := l.confirm(ctx, h); err != nil {
		return Standing{}, unavailable(err)
	}
	var st Standing
	err := l.s.Atomically(ctx, func(tx store.Tx) error {
		acct, revoked, err := h.account(ctx, tx)
		if err != nil {
			return err
		}
		if err := expire(ctx, tx, acct, l.nanos()); err != nil {
			return err
		}
		st, err = standing(ctx, tx, acct)
		st.Revoked = revoked
		return err
	})
	var stop errStop
	if errors.As(err, &stop) {
		return Standing{}, stop.err
	}
	if err != nil {
		return Standing{}, unavailable(err)
	}
	return st, nil
}

func standing(ctx context.Context, tx store.Tx, acct string) (Standing, error) {
	var st Standing
	var until, cap, used int64
	if err := tx.QueryRow(ctx, `SELECT id, balance, pass_until, pass_cap, pass_used FROM credit_accounts WHERE id = ?`,
		[]any{acct}, &st.Account, &st.Balance, &until, &cap, &used); err != nil {
		return st, err
	}
	if until != 0 {
		st.PassUntil = time.Unix(0, until).UTC()
		st.PassLeft = -1
		if cap > 0 {
			st.PassLeft = cap - used
		}
	}
	return st, nil
}

// Debit is one charge's movement, as Charge wrote it.
type Debit struct {
	// Movement is the movement's ID, the charge's ledger reference.
	Movement string
	// Credits is what the charge took from the balance (0 when a pass
	// covered it).
	Credits int64
	// After is where the account stands after the charge.
	After Standing
}

// Charge debits cost from h's account for journaled
// payment paymentID, inside tx (the caller's transaction scope, which also
// holds the journal's transition of that payment). Claims:
//
//   - Check and decrement are one statement (UPDATE … WHERE balance >= cost,
//     or WHERE the pass has a request left): PostgreSQL takes the row's
//     lock and re-evaluates the condition on the row as the committed
//     transaction before it left it, SQLite runs one writer at a time; so
//     no interleaving of requests, in one instance or in many on one
//     database, lets two debits spend the same credits, and the balance
//     never goes below zero (the table's CHECK is the last guard).
//   - A pass that covers the request is used before credits.
//   - The debit is unique per payment (one movement per payment and
//     kind): the same charge cannot be debited twice.
//   - A balance too low, a revoked token or an unknown one is a *coinop.Error
//     returned wrapped in errStop; the caller rolls the scope back.
func (l *Ledger) Charge(ctx context.Context, tx store.Tx, h Holder, cost int64, paymentID string) (Debit, error) {
	now := l.nanos()
	acct, revoked, err := h.account(ctx, tx)
	if err != nil {
		return Debit{}, err
	}
	if revoked {
		return Debit{}, errStop{coinop.Errorf(coinop.KindRejected, ReasonTokenRevoked, "this bearer token was revoked")}
	}
	if err := expire(ctx, tx, acct, now); err != nil {
		return Debit{}, err
	}
	credits, requests := int64(0), int64(1)
	n, err := tx.Exec(ctx, `UPDATE credit_accounts SET pass_used = pass_used + 1
		WHERE id = ? AND pass_until > ? AND (pass_cap = 0 OR pass_used < pass_cap)`, acct, now)
	if err != nil {
		return Debit{}, err
	}
	if n == 0 {
		credits, requests = cost, 0
		if n, err = tx.Exec(ctx, `UPDATE credit_accounts SET balance = balance - ? WHERE id = ? AND balance >= ?`,
			cost, acct, cost); err != nil {
			return Debit{}, err
		}
		if n == 0 {
			return Debit{}, errStop{lowBalance(cost)}
		}
	}
	d := Debit{Movement: "debit:" + paymentID, Credits: credits}
	if _, err := tx.Exec(ctx, `INSERT INTO credit_movements (id, account, kind, state, credits, requests, payment, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, d.Movement, acct, KindDebit, stateDone, -credits, -requests, paymentID, now); err != nil {
		return Debit{}, err
	}
	d.After, err = standing(ctx, tx, acct)
	return d, err
}

func lowBalance(cost int64) *coinop.Error {
	return coinop.Errorf(coinop.KindInsufficientFunds, ReasonBalanceTooLow, "the balance does not cover this request (%d credits); top up with a plan", cost)
}

// Release gives back the debit of payment paymentID, once, if there is one,
// and reports whether there was. Recovery uses it for a charge debited but
// never answered (the process died between the debit and the response).
func (l *Ledger) Release(ctx context.Context, paymentID string) (bool, error) {
	found := false
	err := l.s.Atomically(ctx, func(tx store.Tx) error {
		var acct string
		var n, credits, requests int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(account), ''), COALESCE(MAX(credits), 0), COALESCE(MAX(requests), 0)
			FROM credit_movements WHERE payment = ? AND kind = ?`,
			[]any{paymentID, KindDebit}, &n, &acct, &credits, &requests); err != nil || n == 0 {
			return err
		}
		found = true
		n, err := tx.Exec(ctx, `INSERT INTO credit_movements (id, account, kind, state, credits, requests, payment, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			"release:"+paymentID, acct, KindRelease, stateDone, -credits, -requests, paymentID, l.nanos())
		if err != nil || n == 0 {
			return err // released before
		}
		_, err = tx.Exec(ctx, `UPDATE credit_accounts SET balance = balance + ?,
			pass_used = CASE WHEN pass_used >= ? THEN pass_used - ? ELSE 0 END WHERE id = ?`, -credits, -requests, -requests, acct)
		return err
	})
	if err != nil {
		return false, unavailable(err)
	}
	return found, nil
}

// Revoke revokes the token with hash tokenHash: it can no longer charge or
// top up its account (other tokens of the account, and its wallet's
// sign-in, still can). It reports whether the token was known.
func (l *Ledger) Revoke(ctx context.Context, tokenHash string) (bool, error) {
	var n int64
	err := l.s.Atomically(ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.Exec(ctx, `UPDATE credit_tokens SET revoked = 1 WHERE hash = ?`, tokenHash)
		return err
	})
	if err != nil {
		return false, unavailable(err)
	}
	return n > 0, nil
}

// Secret is the ledger's secret of that name: drawn once, by whichever
// instance asks first, and the same for every instance on the journal
// afterwards (sign-in nonces are keyed by it).
func (l *Ledger) Secret(ctx context.Context, name string) ([]byte, error) {
	var b [32]byte
	if _, err := io.ReadFull(l.rand, b[:]); err != nil {
		return nil, err
	}
	var v string
	err := l.s.Atomically(ctx, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO credit_secrets (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, hex.EncodeToString(b[:])); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM credit_secrets WHERE name = ?`, []any{name}, &v)
	})
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(v)
}

// Totals are the ledger's sums, for audits.
type Totals struct {
	Accounts int64
	// Purchased, Debited, Released are the credits of done movements of
	// each kind (Debited and Released as positive numbers).
	Purchased, Debited, Released int64
	// Balances is the sum of the accounts' balances.
	Balances int64
	// Pending counts purchases whose payment has not settled yet.
	Pending int64
	// Mismatched lists the accounts whose balance is not the sum of their
	// done movements.
	Mismatched []string
	// Debits counts debit movements (of credits or pass requests);
	// ReleasedCount the releases among them.
	Debits, ReleasedCount int64
}

// Clean reports whether the sums agree: balances = purchased − debited +
// released, account by account and in total.
func (t Totals) Clean() bool {
	return len(t.Mismatched) == 0 && t.Balances == t.Purchased-t.Debited+t.Released
}

// Outstanding is what the ledger holds right now, in one read: the
// number of accounts and the sum of their balances, in credits.
func (l *Ledger) Outstanding(ctx context.Context) (accounts, credits int64, err error) {
	err = l.s.Atomically(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(balance), 0) FROM credit_accounts`, nil, &accounts, &credits)
	})
	return accounts, credits, err
}

// Check sums the ledger (see Totals).
func (l *Ledger) Check(ctx context.Context) (Totals, error) {
	var t Totals
	err := l.s.Atomically(ctx, func(tx store.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(balance), 0) FROM credit_accounts`, nil, &t.Accounts, &t.Balances); err != nil {
			return err
		}
		sum := func(kind string, dst *int64) error {
			return tx.QueryRow(ctx, `SELECT COALESCE(SUM(credits), 0) FROM credit_movements WHERE kind = ? AND state = ?`, []any{kind, stateDone}, dst)
		}
		if err := sum(KindPurchase, &t.Purchased); err != nil {
			return err
		}
		if err := sum(KindDebit, &t.Debited); err != nil {
			return err
		}
		if err := sum(KindRelease, &t.Released); err != nil {
			return err
		}
		t.Debited = -t.Debited
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM credit_movements WHERE kind = ?`, []any{KindDebit}, &t.Debits); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM credit_movements WHERE kind = ?`, []any{KindRelease}, &t.ReleasedCount); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM credit_movements WHERE state = ?`, []any{statePending}, &t.Pending); err != nil {
			return err
		}
		for after := ""; ; {
			var id string
			if err := tx.QueryRow(ctx, `SELECT COALESCE(MIN(a.id), '') FROM credit_accounts a WHERE a.id > ? AND a.balance <>
				(SELECT COALESCE(SUM(m.credits), 0) FROM credit_movements m WHERE m.account = a.id AND m.state = ?)`,
				[]any{after, stateDone}, &id); err != nil || id == "" {
				return err
			}
			t.Mismatched = append(t.Mismatched, id)
			after = id
		}
	})
	if err != nil {
		return Totals{}, err
	}
	return t, nil
}
