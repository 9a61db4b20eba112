package evm_test

import (
	"math/big"
	"net/http"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/x402"
)

// dear turns p into a payment of the /dear/ route's price.
func dear(p *payment) *payment {
	p.accepted.Amount = big.NewInt(dearPrice).String()
	p.auth.Value = big.NewInt(dearPrice)
	return p
}

// A response lost after settlement (the connection dropped once the money
// moved): the same signed payment, sent again, gets the response without a
// second charge, and only once. The journal finds the payment by its ID,
// which anyone can compute from the payer and the nonce, so only the payer's
// own credential, presented for the same purchase, gets the response; every
// forgery and every other use is refused without reaching the upstream.
func TestLostResponseIsServedOnRetry(t *testing.T) {
	r := newRig(t)
	before := r.balance(t, r.payee)
	genuine := r.newPayment(t)
	h := genuine.header(t)
	r.abortAt("settled")
	if _, err := r.tryGet("/paid/x", x402.HeaderPaymentSignature, h); err == nil {
		t.Fatal("the connection should have dropped")
	}
	r.setOnStep(nil)
	other, _ := crypto.GenerateKey()
	otherKey := key(t, other)
	forge := func(change func(p *payment)) string {
		p := *genuine // same payer, same nonce
		p.sig = nil
		change(&p)
		return p.header(t)
	}
	cases := []struct {
		name, path, header string
		status             int
		reason             string
	}{
		{"signed by someone else", "/paid/x", forge(func(p *payment) { p.signer = otherKey }), 402, x402.ReasonInvalidSignature},
		{"signed for another token domain", "/paid/x", forge(func(p *payment) { p.domain.Name = "Other" }), 402, x402.ReasonInvalidSignature},
		{"the genuine signature on a changed window", "/paid/x", forge(func(p *payment) {
			p.sig = genuine.sig
			p.auth.ValidBefore = new(big.Int).Add(genuine.auth.ValidBefore, big.NewInt(1))
		}), 402, x402.ReasonInvalidSignature},
		{"another authorization by the payer with the same nonce", "/paid/x", forge(func(p *payment) {
			p.auth.ValidBefore = new(big.Int).Add(genuine.auth.ValidBefore, big.NewInt(1))
		}), 402, "payment_replayed"},
		{"the genuine payment for another resource", "/paid/y", h, 409, "payment_reused"},
		{"the genuine payment with another query", "/paid/x?page=2", h, 409, "payment_reused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := r.upCalls
			a := r.get(t, c.path, x402.HeaderPaymentSignature, c.header)
			if a.status != c.status || a.reason != c.reason {
				t.Fatalf("got %d %q, want %d %q\n%s", a.status, a.reason, c.status, c.reason, a.body)
			}
			if r.upCalls != calls {
				t.Fatal("the upstream was called")
			}
		})
	}
	// The payer's own retry, re-encoded (an extension added changes every
	// byte of the header, not what was signed), is served once.
	if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, withID(t, h, "reencoded-0123456789")); a.status != 200 {
		t.Fatalf("genuine retry: %d %s", a.status, a.body)
	}
	if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, h); a.status != 402 || a.reason != "payment_replayed" {
		t.Fatalf("after it was served: %d %s", a.status, a.body)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
		t.Fatalf("payee got %s, want one price", d)
	}
}

// An identifier (the x402 payment-identifier extension, or the
// Idempotency-Key header) names one purchase: one resource at one price. Used
// with a fresh, valid authorization for another resource or a dearer route
// it is refused with 409, nothing is charged, and the purchase it names can
// still be completed, once.
func TestIdentifierIsScopedToItsPurchase(t *testing.T) {
	kinds := []struct {
		name   string
		header func(t *testing.T, p *payment) http.Header
	}{
		{"payment-identifier", func(t *testing.T, p *payment) http.Header {
			return http.Header{x402.HeaderPaymentSignature: {withID(t, p.header(t), "purchase-scope-0123456789")}}
		}},
		{"Idempotency-Key", func(t *testing.T, p *payment) http.Header {
			return http.Header{x402.HeaderPaymentSignature: {p.header(t)}, "Idempotency-Key": {"order-77"}}
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r := newRig(t)
			before := r.balance(t, r.payee)
			r.abortAt("settled")
			if _, err := r.fetch(t, "/paid/x", k.header(t, r.newPayment(t))); err == nil {
				t.Fatal("the connection should have dropped")
			}
			r.setOnStep(nil)
			for _, c := range []struct {
				name, path string
				payment    *payment
			}{
				{"another resource at the same price", "/paid/y", r.newPayment(t)},
				{"a dearer route", "/dear/x", dear(r.newPayment(t))},
				{"another query", "/paid/x?all=1", r.newPayment(t)},
			} {
				calls := r.upCalls
				a, err := r.fetch(t, c.path, k.header(t, c.payment))
				if err != nil || a.status != 409 || a.reason != "idempotency_key_reused" {
					t.Errorf("%s: got %d %q %v, want 409 idempotency_key_reused\n%s", c.name, a.status, a.reason, err, a.body)
				}
				if r.upCalls != calls {
					t.Errorf("%s: the upstream was called", c.name)
				}
			}
			if a, err := r.fetch(t, "/paid/x", k.header(t, r.newPayment(t))); err != nil || a.status != 200 {
				t.Fatalf("the purchase's own retry: %d %v %s", a.status, err, a.body)
			}
			if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
				t.Fatalf("payee got %s, want one price", d)
			}
		})
	}
}
