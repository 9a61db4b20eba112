package anvil_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/anvil"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

// binary finds the anvil that scripts/deps/interop.sh installs, or skips
// (fails under COINOP_CI=1).
func binary(t *testing.T) string {
	t.Helper()
	p, _ := filepath.Abs("../../interop/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("COINOP_CI") == "1" {
			t.Fatalf("anvil is not installed (%v); run scripts/deps/interop.sh", err)
		}
		t.Skipf("anvil is not installed (%v); run scripts/deps/interop.sh", err)
	}
	return p
}

// TestPaymentOnAnvil pays a paywalled handler on anvil: our token deployed
// by our code, verified (signature, eth_call simulation) and settled
// (transferWithAuthorization, receipt, Transfer event) by package evm.
func TestPaymentOnAnvil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := anvil.Start(ctx, anvil.Config{Binary: binary(t), ChainID: 84532})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	cl, err := ethclient.DialContext(ctx, c.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: c.ChainID, Backend: cl, SettlementKey: c.Settler})
	if err != nil {
		t.Fatal(err)
	}
	payee := crypto.PubkeyToAddress(c.Payee.PublicKey)
	payer := crypto.PubkeyToAddress(c.Payer.PublicKey)
	scheme, err := evm.NewExact(chain, evm.ExactConfig{Asset: c.Token, Name: devchain.TokenName, Version: devchain.TokenVersion, PayTo: payee})
	if err != nil {
		t.Fatal(err)
	}
	journal, err := sqlite.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	pw, err := paywall.New(paywall.Config{Journal: journal, Routes: []paywall.Route{{
		Pattern: "GET /paid",
		Accept:  []paywall.Accept{{Rail: &x402.Rail{Schemes: []x402.Scheme{scheme}}, Price: coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "paid content")
	})))
	defer srv.Close()

	key, err := eip3009.NewKey(crypto.FromECDSA(c.Payer))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &client.Transport{Key: key, Policy: client.Policy{MaxAmount: big.NewInt(1000)}}}
	resp, err := hc.Get(srv.URL + "/paid")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "paid content" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, b := range []struct {
		who  common.Address
		want int64
	}{{payee, 1000}, {payer, devchain.DefaultPayerFunds - 1000}} {
		got, err := chain.BalanceOf(ctx, c.Token, b.who)
		if err != nil {
			t.Fatal(err)
		}
		if got.Cmp(big.NewInt(b.want)) != 0 {
			t.Errorf("balance of %s = %s, want %d", b.who, got, b.want)
		}
	}
}

func TestStartNeedsBinary(t *testing.T) {
	if _, err := anvil.Start(context.Background(), anvil.Config{}); err == nil {
		t.Fatal("Start without a binary succeeded")
	}
	if _, err := anvil.Start(context.Background(), anvil.Config{Binary: "/nonexistent/anvil"}); err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
}

// TestVerifyAtInclusionTimeOnAnvil: anvil, like the dev chain, makes blocks
// only for transactions, so its newest block ages while it is idle. With
// the verifier's clock twenty minutes on, an authorization valid from ten
// minutes ago (as standard clients sign) verifies: anvil takes eth_call's
// block overrides, and the simulation runs at the time of inclusion.
func TestVerifyAtInclusionTimeOnAnvil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := anvil.Start(ctx, anvil.Config{Binary: binary(t), ChainID: 84532})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := ethclient.DialContext(ctx, c.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now().Add(20 * time.Minute)
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: c.ChainID, Backend: cl, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	payee := crypto.PubkeyToAddress(c.Payee.PublicKey)
	scheme, err := evm.NewExact(chain, evm.ExactConfig{Asset: c.Token, Name: devchain.TokenName, Version: devchain.TokenVersion, PayTo: payee})
	if err != nil {
		t.Fatal(err)
	}
	reqs := scheme.Requirements(coinop.Charge{Price: coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6}})
	key, err := eip3009.NewKey(crypto.FromECDSA(c.Payer))
	if err != nil {
		t.Fatal(err)
	}
	auth := eip3009.Authorization{From: key.Address(), To: eip3009.Address(payee), Value: big.NewInt(1000),
		ValidAfter: big.NewInt(now.Unix() - 600), ValidBefore: big.NewInt(now.Unix() + 60)}
	auth.Nonce[0] = 1
	sig := key.Sign(auth.Digest(eip3009.Domain{Name: devchain.TokenName, Version: devchain.TokenVersion, ChainID: c.ChainID, VerifyingContract: eip3009.Address(c.Token)}.Separator()))
	pl, _ := json.Marshal(x402.ExactEVMPayload{Signature: "0x" + hex.EncodeToString(sig[:]), Authorization: x402.ExactAuthorization{
		From: auth.From.Hex(), To: auth.To.Hex(), Value: "1000", ValidAfter: auth.ValidAfter.String(), ValidBefore: auth.ValidBefore.String(),
		Nonce: "0x" + hex.EncodeToString(auth.Nonce[:])}})
	cred := &x402.Credential{Version: 2, Requirements: reqs, Payload: x402.PaymentPayload{X402Version: 2, Accepted: reqs, Payload: pl}}
	p, err := scheme.Check(cred)
	if err != nil {
		t.Fatal(err)
	}
	if err := scheme.Verify(ctx, p, cred); err != nil {
		t.Fatalf("verify on anvil with its newest block twenty minutes old: %v", err)
	}
}
