// Package facilitator serves the x402 facilitator HTTP API (POST /verify,
// POST /settle, GET /supported; x402 specification v2 §7) from coinop's own
// verifier and settler, package evm, so that resource servers written with
// any x402 SDK can verify and settle through coinop.
//
// Every request carries the server's payment requirements, so the handler
// builds (and caches) an evm.Exact for the requirement's asset, recipient
// and EIP-712 domain, on one of the configured chains, and runs its checks
// in coinop's order: stateless checks, the journal's replay guard, signature
// recovery, the eth_call simulation; and, for /settle, reservation in the
// journal before the transaction is sent.
//
// A settlement is journaled before it is sent and an authorization is
// settled at most once, even when /settle is called for it many times at
// once: an in-process guard answers concurrent duplicates, and the
// journal's unique replay key answers the rest, across restarts too. A
// failed check answers 200 with isValid or success false and the reason
// code, as the reference facilitators do; a body that is not a facilitator
// request answers 400, and a chain or journal that cannot be reached 503,
// both as RFC 9457 problem documents.
package facilitator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/lifecycle"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/x402"
)

// Journal durably records settlements; see lifecycle.Journal. The store
// packages implement it.
type Journal = lifecycle.Journal

// Config configures a Handler.
type Config struct {
	// Chains are the networks served, one per CAIP-2 id; at least one. A
	// chain without a settlement key verifies but cannot settle.
	Chains []*evm.Chain
	// Journal records settlements; required.
	Journal Journal
	// SettleTimeout bounds one settlement. It is detached from the request,
	// so a caller that hangs up cannot abandon a settlement half-done. If
	// zero, 60 seconds.
	SettleTimeout time.Duration
	// Logger receives one line per settlement and every internal error. If
	// nil, slog.Default().
	Logger *slog.Logger
}

// RailName is the rail name the facilitator journals its payments under.
const RailName = "x402-exact-evm"

// maxBody bounds a request body. Real requests are under 4 KiB.
const maxBody = 64 << 10

// maxSchemes bounds the cache of schemes built from requirements, which
// callers choose freely.
const maxSchemes = 1024

// Handler is the facilitator API as an http.Handler. Mount it at the root,
// or under a prefix with http.StripPrefix. It is safe for concurrent use.
type Handler struct {
	cfg       Config
	chains    map[string]*evm.Chain
	log       *slog.Logger
	supported []byte

	mu      sync.Mutex
	schemes map[schemeKey]*evm.Exact

	lc   *lifecycle.Lifecycle // the journal lifecycle, shared with the paywall
	rail *x402.Rail           // verifies and settles payments bound to a scheme (x402.Bind)
}

// schemeKey is what an evm.Exact is built from.
type schemeKey struct {
	network, asset, payTo, name, version string
}

// New checks cfg and returns a Handler. It performs no I/O.
func New(cfg Config) (*Handler, error) {
	if cfg.Journal == nil {
		return nil, errors.New("facilitator: Config.Journal is required")
	}
	if len(cfg.Chains) == 0 {
		return nil, errors.New("facilitator: Config.Chains is empty")
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, chains: map[string]*evm.Chain{}, log: cfg.Logger, schemes: map[schemeKey]*evm.Exact{},
		lc: lifecycle.New(cfg.Journal, cfg.Logger, nil), rail: &x402.Rail{ID: RailName}}
	sup := x402.SupportedResponse{Kinds: []x402.SupportedKind{}, Extensions: []string{}, Signers: map[string][]string{}}
	var signers []string
	for _, c := range cfg.Chains {
		n := c.Network()
		if _, dup := h.chains[n]; dup {
			return nil, fmt.Errorf("facilitator: network %s is configured twice", n)
		}
		h.chains[n] = c
		sup.Kinds = append(sup.Kinds, x402.SupportedKind{X402Version: 2, Scheme: "exact", Network: n})
		if v1 := x402.V1Name(n); v1 != n {
			sup.Kinds = append(sup.Kinds, x402.SupportedKind{X402Version: 1, Scheme: "exact", Network: v1})
		}
		if a := c.SettlementAddress(); a != (common.Address{}) && !slices.Contains(signers, a.Hex()) {
			signers = append(signers, a.Hex())
		}
	}
	if len(signers) > 0 {
		sup.Signers["eip155:*"] = signers
	}
	h.supported, _ = json.Marshal(sup)
	return h, nil
}

// ServeHTTP routes /verify, /settle and /supported.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/verify", "/settle":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			paywall.WriteError(w, r, coinop.Errorf(coinop.KindMethodNotAllowed, "method_not_allowed", "%s takes POST", r.URL.Path))
			return
		}
		req, err := decode(w, r)
		if err != nil {
			paywall.WriteError(w, r, err)
			return
		}
		if r.URL.Path == "/verify" {
			h.verify(w, r, req)
		} else {
			h.settle(w, r, req)
		}
	case "/supported":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			paywall.WriteError(w, r, coinop.Errorf(coinop.KindMethodNotAllowed, "method_not_allowed", "/supported takes GET"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(h.supported)
	default:
		paywall.WriteError(w, r, coinop.Errorf(coinop.KindNotFound, "not_found", "this facilitator serves POST /verify, POST /settle and GET /supported"))
	}
}

// request is a decoded /verify or /settle body.
type request struct {
	cred x402.Credential
	// network is the requirements' network as the caller wrote it: a v1
	// name for version 1. Answers use it.
	network  string
	resource string
	payload  string // the payment in journal form: "v2:" or "v1:" and the header value
	payer    string // the authorization's from, if it can be read; for failure answers
}

// decode reads a facilitator request. Its errors are for a 400 answer.
func decode(w http.ResponseWriter, r *http.Request) (*request, error) {
	malformed := func(reason, format string, args ...any) (*request, error) {
		return nil, coinop.Errorf(coinop.KindMalformed, reason, format, args...)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return malformed(x402.ReasonInvalidPayload, "the request body could not be read: %v", err)
	}
	var fr x402.FacilitatorRequest
	if err := json.Unmarshal(body, &fr); err != nil {
		return malformed(x402.ReasonInvalidPayload, "the body is not a facilitator request: %v", err)
	}
	if isEmpty(fr.PaymentPayload) || isEmpty(fr.PaymentRequirements) {
		return malformed(x402.ReasonInvalidPayload, "the body needs paymentPayload and paymentRequirements")
	}
	version := fr.X402Version
	if version == 0 {
		var v struct {
			X402Version x402.Version `json:"x402Version"`
		}
		json.Unmarshal(fr.PaymentPayload, &v)
		version = v.X402Version
	}
	req := &request{}
	switch version {
	case 2:
		var q x402.PaymentRequirements
		if err := json.Unmarshal(fr.PaymentRequirements, &q); err != nil {
			return malformed("invalid_payment_requirements", "paymentRequirements: %v", err)
		}
		req.cred = x402.Credential{Version: 2, Requirements: q}
		if err := json.Unmarshal(fr.PaymentPayload, &req.cred.Payload); err != nil {
			return malformed(x402.ReasonInvalidPayload, "paymentPayload: %v", err)
		}
		if req.cred.Payload.Resource != nil {
			req.resource = req.cred.Payload.Resource.URL
		}
		req.network = q.Network
		h, _ := x402.EncodeHeader(req.cred.Payload)
		req.payload = "v2:" + h
	case 1:
		var q x402.PaymentRequirementsV1
		if err := json.Unmarshal(fr.PaymentRequirements, &q); err != nil {
			return malformed("invalid_payment_requirements", "paymentRequirements: %v", err)
		}
		var p x402.PaymentPayloadV1
		if err := json.Unmarshal(fr.PaymentPayload, &p); err != nil {
			return malformed(x402.ReasonInvalidPayload, "paymentPayload: %v", err)
		}
		// v1 networks are names ("base-sepolia"); unknown ones stay as
		// written and fail as unsupported networks below.
		network, _ := x402.NetworkForV1(q.Network)
		if network == "" {
			network = q.Network
		}
		accepted, _ := x402.NetworkForV1(p.Network)
		if accepted == "" {
			accepted = p.Network
		}
		req.cred = x402.Credential{
			Version: 1,
			Payload: x402.PaymentPayload{X402Version: 1, Accepted: x402.PaymentRequirements{Scheme: p.Scheme, Network: accepted}, Payload: p.Payload},
			Requirements: x402.PaymentRequirements{
				Scheme: q.Scheme, Network: network, Amount: q.MaxAmountRequired, Asset: q.Asset,
				PayTo: q.PayTo, MaxTimeoutSeconds: q.MaxTimeoutSeconds, Extra: q.Extra,
			},
		}
		req.network, req.resource = q.Network, q.Resource
		h, _ := x402.EncodeHeader(p)
		req.payload = "v1:" + h
	default:
		return malformed(x402.ReasonInvalidVersion, "x402Version %d is not supported; this facilitator speaks 1 and 2", version)
	}
	if isEmpty(req.cred.Payload.Payload) {
		return malformed(x402.ReasonInvalidPayload, "paymentPayload has no payload")
	}
	if pl, err := x402.DecodeExactEVM(req.cred.Payload.Payload); err == nil && common.IsHexAddress(pl.Authorization.From) {
		req.payer = common.HexToAddress(pl.Authorization.From).Hex()
	}
	return req, nil
}

func isEmpty(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// scheme returns the exact scheme that serves the request's requirements.
// Its errors are business failures: the requirements are not ones this
// facilitator serves.
func (h *Handler) scheme(q *x402.PaymentRequirements) (*evm.Exact, error) {
	reject := func(reason, format string, args ...any) (*evm.Exact, error) {
		return nil, coinop.Errorf(coinop.KindRejected, reason, format, args...)
	}
	if q.Scheme != "exact" {
		return reject(x402.ReasonUnsupportedScheme, "scheme %q is not supported; this facilitator settles exact", q.Scheme)
	}
	chain, ok := h.chains[q.Network]
	if !ok {
		return reject("invalid_network", "network %q is not supported here (see /supported)", q.Network)
	}
	if !common.IsHexAddress(q.Asset) || !common.IsHexAddress(q.PayTo) {
		return reject("invalid_payment_requirements", "asset and payTo must be 0x addresses")
	}
	if q.Amount == "" || strings.Trim(q.Amount, "0123456789") != "" {
		return reject("invalid_payment_requirements", "amount %q is not a decimal integer", q.Amount)
	}
	name, _ := q.Extra["name"].(string)
	version, _ := q.Extra["version"].(string)
	if name == "" || version == "" {
		return reject(x402.ReasonMissingDomain, "extra.name and extra.version (the token's EIP-712 domain) are required")
	}
	k := schemeKey{q.Network, strings.ToLower(q.Asset), strings.ToLower(q.PayTo), name, version}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.schemes[k]; ok {
		return s, nil
	}
	s, err := evm.NewExact(chain, evm.ExactConfig{
		Asset: common.HexToAddress(q.Asset), PayTo: common.HexToAddress(q.PayTo), Name: name, Version: version,
	})
	if err != nil {
		return reject("invalid_payment_requirements", "%v", err)
	}
	if len(h.schemes) >= maxSchemes {
		clear(h.schemes)
	}
	h.schemes[k] = s
	return s, nil
}

// check runs the stateless checks: the requirements are served here, and
// the payment answers them.
func (h *Handler) check(req *request) (*coinop.Payment, error) {
	s, err := h.scheme(&req.cred.Requirements)
	if err != nil {
		return nil, err
	}
	p, err := x402.Bind(&req.cred, s, req.resource, req.payload)
	if err != nil {
		return nil, err
	}
	p.Rail = h.rail.Name()
	return p, nil
}

// seen refuses a payment the journal already holds, as the lifecycle
// judges it. A payment collected and never served is refused too: a
// facilitator serves no response, so there is nothing to serve again; the
// caller learns the authorization was used (x402's nonce-used reason).
func (h *Handler) seen(ctx context.Context, p *coinop.Payment) error {
	prev, err := h.lc.Previous(ctx, h.rail, p)
	switch {
	case prev != nil:
		return coinop.Errorf(coinop.KindReplayed, x402.ReasonNonceUsed, "this authorization was already settled in transaction %s", prev.Reference)
	case coinop.KindOf(err) == coinop.KindReplayed:
		return coinop.Errorf(coinop.KindReplayed, x402.ReasonNonceUsed, "this authorization was already submitted")
	}
	return err
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	fail := func(err error) {
		if unavailable(w, r, err) {
			h.log.Error("verification could not complete", "err", err)
			return
		}
		e := coinop.AsError(err)
		writeJSON(w, x402.VerifyResponse{InvalidReason: e.Reason, InvalidMessage: e.Message, Payer: req.payer})
	}
	p, err := h.check(req)
	if err != nil {
		fail(err)
		return
	}
	if err := h.seen(ctx, p); err != nil {
		fail(err)
		return
	}
	if err := h.rail.Verify(ctx, p); err != nil {
		fail(err)
		return
	}
	writeJSON(w, x402.VerifyResponse{IsValid: true, Payer: req.payer})
}

func (h *Handler) settle(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	// Until the journal holds the payment, a failure is definite and
	// nothing was sent.
	fail := func(err error) {
		if unavailable(w, r, err) {
			h.log.Error("settlement could not start", "err", err)
			return
		}
		e := coinop.AsError(err)
		writeJSON(w, x402.SettleResponse{ErrorReason: e.Reason, ErrorMessage: e.Message, Payer: req.payer, Network: req.network})
	}
	p, err := h.check(req)
	if err != nil {
		fail(err)
		return
	}
	release, err := h.lc.Hold(ctx, p.ID, 0)
	if err != nil {
		fail(coinop.Errorf(coinop.KindInFlight, coinop.ReasonInFlight, "this authorization is being settled by another request"))
		return
	}
	defer release()
	if err := h.seen(ctx, p); err != nil {
		fail(err)
		return
	}
	if err := h.rail.Verify(ctx, p); err != nil {
		fail(err)
		return
	}
	if err := h.lc.Reserve(ctx, p); err != nil {
		if coinop.KindOf(err) == coinop.KindInternal {
			err = coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the journal is unavailable; nothing was settled")
		}
		fail(err)
		return
	}

	// From here on the settlement belongs to the journal, not to the caller.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.SettleTimeout)
	defer cancel()
	if err := h.lc.Owe(ctx, p); err != nil {
		fail(coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the journal is unavailable; nothing was settled"))
		return
	}
	rc, err := h.lc.Collect(ctx, h.rail, p)
	writeJSON(w, settleResponse(req, rc, err))
}

// settleResponse is the /settle answer for a settlement's outcome, which
// the lifecycle journaled: success with its transaction; pending or not
// sent with its transaction (the payment stays settling, for recovery);
// else the failure's reason and no transaction.
func settleResponse(req *request, rc *coinop.Receipt, err error) *x402.SettleResponse {
	resp := &x402.SettleResponse{Network: req.network, Payer: req.payer}
	if rc != nil {
		resp.Transaction = rc.Reference
		if rc.Payer != "" {
			resp.Payer = rc.Payer
		}
	}
	e := coinop.AsError(err)
	switch {
	case err == nil:
		resp.Success = true
	case rc != nil && rc.Pending:
		resp.Pending, resp.ErrorReason, resp.ErrorMessage = true, x402.ReasonSettlementPending, e.Message
	case e.Reason == x402.ReasonSettlementNotSent:
		resp.ErrorReason, resp.ErrorMessage = x402.ReasonSettlementNotSent, e.Message
	default:
		resp.ErrorReason, resp.ErrorMessage, resp.Transaction = e.Reason, e.Message, ""
	}
	return resp
}

// unavailable answers 503 (or 500) for errors that are not about the
// payment: the chain or the journal could not be reached, or a fault of
// ours. It reports whether it answered.
func unavailable(w http.ResponseWriter, r *http.Request, err error) bool {
	switch coinop.KindOf(err) {
	case coinop.KindUnavailable, coinop.KindInternal:
		paywall.WriteError(w, r, err)
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v) // the x402 wire types always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}
