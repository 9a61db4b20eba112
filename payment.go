package coinop

import (
	"math/big"
	"time"
)

// Settlement modes.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
)

// State is where a payment stands in the journal.
//
// The state machine, which every journal enforces (see Legal):
//
//	            ┌──────────► released (upstream failed; nothing charged)
//	verified ───┼──────────► failed   (refused before settling)
//	            └─► settling ─┬─► settled (money moved) ──► released (a bearer charge given back)
//	                  ▲   │   └─► failed  (money did not move)
//	                  └───┘ (a settlement reference became known)
//
// settled → released is a bearer charge's only: a debit of a prepaid
// balance that its rail gave back (Refunder) because the purchase failed
// where the engine could not see it (a forward-auth check's upstream).
// Money that moved on a network is never released.
//
// released → verified happens only through a new reservation, which must
// re-check the replay key.
type State string

const (
	// StateVerified: checks and signature passed and the replay guard holds
	// the payment; the upstream may be called.
	StateVerified State = "verified"
	// StateSettling: a settlement may have been sent; Reference holds its
	// reference once known. Recovery must consult the network before acting
	// again.
	StateSettling State = "settling"
	// StateSettled: the money moved; Reference says where.
	StateSettled State = "settled"
	// StateFailed: settlement was attempted and did not move money.
	StateFailed State = "failed"
	// StateReleased: the upstream failed, nothing was charged, and the
	// payment's replay guard was lifted so the same payment may be retried.
	StateReleased State = "released"
)

// Final reports whether no further transition can happen from s.
func (s State) Final() bool {
	return s == StateSettled || s == StateFailed || s == StateReleased
}

// Legal reports whether a journal may move a payment from one state to
// another by a transition (see State).
func Legal(from, to State) bool {
	switch from {
	case StateVerified:
		return to == StateSettling || to == StateReleased || to == StateFailed
	case StateSettling:
		return to == StateSettled || to == StateFailed || to == StateSettling
	case StateSettled:
		return to == StateReleased // a bearer charge given back; see State
	}
	return false
}

// Payment is one presented payment (or one charge of a bearer credential)
// as the engine and the journal see it. Its fields are protocol-neutral;
// what only one rail needs travels in Details (journaled) or Credential
// (in memory only).
type Payment struct {
	// ID identifies the payment in the journal and is its one unique key.
	// Rails of single-use credentials derive it from the replay key, so the
	// same credential always has the same ID; for a bearer charge the engine
	// assigns a fresh one.
	ID string
	// Rail is the name of the rail that took the payment (Rail.Name).
	Rail string
	// Route is the pattern of the route the payment bought, for operators.
	Route string
	// Network is where the money moves, in the rail's words (CAIP-2 for
	// chains: "eip155:8453"; "credits" for a ledger).
	Network string
	// Asset identifies what is paid in, in the rail's words (a token's
	// lower-case hex address, "sat").
	Asset string
	// Payer identifies who pays, when the rail knows (a lower-case hex
	// address); "" for a bearer credential without an identity.
	Payer string
	// PayTo is the recipient, in the rail's words.
	PayTo string
	// ReplayKey is a single-use credential's key, unique per network, asset
	// and payer (x402: the authorization nonce, lower-case hex). It is ""
	// exactly when Bearer is set.
	ReplayKey string
	// Bearer marks a charge of a bearer credential (a token over a prepaid
	// balance), which may be charged many times. Each charge is its own
	// journal entry with an ID the engine assigns; the engine runs no replay
	// check by ID for it and never serves one again.
	Bearer   bool
	Amount   *big.Int
	Resource string
	State    State
	// Reference is where the settlement can be found on its network (a
	// transaction hash, a payment hash, a ledger entry), once known.
	Reference string
	Reason    string // failure reason code, for failed payments
	Created   time.Time
	Updated   time.Time

	// Mode is the settlement mode the payment was accepted under: ModeSync
	// (settled before the response is released) or ModeAsync (released once
	// verified and reserved; settled in the background). Empty means sync.
	Mode string
	// Payload is the credential as presented (for x402, the payment header's
	// value), journaled so that a settlement can be completed after a crash.
	// It holds nothing the payer did not send.
	Payload string
	// IdempotencyKey, when the client gave one (x402's payment-identifier
	// extension, or an Idempotency-Key header), ties the retries of one
	// purchase together: a second payment by the same payer with the same
	// key is never charged.
	IdempotencyKey string
	// Served is when the paid response was released to the client; zero
	// until then. A payment's response is served at most once.
	Served time.Time
	// Prepared is the settlement as the rail prepared it to be sent (for
	// EVM, the signed transaction, 0x-prefixed hex), journaled with
	// Reference before it is first sent; "" until then. Recovery sends
	// these same bytes again rather than prepare anew.
	Prepared string
	// Details holds what only this payment's rail needs to find it again,
	// journaled as it is; nil when the rail needs nothing more.
	Details map[string]string

	// Credential is the rail's decoded credential. The engine never reads it.
	Credential any
}
