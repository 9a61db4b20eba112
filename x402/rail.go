package x402

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/coinop/coinop"
)

// Scheme verifies and settles payments of one x402 scheme on one network for
// one asset and recipient. Implementations must be safe for concurrent use.
// The exact scheme on EVM lives in package evm; a remote facilitator can
// implement Scheme too.
type Scheme interface {
	// Requirements is the accepts entry this scheme offers for ch. It must be
	// deterministic: clients echo it back and servers compare.
	Requirements(ch coinop.Charge) PaymentRequirements
	// Check decodes c.Payload.Payload and makes every check that needs no
	// cryptography and no I/O, cheapest first. It returns the payment to
	// journal; it may keep decoded state in c.State.
	Check(c *Credential) (*coinop.Payment, error)
	// Verify makes the signature and chain checks.
	Verify(ctx context.Context, p *coinop.Payment, c *Credential) error
	// Settle moves the money, journaling the transaction through rec (which
	// may be nil: nothing is recorded) before it is sent. The response is
	// non-nil whenever an outcome (including a failure) is known; the error
	// is a *coinop.Error when money did not move.
	Settle(ctx context.Context, p *coinop.Payment, c *Credential, rec coinop.Recorder) (*SettleResponse, error)
}

// Credential is one presented x402 payment, decoded.
type Credential struct {
	// Version is the wire version the client used (1 or 2); the answer uses
	// the same version's headers.
	Version int
	// Payload is the decoded payment. v1 payloads are normalized: Accepted
	// holds the client's scheme and network only.
	Payload PaymentPayload
	// Requirements is our offer that the payment answers.
	Requirements PaymentRequirements
	// State is private to the scheme that checked the credential.
	State any

	scheme Scheme
}

// Rail is the x402 coinop.Rail: it answers with PAYMENT-REQUIRED and a v1
// compatible JSON body, reads PAYMENT-SIGNATURE (v2) and X-PAYMENT (v1), and
// answers with PAYMENT-RESPONSE or X-PAYMENT-RESPONSE. Its credentials are
// single-use: each authorization pays once.
//
// Several x402 rails may serve one route (USDC on two networks): their
// requirements share one PAYMENT-REQUIRED header and one v1 body, and a
// payment is taken by the rail whose offer it answers.
type Rail struct {
	// ID is the rail's name (see Name); "x402" when empty.
	ID string
	// Schemes are the ways this rail accepts payment, offered in this order.
	Schemes []Scheme
}

// Name is the rail's name among the engine's rails.
func (r *Rail) Name() string {
	if r.ID == "" {
		return "x402"
	}
	return r.ID
}

// Headers are the x402 request headers (v2 and v1), and the response
// headers a browser script must read to pay and to see the settlement.
func (r *Rail) Headers() coinop.Headers {
	return coinop.Headers{
		Request: []string{HeaderPaymentSignature, HeaderXPayment},
		Expose:  []string{HeaderPaymentRequired, HeaderPaymentResponse, HeaderXPaymentResponse},
	}
}

var (
	_ coinop.Rail         = (*Rail)(nil)
	_ coinop.Restorer     = (*Rail)(nil)
	_ coinop.BatchSettler = (*Rail)(nil)
	_ coinop.Resender     = (*Rail)(nil)
	_ coinop.Reverifier   = (*Rail)(nil)
)

func (r *Rail) requirements(ch coinop.Charge) []PaymentRequirements {
	reqs := make([]PaymentRequirements, len(r.Schemes))
	for i, s := range r.Schemes {
		reqs[i] = s.Requirements(ch)
	}
	return reqs
}

// Challenge adds PAYMENT-REQUIRED, the offers, and the v1 body members. A
// PAYMENT-REQUIRED another x402 rail wrote for the same challenge is kept
// and extended with this rail's requirements, as is its v1 body. It does no
// I/O and never fails.
func (r *Rail) Challenge(_ context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	reqs := r.requirements(ch)
	var earlier PaymentRequired
	if h := c.Header.Get(HeaderPaymentRequired); h != "" && DecodeHeader(h, &earlier) == nil {
		reqs = append(earlier.Accepts, reqs...)
	}
	mine := reqs[len(reqs)-len(r.Schemes):]
	msg := c.Message
	if c.Reason == "" || c.Reason == ReasonPaymentRequired {
		msg = "PAYMENT-SIGNATURE header is required"
	} else if c.Reason != "" {
		msg = c.Reason
	}
	pr := PaymentRequired{
		X402Version: 2,
		Error:       msg,
		Resource:    &ResourceInfo{URL: ch.Resource.URL, Description: ch.Resource.Description, MimeType: ch.Resource.MimeType},
		Accepts:     reqs,
		Extensions:  earlier.Extensions, // another rail's (sign-in-with-x)
	}
	if h, err := EncodeHeader(pr); err == nil {
		c.Header.Set(HeaderPaymentRequired, h)
	}
	v1, _ := c.Body["accepts"].([]PaymentRequirementsV1)
	for _, q := range mine {
		v1 = append(v1, PaymentRequirementsV1{
			Scheme: q.Scheme, Network: V1Name(q.Network), MaxAmountRequired: q.Amount,
			Asset: q.Asset, PayTo: q.PayTo, Resource: ch.Resource.URL,
			Description: ch.Resource.Description, MimeType: ch.Resource.MimeType,
			MaxTimeoutSeconds: q.MaxTimeoutSeconds, Extra: q.Extra,
		})
		c.Offers = append(c.Offers, coinop.Offer{
			Rail: r.Name(), Protocol: "x402", Scheme: q.Scheme, Network: q.Network, Asset: q.Asset,
			PayTo: q.PayTo, Amount: q.Amount, Price: ch.Price.String(),
			Header:  HeaderPaymentSignature,
			HowTo:   "Sign an EIP-3009 transferWithAuthorization of " + q.Amount + " atomic units to payTo on " + q.Network + " and send it, base64 JSON encoded, in the PAYMENT-SIGNATURE header (v1 clients: X-PAYMENT). `coinop curl URL` does this for you.",
			Expires: q.MaxTimeoutSeconds,
		})
	}
	if c.Body == nil {
		c.Body = map[string]any{}
	}
	// The v1 transport puts the requirements in the 402 body; legacy clients
	// read them from there, v2 clients read the header.
	c.Body["x402Version"] = 1
	c.Body["error"] = strings.Replace(msg, "PAYMENT-SIGNATURE", "X-PAYMENT", 1)
	c.Body["accepts"] = v1
	return nil
}

// Inspect decodes the payment header and runs the matching scheme's cheap
// checks.
func (r *Rail) Inspect(req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	var payload string
	if h := req.Header.Get(HeaderPaymentSignature); h != "" {
		payload = "v2:" + h
	} else if h := req.Header.Get(HeaderXPayment); h != "" {
		payload = "v1:" + h
	} else {
		return nil, nil
	}
	cred, err := decodeCredential(payload)
	if err != nil {
		return nil, err
	}
	reqs := r.requirements(ch)
	i, err := match(reqs, &cred.Payload.Accepted, cred.Version)
	if err != nil {
		// Another x402 rail of the route may have made the offer it answers.
		coinop.AsError(err).OtherOffer = true
		return nil, err
	}
	cred.Requirements = reqs[i]
	cred.scheme = r.Schemes[i]
	p, err := cred.scheme.Check(cred)
	if err != nil {
		return nil, err
	}
	p.Resource = ch.Resource.URL
	p.Payload = payload
	p.IdempotencyKey = paymentIdentifier(cred.Payload.Extensions)
	p.Credential = cred
	return p, nil
}

// Bind checks cred, whose Requirements a caller already chose (an x402
// facilitator's /verify and /settle carry them), with scheme s, and returns
// the payment to journal, bound to s: any x402 Rail verifies and settles it.
// resource and payload are journaled with it (payload in the form
// Inspect journals: "v2:" or "v1:" and the payment header's value).
func Bind(cred *Credential, s Scheme, resource, payload string) (*coinop.Payment, error) {
	cred.scheme = s
	p, err := s.Check(cred)
	if err != nil {
		return nil, err
	}
	p.Resource, p.Payload, p.Credential = resource, payload, cred
	return p, nil
}

// decodeCredential decodes a journaled payload: "v2:" or "v1:" and the
// payment header's value.
func decodeCredential(payload string) (*Credential, error) {
	var cred Credential
	switch version, h, _ := strings.Cut(payload, ":"); version {
	case "v2":
		if err := DecodeHeader(h, &cred.Payload); err != nil {
			return nil, coinop.Wrap(coinop.KindMalformed, ReasonInvalidPayload, err, "PAYMENT-SIGNATURE: "+err.Error())
		}
		if cred.Payload.X402Version != 2 {
			return nil, coinop.Errorf(coinop.KindRejected, ReasonInvalidVersion, "PAYMENT-SIGNATURE carries x402Version %d; this header is for version 2", cred.Payload.X402Version)
		}
		cred.Version = 2
	case "v1":
		var v1 PaymentPayloadV1
		if err := DecodeHeader(h, &v1); err != nil {
			return nil, coinop.Wrap(coinop.KindMalformed, ReasonInvalidPayload, err, "X-PAYMENT: "+err.Error())
		}
		if v1.X402Version != 1 {
			return nil, coinop.Errorf(coinop.KindRejected, ReasonInvalidVersion, "X-PAYMENT carries x402Version %d; this header is for version 1", v1.X402Version)
		}
		network, ok := NetworkForV1(v1.Network)
		if !ok {
			network = v1.Network
		}
		cred.Version = 1
		cred.Payload = PaymentPayload{X402Version: 1, Accepted: PaymentRequirements{Scheme: v1.Scheme, Network: network}, Payload: v1.Payload}
	default:
		return nil, coinop.Errorf(coinop.KindInternal, ReasonInvalidPayload, "journaled payload has no version prefix")
	}
	if len(cred.Payload.Payload) == 0 || string(cred.Payload.Payload) == "null" {
		return nil, coinop.Errorf(coinop.KindMalformed, ReasonInvalidPayload, "the payment has no payload")
	}
	return &cred, nil
}

// paymentIdentifier reads the payment-identifier extension's id
// ({"payment-identifier": {"info": {"id": "…"}}}); ids must be 16 to 128
// characters of [A-Za-z0-9_-]. Anything else is ignored.
func paymentIdentifier(ext map[string]any) string {
	e, _ := ext["payment-identifier"].(map[string]any)
	info, _ := e["info"].(map[string]any)
	id, _ := info["id"].(string)
	if len(id) < 16 || len(id) > 128 {
		return ""
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return ""
		}
	}
	return "pid:" + id
}

// Restore rebuilds a journaled payment's credential from its Payload, for a
// settlement interrupted by a crash. The scheme's checks run again, so an
// authorization that expired meanwhile is refused.
func (r *Rail) Restore(p *coinop.Payment) error {
	cred, err := decodeCredential(p.Payload)
	if err != nil {
		return err
	}
	ch := coinop.Charge{Price: coinop.Price{Amount: p.Amount}, Resource: coinop.Resource{URL: p.Resource}}
	for i, s := range r.Schemes {
		q := s.Requirements(ch)
		if q.Network != p.Network || !strings.EqualFold(q.Asset, p.Asset) || !strings.EqualFold(q.PayTo, p.PayTo) {
			continue
		}
		cred.Requirements, cred.scheme = q, r.Schemes[i]
		got, err := s.Check(cred)
		if err != nil {
			return err
		}
		if got.ID != p.ID {
			return coinop.Errorf(coinop.KindInternal, ReasonInvalidPayload, "journaled payload does not belong to payment %s", p.ID)
		}
		p.Credential = cred
		return nil
	}
	return coinop.Errorf(coinop.KindInternal, ReasonNoMatchingOffer, "no scheme of this rail takes payment %s", p.ID)
}

// match picks the offer a payment answers: same scheme, then same network,
// then (v2) same asset. Disagreement on the rest is left to the scheme's
// checks, which name the mismatching field.
func match(reqs []PaymentRequirements, acc *PaymentRequirements, version int) (int, error) {
	best, bestScore := -1, 0
	for i, q := range reqs {
		score := 0
		if q.Scheme == acc.Scheme {
			score = 1
			if q.Network == acc.Network {
				score = 2
				if version == 1 || strings.EqualFold(q.Asset, acc.Asset) {
					score = 3
				}
			}
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	switch bestScore {
	case 0:
		return 0, coinop.Errorf(coinop.KindRejected, ReasonUnsupportedScheme, "scheme %q is not offered here", acc.Scheme)
	case 1:
		return 0, coinop.Errorf(coinop.KindRejected, ReasonNetworkMismatch, "network %q is not offered here", acc.Network)
	case 2:
		return 0, coinop.Errorf(coinop.KindRejected, ReasonAssetMismatch, "asset %s is not offered here", acc.Asset)
	}
	return best, nil
}

// Verify runs the scheme's signature and chain checks.
func (r *Rail) Verify(ctx context.Context, p *coinop.Payment) error {
	c, err := credential(p)
	if err != nil {
		return err
	}
	return c.scheme.Verify(ctx, p, c)
}

// Reverify proves that p, presented again, is the payment journaled as prev:
// the exact EVM signature recovers to the authorization's from under our
// offer's EIP-712 domain (AuthenticateExactEVM, no I/O), and the
// authorization and signature are those of prev's journaled payload
// (SameExactEVM). Other schemes cannot be reverified: their payments are
// never served again.
func (r *Rail) Reverify(p, prev *coinop.Payment) error {
	c, err := credential(p)
	if err != nil {
		return err
	}
	replayed := coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this payment was already used")
	if c.Requirements.Scheme != "exact" || !strings.HasPrefix(c.Requirements.Network, "eip155:") {
		return replayed
	}
	if err := AuthenticateExactEVM(c); err != nil {
		return err
	}
	old, err := decodeCredential(prev.Payload)
	if err != nil || !SameExactEVM(c.Payload.Payload, old.Payload.Payload) {
		return replayed
	}
	return nil
}

// Settle runs the scheme's settlement and encodes its result as the
// response header of the client's wire version.
func (r *Rail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	c, err := credential(p)
	if err != nil {
		return nil, err
	}
	resp, err := c.scheme.Settle(ctx, p, c, rec)
	if resp == nil {
		return nil, err
	}
	return receipt(resp, c.Version), err
}

// ResendScheme is implemented by schemes that can broadcast a payment's
// journaled settlement transaction again and finish the settlement from it.
type ResendScheme interface {
	Resend(ctx context.Context, p *coinop.Payment, c *Credential, rec coinop.Recorder) (*SettleResponse, error)
}

// Resend broadcasts p's journaled settlement transaction again through its
// scheme, and encodes the result as Settle does.
func (r *Rail) Resend(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	c, err := credential(p)
	if err != nil {
		return nil, err
	}
	rs, ok := c.scheme.(ResendScheme)
	if !ok {
		return nil, coinop.Errorf(coinop.KindInternal, ReasonUnexpectedSettle, "this payment's scheme cannot resend a settlement")
	}
	resp, err := rs.Resend(ctx, p, c, rec)
	if resp == nil {
		return nil, err
	}
	return receipt(resp, c.Version), err
}

// BatchScheme is implemented by schemes that can settle many payments in one
// transaction; results come back in order.
type BatchScheme interface {
	SettleBatch(ctx context.Context, ps []*coinop.Payment, cs []*Credential, recs []coinop.Recorder) ([]*SettleResponse, []error)
}

// Batcher is implemented by batch schemes that say whether they settle
// many payments in one transaction (a chain with a batch contract) or one
// by one.
type Batcher interface {
	Batches() bool
}

// Batches implements paywall.Batching: p's scheme settles payments in one
// transaction.
func (r *Rail) Batches(p *coinop.Payment) bool {
	c, err := credential(p)
	if err != nil {
		return false
	}
	b, ok := c.scheme.(Batcher)
	return ok && b.Batches()
}

// SettleBatch settles payments together where their scheme can batch, and
// one by one otherwise.
func (r *Rail) SettleBatch(ctx context.Context, ps []*coinop.Payment, recs []coinop.Recorder) ([]*coinop.Receipt, []error) {
	rcs, errs := make([]*coinop.Receipt, len(ps)), make([]error, len(ps))
	groups := map[Scheme][]int{}
	var order []Scheme
	for i, p := range ps {
		c, err := credential(p)
		if err != nil {
			errs[i] = err
			continue
		}
		if _, ok := groups[c.scheme]; !ok {
			order = append(order, c.scheme)
		}
		groups[c.scheme] = append(groups[c.scheme], i)
	}
	for _, s := range order {
		idx := groups[s]
		bs, ok := s.(BatchScheme)
		if !ok || len(idx) == 1 {
			for _, i := range idx {
				rcs[i], errs[i] = r.Settle(ctx, ps[i], recs[i])
			}
			continue
		}
		sub, cs, rs := make([]*coinop.Payment, len(idx)), make([]*Credential, len(idx)), make([]coinop.Recorder, len(idx))
		for k, i := range idx {
			sub[k], rs[k] = ps[i], recs[i]
			cs[k], _ = credential(ps[i])
		}
		resps, serrs := bs.SettleBatch(ctx, sub, cs, rs)
		for k, i := range idx {
			errs[i] = serrs[k]
			if resps[k] != nil {
				rcs[i] = receipt(resps[k], cs[k].Version)
			}
		}
	}
	return rcs, errs
}

// receipt turns a settle response into a receipt with the response header of
// the client's wire version.
func receipt(resp *SettleResponse, version int) *coinop.Receipt {
	rc := &coinop.Receipt{Success: resp.Success, Reference: resp.Transaction, Network: resp.Network, Payer: resp.Payer, Pending: resp.Pending, Header: http.Header{}}
	name := HeaderPaymentResponse
	if version == 1 {
		name = HeaderXPaymentResponse
	}
	if h, err := EncodeHeader(resp); err == nil {
		rc.Header.Set(name, h)
	}
	return rc
}

func credential(p *coinop.Payment) (*Credential, error) {
	c, ok := p.Credential.(*Credential)
	if !ok || c.scheme == nil {
		return nil, coinop.Errorf(coinop.KindInternal, ReasonUnexpectedVerify, "payment was not inspected by the x402 rail")
	}
	return c, nil
}

// DecodeExactEVM decodes the payload of an exact EVM credential.
func DecodeExactEVM(raw json.RawMessage) (*ExactEVMPayload, error) {
	var p ExactEVMPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
