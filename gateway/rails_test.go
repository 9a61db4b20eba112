package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/x402"
)

// TestRouteAcceptsSeveralRails configures USDC on two networks (two dev
// chains), a named x402 rail on each and a route accepting both. The 402
// offers both in one PAYMENT-REQUIRED, in the route's order, at each
// rail's price; a client whose policy refuses the first pays through the
// second, and the journal names the rail that took the payment.
func TestRouteAcceptsSeveralRails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, chain := startChain(t, ctx)
	dev2, err := devchain.Start(ctx, devchain.Config{ChainID: dev.ChainID + 1, Payer: dev.Payer, Payee: dev.Payee, Settler: dev.Settler})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev2.Close() })
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) != "" {
			t.Error("the payment header reached the upstream")
		}
		io.WriteString(w, "sunny")
	}))
	t.Cleanup(upstream.Close)
	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	network := func(d *devchain.Chain) string {
		return fmt.Sprintf(`
  - id: eip155:%d
    rpc: %s
    settlement_key_env: KEY
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"`, d.ChainID, d.RPCURL, d.Token.Hex(), devchain.TokenName, devchain.TokenVersion)
	}
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
pay_to: "%s"
networks:%s%s
rails:
  - name: usdc-second
    kind: x402
    network: eip155:%d
    max_timeout: 2m
  - name: usdc-first
    kind: x402
    network: eip155:%d
routes:
  - match: GET /weather
    accept:
      - rail: usdc-second
        price: 0.002 USDC
      - rail: usdc-first
        price: "1000"
`, upstream.URL, filepath.Join(t.TempDir(), "gateway.db"), payee.Hex(), network(dev), network(dev2), dev2.ChainID, dev.ChainID))
	if err != nil {
		t.Fatal(err)
	}
	keyHex := common.Bytes2Hex(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(k string) string {
		if k == "KEY" {
			return "0x" + keyHex
		}
		return ""
	}})

	resp, err := http.Get(srv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pr x402.PaymentRequired
	if resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("unpaid: %d", resp.StatusCode)
	}
	// The rails' declared response headers are readable by browser scripts.
	if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, x402.HeaderPaymentRequired) {
		t.Errorf("Access-Control-Expose-Headers %q lacks %s", got, x402.HeaderPaymentRequired)
	}
	if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil {
		t.Fatal(err)
	}
	type offer struct {
		network, amount string
		timeout         int
	}
	want := []offer{{fmt.Sprintf("eip155:%d", dev2.ChainID), "2000", 120}, {fmt.Sprintf("eip155:%d", dev.ChainID), "1000", 60}}
	if len(pr.Accepts) != len(want) {
		t.Fatalf("PAYMENT-REQUIRED offers %d ways to pay, want %d: %+v", len(pr.Accepts), len(want), pr.Accepts)
	}
	for i, a := range pr.Accepts {
		if got := (offer{a.Network, a.Amount, a.MaxTimeoutSeconds}); got != want[i] {
			t.Errorf("accepts[%d] = %+v, want %+v", i, got, want[i])
		}
	}

	resp, err = payingClient(t, dev).Get(srv.URL + "/weather")
	if err == nil && !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), x402.HeaderPaymentResponse) {
		t.Errorf("paid: Access-Control-Expose-Headers %q lacks %s", resp.Header.Get("Access-Control-Expose-Headers"), x402.HeaderPaymentResponse)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "sunny" {
		t.Fatalf("paid: %d %s", resp.StatusCode, body)
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 1000 {
		t.Errorf("payee holds %v (%v) on the first chain, want 1000", got, err)
	}
	ps, err := g.Store().List(ctx, coinop.StateSettled, 10)
	if err != nil || len(ps) != 1 || ps[0].Rail != "usdc-first" {
		t.Fatalf("settled payments %+v (%v), want one through usdc-first", ps, err)
	}
}

// TestUpgradeKeepsJournaledRailNames pays through a gateway configured in
// the older form (price and network on the route), upgrades the file with
// config.Upgrade and pays again through a gateway on the upgraded file and
// the same journal: both payments name one rail, the name gateways before
// rail blocks gave it, so payments journaled before the upgrade still find
// their rail after it.
func TestUpgradeKeepsJournaledRailNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, _ := startChain(t, ctx)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sunny")
	}))
	t.Cleanup(upstream.Close)
	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	older := fmt.Appendf(nil, `
upstream: %s
store: %s
pay_to: "%s"
networks:
  - id: eip155:%d
    rpc: %s
    settlement_key_env: KEY
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"
routes:
  - match: GET /weather
    price: 0.001 USDC   # the older form
`, upstream.URL, filepath.Join(t.TempDir(), "gateway.db"), payee.Hex(), dev.ChainID, dev.RPCURL, dev.Token.Hex(), devchain.TokenName, devchain.TokenVersion)
	want := fmt.Sprintf("x402/eip155:%d/%s/%s/1m0s", dev.ChainID, strings.ToLower(dev.Token.Hex()), strings.ToLower(payee.Hex()))
	opts := gateway.Options{Getenv: func(k string) string {
		if k == "KEY" {
			return "0x" + common.Bytes2Hex(crypto.FromECDSA(dev.Settler))
		}
		return ""
	}}
	hc := payingClient(t, dev)
	pay := func(file []byte) {
		t.Helper()
		cfg, err := config.Parse("coinop.yaml", file)
		if err != nil {
			t.Fatal(err)
		}
		g, srv := startGateway(t, ctx, cfg, opts)
		resp, err := hc.Get(srv.URL + "/weather")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("paid: %d", resp.StatusCode)
		}
		srv.Close()
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pay(older)
	upgraded, err := config.Upgrade("coinop.yaml", older)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(upgraded), "- name: "+want+"\n") || strings.Contains(string(upgraded), "\n    price:") {
		t.Fatalf("upgraded:\n%s", upgraded)
	}
	pay(upgraded)

	cfg, err := config.Parse("coinop.yaml", upgraded)
	if err != nil {
		t.Fatal(err)
	}
	j, err := gateway.OpenJournal(ctx, cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ps, err := j.List(ctx, coinop.StateSettled, 10)
	if err != nil || len(ps) != 2 {
		t.Fatalf("settled payments: %d (%v), want 2", len(ps), err)
	}
	for _, p := range ps {
		if p.Rail != want {
			t.Errorf("payment %s journaled under rail %q, want %q", p.ID, p.Rail, want)
		}
	}
}
