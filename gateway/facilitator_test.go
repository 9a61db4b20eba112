package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/facilitator"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/store/sqlite"
)

// facilitated is a gateway whose one network is settled by coinop's
// facilitator over HTTP, on the embedded chain.
type facilitated struct {
	dev   *devchain.Chain
	chain *evm.Chain // the facilitator's
	fsrv  *httptest.Server
	g     *gateway.Gateway
	gsrv  *httptest.Server
	payee common.Address
	hc    *http.Client
}

// newFacilitated starts the chain, the facilitator and the gateway. front,
// if set, wraps the facilitator's handler as the gateway sees it; withRPC
// sets the chain's rpc beside the facilitator; settings are more lines of
// the network's block, and opts the gateway's options.
func newFacilitated(t *testing.T, ctx context.Context, front func(http.Handler) http.Handler, withRPC bool, settings string, opts gateway.Options) *facilitated {
	t.Helper()
	dev, chain := startChain(t, ctx)
	f := &facilitated{dev: dev, chain: chain, payee: crypto.PubkeyToAddress(dev.Payee.PublicKey)}
	fj, err := sqlite.Open(filepath.Join(t.TempDir(), "facilitator.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fj.Close() })
	var h http.Handler
	if h, err = facilitator.New(facilitator.Config{Chains: []*evm.Chain{f.chain}, Journal: fj}); err != nil {
		t.Fatal(err)
	}
	if front != nil {
		h = front(h)
	}
	f.fsrv = httptest.NewServer(h)
	t.Cleanup(f.fsrv.Close)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sunny")
	}))
	t.Cleanup(upstream.Close)

	settle := "facilitator: " + f.fsrv.URL + settings
	if withRPC {
		settle += "\n    rpc: " + dev.RPCURL
	}
	cfg := devConfig(t, dev, upstream.URL, settle, `
  - match: GET /weather
    price: 0.001 USDC
`)
	f.g, f.gsrv = startGateway(t, ctx, cfg, opts)
	f.hc = payingClient(t, dev)
	return f
}

func (f *facilitated) payeeHolds(t *testing.T, ctx context.Context, want int64) {
	t.Helper()
	if got, err := f.chain.BalanceOf(ctx, f.dev.Token, f.payee); err != nil || got.Int64() != want {
		t.Fatalf("payee holds %v (%v), want %d", got, err, want)
	}
}

// TestFacilitatorNetwork configures a network with `facilitator: URL`
// instead of an rpc and a key: the gateway has no node, and the payment is
// verified and settled by coinop's facilitator over HTTP.
func TestFacilitatorNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFacilitated(t, ctx, nil, false, "", gateway.Options{})
	resp, err := f.hc.Get(f.gsrv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "sunny" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	f.payeeHolds(t, ctx, 1000)

	// With the facilitator gone, priced requests fail closed.
	f.fsrv.Close()
	resp, err = f.hc.Get(f.gsrv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("with the facilitator down: %d, want 503", resp.StatusCode)
	}
}

// TestFacilitatorNetworkReconciledByRPC: the facilitator settles, but its
// answer to /settle is lost (a 502 from a proxy in front of it). The gateway
// does not serve (503 settlement_not_sent); its recovery asks the chain
// through the network's read-only rpc, finds the money moved, and the
// payer's retry of the same payment is served.
func TestFacilitatorNetworkReconciledByRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loseSettleAnswer := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/settle" {
				h.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "bad gateway", http.StatusBadGateway)
		})
	}
	f := newFacilitated(t, ctx, loseSettleAnswer, true, "", gateway.Options{})
	resp, err := http.Get(f.gsrv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pay, err := f.hc.Transport.(*client.Transport).Pay(f.gsrv.URL+"/weather", resp)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", f.gsrv.URL+"/weather", nil)
		req.Header.Set(pay.Header, pay.Value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(); status != http.StatusServiceUnavailable {
		t.Fatalf("settlement answer lost: %d %s, want 503", status, body)
	}
	f.payeeHolds(t, ctx, 1000) // the facilitator did settle
	rep := f.g.Recover(ctx, time.Now().Add(time.Second))
	if rep.Settled != 1 || rep.Unreconcilable != 0 {
		t.Fatalf("recovery %+v, want the payment settled through the rpc", rep)
	}
	if status, body := get(); status != 200 || body != "sunny" {
		t.Fatalf("retry after recovery: %d %s", status, body)
	}
	ps, err := f.g.Store().List(ctx, coinop.StateSettled, 0)
	if err != nil || len(ps) != 1 || ps[0].Served.IsZero() {
		t.Fatalf("journal %+v %v, want one settled, served payment", ps, err)
	}
}

// TestFacilitatorHeaders: the headers facilitator_headers names reach the
// facilitator on every call, a secret read from the environment; a
// facilitator that refuses the gateway's key makes priced requests fail
// closed, and none of it reaches the log.
func TestFacilitatorHeaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var calls, refused atomic.Int32
	token := "s3cret-token"
	guard := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Account") != "shop-42" {
				refused.Add(1)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	settings := `
    facilitator_headers:
      - name: authorization
        value_env: FACILITATOR_TOKEN
      - name: X-Account
        value: shop-42`
	env := map[string]string{"FACILITATOR_TOKEN": "Bearer " + token}
	var logs syncBuffer
	f := newFacilitated(t, ctx, guard, false, settings, gateway.Options{Getenv: func(k string) string { return env[k] },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	resp, err := f.hc.Get(f.gsrv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || calls.Load() < 2 || refused.Load() != 0 {
		t.Fatalf("paid: %d after %d facilitator calls, %d refused", resp.StatusCode, calls.Load(), refused.Load())
	}
	f.payeeHolds(t, ctx, 1000)

	token = "rotated" // the facilitator no longer takes the gateway's key
	resp, err = f.hc.Get(f.gsrv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 || refused.Load() == 0 {
		t.Fatalf("refused by the facilitator: %d, want a 5xx", resp.StatusCode)
	}
	f.payeeHolds(t, ctx, 1000)
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the facilitator key reached the log:\n%s", logs.String())
	}

	// An empty variable stops the start, naming the setting.
	cfg := devConfig(t, f.dev, f.gsrv.URL, "facilitator: "+f.fsrv.URL+settings, "\n  - match: GET /weather\n    price: 0.001 USDC\n")
	_, err = gateway.New(ctx, cfg, gateway.Options{Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "networks[0].facilitator_headers[0].value_env: environment variable FACILITATOR_TOKEN is empty") {
		t.Fatalf("start with the variable unset: %v", err)
	}
}
