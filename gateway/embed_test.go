package gateway_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/paywall"
)

// TestOpenWrapsHandlers sells a Go program's own handlers from a
// coinop.yaml that names no upstream: a paid request reaches the handler
// once, without its payment header, and settles on the chain; a handler
// that fails costs nothing; a route with an upstream of its own is still
// proxied there.
func TestOpenWrapsHandlers(t *testing.T) {
	ctx := context.Background()
	dev, chain := startChain(t, ctx)
	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from the upstream") }))
	t.Cleanup(other.Close)
	dir := t.TempDir()
	yaml := fmt.Sprintf(`store: coinop.db
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
    price: 0.001 USDC
  - match: GET /broken
    price: 0.001 USDC
  - match: GET /proxied
    price: 0.001 USDC
    upstream: %s
  - match: GET /{$}
    free: true
`, payee.Hex(), dev.ChainID, dev.RPCURL, dev.Token.Hex(), devchain.TokenName, devchain.TokenVersion, other.URL)
	path := filepath.Join(dir, "coinop.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "upstream") {
		t.Fatalf("coinop serve's Load takes a file with no upstream: %v", err)
	}

	key := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	g, err := gateway.Open(ctx, path, gateway.Options{Getenv: func(k string) string {
		if k == "KEY" {
			return key
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if _, err := os.Stat(filepath.Join(dir, "coinop.db")); err != nil {
		t.Fatalf("the journal is not beside the file: %v", err)
	}

	var calls int
	var sawPayment string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /weather", func(w http.ResponseWriter, r *http.Request) {
		calls++
		sawPayment = r.Header.Get("Payment-Signature")
		fmt.Fprintf(w, "sunny for %s", paywall.PaymentFrom(r.Context()).Payer)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "out of order", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "home") })
	srv := httptest.NewServer(g.Wrap(mux))
	t.Cleanup(srv.Close)

	get := func(hc *http.Client, path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(http.DefaultClient, "/"); code != 200 || body != "home" {
		t.Fatalf("free route: %d %q", code, body)
	}
	if code, _ := get(http.DefaultClient, "/weather"); code != http.StatusPaymentRequired || calls != 0 {
		t.Fatalf("unpaid: %d, handler called %d times", code, calls)
	}
	hc := payingClient(t, dev)
	payer := crypto.PubkeyToAddress(dev.Payer.PublicKey).Hex()
	if code, body := get(hc, "/weather"); code != 200 || !strings.EqualFold(body, "sunny for "+payer) || calls != 1 {
		t.Fatalf("paid: %d %q, handler called %d times", code, body, calls)
	}
	if sawPayment != "" {
		t.Errorf("the handler saw the payment header %q", sawPayment)
	}
	if code, _ := get(hc, "/broken"); code != http.StatusInternalServerError {
		t.Fatalf("broken handler: %d", code)
	}
	if code, body := get(hc, "/proxied"); code != 200 || body != "from the upstream" {
		t.Fatalf("route with an upstream: %d %q", code, body)
	}
	settled, err := g.Store().List(ctx, coinop.StateSettled, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(settled) != 2 {
		t.Fatalf("%d settled payments, want 2 (the handler's and the upstream's, not the failed one's)", len(settled))
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 2000 {
		t.Fatalf("payee holds %v (%v), want 2000", got, err)
	}
}
