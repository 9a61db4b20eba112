package gateway_test

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/facilitator"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/store/sqlite"
)

// TestFacilitatorNetwork configures a network with `facilitator: URL`
// instead of an rpc and a key: the gateway has no node, and the payment is
// verified and settled by coinop's facilitator over HTTP.
func TestFacilitatorNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := devchain.Start(ctx, devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	cl, err := ethclient.DialContext(ctx, dev.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: dev.ChainID, Backend: cl, SettlementKey: dev.Settler})
	if err != nil {
		t.Fatal(err)
	}
	fj, err := sqlite.Open(filepath.Join(t.TempDir(), "facilitator.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fj.Close()
	h, err := facilitator.New(facilitator.Config{Chains: []*evm.Chain{chain}, Journal: fj})
	if err != nil {
		t.Fatal(err)
	}
	fsrv := httptest.NewServer(h)
	defer fsrv.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sunny")
	}))
	defer upstream.Close()

	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
pay_to: "%s"
networks:
  - id: eip155:%d
    facilitator: %s
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"
routes:
  - match: GET /weather
    price: 0.001 USDC
`, upstream.URL, filepath.Join(t.TempDir(), "gateway.db"), payee.Hex(), dev.ChainID, fsrv.URL, dev.Token.Hex(), devchain.TokenName, devchain.TokenVersion))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(ctx, cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gsrv := httptest.NewServer(g.Handler())
	defer gsrv.Close()

	key, err := eip3009.NewKey(crypto.FromECDSA(dev.Payer))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &client.Transport{Key: key, Policy: client.Policy{MaxAmount: big.NewInt(1000)}}}
	resp, err := hc.Get(gsrv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "sunny" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Int64() != 1000 {
		t.Fatalf("payee holds %v (%v), want 1000", got, err)
	}

	// With the facilitator gone, priced requests fail closed.
	fsrv.Close()
	resp, err = hc.Get(gsrv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("with the facilitator down: %d, want 503", resp.StatusCode)
	}
}
