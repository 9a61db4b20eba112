package credits

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/siwx"
	"github.com/coinop/coinop/store"
)

// Network and Asset are what credits charges journal as their network and
// asset: a ledger, not a chain.
const (
	Network = "credits"
	Asset   = "credit"
	// Symbol names credits in prices ("3 credits").
	Symbol = "credits"
)

// Response headers of a charged request.
const (
	// HeaderBalance is the balance left after the charge, in credits.
	HeaderBalance = "Coinop-Credits-Balance"
	// HeaderPassExpires is when the account's pass ends (RFC 3339), when it
	// has one.
	HeaderPassExpires = "Coinop-Pass-Expires"
	// HeaderPassLeft is how many requests the pass has left, when capped.
	HeaderPassLeft = "Coinop-Pass-Remaining"
	// HeaderLow warns that the balance fell below the rail's threshold
	// (and no pass covers the next request): `low; threshold=<n>`.
	HeaderLow = "Coinop-Credits-Warning"
)

// Offered is one plan as a 402 advertises it: what it holds and how to buy
// it (the purchase URL, and the offers of the rails that sell it).
type Offered struct {
	Name    string `json:"name"`
	Credits int64  `json:"credits,omitempty"`
	// Pass is the pass's length in seconds.
	Pass     int64          `json:"passSeconds,omitempty"`
	Requests int64          `json:"requests,omitempty"`
	URL      string         `json:"url"`
	Offers   []coinop.Offer `json:"offers"`
}

// Seller is how the rail learns, for a 402, what its plans cost: the
// purchase endpoints' own offers for a request's host.
type Seller interface {
	Plans(ctx context.Context, r Origin) []Offered
}

// Origin is the scheme and host the buyer reached the route under, from
// the resource URL of the charge.
type Origin struct{ URL string }

// Rail charges credits accounts per request: a bearer credential
// (`Authorization: Bearer cop_…`) over a prepaid balance or pass, on the
// engine's contract (coinop.Rail). It works on any sync route of the
// engine. Its payments are always settled synchronously: it implements no
// async cap, so the engine never serves a charge before it is debited.
type Rail struct {
	// ID is the rail's name.
	ID     string
	Ledger *Ledger
	// Store is the journal the engine records the charges in: the debit
	// commits in one transaction with the charge's journal entry.
	Store Store
	// Low is the balance below which responses carry HeaderLow; 0: never.
	Low int64
	// Seller lists the plans a 402 offers; nil offers none.
	Seller Seller
	// Now is the clock of pass expiry shown in headers, and of sign-in
	// proofs' freshness.
	Now func() time.Time
	// SignIn, when set, also lets the wallet that bought a plan reach its
	// account by x402's sign-in-with-x (see SignIn).
	SignIn *SignIn
}

// presented is a credential Inspect decoded: an account's holder, and the
// sign-in proof that names it, if it came that way.
type presented struct {
	holder Holder
	proof  *siwx.Payload
}

func (r *Rail) Name() string { return r.ID }

// Headers implements coinop.Rail. Authorization stays at the gateway on
// every route once a credits rail is configured.
func (r *Rail) Headers() coinop.Headers {
	return coinop.Headers{
		Request: []string{"Authorization", siwx.Header},
		Expose:  []string{HeaderBalance, HeaderPassExpires, HeaderPassLeft, HeaderLow},
	}
}

// Challenge implements coinop.Rail: the per-request offer in credits and,
// in the JSON body's "plans", every plan with its purchase offers.
func (r *Rail) Challenge(ctx context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	o := coinop.Offer{
		Rail: r.ID, Protocol: "credits", Scheme: "bearer", Network: Network, Asset: Asset,
		Amount: ch.Price.Amount.String(), Price: price(ch.Price.Amount), Header: "Authorization",
		HowTo: "Buy a plan (see plans), then send the token it answers with as Authorization: Bearer <token>.",
	}
	var plans []Offered
	if r.Seller != nil {
		plans = r.Seller.Plans(ctx, Origin{URL: ch.Resource.URL})
	}
	if len(plans) > 0 {
		o.Terms = map[string]any{"plans": names(plans)}
		if c.Body == nil {
			c.Body = map[string]any{}
		}
		prev, _ := c.Body["plans"].([]Offered)
		c.Body["plans"] = append(prev, plans...)
	}
	c.Offers = append(c.Offers, o)
	if r.SignIn != nil {
		r.SignIn.declare(c, ch, plans, r.now())
	}
	return nil
}

func names(ps []Offered) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func price(n *big.Int) string { return n.String() + " " + Symbol }

// bearer reads a bearer token from an Authorization header: "" when the
// header is absent or of another scheme.
func bearer(h http.Header) (string, bool) {
	v := h.Values("Authorization")
	if len(v) != 1 {
		return "", len(v) > 1
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(v[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// Inspect implements coinop.Rail: a credits token in Authorization is a
// bearer charge of the route's price. Another Authorization scheme, or a
// bearer token of another form (meant for the upstream, or another rail),
// is not this rail's: (nil, nil), or OtherOffer for a malformed one so that
// another rail may take it.
func (r *Rail) Inspect(req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	tok, present := bearer(req.Header)
	if !present {
		if r.SignIn != nil && req.Header.Get(siwx.Header) != "" {
			return r.SignIn.inspect(r, req, ch)
		}
		return nil, nil
	}
	if tok == "" {
		e := coinop.Errorf(coinop.KindMalformed, ReasonTokenMalformed, "send exactly one Authorization header")
		return nil, e
	}
	if !strings.HasPrefix(tok, tokenPrefix) {
		return nil, nil
	}
	hash, err := ParseToken(tok)
	if err != nil {
		return nil, err
	}
	if ch.Price.Amount == nil || !ch.Price.Amount.IsInt64() || ch.Price.Amount.Sign() < 0 {
		return nil, coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "credits: price %v is not a count of credits", ch.Price.Amount)
	}
	return &coinop.Payment{
		Bearer: true, Network: Network, Asset: Asset, PayTo: r.ID,
		// The payer is named by its token's hash, so that an
		// Idempotency-Key is honoured per token (never the token itself:
		// the journal is not a place for spendable secrets).
		Payer:  "credits:" + hash[:32],
		Amount: new(big.Int).Set(ch.Price.Amount), Resource: ch.Resource.URL,
		Credential: presented{holder: Holder{TokenHash: hash}},
	}, nil
}

// Verify implements coinop.Rail: the token is known, not revoked, and its
// pass or balance covers the charge now. This is advice, not the guard:
// concurrent charges may all pass it, and Settle's debit decides.
func (r *Rail) Verify(ctx context.Context, p *coinop.Payment) error {
	pr, _ := p.Credential.(presented)
	if pr.proof != nil {
		if err := r.SignIn.verify(pr.proof, p.Resource, r.now()); err != nil {
			return err
		}
	}
	st, err := r.Ledger.Standing(ctx, pr.holder)
	if err != nil {
		return err
	}
	switch {
	case st.Revoked:
		return coinop.Errorf(coinop.KindRejected, ReasonTokenRevoked, "this bearer token was revoked")
	case st.PassActive(r.now()):
		return nil
	case st.Balance < p.Amount.Int64():
		return lowBalance(p.Amount.Int64())
	}
	return nil
}

func (r *Rail) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// Settle implements coinop.Rail: the debit and the journal's record of it
// (the payment, settling, gets the debit's movement as its reference) are
// one transaction. So a crash leaves either both (recovery finds the
// reference and the debit, and releases it: the response was never
// served) or neither (nothing was charged). A balance that no longer
// covers the charge (another request spent it) is KindInsufficientFunds:
// the engine withholds the response and answers 402 with the plans.
func (r *Rail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	rc, err := r.debit(ctx, p, false)
	if err == nil {
		rec.Step("tx_recorded")
	}
	return rc, err
}

// SettleOwed implements coinop.JournalSettler: the charge's journal steps
// (verified → settling → settled, with the debit's movement as reference)
// and the debit commit in one transaction, so a crash leaves the charge
// verified and the balance untouched, or both done. A balance that no
// longer covers the charge changes nothing.
func (r *Rail) SettleOwed(ctx context.Context, p *coinop.Payment) (*coinop.Receipt, error) {
	return r.debit(ctx, p, true)
}

// debit charges p in one journal transaction with its journal steps: the
// debit's movement as the settling payment's reference, and, when owe is
// set, the step into settling before it and into settled after it.
func (r *Rail) debit(ctx context.Context, p *coinop.Payment, owe bool) (*coinop.Receipt, error) {
	pr, _ := p.Credential.(presented)
	var d Debit
	err := r.Store.Atomically(ctx, func(tx store.Tx) error {
		if owe {
			if err := tx.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
				return err
			}
		}
		var err error
		if d, err = r.Ledger.Charge(ctx, tx, pr.holder, p.Amount.Int64(), p.ID); err != nil {
			return err
		}
		to := coinop.StateSettling
		if owe {
			to = coinop.StateSettled
		}
		return tx.Transition(ctx, p.ID, coinop.StateSettling, to, d.Movement, "")
	})
	if err != nil {
		var stop errStop
		if errors.As(err, &stop) {
			return nil, stop.err
		}
		if e := coinop.AsError(err); e.Kind == coinop.KindInFlight {
			return nil, err // another request moved the charge on
		}
		return nil, unavailable(err)
	}
	p.Reference = d.Movement
	return &coinop.Receipt{Success: true, Reference: d.Movement, Network: Network, Payer: p.Payer, Header: r.standingHeaders(d.After)}, nil
}

// standingHeaders say where the buyer stands after a charge.
func (r *Rail) standingHeaders(st Standing) http.Header {
	h := http.Header{}
	h.Set(HeaderBalance, strconv.FormatInt(st.Balance, 10))
	pass := st.PassActive(r.now())
	if !st.PassUntil.IsZero() && r.now().Before(st.PassUntil) {
		h.Set(HeaderPassExpires, st.PassUntil.Format(time.RFC3339))
		if st.PassLeft >= 0 {
			h.Set(HeaderPassLeft, strconv.FormatInt(st.PassLeft, 10))
		}
	}
	if r.Low > 0 && st.Balance < r.Low && !pass {
		h.Set(HeaderLow, "low; threshold="+strconv.FormatInt(r.Low, 10))
	}
	return h
}

// Reconcile implements coinop.Reconciler for recovery. A charge left
// verified was never debited (debits happen only once settling): released.
// A settling one was debited exactly when it has a reference (the two
// commit together); either way its response never left (credits charges
// are sync), so a debit is given back (a release movement) and the charge
// is failed: the buyer paid nothing for nothing.
func (r *Rail) Reconcile(ctx context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	switch p.State {
	case coinop.StateVerified:
		return coinop.Outcome{State: coinop.StateReleased, Reason: "recovered_before_settlement"}, nil
	case coinop.StateSettling:
		released, err := r.Ledger.Release(ctx, p.ID)
		if err != nil {
			return coinop.Outcome{}, err
		}
		if released {
			return coinop.Outcome{State: coinop.StateFailed, Reference: p.Reference, Reason: "credits_released_unserved"}, nil
		}
		return coinop.Outcome{State: coinop.StateFailed, Reason: "credits_not_debited"}, nil
	}
	return coinop.Outcome{}, nil
}

func bigInt(n int64) *big.Int { return big.NewInt(n) }

// Refund implements coinop.Refunder: the charge's debit is given back (a
// release movement, once per charge: a second call gives back nothing
// more), for a purchase that failed where the engine could not see it (a
// forward-auth check whose proxy's upstream failed).
func (r *Rail) Refund(ctx context.Context, p *coinop.Payment) error {
	found, err := r.Ledger.Release(ctx, p.ID)
	if err != nil {
		return err
	}
	if !found {
		return coinop.Errorf(coinop.KindConflict, "credits_no_debit", "charge %s has no debit in the credits ledger", p.ID)
	}
	return nil
}

var (
	_ coinop.Refunder   = (*Rail)(nil)
	_ coinop.Reconciler = (*Rail)(nil)
)
