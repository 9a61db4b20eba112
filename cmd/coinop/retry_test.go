package main_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/x402"
)

// resign returns header with its authorization signed by key instead of
// the payer: same payer, same nonce, a signature anyone can make.
func resign(t *testing.T, header string, chain *devchain.Chain, key *eip3009.Key) string {
	t.Helper()
	var p x402.PaymentPayload
	if err := x402.DecodeHeader(header, &p); err != nil {
		t.Fatal(err)
	}
	pl, err := x402.DecodeExactEVM(p.Payload)
	if err != nil {
		t.Fatal(err)
	}
	a := pl.Authorization
	auth, err := eip3009.ParseAuthorization(a.From, a.To, a.Value, a.ValidAfter, a.ValidBefore, a.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	d := eip3009.Domain{Name: devchain.TokenName, Version: devchain.TokenVersion, ChainID: chain.ChainID, VerifyingContract: eip3009.Address(chain.Token)}
	sig := key.Sign(auth.Digest(d.Separator()))
	pl.Signature = "0x" + hex.EncodeToString(sig[:])
	if p.Payload, err = json.Marshal(pl); err != nil {
		t.Fatal(err)
	}
	return encode(t, p)
}

// withExtensionsOf returns header with the extensions (the payment
// identifier) of from.
func withExtensionsOf(t *testing.T, header, from string) string {
	t.Helper()
	var p, f x402.PaymentPayload
	if err := x402.DecodeHeader(header, &p); err != nil {
		t.Fatal(err)
	}
	if err := x402.DecodeHeader(from, &f); err != nil {
		t.Fatal(err)
	}
	p.Extensions = f.Extensions
	return encode(t, p)
}

func encode(t *testing.T, p x402.PaymentPayload) string {
	t.Helper()
	h, err := x402.EncodeHeader(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestForgedRetryAfterCrash kills `coinop serve` right after a payment
// settled, before its response left, and restarts it. The journal then
// holds a settled, unserved payment that anyone can name (payer and nonce
// are on chain): a retry with another signature gets 402, the payment's
// identifier on a dearer route gets 409, and the payer's own retry is
// served, once. The audit finds one settled payment and one transfer.
func TestForgedRetryAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a chain")
	}
	bin := buildCoinop(t)
	chain, err := devchain.Start(context.Background(), devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the goods\n") }))
	defer upstream.Close()
	dir := t.TempDir()
	payee, _ := crypto.GenerateKey()
	cfg := writeConfig(t, dir, filepath.Join(dir, "journal.db"), upstream.URL, chain, chain.Settler, crypto.PubkeyToAddress(payee.PublicKey),
		"  - match: GET /dear\n    price: \"10000\"\n")
	payer, _ := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	stranger, _ := crypto.GenerateKey()
	strangerKey, _ := eip3009.NewKey(crypto.FromECDSA(stranger))

	g := startGateway(t, bin, cfg, "COINOP_CRASH_AT=settled:1")
	genuine := signFor(t, g.url+"/paid", payer)
	send := func(path, header string) (int, string) {
		req, _ := http.NewRequest("GET", g.url+path, nil)
		req.Header.Set(x402.HeaderPaymentSignature, header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var prob struct{ Reason string }
		json.NewDecoder(resp.Body).Decode(&prob)
		return resp.StatusCode, prob.Reason
	}
	if status, _ := send("/paid", genuine); status != 0 {
		t.Fatalf("the gateway answered %d; it should have died after settling", status)
	}
	<-g.done
	g = startGateway(t, bin, cfg)

	dearer := withExtensionsOf(t, signUpTo(t, g.url+"/dear", payer, 10000), genuine)
	for _, c := range []struct {
		name, path, header string
		status             int
		reason             string
	}{
		{"another signature", "/paid", resign(t, genuine, chain, strangerKey), 402, x402.ReasonInvalidSignature},
		{"the identifier on a dearer route", "/dear", dearer, 409, "idempotency_key_reused"},
		{"the payer's own retry", "/paid", genuine, 200, ""},
		{"the payer's retry once served", "/paid", genuine, 402, "payment_replayed"},
	} {
		if status, reason := send(c.path, c.header); status != c.status || reason != c.reason {
			t.Errorf("%s: got %d %q, want %d %q", c.name, status, reason, c.status, c.reason)
		}
	}
	g.stop(t)
	audit(t, bin, cfg, 1)
}
