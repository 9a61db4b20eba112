// Package facilitated is the x402 exact EVM scheme verified and settled by a
// facilitator over HTTP: coinop's own (`coinop facilitator`) or anyone's
// that speaks the x402 facilitator API (POST /verify, POST /settle).
//
// The scheme makes the cheap checks itself (format, recipient, amount,
// expiry, signature form), so garbage never leaves the process and the
// journal gets the same payment ID as package evm would give, then asks the
// facilitator for signature recovery, simulation and settlement. A
// facilitator that cannot be reached fails closed (coinop.KindUnavailable):
// nothing paid-for is served.
//
// The package links neither go-ethereum nor a SQL driver.
package facilitated

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// RailName names the rail in the journal. It is package evm's name: the
// payment is the same x402 exact EVM payment whoever settles it.
const RailName = "x402-exact-evm"

// maxAnswer bounds a facilitator's answer.
const maxAnswer = 64 << 10

// Config is one asset and recipient on one network, and the facilitator
// that verifies and settles payments for them.
type Config struct {
	// URL is the facilitator's base URL; /verify and /settle are appended.
	URL string
	// Network is the CAIP-2 id, "eip155:<chain id>".
	Network string
	// Asset is the EIP-3009 token's address; PayTo receives the payments.
	Asset, PayTo string
	// Name and Version are the token's EIP-712 domain, offered in extra.
	Name, Version string
	// MaxTimeout is the validity window offered to payers. If zero, 60 s.
	MaxTimeout time.Duration
	// Client makes the requests. If nil, http.DefaultClient; the timeouts
	// below apply either way.
	Client *http.Client
	// VerifyTimeout bounds a /verify call. If zero, 15 seconds.
	VerifyTimeout time.Duration
	// SettleTimeout bounds a /settle call, which waits for the chain. If
	// zero, 60 seconds.
	SettleTimeout time.Duration
	// Header, if set, adds headers (such as an API key) to every request.
	Header http.Header
	// Now is the clock for expiry checks. If nil, time.Now.
	Now func() time.Time
}

// Scheme is the exact scheme verified and settled by a remote facilitator.
// It is safe for concurrent use.
type Scheme struct {
	cfg   Config
	base  string
	asset eip3009.Address
	payTo eip3009.Address
	extra map[string]any
}

var _ x402.Scheme = (*Scheme)(nil)

// New checks cfg and returns the scheme. It performs no I/O.
func New(cfg Config) (*Scheme, error) {
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("remote: facilitator URL %q is not http(s)", cfg.URL)
	}
	if _, err := x402.ChainID(cfg.Network); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	asset, err := eip3009.ParseAddress(cfg.Asset)
	if err != nil {
		return nil, fmt.Errorf("remote: asset: %w", err)
	}
	payTo, err := eip3009.ParseAddress(cfg.PayTo)
	if err != nil {
		return nil, fmt.Errorf("remote: payTo: %w", err)
	}
	if cfg.Name == "" || cfg.Version == "" {
		return nil, errors.New("remote: the token's EIP-712 name and version are required")
	}
	if cfg.MaxTimeout == 0 {
		cfg.MaxTimeout = 60 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.VerifyTimeout == 0 {
		cfg.VerifyTimeout = 15 * time.Second
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheme{
		cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), asset: asset, payTo: payTo,
		extra: map[string]any{"name": cfg.Name, "version": cfg.Version},
	}, nil
}

// Requirements offers ch's price in the asset to PayTo.
func (s *Scheme) Requirements(ch coinop.Charge) x402.PaymentRequirements {
	return x402.PaymentRequirements{
		Scheme: "exact", Network: s.cfg.Network, Amount: ch.Price.Amount.String(),
		Asset: s.asset.Hex(), PayTo: s.payTo.Hex(),
		MaxTimeoutSeconds: int(s.cfg.MaxTimeout / time.Second), Extra: s.extra,
	}
}

// Check makes the checks that need neither cryptography nor I/O
// (x402.CheckExactEVM, as package evm does) and derives the payment's
// journal entry.
func (s *Scheme) Check(c *x402.Credential) (*coinop.Payment, error) {
	p, _, _, err := x402.CheckExactEVM(c, RailName, s.cfg.Now())
	return p, err
}

// body is the facilitator request for c. It is always version 2: the
// authorization is the same in both versions, and a v1 payment is
// presented with our requirements as the accepted offer.
func (s *Scheme) body(c *x402.Credential) ([]byte, error) {
	payload := c.Payload
	if c.Version != 2 {
		payload = x402.PaymentPayload{X402Version: 2, Accepted: c.Requirements, Payload: c.Payload.Payload}
	}
	pb, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	qb, err := json.Marshal(c.Requirements)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x402.FacilitatorRequest{X402Version: 2, PaymentPayload: pb, PaymentRequirements: qb})
}

// Verify asks the facilitator to verify the payment (signature, balance,
// simulation).
func (s *Scheme) Verify(ctx context.Context, p *coinop.Payment, c *x402.Credential) error {
	var vr x402.VerifyResponse
	if err := s.call(ctx, "/verify", s.cfg.VerifyTimeout, c, &vr, func(m map[string]json.RawMessage) bool { return m["isValid"] != nil }); err != nil {
		return err
	}
	if vr.IsValid {
		return nil
	}
	return refusal(vr.InvalidReason, vr.InvalidMessage, coinop.KindRejected)
}

// Settle asks the facilitator to settle the payment. Only an answer counts:
// success, pending (the facilitator says it sent the transaction) or a
// refusal. When no answer came back (a transport error, a 5xx such as 503,
// a body that is not the facilitator's JSON) nothing is known to have been
// sent, yet the request may have reached the facilitator and the money may
// still move: the error is KindUnavailable with reason
// settlement_not_sent, so the engine neither serves (sync) nor fails the
// payment, and recovery reconciles it on chain when the network has an rpc.
// A connection that was refused never reached anyone: facilitator_unavailable.
func (s *Scheme) Settle(ctx context.Context, p *coinop.Payment, c *x402.Credential, _ coinop.Recorder) (*x402.SettleResponse, error) {
	var sr x402.SettleResponse
	err := s.call(ctx, "/settle", s.cfg.SettleTimeout, c, &sr, func(m map[string]json.RawMessage) bool { return m["success"] != nil })
	if err != nil {
		if coinop.KindOf(err) == coinop.KindUnavailable && !neverSent(err) {
			return &x402.SettleResponse{Network: s.cfg.Network, Payer: payerHex(p), ErrorReason: x402.ReasonSettlementNotSent},
				coinop.Wrap(coinop.KindUnavailable, x402.ReasonSettlementNotSent, err, "the facilitator did not confirm the settlement; nothing was served. Try again shortly")
		}
		return nil, err
	}
	if sr.Network == "" {
		sr.Network = s.cfg.Network
	}
	if sr.Payer == "" {
		sr.Payer = payerHex(p)
	}
	switch {
	case sr.Success:
		return &sr, nil
	case sr.Pending || sr.ErrorReason == x402.ReasonSettlementPending:
		sr.Pending = true
		return &sr, coinop.Errorf(coinop.KindUnavailable, x402.ReasonSettlementPending, "the settlement was sent; its outcome is not known yet")
	}
	return &sr, refusal(sr.ErrorReason, sr.ErrorMessage, coinop.KindSettleFailed)
}

// refusal turns a facilitator's reason code into an error of the kind the
// engine needs; codes are treated as opaque except for the few that change
// what the client should do.
func refusal(reason, message string, kind coinop.Kind) error {
	switch reason {
	case "":
		reason = x402.ReasonUnexpectedVerify
	case x402.ReasonInsufficientFunds, "invalid_exact_evm_insufficient_balance":
		kind = coinop.KindInsufficientFunds
	case x402.ReasonNonceUsed:
		kind = coinop.KindReplayed
	case x402.ReasonSettlementNotSent:
		// The facilitator signed a transaction no node accepted yet: it
		// may still land.
		kind = coinop.KindUnavailable
	}
	if message == "" {
		message = "the facilitator refused the payment: " + reason
	}
	return coinop.Errorf(kind, reason, "%s", message)
}

// call POSTs the facilitator request for c to path and decodes the answer
// into out. An answer of any status whose JSON carries the expected member
// (isValid, success) counts, as in the official clients; anything else is
// the facilitator's fault: unreachable, 5xx or garbage → KindUnavailable.
func (s *Scheme) call(ctx context.Context, path string, timeout time.Duration, c *x402.Credential, out any, answered func(map[string]json.RawMessage) bool) error {
	body, err := s.body(c)
	if err != nil {
		return coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedVerify, err, "could not encode the facilitator request")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(body))
	if err != nil {
		return coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedVerify, err, "could not build the facilitator request")
	}
	for k, v := range s.cfg.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return coinop.Wrap(coinop.KindUnavailable, "facilitator_unavailable", err, "the facilitator cannot be reached; try again shortly")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return coinop.Wrap(coinop.KindUnavailable, "facilitator_unavailable", err, "the facilitator's answer was cut off")
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) == nil && answered(m) {
		if err := json.Unmarshal(b, out); err == nil {
			return nil
		}
	}
	err = fmt.Errorf("POST %s: status %d: %.200s", s.base+path, resp.StatusCode, b)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		// The facilitator did not understand us: a configuration problem,
		// not something a client can fix or a retry will.
		return coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedVerify, err, "the facilitator refused the request")
	}
	return coinop.Wrap(coinop.KindUnavailable, "facilitator_unavailable", err, "the facilitator did not answer properly; try again shortly")
}

// neverSent reports whether err shows that a request never reached the
// facilitator (the connection was refused), so nothing can have happened.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func payerHex(p *coinop.Payment) string {
	if p == nil {
		return ""
	}
	a, err := eip3009.ParseAddress(p.Payer)
	if err != nil {
		return p.Payer
	}
	return a.Hex()
}
