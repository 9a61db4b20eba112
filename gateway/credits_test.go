package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/gateway"
)

// creditsRails are a USDC rail and a credits rail selling a pack of 1,000
// credits for 0.05 USDC on it.
const creditsRails = `
rails:
  - name: usdc
    kind: x402
  - name: credits
    kind: credits
    low_balance: 5
    plans:
      - name: pack
        credits: 1000
        path: /buy/pack
        accept: [{rail: usdc, price: 0.05 USDC}]
`

// On a gateway with the embedded chain, one on-chain transfer buys a pack;
// then 100 calls are served with no transfer, the balance header falling by
// exactly the route's cost each time, and the upstream never sees the token.
func TestCreditsPackOnChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev, chain := startChain(t, ctx)
	var leaked []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			leaked = append(leaked, a)
		}
		w.Write([]byte("data"))
	}))
	defer up.Close()
	cfg := devConfig(t, dev, up.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: K", `
  - match: GET /api/
    accept: [{rail: credits, price: "3"}, {rail: usdc, price: 0.001 USDC}]
  - match: GET /sample/
    accept: [{rail: credits, price: "1"}]
    free_tier: {requests: 2, per: 1m}`, creditsRails)
	key := "0x" + common.Bytes2Hex(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(string) string { return key }})
	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)

	// The 402 of the credits route offers the plan beside the per-request offers.
	resp, err := http.Get(srv.URL + "/api/x")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Offers []coinop.Offer    `json:"offers"`
		Plans  []credits.Offered `json:"plans"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 402 || len(body.Offers) != 2 || len(body.Plans) != 1 || body.Plans[0].URL != srv.URL+"/.well-known/coinop/plans/pack" ||
		len(body.Plans[0].Offers) != 1 || body.Plans[0].Offers[0].Amount != "50000" || body.Plans[0].Offers[0].Protocol != "x402" {
		t.Fatalf("402: %d %+v", resp.StatusCode, body)
	}

	pkey, err := eip3009.NewKey(crypto.FromECDSA(dev.Payer))
	if err != nil {
		t.Fatal(err)
	}
	// The Go client with the credits method: the first call buys the pack
	// (the policy allows 0.05 USDC), every later one presents its token.
	x := &client.X402{Key: pkey}
	wallet := &client.Credits{Pay: []client.Method{x}}
	buyer := &http.Client{Timeout: 30 * time.Second, Transport: &client.Transport{Methods: []client.Method{wallet, x},
		Policy: client.Policy{MaxAmount: big.NewInt(50000)}}}
	for i := range 101 {
		resp, err := buyer.Get(srv.URL + "/api/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := strconv.Itoa(1000 - 3*(i+1)); resp.StatusCode != 200 || string(b) != "data" || resp.Header.Get(credits.HeaderBalance) != want {
			t.Fatalf("call %d: %d %s balance %q, want %s", i+1, resp.StatusCode, b, resp.Header.Get(credits.HeaderBalance), want)
		}
		if i == 0 {
			if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 50000 {
				t.Fatalf("payee holds %v (%v) after the purchase, want 50000", got, err)
			}
		}
	}
	if h, ok := wallet.Store.Get(srv.URL); !ok || h.Balance != 1000-3*101 || h.Plan != "pack" {
		t.Errorf("the client holds %+v, want the pack at %d", h, 1000-3*101)
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 50000 {
		t.Errorf("payee holds %v (%v) after 100 calls, want 50000: no transfer for a call", got, err)
	}
	// The operator's metrics show what the ledger holds: one account, the
	// pack less what the calls spent.
	adm, err := g.Admin(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	adm.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range []string{"coinop_credits_accounts 1\n", "coinop_credits_outstanding " + strconv.Itoa(1000-3*101) + "\n"} {
		if !strings.Contains(rec.Body.String(), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	ps, err := g.Store().List(ctx, coinop.StateSettled, 200)
	onchain := 0
	for _, p := range ps {
		if p.Rail == "usdc" {
			onchain++
		}
	}
	if err != nil || len(ps) != 102 || onchain != 1 {
		t.Errorf("%d settled payments, %d on chain (%v); want 102 and 1", len(ps), onchain, err)
	}
	// The free tier: two requests a minute per client, then 402; the
	// RateLimit fields on every answer.
	for i, want := range []int{200, 200, 402} {
		resp, err := http.Get(srv.URL + "/sample/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("RateLimit-Policy") != `"GET /sample/";q=2;w=60` ||
			!strings.HasPrefix(resp.Header.Get("RateLimit"), `"GET /sample/";r=`+strconv.Itoa(max(1-i, 0))+";t=") {
			t.Errorf("free tier request %d: %d %q %q", i+1, resp.StatusCode, resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
		}
	}
	if len(leaked) > 0 {
		t.Errorf("the upstream saw Authorization %q", leaked[0])
	}
}

// Credits at a forward-auth check: the check debits the token's account and
// answers 2xx with the charge's ID; a report that the proxy's upstream
// failed gives the debit back (once, however often it is reported); a
// plan's purchase path is never allowed through the check.
func TestCreditsAtTheCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev, _ := startChain(t, ctx)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) }))
	defer up.Close()
	cfg := devConfig(t, dev, up.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: K", `
  - match: GET /api/
    accept: [{rail: credits, price: "3"}, {rail: usdc, price: 0.001 USDC}]`, creditsRails)
	key := "0x" + common.Bytes2Hex(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(string) string { return key }})
	auth := httptest.NewServer(g.Auth())
	defer auth.Close()

	pkey, _ := eip3009.NewKey(crypto.FromECDSA(dev.Payer))
	x := &client.X402{Key: pkey}
	wallet := &client.Credits{Pay: []client.Method{x}}
	buyer := &http.Client{Timeout: 30 * time.Second, Transport: &client.Transport{Methods: []client.Method{wallet, x},
		Policy: client.Policy{MaxAmount: big.NewInt(50000)}}}
	resp, err := buyer.Get(srv.URL + "/api/x") // buys the pack at the gateway itself
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h, _ := wallet.Store.Get(srv.URL)
	if resp.StatusCode != 200 || h.Token == "" {
		t.Fatalf("purchase: %d %+v", resp.StatusCode, h)
	}
	check := func(target string, hdr http.Header) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, auth.URL+"/check", nil)
		if hdr != nil {
			req.Header = hdr.Clone()
		}
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", target)
		req.Header.Set("X-Forwarded-Host", "shop.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	bearer := http.Header{"Authorization": {"Bearer " + h.Token}}
	resp = check("/api/x", bearer)
	id := resp.Header.Get("X-Coinop-Payment")
	if resp.StatusCode != 200 || resp.Header.Get(credits.HeaderBalance) != "994" || id == "" {
		t.Fatalf("check: %d %v", resp.StatusCode, resp.Header)
	}
	for range 2 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, auth.URL+"/report", nil)
		req.Header.Set("X-Coinop-Payment", id)
		req.Header.Set("X-Upstream-Status", "502")
		rr, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rr.Body)
		rr.Body.Close()
		if rr.StatusCode != 200 || !strings.Contains(string(b), `"released"`) {
			t.Fatalf("report: %d %s", rr.StatusCode, b)
		}
	}
	if resp := check("/api/x", bearer); resp.StatusCode != 200 || resp.Header.Get(credits.HeaderBalance) != "994" {
		t.Errorf("after the refund: %d balance %q, want 994 (997 given back once, then 3 more)", resp.StatusCode, resp.Header.Get(credits.HeaderBalance))
	}
	if resp := check("/.well-known/coinop/plans/pack", nil); resp.StatusCode/100 == 2 {
		t.Errorf("the check allows a plan's purchase path: %d", resp.StatusCode)
	}
	// The endpoint sells the plans itself, at their exact paths (the proxy
	// passes a purchase to it): the plan's 402, with the x402 offer of its
	// price; an encoded variant of the path is a check like any other.
	for path, want := range map[string]int{"/.well-known/coinop/plans/pack": 402, "/buy/pack": 402, "/buy/%70ack": 400, "/.well-known/coinop/plans/": 400} {
		resp, err := http.Post(auth.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 402 && !strings.Contains(string(b), `"50000"`) {
			t.Errorf("POST %s at the check's listener: %d, want %d\n%s", path, resp.StatusCode, want, b)
		}
	}
}

// A reload changes a plan's price and adds a plan: the next 402 of a
// credits route and the plans' own 402s say so.
func TestReloadChangesPlans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, _ := startChain(t, ctx)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) }))
	defer up.Close()
	routes := `
  - match: GET /api/
    accept: [{rail: credits, price: "3"}]`
	cfg := devConfig(t, dev, up.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: K", routes, creditsRails)
	key := "0x" + common.Bytes2Hex(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(string) string { return key }})

	plans := func() map[string]string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Plans []credits.Offered `json:"plans"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		got := map[string]string{}
		for _, p := range body.Plans {
			if len(p.Offers) > 0 {
				got[p.Name] = p.Offers[0].Amount
			}
		}
		return got
	}
	if got := plans(); len(got) != 1 || got["pack"] != "50000" {
		t.Fatalf("before the reload: %v", got)
	}
	reloaded := strings.Replace(creditsRails, "accept: [{rail: usdc, price: 0.05 USDC}]", `accept: [{rail: usdc, price: 0.04 USDC}]
      - name: hour
        pass: 1h
        accept: [{rail: usdc, price: 0.01 USDC}]`, 1)
	next := devConfig(t, dev, up.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: K", routes, reloaded)
	next.Store = cfg.Store
	if err := g.Reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := plans(); len(got) != 2 || got["pack"] != "40000" || got["hour"] != "10000" {
		t.Fatalf("after the reload: %v", got)
	}
	resp, err := http.Get(srv.URL + "/.well-known/coinop/plans/hour")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("the new plan's purchase route: %d", resp.StatusCode)
	}
}
