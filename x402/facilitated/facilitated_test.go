package facilitated_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/facilitator"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/recovery"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
	"github.com/coinop/coinop/x402/facilitated"
)

const price = 1000

// rig is a paywalled handler whose x402 rail verifies and settles through
// coinop's facilitator over loopback HTTP, on the embedded chain.
type rig struct {
	dev         *devchain.Chain
	chain       *evm.Chain
	facilitator *httptest.Server
	fjournal    *sqlite.Store // the facilitator's
	gjournal    *sqlite.Store // the paywall's
	shop        *httptest.Server
	payee       common.Address
	upstream    int
}

func newRig(t *testing.T, chainID uint64, facilitatorURL string) *rig {
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
	r := &rig{dev: dev, payee: crypto.PubkeyToAddress(dev.Payee.PublicKey)}
	if r.chain, err = evm.NewChain(evm.ChainConfig{ChainID: dev.ChainID, Backend: cl, SettlementKey: dev.Settler}); err != nil {
		t.Fatal(err)
	}
	r.fjournal = openJournal(t, "facilitator.db")
	h, err := facilitator.New(facilitator.Config{Chains: []*evm.Chain{r.chain}, Journal: r.fjournal})
	if err != nil {
		t.Fatal(err)
	}
	r.facilitator = httptest.NewServer(h)
	t.Cleanup(r.facilitator.Close)
	if facilitatorURL == "" {
		facilitatorURL = r.facilitator.URL
	}

	scheme, err := facilitated.New(facilitated.Config{
		URL: facilitatorURL, Network: fmt.Sprintf("eip155:%d", dev.ChainID),
		Asset: dev.Token.Hex(), PayTo: r.payee.Hex(), Name: devchain.TokenName, Version: devchain.TokenVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.gjournal = openJournal(t, "gateway.db")
	pw, err := paywall.New(paywall.Config{Journal: r.gjournal, Routes: []paywall.Route{{
		Pattern: "GET /item",
		Accept:  []paywall.Accept{{Rail: &x402.Rail{Schemes: []x402.Scheme{scheme}}, Price: coinop.Price{Amount: big.NewInt(price), Symbol: "USDC", Decimals: 6}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	r.shop = httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.upstream++
		io.WriteString(w, "the item")
	})))
	t.Cleanup(r.shop.Close)
	return r
}

func openJournal(t *testing.T, name string) *sqlite.Store {
	t.Helper()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func (r *rig) balance(t *testing.T, who common.Address) int64 {
	t.Helper()
	b, err := r.chain.BalanceOf(context.Background(), r.dev.Token, who)
	if err != nil {
		t.Fatal(err)
	}
	return b.Int64()
}

func payingClient(t *testing.T, k *ecdsa.PrivateKey) *http.Client {
	t.Helper()
	key, err := eip3009.NewKey(crypto.FromECDSA(k))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &client.Transport{Key: key, Policy: client.Policy{MaxAmount: big.NewInt(price)}}}
}

func get(t *testing.T, hc *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPaysThroughFacilitator: the Go client pays; the facilitator verifies
// and settles; both journals hold the payment under the same ID.
func TestPaysThroughFacilitator(t *testing.T) {
	r := newRig(t, 0, "")
	resp, body := get(t, payingClient(t, r.dev.Payer), r.shop.URL+"/item")
	if resp.StatusCode != 200 || body != "the item" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var sr x402.SettleResponse
	if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentResponse), &sr); err != nil || !sr.Success || sr.Transaction == "" {
		t.Fatalf("PAYMENT-RESPONSE %+v %v", sr, err)
	}
	if got := r.balance(t, r.payee); got != price {
		t.Errorf("payee holds %d, want %d", got, price)
	}
	ctx := context.Background()
	g, _ := r.gjournal.List(ctx, coinop.StateSettled, 0)
	f, _ := r.fjournal.List(ctx, coinop.StateSettled, 0)
	if len(g) != 1 || len(f) != 1 || g[0].ID != f[0].ID || g[0].Reference != sr.Transaction || f[0].Reference != sr.Transaction {
		t.Fatalf("journals disagree: gateway %+v, facilitator %+v", g, f)
	}
}

// TestRefusedByFacilitator: a payer without funds passes the local checks
// and is refused by the facilitator's simulation; nothing is served.
func TestRefusedByFacilitator(t *testing.T) {
	r := newRig(t, 0, "")
	poor, _ := crypto.GenerateKey()
	resp, body := get(t, payingClient(t, poor), r.shop.URL+"/item")
	if resp.StatusCode != 402 || r.upstream != 0 {
		t.Fatalf("%d %s (upstream called %d times)", resp.StatusCode, body, r.upstream)
	}
	var problem struct{ Reason string }
	json.Unmarshal([]byte(body), &problem)
	if problem.Reason != x402.ReasonInsufficientFunds {
		t.Errorf("reason %q, want %s", problem.Reason, x402.ReasonInsufficientFunds)
	}
}

// TestVersion1Payment presents an X-PAYMENT (v1) header; the remote scheme
// asks the facilitator in version 2.
func TestVersion1Payment(t *testing.T) {
	r := newRig(t, 84532, "")
	payload := sign(t, r.dev, r.payee)
	h, _ := x402.EncodeHeader(x402.PaymentPayloadV1{X402Version: 1, Scheme: "exact", Network: "base-sepolia", Payload: payload})
	resp, body := get(t, http.DefaultClient, r.shop.URL+"/item", x402.HeaderXPayment, h)
	if resp.StatusCode != 200 || resp.Header.Get(x402.HeaderXPaymentResponse) == "" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := r.balance(t, r.payee); got != price {
		t.Errorf("payee holds %d, want %d", got, price)
	}
}

// TestFacilitatorUnreachable fails closed: 503, upstream never called.
func TestFacilitatorUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r := newRig(t, 0, dead)
	resp, body := get(t, payingClient(t, r.dev.Payer), r.shop.URL+"/item")
	if resp.StatusCode != 503 || r.upstream != 0 {
		t.Fatalf("%d %s (upstream called %d times)", resp.StatusCode, body, r.upstream)
	}
}

// TestSettleOutcomes drives Settle against scripted facilitators.
func TestSettleOutcomes(t *testing.T) {
	dev := &devchain.Chain{ChainID: 1337, Token: common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")}
	dev.Payer, _ = crypto.GenerateKey()
	payee := common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
	for _, c := range []struct {
		name    string
		answer  func(w http.ResponseWriter)
		kind    coinop.Kind
		pending bool
		reason  string
	}{
		{"settled", func(w http.ResponseWriter) {
			io.WriteString(w, `{"success":true,"transaction":"0xabc","network":"eip155:1337"}`)
		}, 0, false, ""},
		{"refused", func(w http.ResponseWriter) {
			io.WriteString(w, `{"success":false,"errorReason":"invalid_exact_evm_nonce_already_used","transaction":"","network":"eip155:1337"}`)
		}, coinop.KindReplayed, false, x402.ReasonNonceUsed},
		{"refused with 400 and a verdict", func(w http.ResponseWriter) {
			w.WriteHeader(400)
			io.WriteString(w, `{"success":false,"errorReason":"invalid_exact_evm_payload_signature","transaction":"","network":"eip155:1337"}`)
		}, coinop.KindSettleFailed, false, x402.ReasonInvalidSignature},
		// Only the facilitator's word makes a settlement pending: it sent
		// the transaction.
		{"pending", func(w http.ResponseWriter) {
			io.WriteString(w, `{"success":false,"errorReason":"settlement_pending","transaction":"0xabc","network":"eip155:1337"}`)
		}, coinop.KindUnavailable, true, x402.ReasonSettlementPending},
		{"not sent, says the facilitator", func(w http.ResponseWriter) {
			io.WriteString(w, `{"success":false,"errorReason":"settlement_not_sent","transaction":"","network":"eip155:1337"}`)
		}, coinop.KindUnavailable, false, x402.ReasonSettlementNotSent},
		// Any answer without a verdict may come after a transaction was
		// sent, or before: nothing is known to be sent, and nothing is
		// known to have failed.
		{"no answer in time", func(w http.ResponseWriter) { time.Sleep(2 * time.Second) }, coinop.KindUnavailable, false, x402.ReasonSettlementNotSent},
		{"500", func(w http.ResponseWriter) { w.WriteHeader(500) }, coinop.KindUnavailable, false, x402.ReasonSettlementNotSent},
		{"503", func(w http.ResponseWriter) { w.WriteHeader(503) }, coinop.KindUnavailable, false, x402.ReasonSettlementNotSent},
		{"garbage", func(w http.ResponseWriter) { io.WriteString(w, "<html>") }, coinop.KindUnavailable, false, x402.ReasonSettlementNotSent},
		// A refused connection never reached anyone.
		{"unreachable", nil, coinop.KindUnavailable, false, "facilitator_unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/settle" {
					http.NotFound(w, r)
					return
				}
				c.answer(w)
			}))
			url := srv.URL
			if c.answer == nil {
				srv.Close()
			}
			defer srv.Close()
			s, err := facilitated.New(facilitated.Config{
				URL: url, Network: "eip155:1337", Asset: dev.Token.Hex(), PayTo: payee.Hex(),
				Name: devchain.TokenName, Version: devchain.TokenVersion, SettleTimeout: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			cred := &x402.Credential{Version: 2, Requirements: s.Requirements(coinop.Charge{Price: coinop.Price{Amount: big.NewInt(price)}})}
			cred.Payload = x402.PaymentPayload{X402Version: 2, Accepted: cred.Requirements, Payload: sign(t, dev, payee)}
			p, err := s.Check(cred)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := s.Settle(context.Background(), p, cred, nil)
			if c.kind == 0 {
				if err != nil || !resp.Success || resp.Transaction != "0xabc" {
					t.Fatalf("%+v %v", resp, err)
				}
				return
			}
			var e *coinop.Error
			if !errors.As(err, &e) || e.Kind != c.kind {
				t.Fatalf("error %v, want kind %s", err, c.kind)
			}
			if got := resp != nil && resp.Pending; got != c.pending {
				t.Errorf("pending = %v, want %v (%+v)", got, c.pending, resp)
			}
			if e.Reason != c.reason {
				t.Errorf("reason %q, want %q", e.Reason, c.reason)
			}
		})
	}
}

// sign returns a payload paying price from dev's payer to payTo.
func sign(t *testing.T, dev *devchain.Chain, payTo common.Address) json.RawMessage {
	t.Helper()
	key, err := eip3009.NewKey(crypto.FromECDSA(dev.Payer))
	if err != nil {
		t.Fatal(err)
	}
	var to, token eip3009.Address
	copy(to[:], payTo.Bytes())
	copy(token[:], dev.Token.Bytes())
	a := eip3009.Authorization{From: key.Address(), To: to, Value: big.NewInt(price), ValidAfter: new(big.Int), ValidBefore: big.NewInt(time.Now().Unix() + 60)}
	rand.Read(a.Nonce[:])
	sig := key.Sign(a.Digest(eip3009.Domain{Name: devchain.TokenName, Version: devchain.TokenVersion, ChainID: dev.ChainID, VerifyingContract: token}.Separator()))
	b, _ := json.Marshal(x402.ExactEVMPayload{
		Signature: "0x" + hex.EncodeToString(sig[:]),
		Authorization: x402.ExactAuthorization{
			From: a.From.Hex(), To: to.Hex(), Value: a.Value.String(), ValidAfter: "0",
			ValidBefore: a.ValidBefore.String(), Nonce: "0x" + hex.EncodeToString(a.Nonce[:]),
		},
	})
	return b
}

// frontedRig is a rig whose remote scheme reaches the facilitator through a
// front that answers /settle with status and a body that is no verdict; it
// forwards the call first when forward is set (the facilitator settles, its
// answer is lost).
func frontedRig(t *testing.T, status int, forward bool) *rig {
	t.Helper()
	var backend atomic.Pointer[string]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		target, _ := url.Parse(*backend.Load())
		if req.URL.Path == "/settle" {
			if forward {
				rec := httptest.NewRecorder()
				httputil.NewSingleHostReverseProxy(target).ServeHTTP(rec, req)
			}
			w.WriteHeader(status)
			io.WriteString(w, "<html>unavailable</html>")
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	r := newRig(t, 84532, front.URL)
	backend.Store(&r.facilitator.URL)
	return r
}

// A /settle that gets no verdict (503, a body that is not the facilitator's
// JSON) means nothing is known to be sent: the response is withheld (503
// settlement_not_sent) and the payment stays owed, neither served nor
// failed. Recovery reconciles it through the network's rpc when one is
// configured: settled if the facilitator did move the money (and then
// served on the payer's retry), failed if not. Without an rpc it is marked
// unreconcilable once and then left alone.
func TestSettleWithoutVerdictIsNotServed(t *testing.T) {
	for _, c := range []struct {
		name      string
		status    int
		forward   bool // the facilitator did settle
		reconcile bool // the network has an rpc beside the facilitator
		final     coinop.State
	}{
		{name: "503, nothing sent", status: 503, reconcile: true, final: coinop.StateFailed},
		{name: "settled, answer lost", status: 502, forward: true, reconcile: true, final: coinop.StateSettled},
		{name: "no rpc", status: 503, final: coinop.StateSettling},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := frontedRig(t, c.status, c.forward)
			h, _ := x402.EncodeHeader(x402.PaymentPayloadV1{X402Version: 1, Scheme: "exact", Network: "base-sepolia", Payload: sign(t, r.dev, r.payee)})
			resp, body := get(t, http.DefaultClient, r.shop.URL+"/item", x402.HeaderXPayment, h)
			var problem struct{ Reason string }
			json.Unmarshal([]byte(body), &problem)
			if resp.StatusCode != 503 || problem.Reason != x402.ReasonSettlementNotSent || strings.Contains(body, "the item") {
				t.Fatalf("%d %s, want 503 %s and nothing served", resp.StatusCode, body, x402.ReasonSettlementNotSent)
			}
			ctx := context.Background()
			ps, err := r.gjournal.List(ctx, "", 0)
			if err != nil || len(ps) != 1 || ps[0].State != coinop.StateSettling || !ps[0].Served.IsZero() {
				t.Fatalf("journal %+v %v, want one settling payment, not served", ps, err)
			}
			id := ps[0].ID

			rec := map[string]coinop.Reconciler{}
			if c.reconcile {
				rec[ps[0].Network] = r.chain
			}
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			for pass := 0; pass < 3; pass++ {
				rep, err := recovery.Run(ctx, r.gjournal, rec, time.Now().Add(time.Second), log)
				if err != nil {
					t.Fatalf("pass %d: %v", pass, err)
				}
				if !c.reconcile && (rep.Unreconcilable != 1 || rep.Pending != 0) {
					t.Errorf("pass %d: %+v, want it counted unreconcilable, not pending", pass, rep)
				}
			}
			got, err := r.gjournal.Get(ctx, id)
			if err != nil || got.State != c.final {
				t.Fatalf("after recovery %+v %v, want %s", got, err, c.final)
			}
			if !c.reconcile {
				if got.Reason != recovery.ReasonUnreconcilable || strings.Count(logged.String(), "cannot be reconciled") != 1 {
					t.Errorf("reason %q, log %q: want it marked and reported once", got.Reason, logged.String())
				}
			}
			paid := int64(0)
			if c.forward {
				paid = price
			}
			if b := r.balance(t, r.payee); b != paid {
				t.Errorf("payee holds %d, want %d", b, paid)
			}
			if c.final == coinop.StateSettled {
				if resp, body := get(t, http.DefaultClient, r.shop.URL+"/item", x402.HeaderXPayment, h); resp.StatusCode != 200 || body != "the item" {
					t.Errorf("retry after recovery: %d %s", resp.StatusCode, body)
				}
			}
		})
	}
}
