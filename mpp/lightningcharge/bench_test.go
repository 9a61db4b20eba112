package lightningcharge_test

import (
	"context"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/lightningcharge"
)

// BenchmarkInspect is the cost of the stateless checks of one lightning
// credential: parse, HMAC, realm, expiry, the request's decode (the
// BOLT11 invoice's signature recovery included), the preimage's SHA-256.
func BenchmarkInspect(b *testing.B) {
	d, err := devnode.New(devnode.Config{})
	if err != nil {
		b.Fatal(err)
	}
	r := &mpp.Rail{Method: &lightningcharge.Method{Node: d, Network: "regtest"}, Secret: []byte("s"), Now: time.Now}
	ch := coinop.Charge{Price: coinop.Price{Amount: big.NewInt(20_000)}, Resource: coinop.Resource{URL: "http://x/a"}}
	c := &coinop.Challenge{Header: http.Header{}}
	if err := r.Challenge(context.Background(), c, ch); err != nil {
		b.Fatal(err)
	}
	cs, _ := mpp.ParseChallenges(c.Header.Values("WWW-Authenticate"))
	o, err := lightningcharge.DecodeRequest(cs[0].Request)
	if err != nil {
		b.Fatal(err)
	}
	p, err := d.PayInvoice(context.Background(), o.MethodDetails.Invoice, 0)
	if err != nil {
		b.Fatal(err)
	}
	h, _ := (&mpp.Credential{Challenge: cs[0], Payload: lightningcharge.EncodePayload(p.Preimage)}).Encode()
	req := httptest.NewRequest("GET", "http://x/a", nil)
	req.Header.Set("Authorization", h)
	for b.Loop() {
		if _, err := r.Inspect(req, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPaidRequest is one purchase end to end through the engine and
// journal on the development node: the 402 (a new invoice), the payment,
// the paid request (node lookup, journal, upstream, receipt).
func BenchmarkPaidRequest(b *testing.B) {
	n, err := devnode.New(devnode.Config{BalanceMsat: 1 << 50})
	if err != nil {
		b.Fatal(err)
	}
	srv := gateway(b, &node{Node: n})
	for b.Loop() {
		resp, err := http.Get(srv.URL + "/a")
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		cs, _ := mpp.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		o, err := lightningcharge.DecodeRequest(cs[0].Request)
		if err != nil {
			b.Fatal(err)
		}
		p, err := n.PayInvoice(context.Background(), o.MethodDetails.Invoice, 0)
		if err != nil {
			b.Fatal(err)
		}
		h, _ := (&mpp.Credential{Challenge: cs[0], Payload: lightningcharge.EncodePayload(p.Preimage)}).Encode()
		req, _ := http.NewRequest("GET", srv.URL+"/a", nil)
		req.Header.Set("Authorization", h)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("paid request: %d", resp.StatusCode)
		}
	}
}
