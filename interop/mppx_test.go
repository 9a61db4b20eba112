//go:build linux

package interop_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/anvil"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/evmcharge"
	"github.com/coinop/coinop/mpp/mppclient"
	"github.com/coinop/coinop/mpp/tempocharge"
)

// mppxPeer skips (or, under COINOP_CI=1, fails) unless mppx is installed.
func mppxPeer(t *testing.T) {
	t.Helper()
	peers(t)
	if _, err := os.Stat("mppx/node_modules/mppx/package.json"); err != nil {
		if os.Getenv("COINOP_CI") == "1" {
			t.Fatal("mppx is not installed; run scripts/deps/interop.sh")
		}
		t.Skip("mppx is not installed; run scripts/deps/interop.sh")
	}
}

// mppGateway starts a coinop gateway selling GET /weather for price
// through x402 and the Payment scheme's evm method, settling on the chain.
func (w *world) mppGateway() string {
	w.t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(rw, "the credential reached the upstream", http.StatusTeapot)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"city":"Lisbon","sky":"clear"}`)
	}))
	w.t.Cleanup(upstream.Close)
	_, url := w.serveGateway(upstream.URL, "", "", fmt.Sprintf(`rails:
  - name: usdc
    kind: x402
  - name: usdc-mpp
    kind: mpp
    method: evm
routes:
  - match: GET /weather
    accept:
      - rail: usdc
        price: "%d"
      - rail: usdc-mpp
        price: "%d"
`, price, price))
	return url
}

// mppxOutcome is what mppx/pay.mjs printed.
type mppxOutcome struct {
	Status  int          `json:"status"`
	Body    string       `json:"body"`
	Receipt *mpp.Receipt `json:"receipt"`
	Sent    []string     `json:"sent"`
}

func (w *world) mppx(url string, env ...string) mppxOutcome {
	w.t.Helper()
	var o mppxOutcome
	w.nodeJSON("mppx/pay.mjs", &o, append(env, "URL="+url, "PAYER_KEY="+hexKey(w.payer), fmt.Sprintf("CHAIN_ID=%d", w.c.ChainID),
		"TOKEN="+w.c.Token.Hex(), "TOKEN_NAME="+devchain.TokenName, "TOKEN_VERSION="+devchain.TokenVersion, fmt.Sprintf("MAX_AMOUNT=%d", price))...)
	return o
}

// TestMppxPaysCoinopThroughPayment: mppx's client, offered x402 and the
// Payment scheme in one 402, pays through the Payment scheme's evm method:
// the receipt says evm, exactly the price moved on chain, and the same
// credential sent again is refused.
func TestMppxPaysCoinopThroughPayment(t *testing.T) {
	mppxPeer(t)
	w := newWorld(t, 31337)
	url := w.mppGateway() + "/weather"
	o := w.mppx(url)
	if o.Status != 200 || !strings.Contains(o.Body, "Lisbon") {
		t.Fatalf("mppx got %d %s", o.Status, o.Body)
	}
	if o.Receipt == nil || o.Receipt.Method != "evm" || o.Receipt.Status != "success" || !strings.HasPrefix(o.Receipt.Reference, "0x") {
		t.Fatalf("receipt %+v", o.Receipt)
	}
	if len(o.Sent) != 1 || !strings.HasPrefix(o.Sent[0], "Payment ") {
		t.Fatalf("mppx sent %q, want one Payment credential", o.Sent)
	}
	w.paid(1)

	resp, body := get(t, http.DefaultClient, url, "Authorization", o.Sent[0])
	if resp.StatusCode != 402 || !strings.Contains(body, "payment_replayed") {
		t.Errorf("the credential again: %d %s", resp.StatusCode, body)
	}
	w.paid(1)
}

// TestMppxCredentialConcurrently: one credential mppx made, held back
// from the gateway and then sent 100 times at once, is served and settled
// once.
func TestMppxCredentialConcurrently(t *testing.T) {
	mppxPeer(t)
	w := newWorld(t, 31337)
	url := w.mppGateway() + "/weather"
	o := w.mppx(url, "HOLD=1")
	if len(o.Sent) != 1 || !strings.HasPrefix(o.Sent[0], "Payment ") {
		t.Fatalf("mppx sent %q, want one Payment credential", o.Sent)
	}
	w.paid(0)
	var wg sync.WaitGroup
	var served, refused atomic.Int32
	for range 100 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", o.Sent[0])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				served.Add(1)
			case 402, 409:
				refused.Add(1)
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if served.Load() != 1 || refused.Load() != 99 {
		t.Errorf("%d served, %d refused; want 1 and 99", served.Load(), refused.Load())
	}
	w.paid(1)
}

// mppxServer starts mppx's resource server selling GET /weather for price
// through the evm method, settled by coinop's facilitator.
func (w *world) mppxServer() string {
	w.t.Helper()
	facilitator, _ := w.facilitator()
	return w.server("mppx/server.mjs", "FACILITATOR="+facilitator, fmt.Sprintf("CHAIN_ID=%d", w.c.ChainID),
		"TOKEN="+w.c.Token.Hex(), "TOKEN_NAME="+devchain.TokenName, "TOKEN_VERSION="+devchain.TokenVersion,
		"PAY_TO="+w.payee.Hex(), "AMOUNT=0.001") + "/weather"
}

// TestCoinopPaysMppxServer: coinop's mpp method pays mppx's server through
// the Payment scheme's evm method; mppx settles through coinop's
// facilitator; the receipt says evm and exactly the price moved.
func TestCoinopPaysMppxServer(t *testing.T) {
	mppxPeer(t)
	w := newWorld(t, 31337)
	url := w.mppxServer()
	key, err := eip3009.NewKey(crypto.FromECDSA(w.payer))
	if err != nil {
		t.Fatal(err)
	}
	resp, body, auth := payOnce(t, &mppclient.Method{Key: key}, url)
	if resp.StatusCode != 200 || !strings.Contains(body, "Lisbon") {
		t.Fatalf("paid: %d %s", resp.StatusCode, body)
	}
	if !strings.HasPrefix(auth, "Payment ") {
		t.Errorf("sent %q, want a Payment credential", auth)
	}
	if rc := mppclient.ReceiptOf(resp); rc == nil || rc.Method != "evm" || !strings.HasPrefix(rc.Reference, "0x") {
		t.Errorf("receipt %+v", rc)
	}
	w.paid(1)
}

// coinopCurl runs `coinop curl URL args…` in-process paying from key and
// returns its exit code, stdout and stderr.
func coinopCurl(t *testing.T, key string, url string, args ...string) (int, string, string) {
	t.Helper()
	wallet := filepath.Join(t.TempDir(), "payer.key")
	if err := os.WriteFile(wallet, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	code := cli.Main(context.Background(), append([]string{"curl", url, "-i", "--wallet", wallet, "--max-amount", "0.001"}, args...),
		cli.Env{Stdout: &stdout, Stderr: &stderr})
	return code, stdout.String(), stderr.String()
}

// TestCoinopCurlPaysMppxServer: `coinop curl --prefer mpp` pays mppx's
// server (evm method, settled through coinop's facilitator) through the
// Payment scheme and shows the receipt.
func TestCoinopCurlPaysMppxServer(t *testing.T) {
	mppxPeer(t)
	w := newWorld(t, 31337)
	url := w.mppxServer()
	code, out, errOut := coinopCurl(t, hexKey(w.payer), url, "--prefer", "mpp")
	if code != 0 || !strings.Contains(out, "Lisbon") || !strings.Contains(out, "Payment-Receipt:") {
		t.Fatalf("coinop curl --prefer mpp: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "paid through the Payment scheme (method evm): 0x") {
		t.Errorf("coinop curl does not show the receipt:\n%s", errOut)
	}
	w.paid(1)
}

// TestCoinopCurlPaysTempoPush: `coinop curl --prefer mpp --rpc …` pays a
// tempo-push route on anvil --network tempo and shows the receipt.
func TestCoinopCurlPaysTempoPush(t *testing.T) {
	w := newTempoWorld(t)
	code, out, errOut := coinopCurl(t, anvil.TempoDevKey, w.url, "--prefer", "mpp", "--rpc", fmt.Sprintf("eip155:%d=%s", tempoChainID, w.rpc))
	if code != 0 || !strings.Contains(out, "Lisbon") {
		t.Fatalf("coinop curl: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "paid through the Payment scheme (method tempo): 0x") {
		t.Errorf("coinop curl does not show the receipt:\n%s", errOut)
	}
	if got := w.received(); got != price {
		t.Errorf("payee received %d, want %d", got, price)
	}
	// Without a node for the chain, the tempo challenge is not paid.
	code, out, errOut = coinopCurl(t, anvil.TempoDevKey, w.url, "--prefer", "mpp")
	if !strings.Contains(out, "402 Payment Required") || !strings.Contains(errOut, "not paying") || w.received() != price {
		t.Errorf("without --rpc: exit %d, payee holds %d\n%s\n%s", code, w.received(), out, errOut)
	}
}

// TestOneRouteEveryDialect: one coinop route offering x402 and the Payment
// scheme in one 402 is paid from that 402 by the official x402 client (in
// x402), by mppx (in the Payment scheme), and by `coinop curl` in each
// dialect it is told to prefer; four payments, four prices.
func TestOneRouteEveryDialect(t *testing.T) {
	mppxPeer(t)
	w := newWorld(t, 31337)
	url := w.mppGateway() + "/weather"
	o := w.node("pay.mjs", "URL="+url, "PAYER_KEY="+hexKey(w.payer), "NETWORK="+w.network,
		"TOKEN="+w.c.Token.Hex(), fmt.Sprint("MAX_AMOUNT=", price))
	if o.Status != 200 || o.Settlement == nil || !o.Settlement.Success {
		t.Fatalf("the official x402 client: %+v", o)
	}
	if m := w.mppx(url); m.Status != 200 || m.Receipt == nil || m.Receipt.Method != "evm" {
		t.Fatalf("mppx: %+v", m)
	}
	for _, prefer := range []string{"x402", "mpp"} {
		code, out, errOut := coinopCurl(t, hexKey(w.payer), url, "--prefer", prefer)
		want := map[string]string{"x402": "Payment-Response:", "mpp": "Payment-Receipt:"}[prefer]
		if code != 0 || !strings.Contains(out, "Lisbon") || !strings.Contains(out, want) {
			t.Fatalf("coinop curl --prefer %s: exit %d\n%s\n%s", prefer, code, out, errOut)
		}
	}
	w.paid(4)
}

// TestMppxVectors: for the same challenge parameters, coinop computes what
// mppx computes: the HMAC-bound id, the JCS request, the header mppx writes
// parses to the same challenge, the evm nonce and the tempo attribution
// memo.
func TestMppxVectors(t *testing.T) {
	mppxPeer(t)
	w := &world{t: t}
	for _, req := range []map[string]any{
		{"amount": "1000", "currency": "0x20C0000000000000000000000000000000000000", "recipient": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
			"methodDetails": map[string]any{"chainId": 1337, "credentialTypes": []any{"authorization"}, "decimals": 6}},
		{"z": "last", "a": []any{1, 2.5, "x", nil, true}, "é": map[string]any{"\U0001F600": 1e21, "דּ": 0.000001}, "n": -0.5},
	} {
		in := map[string]any{"secret": "a secret of thirty-two bytes or more, for the test", "realm": "api.example.com:8402",
			"method": "evm", "intent": "charge", "request": req, "expires": "2026-12-02T01:00:00Z", "opaque": "eyJuIjoiMDAxIn0"}
		raw, _ := json.Marshal(in)
		var got struct{ ID, Request, Header, EvmNonce, Memo string }
		w.nodeJSON("mppx/vectors.mjs", &got, "INPUT="+string(raw))
		enc, err := mpp.EncodeRequest(req)
		if err != nil || enc != got.Request {
			t.Errorf("request: coinop %s (%v), mppx %s", enc, err, got.Request)
		}
		c := mpp.Challenge{Realm: in["realm"].(string), Method: "evm", Intent: "charge", Request: enc, Expires: in["expires"].(string), Opaque: in["opaque"].(string)}
		if c.ID = mpp.ID([]byte(in["secret"].(string)), &c); c.ID != got.ID {
			t.Errorf("id: coinop %s, mppx %s", c.ID, got.ID)
		}
		parsed, err := mpp.ParseChallenges([]string{got.Header})
		if err != nil || len(parsed) != 1 || parsed[0] != c {
			t.Errorf("mppx's header %s parses to %+v (%v), want %+v", got.Header, parsed, err, c)
		}
		if n := evmcharge.ChallengeNonce(&c); n != got.EvmNonce {
			t.Errorf("evm nonce: coinop %s, mppx %s", n, got.EvmNonce)
		}
		if m := tempocharge.Memo(&c); "0x"+hex.EncodeToString(m[:]) != got.Memo {
			t.Errorf("memo: coinop %x, mppx %s", m, got.Memo)
		}
	}
}

// TestThreeDialects: one route accepting x402, L402 (the development
// Lightning node) and the Payment scheme answers one 402 with
// PAYMENT-REQUIRED, WWW-Authenticate: L402 and WWW-Authenticate: Payment;
// from it the official x402 client pays in x402, mppx in the Payment scheme
// and `coinop curl --prefer l402` over Lightning. Two USDC payments move on
// chain; the third is a settled Lightning payment in the journal.
func TestThreeDialects(t *testing.T) {
	mppxPeer(t)
	w := newWorld(t, 31337)
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, `{"city":"Lisbon","sky":"clear"}`)
	}))
	t.Cleanup(upstream.Close)
	data := t.TempDir()
	g, base := w.serveGateway(upstream.URL, "", data, fmt.Sprintf(`rails:
  - name: usdc
    kind: x402
  - name: sats
    kind: l402
    dev: true
  - name: usdc-mpp
    kind: mpp
    method: evm
routes:
  - match: GET /weather
    description: Lisbon weather
    accept:
      - rail: usdc
        price: "%d"
      - rail: sats
        price: 21 sat
      - rail: usdc-mpp
        price: "%d"
`, price, price))
	url := base + "/weather"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pay, err := mpp.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if resp.StatusCode != 402 || resp.Header.Get("PAYMENT-REQUIRED") == "" || err != nil || len(pay) != 1 ||
		len(l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))) == 0 {
		t.Fatalf("one 402, three dialects: %d, PAYMENT-REQUIRED %q, WWW-Authenticate %q (%v)", resp.StatusCode,
			resp.Header.Get("PAYMENT-REQUIRED"), resp.Header.Values("WWW-Authenticate"), err)
	}

	o := w.node("pay.mjs", "URL="+url, "PAYER_KEY="+hexKey(w.payer), "NETWORK="+w.network,
		"TOKEN="+w.c.Token.Hex(), fmt.Sprint("MAX_AMOUNT=", price))
	if o.Status != 200 || o.Settlement == nil || !o.Settlement.Success {
		t.Fatalf("the official x402 client: %+v", o)
	}
	if m := w.mppx(url); m.Status != 200 || m.Receipt == nil || m.Receipt.Method != "evm" || len(m.Sent) != 1 || !strings.HasPrefix(m.Sent[0], "Payment ") {
		t.Fatalf("mppx: %+v", m)
	}
	var stdout, stderr lockedBuffer
	code := cli.Main(context.Background(), []string{"curl", "-i", "--prefer", "l402", "--data-dir", data, url}, cli.Env{Stdout: &stdout, Stderr: &stderr})
	if code != 0 || !strings.Contains(stdout.String(), "Lisbon") {
		t.Fatalf("coinop curl --prefer l402: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	w.paid(2)
	ps, err := g.Store().List(context.Background(), coinop.StateSettled, 10)
	rails := map[string]int{}
	for _, p := range ps {
		rails[p.Rail]++
	}
	if err != nil || rails["usdc"] != 1 || rails["usdc-mpp"] != 1 || rails["sats"] != 1 {
		t.Errorf("settled payments by rail %v (%v), want one each", rails, err)
	}
}
