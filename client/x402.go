package client

import (
	"context"
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

// X402 pays x402 `exact` offers on EVM networks: it signs an EIP-3009
// authorization for the offer and sends it in PAYMENT-SIGNATURE (v2) or
// X-PAYMENT (v1). It is safe for concurrent use.
type X402 struct {
	// Key signs authorizations. If nil, LoadKey supplies it.
	Key *eip3009.Key
	// LoadKey, if set and Key is nil, is called on the first payment (never
	// before: a free or refused request needs no wallet) and its key kept.
	LoadKey func() (*eip3009.Key, error)
	// Decimals writes amounts in refusals and descriptions: the buyer's, never
	// the server's, since a server that chose them could make a large
	// amount read small. Zero writes atomic units.
	Decimals int
	// Now is the clock for authorization validity. If nil, time.Now.
	Now func() time.Time
	// Rand supplies nonces and payment identifiers. If nil, crypto/rand.
	Rand io.Reader

	mu sync.Mutex
}

var _ Method = (*X402)(nil)

// Name is "x402".
func (*X402) Name() string { return "x402" }

// Options lists the 402's x402 `exact` EVM offers. Offers in other schemes
// or on other networks are left out.
func (x *X402) Options(_ context.Context, ch *Challenge) ([]Option, error) {
	offers, version, resource, err := offersIn(ch.Response.Header, ch.Body)
	if err != nil {
		return nil, nil // another dialect's 402
	}
	priceAmount, priceSymbol := bodyPrice(ch.Body)
	var opts []Option
	for _, q := range offers {
		if q.Scheme != "exact" || !strings.HasPrefix(q.Network, "eip155:") {
			continue
		}
		amount, ok := new(big.Int).SetString(q.Amount, 10)
		if !ok || amount.Sign() < 0 {
			continue
		}
		price := Price{Amount: amount, Unit: TokenUnit(q.Network, q.Asset), Decimals: x.Decimals}
		price.Symbol = tokenSymbol(q, coinop.FormatUnits(amount, x.Decimals), priceAmount, priceSymbol)
		q := q
		header := x402.HeaderPaymentSignature
		if version == 1 {
			header = x402.HeaderXPayment
		}
		opts = append(opts, Option{
			Method: "x402", Price: price, Header: header, Network: q.Network, Asset: q.Asset, PayTo: q.PayTo,
			About: fmt.Sprintf("%s (token %s) to %s on %s", price, q.Asset, q.PayTo, q.Network),
			Pay: func(context.Context) (*Credential, error) {
				return x.sign(q, version, resource)
			},
		})
	}
	return opts, nil
}

// bodyPrice is the 402 body's "price" member ("0.001 USDC"), split.
func bodyPrice(body []byte) (amount, symbol string) {
	var b struct {
		Price string `json:"price"`
	}
	if json.Unmarshal(body, &b) == nil {
		amount, symbol, _ = strings.Cut(b.Price, " ")
	}
	return amount, symbol
}

// tokenSymbol names an offer's token: the 402 body's symbol when its price
// is the same amount written with the buyer's decimals, else the token's
// EIP-712 name, else its address.
func tokenSymbol(q x402.PaymentRequirements, whole, priceAmount, priceSymbol string) string {
	if priceSymbol != "" && priceAmount == whole {
		return priceSymbol
	}
	if name, _ := q.Extra["name"].(string); name != "" {
		return name
	}
	return "of token " + q.Asset
}

// Offers extracts the x402 offers from a 402: the PAYMENT-REQUIRED header
// (v2) or, lacking it, a v1 JSON body. The version tells which header the
// payment must use. It reads resp.Body only when there is no header, and
// leaves it readable.
func Offers(resp *http.Response) (offers []x402.PaymentRequirements, version int, resource *x402.ResourceInfo, err error) {
	var body []byte
	if resp.Header.Get(x402.HeaderPaymentRequired) == "" {
		if body, err = readBody(resp); err != nil {
			return nil, 0, nil, err
		}
	}
	return offersIn(resp.Header, body)
}

func offersIn(h http.Header, body []byte) (offers []x402.PaymentRequirements, version int, resource *x402.ResourceInfo, err error) {
	if v := h.Get(x402.HeaderPaymentRequired); v != "" {
		var pr x402.PaymentRequired
		if err := x402.DecodeHeader(v, &pr); err != nil {
			return nil, 0, nil, fmt.Errorf("PAYMENT-REQUIRED: %w", err)
		}
		return pr.Accepts, 2, pr.Resource, nil
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

func (x *X402) key() (*eip3009.Key, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.Key == nil && x.LoadKey != nil {
		k, err := x.LoadKey()
		if err != nil {
			return nil, err
		}
		x.Key = k
	}
	if x.Key == nil {
		return nil, errors.New("no wallet key to sign with")
	}
	return x.Key, nil
}

// sign builds and signs the payment for one offer.
func (x *X402) sign(q x402.PaymentRequirements, version int, resource *x402.ResourceInfo) (*Credential, error) {
	key, err := x.key()
	if err != nil {
		return nil, err
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
	if x.Now != nil {
		now = x.Now
	}
	rnd := x.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	timeout := q.MaxTimeoutSeconds
	if timeout <= 0 {
		timeout = 60
	}
	value, _ := new(big.Int).SetString(q.Amount, 10)
	auth := eip3009.Authorization{
		From: key.Address(), To: payTo, Value: value,
		ValidAfter:  new(big.Int),
		ValidBefore: big.NewInt(now().Unix() + int64(timeout)),
	}
	if _, err := io.ReadFull(rnd, auth.Nonce[:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	sep := eip3009.Domain{Name: name, Version: ver, ChainID: chainID, VerifyingContract: asset}.Separator()
	sig := key.Sign(auth.Digest(sep))
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
	header, value2 := x402.HeaderPaymentSignature, ""
	if version == 1 {
		header = x402.HeaderXPayment
		value2, err = x402.EncodeHeader(x402.PaymentPayloadV1{X402Version: 1, Scheme: q.Scheme, Network: x402.V1Name(q.Network), Payload: payload})
	} else {
		var id [16]byte
		if _, err := io.ReadFull(rnd, id[:]); err != nil {
			return nil, fmt.Errorf("payment id: %w", err)
		}
		// The payment-identifier extension names this purchase, so that a
		// server never charges twice for it, whatever the client retries.
		ext := map[string]any{"payment-identifier": map[string]any{"info": map[string]any{"id": "pay_" + hex.EncodeToString(id[:])}}}
		value2, err = x402.EncodeHeader(x402.PaymentPayload{X402Version: 2, Resource: resource, Accepted: q, Payload: payload, Extensions: ext})
	}
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(header, value2)
	return &Credential{Header: h, Payment: Payment{Header: header, Value: value2, Requirement: q, Version: version}}, nil
}
