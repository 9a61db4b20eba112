//go:build linux

package interop_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/anvil"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/mppclient"
	"github.com/coinop/coinop/mpp/tempocharge"
)

// tempoChainID is the chain id of the tests' anvil --network tempo.
const tempoChainID = 1337

// tempoWorld is an anvil --network tempo with a gateway selling GET
// /weather for price pathUSD through the tempo method in push mode, paid
// to a fresh address by anvil's first dev account.
type tempoWorld struct {
	t     *testing.T
	eth   *ethclient.Client
	url   string
	rpc   string
	g     *gateway.Gateway
	payee common.Address
	payer *ecdsa.PrivateKey
	token common.Address
}

func newTempoWorld(t *testing.T) *tempoWorld {
	t.Helper()
	peers(t)
	bin, _ := filepath.Abs(anvilBinary)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := anvil.Start(ctx, anvil.Config{Binary: bin, ChainID: tempoChainID, Network: "tempo"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	eth, err := ethclient.DialContext(ctx, c.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eth.Close)
	payer, _ := crypto.HexToECDSA(anvil.TempoDevKey)
	payee, _ := crypto.GenerateKey()
	w := &tempoWorld{t: t, eth: eth, payee: crypto.PubkeyToAddress(payee.PublicKey), payer: payer, token: common.HexToAddress(anvil.TempoPathUSD)}
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, `{"city":"Lisbon","sky":"clear"}`)
	}))
	t.Cleanup(upstream.Close)
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
pay_to: "%s"
networks:
  - id: eip155:%d
    rpc: %s
    settlement_key_env: SETTLER
    assets:
      - symbol: pathUSD
        address: "%s"
        eip712_name: pathUSD
        eip712_version: "1"
rails:
  - name: pathusd-push
    kind: mpp
    method: tempo
routes:
  - match: GET /weather
    accept:
      - rail: pathusd-push
        price: "%d"
`, upstream.URL, filepath.Join(t.TempDir(), "gateway.db"), w.payee.Hex(), tempoChainID, c.RPCURL, anvil.TempoPathUSD, price))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Options{Getenv: func(k string) string {
		if k == "SETTLER" {
			return hexKey(c.Settler)
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	w.url, w.rpc, w.g = srv.URL+"/weather", c.RPCURL, g
	return w
}

func (w *tempoWorld) received() int64 {
	w.t.Helper()
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: tempoChainID, Backend: w.eth})
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := ch.BalanceOf(context.Background(), w.token, w.payee)
	if err != nil {
		w.t.Fatal(err)
	}
	return b.Int64()
}

// payOnce fetches url through coinop's client with m as its only method,
// paying at most price of any token, and returns the response, its body
// and the credential sent.
func payOnce(t *testing.T, m client.Method, url string) (*http.Response, string, string) {
	t.Helper()
	var sent string
	tr := &client.Transport{Methods: []client.Method{m}, Policy: client.Policy{MaxAmount: big.NewInt(price)},
		OnPayment: func(p client.Payment) { sent = p.Value }}
	resp, body := get(t, &http.Client{Transport: tr, Timeout: scriptTimeout}, url)
	return resp, body, sent
}

// TestCoinopPaysTempoPush: coinop's mpp method sends a pathUSD
// transferWithMemo on anvil --network tempo and presents its hash; the
// gateway checks the receipt and serves, with a receipt of method tempo.
// The same hash again, the hash for another challenge, and a transfer
// whose memo binds no challenge are refused.
func TestCoinopPaysTempoPush(t *testing.T) {
	w := newTempoWorld(t)
	pusher := &evm.Pusher{Key: w.payer, Backends: map[uint64]evm.Backend{tempoChainID: w.eth}}
	m := &mppclient.Method{Pusher: pusher}
	resp, body, auth := payOnce(t, m, w.url)
	if resp.StatusCode != 200 || !strings.Contains(body, "Lisbon") {
		t.Fatalf("paid: %d %s", resp.StatusCode, body)
	}
	rc := mppclient.ReceiptOf(resp)
	cred, _ := mpp.ParseCredential(auth)
	var pl struct{ Hash string }
	json.Unmarshal(cred.Payload, &pl)
	if rc == nil || rc.Method != "tempo" || !strings.EqualFold(rc.Reference, pl.Hash) {
		t.Fatalf("receipt %+v, hash %s", rc, pl.Hash)
	}
	if got := w.received(); got != price {
		t.Errorf("payee received %d, want %d", got, price)
	}

	again, body := get(t, http.DefaultClient, w.url, "Authorization", auth)
	if again.StatusCode != 402 || !strings.Contains(body, "payment_replayed") {
		t.Errorf("the hash again: %d %s", again.StatusCode, body)
	}

	// A transfer made for one challenge, presented by someone else under
	// another challenge before its payer presented it: its memo binds the
	// first one. Under the first, it pays.
	challenge := func() mpp.Challenge {
		resp, err := http.Get(w.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs, err := mpp.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		if err != nil || len(cs) != 1 {
			t.Fatalf("challenges %+v (%v)", cs, err)
		}
		return cs[0]
	}
	present := func(c mpp.Challenge, hash [32]byte) (*http.Response, string) {
		payload, _ := json.Marshal(map[string]string{"type": "hash", "hash": common.Hash(hash).Hex()})
		h, _ := (&mpp.Credential{Challenge: c, Payload: payload}).Encode()
		return get(t, http.DefaultClient, w.url, "Authorization", h)
	}
	first, second := challenge(), challenge()
	hash, _, err := pusher.PushTransfer(context.Background(), tempoChainID, eip3009.Address(w.token), eip3009.Address(w.payee), big.NewInt(price), tempocharge.Memo(&first))
	if err != nil {
		t.Fatal(err)
	}
	if r, body := present(second, hash); r.StatusCode != 402 || !strings.Contains(body, "mpp_tempo_no_matching_transfer") {
		t.Errorf("the hash under another challenge: %d %s", r.StatusCode, body)
	}
	if r, body := present(first, hash); r.StatusCode != 200 {
		t.Errorf("the hash under its own challenge: %d %s", r.StatusCode, body)
	}

	// A transfer with no memo of ours.
	hash, _, err = pusher.PushTransfer(context.Background(), tempoChainID, eip3009.Address(w.token), eip3009.Address(w.payee), big.NewInt(price), [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if r, body := present(challenge(), hash); r.StatusCode != 402 || !strings.Contains(body, "mpp_tempo_no_matching_transfer") {
		t.Errorf("an unbound transfer: %d %s", r.StatusCode, body)
	}
	// A hash of no transaction.
	if r, body := present(challenge(), [32]byte{7}); r.StatusCode != 402 || !strings.Contains(body, "mpp_tempo_transaction_not_found") {
		t.Errorf("an unknown hash: %d %s", r.StatusCode, body)
	}
	if got := w.received(); got != 3*price {
		t.Errorf("payee received %d, want %d (two paid requests, one unbound transfer)", got, 3*price)
	}
}

// TestMppxPaysTempoPush: mppx's client with its tempo method pays a coinop
// tempo-push route on anvil --network tempo: it sends the transfer itself
// and presents the hash; the receipt says tempo and exactly the price
// moved; the same credential again is refused.
func TestMppxPaysTempoPush(t *testing.T) {
	mppxPeer(t)
	w := newTempoWorld(t)
	var o mppxOutcome
	(&world{t: t}).nodeJSON("mppx/pay-tempo.mjs", &o, "URL="+w.url, "PAYER_KEY=0x"+anvil.TempoDevKey,
		fmt.Sprintf("CHAIN_ID=%d", tempoChainID), "RPC="+w.rpc)
	if o.Status != 200 || !strings.Contains(o.Body, "Lisbon") || o.Receipt == nil || o.Receipt.Method != "tempo" {
		t.Fatalf("mppx: %+v", o)
	}
	if len(o.Sent) != 1 || !strings.HasPrefix(o.Sent[0], "Payment ") {
		t.Fatalf("mppx sent %q", o.Sent)
	}
	if got := w.received(); got != price {
		t.Errorf("payee received %d, want %d", got, price)
	}
	if r, body := get(t, http.DefaultClient, w.url, "Authorization", o.Sent[0]); r.StatusCode != 402 || !strings.Contains(body, "payment_replayed") {
		t.Errorf("the credential again: %d %s", r.StatusCode, body)
	}
}

// TestTempoRecovery: a tempo payment journaled as settling when the
// gateway stopped (its transfer mined and checked) is settled by recovery
// with the transaction as its reference, found through its rail (the
// network's reconciler reads EIP-3009 authorizations, not transfers).
func TestTempoRecovery(t *testing.T) {
	w := newTempoWorld(t)
	pusher := &evm.Pusher{Key: w.payer, Backends: map[uint64]evm.Backend{tempoChainID: w.eth}}
	hash, _, err := pusher.PushTransfer(context.Background(), tempoChainID, eip3009.Address(w.token), eip3009.Address(w.payee), big.NewInt(price), [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	key := common.Hash(hash).Hex()
	ctx := context.Background()
	p := &coinop.Payment{ID: tempocharge.PaymentID(fmt.Sprintf("eip155:%d", tempoChainID), key), Rail: "pathusd-push", Route: "GET /weather",
		Network: fmt.Sprintf("eip155:%d", tempoChainID), Asset: strings.ToLower(w.token.Hex()), PayTo: strings.ToLower(w.payee.Hex()),
		ReplayKey: strings.ToLower(key), Amount: big.NewInt(price), Resource: w.url, Payer: "0x0"}
	j := w.g.Store()
	if err := j.Reserve(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := j.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
		t.Fatal(err)
	}
	rep := w.g.Recover(ctx, time.Now().Add(time.Hour))
	got, err := j.Get(ctx, p.ID)
	if err != nil || got.State != coinop.StateSettled || !strings.EqualFold(got.Reference, key) {
		t.Fatalf("after recovery %+v (%v), report %+v", got, err, rep)
	}
}
