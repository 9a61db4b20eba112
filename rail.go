package coinop

import (
	"context"
	"math/big"
	"net/http"
	"time"
)

// Resource is what a price buys: one request to one URL.
type Resource struct {
	URL         string
	Method      string
	Description string
	MimeType    string
}

// Charge is what the engine asks the rails to collect for one request.
type Charge struct {
	Price    Price
	Resource Resource
}

// Offer is one way to pay a charge, in protocol-neutral words. Offers feed
// the JSON body and the HTML page of a 402 and the CLI's output.
type Offer struct {
	Protocol string `json:"protocol"`          // "x402"
	Scheme   string `json:"scheme"`            // "exact"
	Network  string `json:"network"`           // CAIP-2, e.g. "eip155:8453"
	Asset    string `json:"asset"`             // token contract address
	PayTo    string `json:"payTo"`             // recipient address
	Amount   string `json:"amount"`            // atomic units
	Price    string `json:"price"`             // for people: "0.001 USDC"
	Header   string `json:"header"`            // request header that carries the payment
	HowTo    string `json:"howToPay"`          // one sentence
	Expires  int    `json:"maxTimeoutSeconds"` // how long a signed payment may stay valid
}

// Challenge is what a 402 answer says. Rails add to it; the engine writes it.
type Challenge struct {
	// Reason is the machine-readable reason for this 402 ("payment_required"
	// when no payment was presented, else the failed check's code).
	Reason string
	// Message is the same for people.
	Message string
	// Header holds the rails' challenge headers (PAYMENT-REQUIRED, WWW-Authenticate).
	Header http.Header
	// Offers lists every way to pay, for people and plain HTTP clients.
	Offers []Offer
	// Body holds extra top-level members of the JSON body, keyed by name.
	// Rails use it for protocol bodies read by legacy clients (x402 v1).
	Body map[string]any
}

// Settlement modes.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
)

// State is where a payment stands in the journal.
type State string

const (
	// StateVerified: checks and signature passed and the replay guard holds
	// the payment; the upstream may be called.
	StateVerified State = "verified"
	// StateSettling: a settlement transaction may have been sent; Tx holds its
	// hash once known. Recovery must consult the chain before acting again.
	StateSettling State = "settling"
	// StateSettled: the money moved; Tx holds the transaction.
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

// Payment is one presented payment as the engine and the journal see it.
type Payment struct {
	// ID identifies the payment in the journal; rails derive it from the
	// replay key so that the same payment always has the same ID.
	ID       string
	Rail     string // "x402-exact-evm"
	Network  string // CAIP-2
	Asset    string // lower-case hex address
	Payer    string // lower-case hex address
	PayTo    string // lower-case hex address
	Nonce    string // rail-specific unique nonce, lower-case hex
	Amount   *big.Int
	Resource string
	State    State
	Tx       string // settlement transaction hash, once known
	Reason   string // failure reason code, for failed payments
	Created  time.Time
	Updated  time.Time

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
	// RawTx is the signed settlement transaction as broadcast (0x-prefixed
	// hex), journaled with Tx before the first broadcast; "" until then.
	// Recovery broadcasts these same bytes again rather than sign anew.
	RawTx string

	// Credential is the rail's decoded credential. The engine never reads it.
	Credential any

	// RecordTx, when set by the engine, is called by the rail with a
	// settlement transaction's hash and its signed bytes (raw, 0x-prefixed
	// hex; "" for rails that hand settlement to someone else) after the
	// transaction is signed and before it is first broadcast. It makes both
	// durable in the journal, so a crash or a failed broadcast at any later
	// point can be reconciled from the chain, and the very same transaction
	// broadcast again. If it returns an error the rail must not broadcast.
	RecordTx func(ctx context.Context, tx, raw string) error
	// Step, when set by the engine, is called by the rail at its own step
	// boundaries: "tx_sent" once a settlement transaction was broadcast and
	// before its receipt is known. Used for tracing and crash tests.
	Step func(name string)
}

// BatchSettler is implemented by rails that can settle many payments in one
// network transaction. It returns one receipt and one error per payment, in
// order, with the same meaning as Rail.Settle's. Every payment's RecordTx is
// called before the shared transaction is broadcast.
type BatchSettler interface {
	SettleBatch(ctx context.Context, ps []*Payment) ([]*Receipt, []error)
}

// Restorer is implemented by rails that can rebuild a payment's credential
// from its journaled Payload, so that a settlement interrupted by a crash
// can be completed.
type Restorer interface {
	Restore(p *Payment) error
}

// Resender is implemented by rails that can broadcast a payment's journaled
// settlement transaction (Payment.RawTx) again, the same signed bytes, and
// finish the settlement from it, with Settle's results. The engine uses it
// for a settlement that no node accepted (reason ReasonSettlementNotSent)
// instead of settling anew: a new transaction could land beside the
// journaled one, which may still reach the chain.
type Resender interface {
	Resend(ctx context.Context, p *Payment) (*Receipt, error)
}

// Reverifier is implemented by rails whose single-use credentials may be
// presented again for a payment already collected, because the client lost
// the response and retried. The engine serves such a retry only after
// Reverify passed: the journal lookup that finds the payment goes by its ID,
// which is derived from public facts (for x402, the payer and the nonce are
// on chain), so finding it proves nothing. A rail that does not implement
// Reverifier never has a collected payment served again.
type Reverifier interface {
	// Reverify checks that p, which Inspect returned and whose ID the
	// journal holds as prev, proves what prev proved. Its proof of origin
	// (a signature) must verify without the network, which refuses a
	// credential already used, so Verify cannot pass; and it must be the
	// credential journaled in prev.Payload, compared by what the payer
	// signed, not byte for byte. It returns a *Error: KindRejected for a
	// proof that fails, KindReplayed for another credential under prev's ID.
	Reverify(p, prev *Payment) error
}

// Outcome is what became of a payment, as a rail finds out from its
// network after the fact (crash recovery, audits).
type Outcome struct {
	// State is the payment's final state, or "" when it cannot be known yet
	// (a transaction still pending): the payment is left as it is.
	State State
	// Tx is the transaction that moved the money, when there is one.
	Tx string
	// Reason explains a failed or released outcome.
	Reason string
	// Resettle means the payment was served (async mode) but its settlement
	// never reached the network: it must be settled from its Payload.
	Resettle bool
}

// Reconciler is implemented by whatever can tell, from the network, what
// became of a journaled payment that is not final.
type Reconciler interface {
	Reconcile(ctx context.Context, p *Payment) (Outcome, error)
}

// Receipt is the outcome of a settlement.
type Receipt struct {
	Success bool
	Tx      string
	Network string
	Payer   string
	// Pending is true when a transaction was sent but its outcome is not yet
	// known; Tx is set and the payment will be finished later.
	Pending bool
	// Header holds the rail's response headers (PAYMENT-RESPONSE), set on
	// success and on a failed settlement alike.
	Header http.Header
}

// A Rail is one way to pay, plugged into the engine. Methods must be safe for
// concurrent use. The engine calls them in this order for a priced request:
// Challenge (no credential, or any failure), Inspect, Verify, Settle.
type Rail interface {
	// Challenge adds this rail's terms for ch to c.
	Challenge(c *Challenge, ch Charge)
	// Inspect decodes the rail's credential from r and makes every check that
	// needs neither cryptography nor I/O (format, amount, recipient, asset,
	// network, expiry). It returns (nil, nil) when r carries no credential for
	// this rail. Errors are *Error with a protocol reason.
	Inspect(r *http.Request, ch Charge) (*Payment, error)
	// Verify makes the expensive checks on a payment Inspect returned:
	// signature recovery, then the chain. When a check cannot complete (RPC
	// down) it returns KindUnavailable: the engine fails closed.
	Verify(ctx context.Context, p *Payment) error
	// Settle collects p. It returns a receipt whenever the outcome is known or
	// pending, with an *Error when money did not move.
	Settle(ctx context.Context, p *Payment) (*Receipt, error)
}
