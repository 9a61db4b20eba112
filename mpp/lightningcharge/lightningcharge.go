// Package lightningcharge is the Payment scheme's "lightning" method,
// intent "charge" (draft-lightning-charge-00): each challenge carries a
// fresh BOLT11 invoice for the price, the payer pays it and presents the
// payment's preimage (credential payload {"preimage":"<64 hex>"}).
//
// The challenge's id (the rail's HMAC) binds the request, and so the
// invoice and its payment hash, to the challenge: a preimage answers the
// challenge whose invoice it pays, and no other. A preimage proves that
// someone knew the secret, not that this node was paid (a node holding an
// invoice may reveal it unpaid), so before serving the invoice must be
// SETTLED at the node for at least the price. The payment hash is the
// replay key: an invoice pays for one response.
//
// The money moved when the invoice settled. When the upstream fails the
// payment is released and the same credential may be presented again: it
// has paid for one response and gets one.
package lightningcharge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/bolt11"
	"github.com/coinop/coinop/mpp"
)

// Name is the method's name on the wire.
const Name = "lightning"

// Currency is the request's currency: amounts are in satoshis.
const Currency = "sat"

// Asset is the unit of the method's journaled amounts.
const Asset = "msat"

// Problem types of the lightning method (draft-lightning-charge-00,
// "Error Responses").
const (
	ProblemMalformed        = mpp.ProblemPrefix + "lightning/malformed-credential"
	ProblemUnknownChallenge = mpp.ProblemPrefix + "lightning/unknown-challenge"
	ProblemInvalidPreimage  = mpp.ProblemPrefix + "lightning/invalid-preimage"
	ProblemExpiredInvoice   = mpp.ProblemPrefix + "lightning/expired-invoice"
)

// Reason codes of the lightning method's refusals.
const (
	ReasonPayload         = "mpp_lightning_malformed_payload"
	ReasonRequest         = "mpp_lightning_bad_request"
	ReasonPreimage        = "mpp_lightning_invalid_preimage"
	ReasonInvoiceUnknown  = "mpp_lightning_invoice_unknown"
	ReasonNotSettled      = "mpp_lightning_invoice_not_settled"
	ReasonUnderpaid       = "mpp_lightning_invoice_underpaid"
	ReasonNodeUnavailable = "mpp_lightning_node_unavailable"
)

// Method takes lightning charges with invoices from one node. It is safe
// for concurrent use when its Node is.
type Method struct {
	// Node issues and looks up the invoices.
	Node lightning.Invoicer
	// Network is the Lightning network of the node's invoices: mainnet,
	// signet or regtest. If empty, mainnet.
	Network string
	// Expiry is the invoices' expiry: the rail's challenge expiry and a
	// moment, so that a challenge's expires is never later than its
	// invoice's and an invoice cannot be paid long after its challenge
	// expired (see TakesLate). If zero, 10 minutes.
	Expiry time.Duration
}

var (
	_ mpp.Method        = (*Method)(nil)
	_ mpp.Issuer        = (*Method)(nil)
	_ mpp.Reverifier    = (*Method)(nil)
	_ mpp.ProblemTyper  = (*Method)(nil)
	_ mpp.LateTaker     = (*Method)(nil)
	_ coinop.Reconciler = (*Method)(nil)
)

// Name implements mpp.Method.
func (m *Method) Name() string { return Name }

// Intent implements mpp.Method.
func (m *Method) Intent() string { return mpp.IntentCharge }

func (m *Method) network() string {
	if m.Network == "" {
		return "mainnet"
	}
	return m.Network
}

func (m *Method) expiry() time.Duration {
	if m.Expiry > 0 {
		return m.Expiry
	}
	return 10 * time.Minute
}

// journalNetwork is where the method's payments are journaled:
// "lightning:<network>", as the L402 rail journals them.
func (m *Method) journalNetwork() string { return "lightning:" + m.network() }

// Request is the request's shape on the wire.
type Request struct {
	Amount        string `json:"amount"`
	Currency      string `json:"currency"`
	Description   string `json:"description,omitempty"`
	MethodDetails struct {
		Invoice     string `json:"invoice"`
		PaymentHash string `json:"paymentHash,omitempty"`
		Network     string `json:"network,omitempty"`
	} `json:"methodDetails"`
}

// Offer is a decoded request whose convenience fields agree with its
// invoice: what a client may pay and a server may check against.
type Offer struct {
	Request
	Invoice *bolt11.Invoice
	// Network is the invoice's network by name ("regtest").
	Network string
}

// Payload is the credential's payload.
type Payload struct {
	Preimage string `json:"preimage"`
}

// sats is a price in whole satoshis: what the request's amount states.
func sats(p coinop.Price) (int64, error) {
	if p.Amount == nil || p.Amount.Sign() <= 0 || !p.Amount.IsInt64() || p.Amount.Int64()%1000 != 0 {
		return 0, fmt.Errorf("lightning: price %v msat is not a positive whole number of satoshis", p.Amount)
	}
	return p.Amount.Int64() / 1000, nil
}

// Request implements mpp.Method. A lightning request is issued afresh for
// every challenge (Issue); Request is never called for it by the rail.
func (m *Method) Request(coinop.Charge) (map[string]any, error) {
	return nil, errors.New("lightning: requests are issued per challenge")
}

// Issue implements mpp.Issuer: a new invoice for the price from the node,
// in a request stating the amount in sats and the invoice with its payment
// hash and network. An invoice of another network or amount than asked is
// offered to nobody.
func (m *Method) Issue(ctx context.Context, ch coinop.Charge) (map[string]any, error) {
	s, err := sats(ch.Price)
	if err != nil {
		return nil, err
	}
	memo := ch.Resource.Description
	if memo == "" {
		memo = ch.Route
	}
	inv, err := m.Node.AddInvoice(ctx, lightning.InvoiceRequest{AmountMsat: s * 1000, Memo: memo, Expiry: m.expiry()})
	if err != nil {
		return nil, unavailable(err, "the Lightning node could not issue an invoice")
	}
	dec, err := bolt11.Decode(inv.PaymentRequest)
	if err != nil || dec.Network != bolt11.Prefixes[m.network()] || dec.AmountMsat != s*1000 || dec.Hash != [32]byte(inv.Hash) {
		return nil, unavailable(fmt.Errorf("lightning: the node's invoice %.16s… is not one of %d msat on %s with its payment hash", inv.PaymentRequest, s*1000, m.network()),
			"the Lightning node could not issue an invoice")
	}
	details := map[string]any{"invoice": inv.PaymentRequest, "paymentHash": inv.Hash.String(), "network": m.network()}
	req := map[string]any{"amount": strconv.FormatInt(s, 10), "currency": Currency, "methodDetails": details}
	if memo != "" {
		req["description"] = memo
	}
	return req, nil
}

// DecodeRequest reads a challenge's encoded request and checks it as a
// client must before paying: the amount is a positive number of sats, the
// currency "sat", the invoice decodes, asks exactly the amount, and its
// payment hash and network are the convenience fields' (when present).
func DecodeRequest(enc string) (*Offer, error) {
	var o Offer
	if err := mpp.DecodeRequest(enc, &o.Request); err != nil {
		return nil, err
	}
	r := &o.Request
	amount, err := strconv.ParseInt(r.Amount, 10, 64)
	switch {
	case err != nil || amount <= 0 || strconv.FormatInt(amount, 10) != r.Amount || amount > (1<<62)/1000:
		return nil, fmt.Errorf("amount %q: want a positive decimal number of sats", r.Amount)
	case r.Currency != Currency:
		return nil, fmt.Errorf("currency %q: want %q", r.Currency, Currency)
	}
	inv, err := bolt11.Decode(r.MethodDetails.Invoice)
	if err != nil {
		return nil, fmt.Errorf("methodDetails.invoice: %w", err)
	}
	if inv.AmountMsat != amount*1000 {
		return nil, fmt.Errorf("the invoice asks %d msat, the request %d sat", inv.AmountMsat, amount)
	}
	if h := r.MethodDetails.PaymentHash; h != "" && h != hex.EncodeToString(inv.Hash[:]) {
		return nil, errors.New("methodDetails.paymentHash is not the invoice's")
	}
	o.Network = "mainnet"
	if n := r.MethodDetails.Network; n != "" {
		o.Network = n
	}
	if p, ok := bolt11.Prefixes[o.Network]; !ok || o.Network == "testnet" || p != inv.Network {
		return nil, fmt.Errorf("network %q is not the invoice's", o.Network)
	}
	o.Invoice = inv
	return &o, nil
}

// issued reads a request this method issued (the challenge's id proved
// it): its amount in msat and its payment hash, from the fields Issue
// checked against the invoice, without decoding the invoice again (which
// recovers its signer's key: most of a check's cost).
func (m *Method) issued(request string) (amountMsat int64, hash lightning.Hash, err error) {
	var r Request
	if err := mpp.DecodeRequest(request, &r); err != nil {
		return 0, hash, err
	}
	sat, err := strconv.ParseInt(r.Amount, 10, 64)
	switch {
	case err != nil || sat <= 0 || sat > (1<<62)/1000 || r.Currency != Currency:
		return 0, hash, fmt.Errorf("amount %q %q: want a positive number of sats", r.Amount, r.Currency)
	case r.MethodDetails.Network != m.network():
		return 0, hash, fmt.Errorf("its invoice is on %q, not %s", r.MethodDetails.Network, m.network())
	}
	hash, err = lightning.ParseHash(r.MethodDetails.PaymentHash)
	return sat * 1000, hash, err
}

// Matches implements mpp.Issuer: the echoed request, which the rail
// issued, asks exactly ch's price, on this method's network.
func (m *Method) Matches(ch coinop.Charge, request string) error {
	amount, _, err := m.issued(request)
	if err != nil {
		return err
	}
	if ch.Price.Amount == nil || big.NewInt(amount).Cmp(ch.Price.Amount) != 0 {
		return fmt.Errorf("its invoice asks %d msat, this request costs %v msat", amount, ch.Price.Amount)
	}
	return nil
}

// TakesLate implements mpp.LateTaker: a credential presented after its
// challenge expired is served when its invoice is SETTLED (Verify): the
// invoice expires with the challenge and a node settles no expired
// invoice, so it was paid in time, and refusing it would keep money that
// bought nothing. One whose invoice is not settled is refused as expired.
func (m *Method) TakesLate() bool { return true }

// ProblemType implements mpp.ProblemTyper with the draft's types: a
// challenge not issued here (or altered, or for another price) is
// unknown-challenge, an expired one expired-invoice.
func (m *Method) ProblemType(base string) string {
	switch base {
	case mpp.ProblemInvalidChallenge:
		return ProblemUnknownChallenge
	case mpp.ProblemExpired:
		return ProblemExpiredInvoice
	}
	return base
}

// Offer implements mpp.Method.
func (m *Method) Offer(ch coinop.Charge) coinop.Offer {
	return coinop.Offer{
		Scheme: "lightning/charge", Network: m.journalNetwork(), Asset: Asset,
		Amount: ch.Price.Amount.String(), Price: ch.Price.String(),
		HowTo: "Pay the BOLT11 invoice in the challenge's request (methodDetails.invoice), then present the payment's preimage as an Authorization: Payment credential with payload {\"preimage\":\"<64 lowercase hex>\"}. `coinop curl --prefer mpp URL` does this.",
	}
}

// DecodePayload reads a credential's payload: a JSON object with exactly
// one member, preimage, 64 lowercase hex digits.
func DecodePayload(b []byte) (lightning.Preimage, error) {
	var p lightning.Preimage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var pl Payload
	if err := dec.Decode(&pl); err != nil {
		return p, fmt.Errorf("the lightning payload is not {\"preimage\":\"…\"}: %w", err)
	}
	if dec.More() {
		return p, errors.New("the lightning payload has data after its object")
	}
	if len(pl.Preimage) != 64 {
		return p, fmt.Errorf("preimage: want 64 lowercase hex digits, got %d characters", len(pl.Preimage))
	}
	for _, c := range []byte(pl.Preimage) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return p, errors.New("preimage: want 64 lowercase hex digits")
		}
	}
	hex.Decode(p[:], []byte(pl.Preimage))
	return p, nil
}

// EncodePayload writes the payload for preimage p.
func EncodePayload(p lightning.Preimage) json.RawMessage {
	b, _ := json.Marshal(Payload{Preimage: p.String()})
	return b
}

// PaymentID is the journal ID of the payment of hash on network.
func PaymentID(network string, hash lightning.Hash) string {
	return "mpp-lightning:" + network + ":" + hash.String()
}

type state struct {
	hash     lightning.Hash
	preimage lightning.Preimage
}

func refuse(k coinop.Kind, typ, reason, format string, args ...any) *coinop.Error {
	return &coinop.Error{Kind: k, Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func unavailable(err error, msg string) *coinop.Error {
	return &coinop.Error{Kind: coinop.KindUnavailable, Reason: ReasonNodeUnavailable, Message: msg, Err: err}
}

// Check implements mpp.Method: the payload's preimage must hash to the
// payment hash of the challenge's invoice (the request the challenge's id
// binds). The ID and replay key derive from the payment hash: one
// invoice, one journal entry.
func (m *Method) Check(c *mpp.Checked) (*coinop.Payment, error) {
	pre, err := DecodePayload(c.Credential.Payload)
	if err != nil {
		// The draft answers a malformed lightning credential with a 402
		// and a fresh challenge.
		return nil, refuse(coinop.KindRejected, ProblemMalformed, ReasonPayload, "%s", err.Error())
	}
	_, hash, err := m.issued(c.Credential.Challenge.Request)
	if err != nil {
		return nil, refuse(coinop.KindRejected, ProblemUnknownChallenge, ReasonRequest, "the challenge's request: %s", err.Error())
	}
	if sha256.Sum256(pre[:]) != [32]byte(hash) {
		return nil, refuse(coinop.KindRejected, ProblemInvalidPreimage, ReasonPreimage, "SHA-256 of the preimage is not the payment hash of the challenge's invoice")
	}
	c.State = &state{hash: hash, preimage: pre}
	return &coinop.Payment{
		ID: PaymentID(m.network(), hash), ReplayKey: hash.String(),
		Network: m.journalNetwork(), Asset: Asset, Amount: new(big.Int).Set(c.Charge.Price.Amount),
		Details: map[string]string{"payment_hash": hash.String()},
	}, nil
}

// Verify implements mpp.Method: the node must show the invoice SETTLED
// for at least the price. A node that cannot answer fails closed.
func (m *Method) Verify(ctx context.Context, p *coinop.Payment, c *mpp.Checked) error {
	s, ok := c.State.(*state)
	if !ok {
		return coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "credential was not checked")
	}
	inv, err := m.Node.LookupInvoice(ctx, s.hash)
	switch {
	case errors.Is(err, lightning.ErrNotFound):
		return refuse(coinop.KindRejected, ProblemUnknownChallenge, ReasonInvoiceUnknown, "the Lightning node does not know invoice %s", s.hash)
	case err != nil:
		return unavailable(err, "the Lightning node cannot confirm the payment right now; try again shortly")
	case c.Late && inv.State != lightning.InvoiceSettled:
		return refuse(coinop.KindRejected, ProblemExpiredInvoice, mpp.ReasonExpired, "the challenge expired at %s and its invoice was not paid; pay the fresh one", c.Credential.Challenge.Expires)
	case inv.State != lightning.InvoiceSettled:
		return refuse(coinop.KindRejected, mpp.ProblemVerificationFailed, ReasonNotSettled, "invoice %s is %s at the node, not SETTLED", s.hash, inv.State)
	case p.Amount == nil || big.NewInt(inv.PaidMsat).Cmp(p.Amount) < 0:
		return refuse(coinop.KindRejected, mpp.ProblemInsufficient, ReasonUnderpaid, "invoice %s was paid %d msat, less than the price %v msat", s.hash, inv.PaidMsat, p.Amount)
	}
	return nil
}

// Settle implements mpp.Method: the money moved when the invoice settled
// (Verify saw it); settling journals the payment hash as the reference.
func (m *Method) Settle(ctx context.Context, p *coinop.Payment, _ *mpp.Checked, rec coinop.Recorder) (*coinop.Receipt, error) {
	if rec != nil {
		if err := rec.Record(ctx, p.ReplayKey, ""); err != nil {
			return nil, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the payment could not be journaled")
		}
	}
	return &coinop.Receipt{Success: true, Reference: p.ReplayKey, Network: m.journalNetwork(), Payer: p.Payer}, nil
}

// Reverify implements mpp.Reverifier: a credential presented again for a
// payment collected but never served (its upstream failed) proves what it
// proved the first time when its preimage pays the same payment hash
// (Check proved the preimage; the replay key is the hash).
func (m *Method) Reverify(p *coinop.Payment, c *mpp.Checked, prev *coinop.Payment, _ *mpp.Credential) error {
	s, ok := c.State.(*state)
	if !ok || prev.ReplayKey != s.hash.String() || p.ReplayKey != prev.ReplayKey {
		return coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this payment was already used")
	}
	return nil
}

// Reconcile tells recovery what became of a journaled payment. One still
// verified was never settled, so its response never left: released (the
// same credential may pay again). One settling was seen SETTLED before its
// settlement began: settled once the node still shows it so; a node that
// cannot answer leaves it for the next pass.
func (m *Method) Reconcile(ctx context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	switch p.State {
	case coinop.StateVerified:
		return coinop.Outcome{State: coinop.StateReleased, Reason: "recovered_before_settlement"}, nil
	case coinop.StateSettling:
	default:
		return coinop.Outcome{State: p.State, Reference: p.Reference}, nil
	}
	h, err := lightning.ParseHash(p.ReplayKey)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("payment %s: %w", p.ID, err)
	}
	inv, err := m.Node.LookupInvoice(ctx, h)
	switch {
	case errors.Is(err, lightning.ErrNotFound):
		return coinop.Outcome{State: coinop.StateFailed, Reason: ReasonInvoiceUnknown}, nil
	case err != nil:
		return coinop.Outcome{}, fmt.Errorf("invoice %s: %w", h, err)
	case inv.State != lightning.InvoiceSettled:
		return coinop.Outcome{State: coinop.StateFailed, Reason: ReasonNotSettled}, nil
	}
	return coinop.Outcome{State: coinop.StateSettled, Reference: p.ReplayKey}, nil
}
