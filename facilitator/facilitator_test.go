package facilitator_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/facilitator"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

const price = 1000

// rig is a facilitator on the embedded chain, with an SQLite journal, served
// on loopback.
type rig struct {
	dev     *devchain.Chain
	chain   *evm.Chain
	journal *sqlite.Store
	srv     *httptest.Server
	payee   common.Address
}

func newRig(t *testing.T, chainID uint64) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev, err := devchain.Start(ctx, devchain.Config{ChainID: chainID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	cl, err := ethclient.DialContext(ctx, dev.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: dev.ChainID, Backend: cl, SettlementKey: dev.Settler, ReceiptTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	journal, err := sqlite.Open(filepath.Join(t.TempDir(), "facilitator.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { journal.Close() })
	h, err := facilitator.New(facilitator.Config{Chains: []*evm.Chain{chain}, Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &rig{dev: dev, chain: chain, journal: journal, srv: srv, payee: crypto.PubkeyToAddress(dev.Payee.PublicKey)}
}

// requirements is what a resource server would send for one price.
func (r *rig) requirements() x402.PaymentRequirements {
	return x402.PaymentRequirements{
		Scheme: "exact", Network: fmt.Sprintf("eip155:%d", r.dev.ChainID), Amount: fmt.Sprint(price),
		Asset: r.dev.Token.Hex(), PayTo: r.payee.Hex(), MaxTimeoutSeconds: 60,
		Extra: map[string]any{"name": devchain.TokenName, "version": devchain.TokenVersion},
	}
}

// auth is an authorization under construction; tests change it before
// signing.
type auth struct {
	from        *ecdsa.PrivateKey
	signer      *ecdsa.PrivateKey // if nil, from
	to          common.Address
	value       int64
	validBefore int64
	domainName  string
}

func (r *rig) auth() *auth {
	return &auth{from: r.dev.Payer, to: r.payee, value: price, validBefore: time.Now().Unix() + 60, domainName: devchain.TokenName}
}

// sign returns the exact EVM payload.
func (r *rig) sign(t *testing.T, a *auth) json.RawMessage {
	t.Helper()
	signer := a.signer
	if signer == nil {
		signer = a.from
	}
	key, err := eip3009.NewKey(crypto.FromECDSA(signer))
	if err != nil {
		t.Fatal(err)
	}
	var from, to, token eip3009.Address
	copy(from[:], crypto.PubkeyToAddress(a.from.PublicKey).Bytes())
	copy(to[:], a.to.Bytes())
	copy(token[:], r.dev.Token.Bytes())
	au := eip3009.Authorization{From: from, To: to, Value: big.NewInt(a.value), ValidAfter: new(big.Int), ValidBefore: big.NewInt(a.validBefore)}
	rand.Read(au.Nonce[:])
	sep := eip3009.Domain{Name: a.domainName, Version: devchain.TokenVersion, ChainID: r.dev.ChainID, VerifyingContract: token}.Separator()
	sig := key.Sign(au.Digest(sep))
	b, _ := json.Marshal(x402.ExactEVMPayload{
		Signature: "0x" + hex.EncodeToString(sig[:]),
		Authorization: x402.ExactAuthorization{
			From: from.Hex(), To: to.Hex(), Value: au.Value.String(), ValidAfter: "0",
			ValidBefore: au.ValidBefore.String(), Nonce: "0x" + hex.EncodeToString(au.Nonce[:]),
		},
	})
	return b
}

// body is a v2 facilitator request.
func body(q x402.PaymentRequirements, payload json.RawMessage) map[string]any {
	return map[string]any{
		"x402Version":         2,
		"paymentPayload":      x402.PaymentPayload{X402Version: 2, Resource: &x402.ResourceInfo{URL: "http://shop.test/item"}, Accepted: q, Payload: payload},
		"paymentRequirements": q,
	}
}

// post sends v as JSON and decodes the JSON answer.
func (r *rig) post(t *testing.T, path string, v any) (int, map[string]any) {
	t.Helper()
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s)
	} else {
		b, _ = json.Marshal(v)
	}
	resp, err := http.Post(r.srv.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s answered %d with non-JSON %q", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

func (r *rig) balance(t *testing.T, who common.Address) int64 {
	t.Helper()
	b, err := r.chain.BalanceOf(context.Background(), r.dev.Token, who)
	if err != nil {
		t.Fatal(err)
	}
	return b.Int64()
}

func TestSupported(t *testing.T) {
	r := newRig(t, 84532)
	resp, err := http.Get(r.srv.URL + "/supported")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got x402.SupportedResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := []x402.SupportedKind{{X402Version: 2, Scheme: "exact", Network: "eip155:84532"}, {X402Version: 1, Scheme: "exact", Network: "base-sepolia"}}
	if fmt.Sprint(got.Kinds) != fmt.Sprint(want) {
		t.Errorf("kinds = %v, want %v", got.Kinds, want)
	}
	settler := crypto.PubkeyToAddress(r.dev.Settler.PublicKey).Hex()
	if s := got.Signers["eip155:*"]; len(s) != 1 || s[0] != settler {
		t.Errorf("signers = %v, want eip155:* → [%s]", got.Signers, settler)
	}
	if got.Extensions == nil {
		t.Error("extensions is null, want []")
	}
}

func TestVerifySettleReplay(t *testing.T) {
	r := newRig(t, 0)
	q := r.requirements()
	req := body(q, r.sign(t, r.auth()))
	payer := crypto.PubkeyToAddress(r.dev.Payer.PublicKey)
	payerBefore := r.balance(t, payer)

	status, v := r.post(t, "/verify", req)
	if status != 200 || v["isValid"] != true || v["payer"] != payer.Hex() {
		t.Fatalf("verify: %d %v", status, v)
	}
	if got := r.balance(t, r.payee); got != 0 {
		t.Fatalf("verify moved money: payee holds %d", got)
	}
	status, s := r.post(t, "/settle", req)
	if status != 200 || s["success"] != true || s["network"] != q.Network || s["payer"] != payer.Hex() {
		t.Fatalf("settle: %d %v", status, s)
	}
	tx, _ := s["transaction"].(string)
	if len(tx) != 66 {
		t.Fatalf("transaction %q", tx)
	}
	if got := r.balance(t, r.payee); got != price {
		t.Errorf("payee holds %d, want %d", got, price)
	}
	if got := r.balance(t, payer); got != payerBefore-price {
		t.Errorf("payer holds %d, want %d", got, payerBefore-price)
	}
	list, err := r.journal.List(context.Background(), coinop.StateSettled, 0)
	if err != nil || len(list) != 1 || list[0].Reference != tx || list[0].Resource != "http://shop.test/item" {
		t.Fatalf("journal: %v %+v", err, list)
	}

	// The same authorization again: refused by the journal, before the chain.
	status, s = r.post(t, "/settle", req)
	if status != 200 || s["success"] != false || s["errorReason"] != x402.ReasonNonceUsed || s["transaction"] != "" {
		t.Errorf("second settle: %d %v", status, s)
	}
	status, v = r.post(t, "/verify", req)
	if status != 200 || v["isValid"] != false || v["invalidReason"] != x402.ReasonNonceUsed {
		t.Errorf("verify after settle: %d %v", status, v)
	}
	if got := r.balance(t, r.payee); got != price {
		t.Errorf("after the replay the payee holds %d, want %d", got, price)
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t, 0)
	poor, _ := crypto.GenerateKey()
	stranger, _ := crypto.GenerateKey()
	for _, c := range []struct {
		name   string
		change func(q *x402.PaymentRequirements, a *auth)
		reason string
	}{
		{"amount", func(q *x402.PaymentRequirements, a *auth) { a.value = price - 1 }, x402.ReasonValueMismatch},
		{"recipient", func(q *x402.PaymentRequirements, a *auth) {
			a.to = common.HexToAddress("0x000000000000000000000000000000000000dEaD")
		}, x402.ReasonRecipientMismatch},
		{"expires too soon", func(q *x402.PaymentRequirements, a *auth) { a.validBefore = time.Now().Unix() + 2 }, x402.ReasonValidBefore},
		{"signed by someone else", func(q *x402.PaymentRequirements, a *auth) { a.signer = stranger }, x402.ReasonInvalidSignature},
		{"wrong EIP-712 domain", func(q *x402.PaymentRequirements, a *auth) { a.domainName = "USDC" }, x402.ReasonInvalidSignature},
		{"insufficient funds", func(q *x402.PaymentRequirements, a *auth) { a.from = poor }, x402.ReasonInsufficientFunds},
		{"unknown network", func(q *x402.PaymentRequirements, a *auth) { q.Network = "eip155:1" }, "invalid_network"},
		{"other scheme", func(q *x402.PaymentRequirements, a *auth) { q.Scheme = "upto" }, x402.ReasonUnsupportedScheme},
		{"no EIP-712 domain", func(q *x402.PaymentRequirements, a *auth) { q.Extra = nil }, x402.ReasonMissingDomain},
		{"bad asset", func(q *x402.PaymentRequirements, a *auth) { q.Asset = "USDC" }, "invalid_payment_requirements"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, a := r.requirements(), r.auth()
			c.change(&q, a)
			req := body(q, r.sign(t, a))
			for _, path := range []string{"/verify", "/settle"} {
				status, m := r.post(t, path, req)
				reason := m["invalidReason"]
				if path == "/settle" {
					reason = m["errorReason"]
				}
				if status != 200 || m["isValid"] == true || m["success"] == true || reason != c.reason {
					t.Errorf("%s: %d %v, want 200 with reason %s", path, status, m, c.reason)
				}
			}
		})
	}
	if got := r.balance(t, r.payee); got != 0 {
		t.Errorf("refused payments moved money: payee holds %d", got)
	}
}

func TestMalformedRequests(t *testing.T) {
	r := newRig(t, 0)
	q := r.requirements()
	for _, c := range []struct {
		name, path, body string
		status           int
	}{
		{"not JSON", "/verify", "x402", 400},
		{"empty object", "/settle", "{}", 400},
		{"unknown version", "/verify", `{"x402Version":3,"paymentPayload":{"x":1},"paymentRequirements":{"x":1}}`, 400},
		{"requirements of the wrong shape", "/verify", `{"x402Version":2,"paymentPayload":{"payload":{}},"paymentRequirements":[1]}`, 400},
		{"no payload", "/settle", func() string { b, _ := json.Marshal(body(q, nil)); return string(b) }(), 400},
		{"unknown path", "/refund", "{}", 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Post(r.srv.URL+c.path, "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%d %s, want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), c.status)
			}
		})
	}
	resp, err := http.Get(r.srv.URL + "/settle")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET /settle: %d, want 405", resp.StatusCode)
	}
}

// TestVersion1 settles a v1 request: network names, maxAmountRequired, a v1
// payload without accepted.
func TestVersion1(t *testing.T) {
	r := newRig(t, 84532)
	q := r.requirements()
	payload := r.sign(t, r.auth())
	req := map[string]any{
		"x402Version":    1,
		"paymentPayload": x402.PaymentPayloadV1{X402Version: 1, Scheme: "exact", Network: "base-sepolia", Payload: payload},
		"paymentRequirements": x402.PaymentRequirementsV1{
			Scheme: "exact", Network: "base-sepolia", MaxAmountRequired: q.Amount, Asset: q.Asset, PayTo: q.PayTo,
			Resource: "http://shop.test/v1", MaxTimeoutSeconds: 60, Extra: q.Extra,
		},
	}
	if status, v := r.post(t, "/verify", req); status != 200 || v["isValid"] != true {
		t.Fatalf("verify: %d %v", status, v)
	}
	status, s := r.post(t, "/settle", req)
	if status != 200 || s["success"] != true || s["network"] != "base-sepolia" {
		t.Fatalf("settle: %d %v", status, s)
	}
	if got := r.balance(t, r.payee); got != price {
		t.Errorf("payee holds %d, want %d", got, price)
	}
}

// TestConcurrentSettle sends one authorization to /settle eight times at
// once, and four different ones at once: the first is settled exactly once,
// the others each once.
func TestConcurrentSettle(t *testing.T) {
	r := newRig(t, 0)
	q := r.requirements()
	same := body(q, r.sign(t, r.auth()))
	var reqs []map[string]any
	for range 8 {
		reqs = append(reqs, same)
	}
	for range 4 {
		reqs = append(reqs, body(q, r.sign(t, r.auth())))
	}
	results := make([]map[string]any, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			_, results[i] = r.post(t, "/settle", req)
		})
	}
	wg.Wait()
	succeeded := 0
	for i, s := range results {
		if s["success"] == true {
			succeeded++
		}
		if i >= 8 && s["success"] != true {
			t.Errorf("distinct payment %d: %v", i-8, s)
		}
	}
	if succeeded != 5 {
		t.Errorf("%d settlements succeeded, want 5 (one of the eight duplicates, four distinct): %v", succeeded, results)
	}
	if got := r.balance(t, r.payee); got != 5*price {
		t.Errorf("payee holds %d, want %d", got, 5*price)
	}
}

// TestChainDown: with the chain gone, verification cannot complete and the
// answer is 503, not a verdict.
func TestChainDown(t *testing.T) {
	r := newRig(t, 0)
	req := body(r.requirements(), r.sign(t, r.auth()))
	r.dev.Close()
	for _, path := range []string{"/verify", "/settle"} {
		status, m := r.post(t, path, req)
		if status != 503 || m["reason"] != x402.ReasonChainUnavailable {
			t.Errorf("%s: %d %v, want 503 %s", path, status, m, x402.ReasonChainUnavailable)
		}
	}
	if list, _ := r.journal.List(context.Background(), "", 0); len(list) != 0 {
		t.Errorf("the journal holds %d payments, want none", len(list))
	}
}
