package gateway_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/x402"
)

// TestReloadChangesPricesWithoutFailingRequests: a load of paid and free
// requests runs across a reload that changes the price; none fails, the
// next challenge names the new price, and payments before and after settle
// (one signed for the old price just before the reload is taken at that
// price, by the replaced configuration, within its payment window).
// A reload that changes the store is refused and the old prices stay.
func TestReloadChangesPricesWithoutFailingRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, _ := startChain(t, ctx)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sunny") }))
	t.Cleanup(upstream.Close)
	routes := func(price string) string {
		return "\n  - match: GET /weather\n    price: " + price + "\n  - match: GET /free\n    free: true\n"
	}
	settle := "rpc: " + dev.RPCURL + "\n    settlement_key_env: KEY"
	cfg := devConfig(t, dev, upstream.URL, settle, routes("0.001 USDC"))
	key := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(string) string { return key }})

	amount := func() string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/weather")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var pr x402.PaymentRequired
		if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil || len(pr.Accepts) != 1 {
			t.Fatalf("challenge: %v %+v", err, pr)
		}
		return pr.Accepts[0].Amount
	}
	if got := amount(); got != "1000" {
		t.Fatalf("price before the reload: %s", got)
	}

	// A bounded load: 4 workers, 15 requests each, paid and free, across
	// the reload.
	hc := payingClient(t, dev)
	var wg sync.WaitGroup
	failures := make(chan string, 64)
	start, first := make(chan struct{}), make(chan struct{})
	var once sync.Once
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range 15 {
				path := "/free"
				if (w+i)%3 == 0 {
					path = "/weather"
				}
				resp, err := hc.Get(srv.URL + path)
				if err != nil {
					failures <- path + ": " + err.Error()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "sunny" {
					failures <- path + ": " + resp.Status + " " + string(body)
				}
				once.Do(func() { close(first) })
			}
		}()
	}
	close(start)
	<-first // the load is under way
	next, err := config.Parse("coinop.yaml", []byte(mustCanonical(t, cfg, "0.001 USDC", "0.0005 USDC")))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(ctx, next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error("a request failed across the reload:", f)
	}
	if got := amount(); got != "500" {
		t.Fatalf("price after the reload: %s, want 500", got)
	}

	moved, err := config.Parse("coinop.yaml", []byte(strings.Replace(mustCanonical(t, next, "", ""), "gateway.db", "other.db", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(ctx, moved); err == nil || !strings.Contains(err.Error(), "store") {
		t.Fatalf("a reload that moves the store: %v, want it refused", err)
	}
	if got := amount(); got != "500" {
		t.Fatalf("price after a refused reload: %s, want 500", got)
	}
}

// mustCanonical is cfg written out, with one text replaced.
func mustCanonical(t *testing.T, cfg *config.Config, old, new string) string {
	t.Helper()
	b, err := cfg.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if old == "" {
		return string(b)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%q is not in the config", old)
	}
	return strings.ReplaceAll(string(b), old, new)
}

// TestReloadRefusesWhatNeitherConfigurationOffered: after a reload, a
// payment header that answers no offer of either configuration (garbage, a
// signature for another network) is judged by the new one, and refused.
func TestReloadRefusesWhatNeitherConfigurationOffered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, _ := startChain(t, ctx)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("an unpaid request reached the upstream")
	}))
	t.Cleanup(upstream.Close)
	cfg := devConfig(t, dev, upstream.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: KEY", "\n  - match: GET /weather\n    price: 0.001 USDC\n")
	key := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(string) string { return key }})
	next, err := config.Parse("coinop.yaml", []byte(mustCanonical(t, cfg, "0.001 USDC", "0.002 USDC")))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	other, _ := x402.EncodeHeader(x402.PaymentPayload{X402Version: 2,
		Accepted: x402.PaymentRequirements{Scheme: "exact", Network: "eip155:999999"}, Payload: []byte(`{"x":1}`)})
	for name, header := range map[string]string{"garbage": "!!not base64!!", "another network": other} {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/weather", nil)
		req.Header.Set(x402.HeaderPaymentSignature, header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var pr x402.PaymentRequired
		x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr)
		if resp.StatusCode < 400 || len(pr.Accepts) != 1 || pr.Accepts[0].Amount != "2000" {
			t.Errorf("%s: %d with terms %+v, want a refusal with the new price", name, resp.StatusCode, pr.Accepts)
		}
	}
}
