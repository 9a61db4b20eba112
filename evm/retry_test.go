package evm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/x402"
)

// abortAt makes the gateway drop the connection when a payment reaches
// step, as a crash or a network failure would, once.
func (r *rig) abortAt(step string) {
	var done atomic.Bool
	r.setOnStep(func(s string, p *coinop.Payment) {
		if s == step && done.CompareAndSwap(false, true) {
			panic(http.ErrAbortHandler)
		}
	})
}

func (r *rig) setOnStep(f func(string, *coinop.Payment)) {
	r.mu.Lock()
	r.onStep = f
	r.mu.Unlock()
}

func (r *rig) tryGet(path, name, value string) (int, error) {
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	req.Header.Set(name, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// withID adds the x402 payment-identifier extension to a payment header.
func withID(t *testing.T, header, id string) string {
	var p x402.PaymentPayload
	if err := x402.DecodeHeader(header, &p); err != nil {
		t.Fatal(err)
	}
	p.Extensions = map[string]any{"payment-identifier": map[string]any{"info": map[string]any{"id": id}}}
	h, err := x402.EncodeHeader(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestLostResponseAtEachCommitPoint drops the connection after the payment
// settled: before the status line left, or after it, before the body (a
// crash, a broken connection, an upstream failing mid-body). The purchase
// was paid and never received, so the retry of the same payment is served,
// without a new charge, rather than refused as a replay (which a client
// would answer by paying again). Once a response is delivered, the payment
// is spent.
func TestLostResponseAtEachCommitPoint(t *testing.T) {
	for _, c := range []struct {
		name string
		drop func(r *rig)
	}{
		{"before the status line", func(r *rig) { r.abortAt("settled") }},
		{"after the status line", func(r *rig) {
			var done atomic.Bool
			r.mu.Lock()
			r.onHeader = func() {
				if done.CompareAndSwap(false, true) {
					panic(http.ErrAbortHandler)
				}
			}
			r.mu.Unlock()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			before := r.balance(t, r.payee)
			h := r.newPayment(t).header(t)
			c.drop(r)
			if _, err := r.tryGet("/paid/x", x402.HeaderPaymentSignature, h); err == nil {
				t.Fatal("the connection should have dropped")
			}
			if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, h); a.status != 200 {
				t.Fatalf("retry: %d %s", a.status, a.body)
			}
			if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, h); a.status != 402 || a.reason != "payment_replayed" {
				t.Fatalf("after the response was delivered: %d %s", a.status, a.body)
			}
			if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
				t.Fatalf("payee got %s, want one price", d)
			}
		})
	}
}

// TestHijackedResponseIsServedOnce: a handler that takes the connection
// over (an upgrade) has delivered its response; the payment is marked
// served without anything written through the ResponseWriter afterwards
// (net/http would put a status line into the taken-over connection), and
// its retry is a replay.
func TestHijackedResponseIsServedOnce(t *testing.T) {
	r := newRig(t)
	before := r.balance(t, r.payee)
	const stream = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nframes"
	r.mu.Lock()
	r.answer = func(w http.ResponseWriter, _ *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		brw.WriteString(stream)
		brw.Flush()
		c.Close()
	}
	r.mu.Unlock()
	served := make(chan struct{}, 1)
	r.setOnStep(func(step string, _ *coinop.Payment) {
		if step == "served" {
			served <- struct{}{}
		}
	})
	h := r.newPayment(t).header(t)
	conn, err := net.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // bounds a gateway that keeps the connection open
	fmt.Fprintf(conn, "GET /ws/x HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: test\r\n%s: %s\r\n\r\n",
		r.srv.Listener.Addr(), x402.HeaderPaymentSignature, h)
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != stream {
		t.Fatalf("the connection carried %q, want only the handler's %q", got, stream)
	}
	select {
	case <-served:
	case <-time.After(20 * time.Second):
		t.Fatal("the hijacked response was never marked served")
	}
	r.mu.Lock()
	r.answer = nil
	r.mu.Unlock()
	if a := r.get(t, "/ws/x", x402.HeaderPaymentSignature, h); a.status != 402 || a.reason != "payment_replayed" {
		t.Fatalf("retry: %d %s", a.status, a.body)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
		t.Fatalf("payee got %s, want one price", d)
	}
}

// A client that retries a purchase with a fresh authorization but the same
// payment identifier is not charged twice.
func TestPaymentIdentifierPreventsDoubleCharge(t *testing.T) {
	r := newRig(t)
	before := r.balance(t, r.payee)
	const id = "purchase-0123456789abcdef"
	first := withID(t, r.newPayment(t).header(t), id)
	r.abortAt("settled")
	if _, err := r.tryGet("/paid/x", x402.HeaderPaymentSignature, first); err == nil {
		t.Fatal("the connection should have dropped")
	}
	second := withID(t, r.newPayment(t).header(t), id)
	if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, second); a.status != 200 {
		t.Fatalf("retry with a new authorization: %d %s", a.status, a.body)
	}
	third := withID(t, r.newPayment(t).header(t), id)
	if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, third); a.status != 409 || a.reason != "idempotency_key_used" {
		t.Fatalf("after the purchase was served: %d %s", a.status, a.body)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
		t.Fatalf("payee got %s, want one price", d)
	}
}

func TestIdempotencyKeyHeader(t *testing.T) {
	r := newRig(t)
	before := r.balance(t, r.payee)
	send := func() answer {
		req, _ := http.NewRequest("GET", r.srv.URL+"/paid/x", nil)
		req.Header.Set(x402.HeaderPaymentSignature, r.newPayment(t).header(t))
		req.Header.Set("Idempotency-Key", "order-42")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var prob struct{ Reason string }
		json.NewDecoder(resp.Body).Decode(&prob)
		return answer{status: resp.StatusCode, reason: prob.Reason}
	}
	if a := send(); a.status != 200 {
		t.Fatalf("first: %+v", a)
	}
	if a := send(); a.status != 409 || a.reason != "idempotency_key_used" {
		t.Fatalf("second: %+v", a)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
		t.Fatalf("payee got %s, want one price", d)
	}
}

// waitSettled waits until the journal holds n settled payments.
func (r *rig) waitSettled(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ps, err := r.store.List(context.Background(), coinop.StateSettled, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d settled payments, want %d", len(ps), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Async routes serve before settling, up to the per-payer exposure cap;
// beyond it they settle synchronously. Every payment ends settled.
func TestAsyncSettlement(t *testing.T) {
	r := newRig(t)
	before := r.balance(t, r.payee)
	var async atomic.Int32
	r.setOnStep(func(step string, p *coinop.Payment) {
		if step == "served" && p.Mode == coinop.ModeAsync { // the mode is decided when the payment is owed
			async.Add(1)
		}
	})
	for i := 0; i < 3; i++ {
		if a := r.get(t, "/async/x", x402.HeaderPaymentSignature, r.newPayment(t).header(t)); a.status != 200 {
			t.Fatalf("%d: %d %s", i, a.status, a.body)
		}
	}
	r.waitSettled(t, 3, 20*time.Second)
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != 3*price {
		t.Fatalf("payee got %s, want 3 prices", d)
	}
	if async.Load() < 1 {
		t.Fatal("no payment was served before settling")
	}
}

// switchableRPC is a loopback proxy to the chain's JSON-RPC that can be cut.
type switchableRPC struct {
	up    atomic.Bool
	proxy *httputil.ReverseProxy
}

func (s *switchableRPC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.up.Load() {
		hj, ok := w.(http.Hijacker)
		if ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	s.proxy.ServeHTTP(w, r)
}

// During an RPC outage priced routes answer 503 and nothing unpaid leaves;
// an async settlement owed from before the outage completes when it ends.
func TestOutageDrainsAsyncSettlements(t *testing.T) {
	r := newRig(t)
	target, _ := url.Parse(r.chain.RPCURL)
	sw := &switchableRPC{proxy: httputil.NewSingleHostReverseProxy(target)}
	sw.up.Store(true)
	rpc := httptest.NewServer(sw)
	defer rpc.Close()
	cl, err := dialRPC(rpc.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: r.chain.ChainID, Backend: cl, SettlementKey: r.chain.Settler, ReceiptTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.handler(t, ch))
	defer srv.Close()
	r.srv = srv
	// The outage starts right after the async response is served, before
	// the background settlement reaches the chain.
	r.setOnStep(func(step string, p *coinop.Payment) {
		if step == "served" && p.Mode == coinop.ModeAsync {
			sw.up.Store(false)
		}
	})
	before := r.balance(t, r.payee)
	if a := r.get(t, "/async/x", x402.HeaderPaymentSignature, r.newPayment(t).header(t)); a.status != 200 {
		t.Fatalf("async: %d %s", a.status, a.body)
	}
	r.setOnStep(nil)
	calls := r.upCalls
	if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, r.newPayment(t).header(t)); a.status != 503 {
		t.Fatalf("during the outage: %d %s", a.status, a.body)
	}
	if r.upCalls != calls {
		t.Fatal("the upstream was called during the outage")
	}
	time.Sleep(1500 * time.Millisecond) // the settlement retries meanwhile
	if ps, _ := r.store.List(context.Background(), coinop.StateSettled, 0); len(ps) != 0 {
		t.Fatalf("settled during the outage: %v", ps)
	}
	sw.up.Store(true)
	r.waitSettled(t, 1, 30*time.Second)
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
		t.Fatalf("payee got %s, want one price", d)
	}
}

func dialRPC(u string) (*ethclient.Client, error) { return ethclient.Dial(u) }

// A payment identifier proves nothing by itself: someone who knows a
// payer's identifier but not the payer's key gets nothing.
func TestPaymentIdentifierNeedsThePayersSignature(t *testing.T) {
	r := newRig(t)
	const id = "purchase-fedcba9876543210"
	r.abortAt("settled")
	if _, err := r.tryGet("/paid/x", x402.HeaderPaymentSignature, withID(t, r.newPayment(t).header(t), id)); err == nil {
		t.Fatal("the connection should have dropped")
	}
	forged := r.newPayment(t) // from: the payer; signed by someone else
	other, _ := crypto.GenerateKey()
	forged.signer = key(t, other)
	a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, withID(t, forged.header(t), id))
	if a.status != 402 || a.reason != x402.ReasonInvalidSignature || strings.Contains(a.body, "upstream says") {
		t.Fatalf("forged retry: %d %s", a.status, a.body)
	}
}

// Async settlements queued together share a transaction through the batch
// settler, and each is journaled settled with it; the audit's view (one
// Transfer per payment) holds.
func TestAsyncSettlementsAreBatched(t *testing.T) {
	r := newRig(t)
	r.batcher = r.chain.BatchSettler
	r.exposure = big.NewInt(100 * price)
	srv := httptest.NewServer(r.handler(t, r.evm))
	defer srv.Close()
	r.srv = srv
	before := r.balance(t, r.payee)
	const n = 12
	headers := make([]string, n)
	for i := range headers {
		headers[i] = r.newPayment(t).header(t)
	}
	var wg sync.WaitGroup
	for _, h := range headers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := r.get(t, "/async/x", x402.HeaderPaymentSignature, h); a.status != 200 {
				t.Errorf("%d %s", a.status, a.body)
			}
		}()
	}
	wg.Wait()
	r.waitSettled(t, n, 30*time.Second)
	ps, _ := r.store.List(context.Background(), coinop.StateSettled, 0)
	txs := map[string]int{}
	for _, p := range ps {
		txs[p.Reference]++
	}
	if len(txs) >= n {
		t.Errorf("%d payments in %d transactions: nothing was batched", n, len(txs))
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != n*price {
		t.Fatalf("payee got %s, want %d prices", d, n)
	}
	for _, p := range ps {
		if err := r.evm.TransferCheck(context.Background(), p.Reference, r.chain.Token, common.HexToAddress(p.Payer), r.payee, p.Amount); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d payments settled in %d transactions", n, len(txs))
}
