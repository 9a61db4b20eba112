// Package client pays for HTTP requests: Transport is an http.RoundTripper
// that answers a 402 by choosing an acceptable x402 offer, checking a
// spending policy, signing an EIP-3009 authorization and retrying once.
//
// The package links neither go-ethereum nor any SQL driver.
package client

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// Policy limits what a Transport may pay. The zero Policy refuses every
// payment: set MaxAmount.
type Policy struct {
	// MaxAmount is the most one request may cost, in atomic units. Required:
	// a nil MaxAmount refuses every payment.
	MaxAmount *big.Int
	// Budget is the most all payments through this Transport may cost
	// together, in atomic units. Nil means no total limit.
	Budget *big.Int
	// Networks, Assets and PayTo, when non-empty, list the only CAIP-2
	// networks, token addresses and recipients that may be paid
	// (addresses compare case-insensitively).
	Networks []string
	Assets   []string
	PayTo    []string
}

// Payment describes one payment a Transport made.
type Payment struct {
	URL         string
	Requirement x402.PaymentRequirements
	Version     int    // wire version used
	Header      string // request header name
	Value       string // request header value
}

// Transport is an http.RoundTripper that pays 402 answers. It is safe for
// concurrent use.
type Transport struct {
	// Base performs the requests. If nil, http.DefaultTransport.
	Base http.RoundTripper
	// Key signs authorizations; required for paying.
	Key *eip3009.Key
	// Policy limits spending.
	Policy Policy
	// Now is the clock for authorization validity. If nil, time.Now.
	Now func() time.Time
	// Rand supplies authorization nonces. If nil, crypto/rand.
	Rand io.Reader
	// OnPayment, if set, is called after each payment is signed and before
	// the paid request is sent.
	OnPayment func(Payment)

	mu    sync.Mutex
	spent big.Int
}

// Spent is the total signed for so far, in atomic units.
func (t *Transport) Spent() *big.Int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return new(big.Int).Set(&t.spent)
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// RoundTrip sends req; on a 402 it pays and retries once. A request that
// already carries a payment header is never paid again. A request body is
// replayed through req.GetBody; without GetBody a 402 is returned as is.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base().RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusPaymentRequired {
		return resp, err
	}
	if req.Header.Get(x402.HeaderPaymentSignature) != "" || req.Header.Get(x402.HeaderXPayment) != "" {
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil
	}
	pay, err := t.Pay(req.URL.String(), resp)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("replay request body: %w", err)
		}
	}
	retry.Header.Set(pay.Header, pay.Value)
	if t.OnPayment != nil {
		t.OnPayment(*pay)
	}
	// A paid request whose response was lost (connection reset, gateway
	// restart) is retried with the same signed payment, never a new one:
	// the server answers a settled-but-unserved payment without charging
	// again, and a used one with 402, so a retry cannot pay twice.
	for attempt := 0; ; attempt++ {
		resp, err := t.base().RoundTrip(retry)
		if err == nil || attempt == len(paidRetryDelays) || req.Context().Err() != nil {
			return resp, err
		}
		select {
		case <-req.Context().Done():
			return nil, err
		case <-time.After(paidRetryDelays[attempt]):
		}
		retry = retry.Clone(req.Context())
		if req.GetBody != nil {
			if retry.Body, err = req.GetBody(); err != nil {
				return nil, fmt.Errorf("replay request body: %w", err)
			}
		}
	}
}

// paidRetryDelays are the waits before resending a paid request whose
// response did not arrive.
var paidRetryDelays = [...]time.Duration{200 * time.Millisecond, time.Second}

// Pay reads the offers of a 402 response, picks the first one the policy
// allows, and returns the signed payment header. It consumes and closes
// resp.Body only if it must read a v1 body; otherwise the body is untouched.
func (t *Transport) Pay(url string, resp *http.Response) (*Payment, error) {
	offers, version, resource, err := Offers(resp)
	if err != nil {
		return nil, err
	}
	var refusals []string
	for _, q := range offers {
		if err := t.allow(q); err != nil {
			refusals = append(refusals, err.Error())
			continue
		}
		p, err := t.sign(q, version, resource)
		if err != nil {
			return nil, err
		}
		p.URL = url
		return p, nil
	}
	if len(refusals) == 0 {
		return nil, errors.New("the 402 offers no way to pay")
	}
	return nil, coinop.Errorf(coinop.KindPolicy, "policy_refused", "no offer is acceptable: %s", strings.Join(refusals, "; "))
}

// Offers extracts the x402 offers from a 402: the PAYMENT-REQUIRED header
// (v2) or, lacking it, a v1 JSON body. The version tells which header the
// payment must use.
func Offers(resp *http.Response) (offers []x402.PaymentRequirements, version int, resource *x402.ResourceInfo, err error) {
	if h := resp.Header.Get(x402.HeaderPaymentRequired); h != "" {
		var pr x402.PaymentRequired
		if err := x402.DecodeHeader(h, &pr); err != nil {
			return nil, 0, nil, fmt.Errorf("PAYMENT-REQUIRED: %w", err)
		}
		return pr.Accepts, 2, pr.Resource, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return nil, 0, nil, err
	}
	var v1 struct {
		X402Version x402.Version                 `json:"x402Version"`
		Accepts     []x402.PaymentRequirementsV1 `json:"accepts"`
	}
	if json.Unmarshal(body, &v1) != nil || v1.X402Version != 1 {
		return nil, 0, nil, errors.New("the 402 carries no x402 terms (no PAYMENT-REQUIRED header, no v1 body)")
	}
	for _, a := range v1.Accepts {
		network, ok := x402.NetworkForV1(a.Network)
		if !ok {
			continue
		}
		offers = append(offers, x402.PaymentRequirements{
			Scheme: a.Scheme, Network: network, Amount: a.MaxAmountRequired, Asset: a.Asset,
			PayTo: a.PayTo, MaxTimeoutSeconds: a.MaxTimeoutSeconds, Extra: a.Extra,
		})
	}
	return offers, 1, nil, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// allow applies the policy to one offer.
func (t *Transport) allow(q x402.PaymentRequirements) error {
	if q.Scheme != "exact" || !strings.HasPrefix(q.Network, "eip155:") {
		return fmt.Errorf("%s on %s: unsupported", q.Scheme, q.Network)
	}
	amount, ok := new(big.Int).SetString(q.Amount, 10)
	if !ok || amount.Sign() < 0 {
		return fmt.Errorf("amount %q is not a number", q.Amount)
	}
	switch {
	case len(t.Policy.Networks) > 0 && !contains(t.Policy.Networks, q.Network):
		return fmt.Errorf("network %s is not allowed", q.Network)
	case len(t.Policy.Assets) > 0 && !contains(t.Policy.Assets, q.Asset):
		return fmt.Errorf("asset %s is not allowed", q.Asset)
	case len(t.Policy.PayTo) > 0 && !contains(t.Policy.PayTo, q.PayTo):
		return fmt.Errorf("payee %s is not allowed", q.PayTo)
	case t.Policy.MaxAmount == nil || amount.Cmp(t.Policy.MaxAmount) > 0:
		return fmt.Errorf("amount %s exceeds the per-request maximum %s", q.Amount, orZero(t.Policy.MaxAmount))
	}
	if t.Policy.Budget != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		if next := new(big.Int).Add(&t.spent, amount); next.Cmp(t.Policy.Budget) > 0 {
			return fmt.Errorf("amount %s would exceed the budget (%s of %s spent)", q.Amount, &t.spent, t.Policy.Budget)
		}
	}
	return nil
}

func orZero(v *big.Int) string {
	if v == nil {
		return "0"
	}
	return v.String()
}

// sign builds and signs the payment for one offer and books it against the
// budget.
func (t *Transport) sign(q x402.PaymentRequirements, version int, resource *x402.ResourceInfo) (*Payment, error) {
	if t.Key == nil {
		return nil, errors.New("no wallet key to sign with")
	}
	chainID, err := x402.ChainID(q.Network)
	if err != nil {
		return nil, err
	}
	asset, err := eip3009.ParseAddress(q.Asset)
	if err != nil {
		return nil, err
	}
	payTo, err := eip3009.ParseAddress(q.PayTo)
	if err != nil {
		return nil, err
	}
	name, _ := q.Extra["name"].(string)
	ver, _ := q.Extra["version"].(string)
	if name == "" || ver == "" {
		return nil, errors.New("the offer lacks the token's EIP-712 name and version (extra.name, extra.version)")
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	rnd := t.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	timeout := q.MaxTimeoutSeconds
	if timeout <= 0 {
		timeout = 60
	}
	value, _ := new(big.Int).SetString(q.Amount, 10)
	auth := eip3009.Authorization{
		From: t.Key.Address(), To: payTo, Value: value,
		ValidAfter:  new(big.Int),
		ValidBefore: big.NewInt(now().Unix() + int64(timeout)),
	}
	if _, err := io.ReadFull(rnd, auth.Nonce[:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	sep := eip3009.Domain{Name: name, Version: ver, ChainID: chainID, VerifyingContract: asset}.Separator()
	sig := t.Key.Sign(auth.Digest(sep))
	payload, err := json.Marshal(x402.ExactEVMPayload{
		Signature: "0x" + hex.EncodeToString(sig[:]),
		Authorization: x402.ExactAuthorization{
			From: auth.From.Hex(), To: payTo.Hex(), Value: value.String(),
			ValidAfter: "0", ValidBefore: auth.ValidBefore.String(),
			Nonce: "0x" + hex.EncodeToString(auth.Nonce[:]),
		},
	})
	if err != nil {
		return nil, err
	}
	p := &Payment{Requirement: q, Version: version}
	if version == 1 {
		p.Header = x402.HeaderXPayment
		p.Value, err = x402.EncodeHeader(x402.PaymentPayloadV1{X402Version: 1, Scheme: q.Scheme, Network: x402.V1Name(q.Network), Payload: payload})
	} else {
		p.Header = x402.HeaderPaymentSignature
		var id [16]byte
		if _, err := io.ReadFull(rnd, id[:]); err != nil {
			return nil, fmt.Errorf("payment id: %w", err)
		}
		// The payment-identifier extension names this purchase, so that a
		// server never charges twice for it, whatever the client retries.
		ext := map[string]any{"payment-identifier": map[string]any{"info": map[string]any{"id": "pay_" + hex.EncodeToString(id[:])}}}
		p.Value, err = x402.EncodeHeader(x402.PaymentPayload{X402Version: 2, Resource: resource, Accepted: q, Payload: payload, Extensions: ext})
	}
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := new(big.Int).Add(&t.spent, value)
	if t.Policy.Budget != nil && next.Cmp(t.Policy.Budget) > 0 {
		return nil, coinop.Errorf(coinop.KindPolicy, "policy_refused", "amount %s would exceed the budget (%s of %s spent)", value, &t.spent, t.Policy.Budget)
	}
	t.spent.Set(next)
	return p, nil
}
