package coinop

import (
	"context"
	"net/http"
)

// Resource is what a price buys: one request to one URL.
type Resource struct {
	URL         string
	Method      string
	Description string
	MimeType    string
}

// Charge is what the engine asks one rail to collect for one request: the
// price that rail's accept entry names (or its Pricer computed) and the
// resource.
type Charge struct {
	Price    Price
	Resource Resource
	// Route is the pattern of the route being bought.
	Route string
}

// Pricer prices one request, for routes whose price depends on the request
// (its query, its size). It must be deterministic for one request: the
// price is computed for the challenge and again when the credential comes.
type Pricer interface {
	Price(r *http.Request) (Price, error)
}

// Offer is one way to pay a charge, in protocol-neutral words. Offers feed
// the JSON body and the HTML page of a 402 and the CLI's output.
type Offer struct {
	Rail     string `json:"rail"`              // the offering rail's name
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
	// Terms are the rail's own terms beyond the neutral ones (an invoice, a
	// macaroon, a top-up URL), keyed by name, as JSON values.
	Terms map[string]any `json:"terms,omitempty"`
}

// Challenge is what a 402 answer says. Rails add to it; the engine writes it.
type Challenge struct {
	// Reason is the machine-readable reason for this 402 ("payment_required"
	// when no payment was presented, else the failed check's code).
	Reason string
	// Message is the same for people.
	Message string
	// Header holds the rails' challenge headers (PAYMENT-REQUIRED, WWW-Authenticate).
	// Several rails of one protocol share its header: a rail adds to what an
	// earlier one wrote rather than replace it.
	Header http.Header
	// Offers lists every way to pay, for people and plain HTTP clients.
	Offers []Offer
	// Body holds extra top-level members of the JSON body, keyed by name.
	// Rails use it for protocol bodies read by legacy clients (x402 v1).
	Body map[string]any
	// Request is the request being answered, for rails whose challenge
	// depends on what it asks for (the Payment scheme's Accept-Payment).
	// Rails must not modify it or read its body. Nil outside a request.
	Request *http.Request
}

// Headers are the HTTP headers a rail reads and writes.
type Headers struct {
	// Request are the request headers that carry the rail's credentials.
	// They stay at the engine: a gateway removes them, under any name an
	// upstream would fold to one of them, before the request goes on.
	Request []string
	// Expose are the response headers a browser script may read (CORS
	// Access-Control-Expose-Headers).
	Expose []string
}

// Recorder is what the engine lends a rail for one settlement, to make its
// steps durable and visible.
type Recorder interface {
	// Record journals the settlement's reference and the bytes the rail
	// prepared to send ("" for rails that hand settlement to someone else)
	// after they are final and before they are first sent, so that a crash
	// or a failed send at any later point can be reconciled from the network
	// and the very same settlement sent again. If it returns an error the
	// rail must not send.
	Record(ctx context.Context, reference, prepared string) error
	// Step reports a step boundary: "tx_sent" once a settlement was sent and
	// before its outcome is known. For tracing and crash tests.
	Step(name string)
}

// GroupRecorder is a Recorder that can journal one shared settlement (a
// batch's transaction) for itself and other recorders of its engine in one
// durable write, instead of a write each.
type GroupRecorder interface {
	Recorder
	// RecordGroup journals reference and prepared for every recorder of
	// recs (which includes this one) as Record would each. Nil means every
	// one is journaled; on an error the rail must not send.
	RecordGroup(ctx context.Context, recs []Recorder, reference, prepared string) error
}

// RecordAll journals one shared settlement for every recorder of recs
// before it is sent: in one write when the first is a GroupRecorder, else
// one by one. Nil recorders are skipped. On an error the rail must not
// send.
func RecordAll(ctx context.Context, recs []Recorder, reference, prepared string) error {
	live := make([]Recorder, 0, len(recs))
	for _, r := range recs {
		if r != nil {
			live = append(live, r)
		}
	}
	if len(live) > 1 {
		if g, ok := live[0].(GroupRecorder); ok {
			return g.RecordGroup(ctx, live, reference, prepared)
		}
	}
	for _, r := range live {
		if err := r.Record(ctx, reference, prepared); err != nil {
			return err
		}
	}
	return nil
}

// A Rail is one way to pay, plugged into the engine. Methods must be safe for
// concurrent use. The engine calls them in this order for a priced request:
// Challenge (no credential, or any failure), Inspect, Verify, Settle.
//
// A rail takes single-use credentials (Payment.ReplayKey set: each may pay
// once) or bearer ones (Payment.Bearer: a credential charged many times,
// such as a token over a prepaid balance), or both.
//
// What some rails can do beyond this is in small interfaces (BatchSettler,
// Restorer, Resender, Reverifier, Reconciler), which the engine finds on the
// rail a journaled payment names.
type Rail interface {
	// Name identifies the rail among the engine's rails; journaled payments
	// carry it, so it must stay the same across restarts.
	Name() string
	// Headers are the headers the rail consumes and exposes.
	Headers() Headers
	// Challenge adds this rail's terms for ch to c. It may do I/O (create
	// an invoice) and fail; the engine then answers without this rail's
	// offer, or 503 when no rail could make one.
	Challenge(ctx context.Context, c *Challenge, ch Charge) error
	// Inspect decodes the rail's credential from r and makes every check that
	// needs neither cryptography nor I/O (format, amount, recipient, asset,
	// network, expiry). It returns (nil, nil) when r carries no credential for
	// this rail. Errors are *Error with a protocol reason; one with
	// OtherOffer set says the credential answers an offer this rail did not
	// make, and the engine asks the route's other rails.
	Inspect(r *http.Request, ch Charge) (*Payment, error)
	// Verify makes the expensive checks on a payment Inspect returned:
	// signature recovery, then the network (for a bearer credential, the
	// balance). When a check cannot complete (RPC down) it returns
	// KindUnavailable: the engine fails closed.
	Verify(ctx context.Context, p *Payment) error
	// Settle collects p, recording through rec before anything is sent. It
	// returns a receipt whenever the outcome is known or pending, with an
	// *Error when money did not move.
	Settle(ctx context.Context, p *Payment, rec Recorder) (*Receipt, error)
}

// BatchSettler is implemented by rails that can settle many payments in one
// network transaction. It returns one receipt and one error per payment, in
// order, with the same meaning as Rail.Settle's. Every payment's recorder is
// called before the shared transaction is sent.
type BatchSettler interface {
	SettleBatch(ctx context.Context, ps []*Payment, recs []Recorder) ([]*Receipt, []error)
}

// JournalSettler is implemented by rails whose money moves in the
// payments journal's own database (a prepaid ledger's debit). SettleOwed
// settles a verified sync payment in one journal transaction with its
// journal steps: verified → settling → settled and the money's movement
// commit together or not at all, so a crash leaves the payment verified
// with nothing moved, or settled. The engine then journals neither the
// owed step nor the outcome itself: a paid request costs two journal
// writes fewer. On an error nothing moved and the payment is still
// verified; the engine releases it. Async payments are settled through
// Settle as ever.
type JournalSettler interface {
	SettleOwed(ctx context.Context, p *Payment) (*Receipt, error)
}

// Restorer is implemented by rails that can rebuild a payment's credential
// from its journaled Payload, so that a settlement interrupted by a crash
// can be completed.
type Restorer interface {
	Restore(p *Payment) error
}

// Resender is implemented by rails that can send a payment's journaled
// settlement (Payment.Prepared) again, the same bytes, and finish the
// settlement from it, with Settle's results. The engine uses it for a
// settlement that no node accepted (reason ReasonSettlementNotSent)
// instead of settling anew: a new settlement could land beside the
// journaled one, which may still reach the network.
type Resender interface {
	Resend(ctx context.Context, p *Payment, rec Recorder) (*Receipt, error)
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

// Refunder is implemented by rails whose collected bearer charges can be
// given back: a debit of a prepaid balance is credited again. The engine
// calls it (paywall.Paywall.Refund) for a charge that paid for a purchase
// that failed where the engine could not see it, such as a forward-auth
// check whose proxy's upstream failed, then journals the charge released.
//
// Refund must be idempotent by p.ID: a crash between the refund and the
// journal's record makes the engine call it again for the same charge, which
// must give back nothing more.
type Refunder interface {
	Refund(ctx context.Context, p *Payment) error
}

// Outcome is what became of a payment, as a rail finds out from its
// network after the fact (crash recovery, audits).
type Outcome struct {
	// State is the payment's final state, or "" when it cannot be known yet
	// (a transaction still pending): the payment is left as it is.
	State State
	// Reference is the settlement that moved the money, when there is one.
	Reference string
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
	Success   bool
	Reference string
	Network   string
	Payer     string
	// Pending is true when a settlement was sent but its outcome is not yet
	// known; Reference is set and the payment will be finished later.
	Pending bool
	// Header holds the rail's response headers (PAYMENT-RESPONSE), set on
	// success and on a failed settlement alike.
	Header http.Header
}
