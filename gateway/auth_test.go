package gateway_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/x402"
)

// TestAuth asks the gateway's forward-auth endpoint about requests the way a
// proxy does: routes are the gateway's, an async route is settled before
// the 2xx (the check cannot learn what the proxy's upstream answers), and
// the target is decided with the gateway's own refusals.
func TestAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, chain := startChain(t, ctx)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") }))
	defer up.Close()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
pay_to: "%s"
networks:
  - id: eip155:%d
    rpc: %s
    settlement_key_env: SETTLER
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"
        async_exposure: 1 USDC
routes:
  - match: GET /async
    price: 0.001 USDC
    settlement: async
  - match: GET /static/
    free: true
`, up.URL, filepath.Join(t.TempDir(), "gateway.db"), crypto.PubkeyToAddress(dev.Payee.PublicKey).Hex(), dev.ChainID,
		dev.RPCURL, dev.Token.Hex(), devchain.TokenName, devchain.TokenVersion))
	if err != nil {
		t.Fatal(err)
	}
	settler := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	g, gsrv := startGateway(t, ctx, cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return settler }})
	auth := httptest.NewServer(g.Auth())
	defer auth.Close()
	host := "shop.example:8080"
	ask := func(hc *http.Client, method, target string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, auth.URL+"/check", nil)
		req.Header.Set("X-Forwarded-Method", method)
		req.Header.Set("X-Forwarded-Uri", target)
		req.Header.Set("X-Forwarded-Host", host)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	reason := func(b []byte) string {
		var p struct{ Reason string }
		json.Unmarshal(b, &p)
		return p.Reason
	}

	resp, body := ask(http.DefaultClient, "GET", "/async")
	var pr x402.PaymentRequired
	if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); resp.StatusCode != 402 || err != nil {
		t.Fatalf("unpaid: %s %v\n%s", resp.Status, err, body)
	}
	if pr.Resource == nil || pr.Resource.URL != "https://"+host+"/async" {
		t.Errorf("resource %+v, want the original request's URL", pr.Resource)
	}
	if resp, body := ask(http.DefaultClient, "GET", "/static/a.txt"); resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("X-Coinop-Payer") != "" {
		t.Errorf("free: %s %v %q", resp.Status, resp.Header, body)
	}
	for _, c := range []struct {
		method, target, reason string
		status                 int
	}{
		{"GET", "/static/..%2Fasync", "ambiguous_path", 400},
		{"GET", "/static/../async", "ambiguous_path", 400},
		{"GET", "/nothing", coinop.ReasonNoRoute, 404},
		{"POST", "/async", "method_not_allowed", 405},
	} {
		resp, body := ask(http.DefaultClient, c.method, c.target)
		if resp.StatusCode != c.status || reason(body) != c.reason {
			t.Errorf("%s %s: %s %q, want %d %s", c.method, c.target, resp.Status, reason(body), c.status, c.reason)
		}
		// The gateway answers the same request the same way.
		req, _ := http.NewRequestWithContext(ctx, c.method, gsrv.URL, nil)
		req.URL.Opaque = c.target
		gresp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		gb, _ := io.ReadAll(gresp.Body)
		gresp.Body.Close()
		if gresp.StatusCode != resp.StatusCode || reason(gb) != reason(body) {
			t.Errorf("%s %s: the gateway answers %s %q, the check %s %q", c.method, c.target, gresp.Status, reason(gb), resp.Status, reason(body))
		}
	}

	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	resp, body = ask(payingClient(t, dev), "GET", "/async")
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("paid: %s %q", resp.Status, body)
	}
	var sr x402.SettleResponse
	if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentResponse), &sr); err != nil || !sr.Success {
		t.Fatalf("PAYMENT-RESPONSE %+v %v", sr, err)
	}
	if !strings.EqualFold(resp.Header.Get("X-Coinop-Payer"), crypto.PubkeyToAddress(dev.Payer.PublicKey).Hex()) || resp.Header.Get("X-Coinop-Payment") == "" {
		t.Errorf("who paid: %v", resp.Header)
	}
	// Settled on chain before the 2xx, in the sync mode, on an async route.
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 1000 {
		t.Errorf("payee holds %v (%v) when the check answered, want 1000", got, err)
	}
	p, err := g.Store().Get(ctx, resp.Header.Get("X-Coinop-Payment"))
	if err != nil || p.State != coinop.StateSettled || p.Mode != coinop.ModeSync {
		t.Fatalf("journaled %+v %v, want settled in sync mode", p, err)
	}

	// The report hook: an x402 payment moved on chain and is not given
	// back, whatever the upstream answered.
	report := func(status string) (*http.Response, []byte) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, auth.URL+"/report", nil)
		req.Header.Set("X-Coinop-Payment", p.ID)
		req.Header.Set("X-Upstream-Status", status)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, _ := report("200"); resp.StatusCode != http.StatusNoContent {
		t.Errorf("report of a 200: %s", resp.Status)
	}
	if resp, body := report("502"); resp.StatusCode != http.StatusConflict || reason(body) != coinop.ReasonRefundNotBearer {
		t.Errorf("report of a 502 for an x402 payment: %s %s", resp.Status, body)
	}
	if q, err := g.Store().Get(ctx, p.ID); err != nil || q.State != coinop.StateSettled {
		t.Errorf("after the report: %+v %v, want settled", q, err)
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 1000 {
		t.Errorf("payee holds %v (%v) after the report, want 1000", got, err)
	}
}

// TestAuthAcrossReload: the check follows a reload like the gateway does:
// the next challenge names the new price, and a payment signed for the old
// one just before is taken at the old price, by the replaced configuration,
// within its payment window.
func TestAuthAcrossReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, chain := startChain(t, ctx)
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	cfg := devConfig(t, dev, up.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: KEY", "\n  - match: GET /weather\n    price: 0.001 USDC\n")
	key := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	g, _ := startGateway(t, ctx, cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return key }})
	auth := httptest.NewServer(g.Auth())
	defer auth.Close()
	ask := func(header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, auth.URL+"/check", nil)
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-URI", "/weather")
		req.Header.Set("X-Original-Host", "shop.example")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	amount := func(resp *http.Response) string {
		t.Helper()
		resp.Body.Close()
		var pr x402.PaymentRequired
		if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); resp.StatusCode != 402 || err != nil || len(pr.Accepts) != 1 {
			t.Fatalf("challenge: %s %v %+v", resp.Status, err, pr)
		}
		return pr.Accepts[0].Amount
	}

	before := ask()
	signer, err := eip3009.NewKey(crypto.FromECDSA(dev.Payer))
	if err != nil {
		t.Fatal(err)
	}
	tr := &client.Transport{Key: signer, Policy: client.Policy{MaxAmount: big.NewInt(1000)}}
	old, err := tr.Pay("http://shop.example/weather", before)
	if err != nil {
		t.Fatal(err)
	}
	if got := amount(before); got != "1000" {
		t.Fatalf("price before the reload: %s", got)
	}
	next, err := config.Parse("coinop.yaml", []byte(mustCanonical(t, cfg, "0.001 USDC", "0.0005 USDC")))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := amount(ask()); got != "500" {
		t.Fatalf("the check's price after the reload: %s, want 500", got)
	}
	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	resp := ask(old.Header, old.Value)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the old price's payment after the reload: %s", resp.Status)
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 1000 {
		t.Errorf("payee holds %v (%v), want the old price, 1000", got, err)
	}
}
