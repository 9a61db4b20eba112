package client_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

const (
	asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
	payTo = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
)

var offer = x402.PaymentRequirements{
	Scheme: "exact", Network: "eip155:84532", Amount: "1000", Asset: asset, PayTo: payTo,
	MaxTimeoutSeconds: 60, Extra: map[string]any{"name": "USDC", "version": "2"},
}

func testKey(t testing.TB) *eip3009.Key {
	k, err := eip3009.ParseKey("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seller is a minimal x402 v2 server: it answers 402 until it receives a
// PAYMENT-SIGNATURE whose signature recovers to the authorization's from
// address, with the right terms. It checks what a verifier checks, short of
// the chain.
type seller struct {
	t        *testing.T
	paid     atomic.Int32
	bodies   []string
	lastAuth x402.ExactAuthorization
}

func (s *seller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.bodies = append(s.bodies, string(b))
	h := r.Header.Get(x402.HeaderPaymentSignature)
	if h == "" {
		pr, _ := x402.EncodeHeader(x402.PaymentRequired{X402Version: 2, Accepts: []x402.PaymentRequirements{offer}, Resource: &x402.ResourceInfo{URL: "http://x/y"}})
		w.Header().Set(x402.HeaderPaymentRequired, pr)
		w.WriteHeader(402)
		return
	}
	var p x402.PaymentPayload
	if err := x402.DecodeHeader(h, &p); err != nil {
		s.t.Errorf("payment header: %v", err)
		w.WriteHeader(400)
		return
	}
	pl, _ := x402.DecodeExactEVM(p.Payload)
	a := pl.Authorization
	auth, err := eip3009.ParseAuthorization(a.From, a.To, a.Value, a.ValidAfter, a.ValidBefore, a.Nonce)
	if err != nil {
		s.t.Errorf("authorization: %v", err)
		w.WriteHeader(400)
		return
	}
	assetAddr, _ := eip3009.ParseAddress(asset)
	digest := auth.Digest(eip3009.Domain{Name: "USDC", Version: "2", ChainID: 84532, VerifyingContract: assetAddr}.Separator())
	sig, err := eip3009.ParseSignature(pl.Signature)
	if err != nil {
		s.t.Errorf("signature: %v", err)
	}
	signer, err := eip3009.Recover(digest, sig)
	if err != nil || signer != auth.From || a.Value != "1000" || !strings.EqualFold(a.To, payTo) || a.ValidAfter != "0" {
		s.t.Errorf("bad payment: signer %s from %s, %+v, %v", signer.Hex(), auth.From.Hex(), a, err)
	}
	if p.Accepted.Amount != offer.Amount || p.Accepted.Asset != offer.Asset {
		s.t.Errorf("accepted is not our offer verbatim: %+v", p.Accepted)
	}
	s.lastAuth = a
	s.paid.Add(1)
	w.Write([]byte("paid content"))
}

func TestTransportPays(t *testing.T) {
	s := &seller{t: t}
	srv := httptest.NewServer(s)
	defer srv.Close()
	now := time.Unix(1_800_000_000, 0)
	tr := &client.Transport{Key: testKey(t), Policy: client.Policy{MaxAmount: big.NewInt(1000)}, Now: func() time.Time { return now }}
	var payments int
	tr.OnPayment = func(client.Payment) { payments++ }
	resp, err := (&http.Client{Transport: tr}).Post(srv.URL, "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "paid content" || s.paid.Load() != 1 || payments != 1 {
		t.Fatalf("%d %q paid=%d", resp.StatusCode, b, s.paid.Load())
	}
	if len(s.bodies) != 2 || s.bodies[1] != "hello" {
		t.Fatalf("request body not replayed: %q", s.bodies)
	}
	if s.lastAuth.ValidBefore != "1800000060" {
		t.Errorf("validBefore %s, want now+maxTimeoutSeconds", s.lastAuth.ValidBefore)
	}
	if tr.Spent(client.TokenUnit(offer.Network, offer.Asset)).Int64() != 1000 {
		t.Errorf("spent %s", tr.Spent(client.TokenUnit(offer.Network, offer.Asset)))
	}
}

func TestPolicy(t *testing.T) {
	s := &seller{t: t}
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, c := range []struct {
		name   string
		policy client.Policy
		want   string
	}{
		{"no maximum", client.Policy{}, "exceeds the per-request maximum"},
		{"too expensive", client.Policy{MaxAmount: big.NewInt(999)}, "exceeds the per-request maximum 999"},
		{"network not allowed", client.Policy{MaxAmount: big.NewInt(1000), Networks: []string{"eip155:8453"}}, "network eip155:84532 is not allowed"},
		{"asset not allowed", client.Policy{MaxAmount: big.NewInt(1000), Assets: []string{payTo}}, "is not allowed"},
		{"payee not allowed", client.Policy{MaxAmount: big.NewInt(1000), PayTo: []string{asset}}, "payee"},
		{"over budget", client.Policy{MaxAmount: big.NewInt(1000), Budget: big.NewInt(500)}, "exceed the budget"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := &client.Transport{Key: testKey(t), Policy: c.policy}
			_, err := (&http.Client{Transport: tr}).Get(srv.URL)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if s.paid.Load() != 0 {
		t.Fatal("a refused payment reached the seller")
	}
	// The budget holds across requests.
	tr := &client.Transport{Key: testKey(t), Policy: client.Policy{MaxAmount: big.NewInt(1000), Budget: big.NewInt(2500)}}
	hc := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		resp, err := hc.Get(srv.URL)
		if i < 2 && (err != nil || resp.StatusCode != 200) {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 2 && err == nil {
			t.Fatal("third payment exceeds the budget but was made")
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}

func TestOffersV1Body(t *testing.T) {
	body := `{"x402Version":1,"error":"X-PAYMENT header is required","accepts":[{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"10000","asset":"` + asset + `","payTo":"` + payTo + `","resource":"https://api.example.com/x","description":"","mimeType":"","outputSchema":null,"maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}]}`
	resp := &http.Response{StatusCode: 402, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
	offers, version, _, err := client.Offers(resp)
	if err != nil || version != 1 || len(offers) != 1 || offers[0].Network != "eip155:84532" || offers[0].Amount != "10000" {
		t.Fatalf("%+v %d %v", offers, version, err)
	}
	// The body stays readable for the caller.
	if b, _ := io.ReadAll(resp.Body); string(b) != body {
		t.Fatal("body consumed")
	}
	tr := &client.Transport{Key: testKey(t), Policy: client.Policy{MaxAmount: big.NewInt(10000)}}
	resp.Body = io.NopCloser(strings.NewReader(body))
	p, err := tr.Pay("https://api.example.com/x", resp)
	if err != nil || p.Header != x402.HeaderXPayment {
		t.Fatalf("%+v %v", p, err)
	}
	var v1 x402.PaymentPayloadV1
	if err := x402.DecodeHeader(p.Value, &v1); err != nil || v1.Network != "base-sepolia" || v1.X402Version != 1 {
		t.Fatalf("%+v %v", v1, err)
	}
}

func TestNoDoublePayment(t *testing.T) {
	// A server that keeps answering 402 gets exactly one payment attempt.
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		pr, _ := x402.EncodeHeader(x402.PaymentRequired{X402Version: 2, Accepts: []x402.PaymentRequirements{offer}})
		w.Header().Set(x402.HeaderPaymentRequired, pr)
		w.WriteHeader(402)
	}))
	defer srv.Close()
	tr := &client.Transport{Key: testKey(t), Policy: client.Policy{MaxAmount: big.NewInt(1000)}}
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 402 || calls.Load() != 2 {
		t.Fatalf("status %d after %d calls", resp.StatusCode, calls.Load())
	}
}

// FuzzOffers feeds untrusted 402 answers to the offer parser and the signer.
func FuzzOffers(f *testing.F) {
	pr, _ := json.Marshal(x402.PaymentRequired{X402Version: 2, Accepts: []x402.PaymentRequirements{offer}})
	f.Add(base64.StdEncoding.EncodeToString(pr), []byte(nil))
	f.Add("", []byte(`{"x402Version":1,"accepts":[{"scheme":"exact","network":"base","maxAmountRequired":"1","asset":"`+asset+`","payTo":"`+payTo+`","extra":{"name":"a","version":"1"}}]}`))
	f.Add("", []byte(hex.EncodeToString([]byte("garbage"))))
	k := testKey(f)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		resp := &http.Response{StatusCode: 402, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body))}
		if header != "" {
			resp.Header.Set(x402.HeaderPaymentRequired, header)
		}
		tr := &client.Transport{Key: k, Policy: client.Policy{MaxAmount: big.NewInt(1 << 40)}}
		tr.Pay("http://x/", resp)
	})
}
