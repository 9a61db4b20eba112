package x402_test

import (
	"context"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/x402"
)

// fixedScheme offers one network's requirements and takes every credential
// that answers them; it moves no money. It lets the rail's own logic (the
// merged challenge, the offer matching) be tested without a chain.
type fixedScheme struct{ network, asset string }

func (s fixedScheme) Requirements(ch coinop.Charge) x402.PaymentRequirements {
	return x402.PaymentRequirements{Scheme: "exact", Network: s.network, Amount: ch.Price.Amount.String(),
		Asset: s.asset, PayTo: "0x00000000000000000000000000000000000000aa", MaxTimeoutSeconds: 60}
}

func (s fixedScheme) Check(c *x402.Credential) (*coinop.Payment, error) {
	return &coinop.Payment{ID: s.network + ":1", Network: s.network, ReplayKey: "0x01", Amount: big.NewInt(1)}, nil
}

func (fixedScheme) Verify(context.Context, *coinop.Payment, *x402.Credential) error { return nil }

func (fixedScheme) Settle(context.Context, *coinop.Payment, *x402.Credential, coinop.Recorder) (*x402.SettleResponse, error) {
	return &x402.SettleResponse{Success: true}, nil
}

const (
	assetA = "0x000000000000000000000000000000000000000a"
	assetB = "0x000000000000000000000000000000000000000b"
)

// TestRailsShareOneChallenge: two x402 rails on one route write one
// PAYMENT-REQUIRED holding both rails' requirements, in order, one v1 body
// with both, and one offer each, named by its rail.
func TestRailsShareOneChallenge(t *testing.T) {
	a := &x402.Rail{ID: "usdc-a", Schemes: []x402.Scheme{fixedScheme{"eip155:1", assetA}}}
	b := &x402.Rail{ID: "usdc-b", Schemes: []x402.Scheme{fixedScheme{"eip155:2", assetB}}}
	c := &coinop.Challenge{Header: http.Header{}}
	for i, r := range []*x402.Rail{a, b} {
		ch := coinop.Charge{Price: coinop.Price{Amount: big.NewInt(int64(100 * (i + 1)))}, Resource: coinop.Resource{URL: "http://x/paid"}}
		if err := r.Challenge(t.Context(), c, ch); err != nil {
			t.Fatal(err)
		}
	}
	var pr x402.PaymentRequired
	if err := x402.DecodeHeader(c.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.Accepts) != 2 || pr.Accepts[0].Network != "eip155:1" || pr.Accepts[0].Amount != "100" ||
		pr.Accepts[1].Network != "eip155:2" || pr.Accepts[1].Amount != "200" {
		t.Fatalf("PAYMENT-REQUIRED accepts = %+v", pr.Accepts)
	}
	v1, _ := json.Marshal(c.Body["accepts"])
	var accepts []x402.PaymentRequirementsV1
	if err := json.Unmarshal(v1, &accepts); err != nil || len(accepts) != 2 || accepts[1].MaxAmountRequired != "200" {
		t.Fatalf("v1 accepts = %s (%v)", v1, err)
	}
	if len(c.Offers) != 2 || c.Offers[0].Rail != "usdc-a" || c.Offers[1].Rail != "usdc-b" {
		t.Fatalf("offers = %+v", c.Offers)
	}
}

// TestInspectOtherOffer: a credential that answers another rail's offer is
// refused with OtherOffer set, so the engine asks the next rail; the rail
// whose offer it answers takes it.
func TestInspectOtherOffer(t *testing.T) {
	a := &x402.Rail{ID: "usdc-a", Schemes: []x402.Scheme{fixedScheme{"eip155:1", assetA}}}
	b := &x402.Rail{ID: "usdc-b", Schemes: []x402.Scheme{fixedScheme{"eip155:2", assetB}}}
	ch := coinop.Charge{Price: coinop.Price{Amount: big.NewInt(100)}, Resource: coinop.Resource{URL: "http://x/paid"}}
	payload := x402.PaymentPayload{X402Version: 2, Accepted: fixedScheme{"eip155:2", assetB}.Requirements(ch), Payload: json.RawMessage(`{"x":1}`)}
	h, err := x402.EncodeHeader(payload)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/paid", nil)
	req.Header.Set(x402.HeaderPaymentSignature, h)
	if _, err := a.Inspect(req, ch); err == nil || !coinop.AsError(err).OtherOffer {
		t.Fatalf("rail a: err = %v, want an OtherOffer refusal", err)
	}
	p, err := b.Inspect(req, ch)
	if err != nil || p == nil || p.Network != "eip155:2" {
		t.Fatalf("rail b: p = %+v, err = %v", p, err)
	}
}
