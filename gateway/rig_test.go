package gateway_test

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/gateway"
)

// devConfig is a gateway configuration for dev's chain and token, paid to
// dev's payee: settle is the network's way to settle ("rpc: …" and a key, or
// "facilitator: …"), routes the YAML list of routes, extra more top-level
// YAML.
func devConfig(t *testing.T, dev *devchain.Chain, upstream, settle, routes string, extra ...string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
pay_to: "%s"
networks:
  - id: eip155:%d
    %s
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"
routes:%s%s`, upstream, filepath.Join(t.TempDir(), "gateway.db"), crypto.PubkeyToAddress(dev.Payee.PublicKey).Hex(), dev.ChainID,
		settle, dev.Token.Hex(), devchain.TokenName, devchain.TokenVersion, routes, strings.Join(extra, "")))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// payingClient pays with dev's payer key, up to 0.001 USDC a request.
func payingClient(t *testing.T, dev *devchain.Chain) *http.Client {
	t.Helper()
	key, err := eip3009.NewKey(crypto.FromECDSA(dev.Payer))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &client.Transport{Key: key, Policy: client.Policy{MaxAmount: big.NewInt(1000)}}}
}

// startChain starts a dev chain, closed when t ends, and connects to it with
// its settlement key.
func startChain(t *testing.T, ctx context.Context) (*devchain.Chain, *evm.Chain) {
	t.Helper()
	dev, err := devchain.Start(ctx, devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	cl, err := ethclient.DialContext(ctx, dev.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: dev.ChainID, Backend: cl, SettlementKey: dev.Settler})
	if err != nil {
		t.Fatal(err)
	}
	return dev, chain
}

// startGateway builds a gateway for cfg and serves its handler on loopback
// until t ends.
func startGateway(t *testing.T, ctx context.Context, cfg *config.Config, opts gateway.Options) (*gateway.Gateway, *httptest.Server) {
	t.Helper()
	g, err := gateway.New(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return g, srv
}
