package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/evmcharge"
	"github.com/coinop/coinop/x402"
)

// mppGateway starts a gateway whose GET /weather accepts x402 and the
// Payment scheme's evm method on dev's chain, for 1000 atomic units, and an
// upstream that records the Authorization headers it sees.
// mppRig is a gateway on a dev chain with an mpp rail.
type mppRig struct {
	dev   *devchain.Chain
	chain *evm.Chain
	g     *gateway.Gateway
	srv   *httptest.Server
	seen  *atomic.Value // the Authorization headers the upstream saw
}

// balance is what the payee holds.
func (r *mppRig) balance(t *testing.T, ctx context.Context) *big.Int {
	t.Helper()
	b, err := r.chain.BalanceOf(ctx, r.dev.Token, crypto.PubkeyToAddress(r.dev.Payee.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mppGateway(t *testing.T, ctx context.Context) *mppRig {
	t.Helper()
	dev, chain := startChain(t, ctx)
	var seen atomic.Value
	seen.Store("")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(seen.Load().(string) + r.Header.Get("Authorization"))
		io.WriteString(w, "sunny")
	}))
	t.Cleanup(upstream.Close)
	cfg := devConfig(t, dev, upstream.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: KEY", `
  - match: GET /weather
    accept:
      - rail: usdc
        price: "1000"
      - rail: usdc-mpp
        price: "1000"
`, `
rails:
  - name: usdc
    kind: x402
  - name: usdc-mpp
    kind: mpp
    method: evm
    secret_env: MPP_SECRET
`)
	keyHex := common.Bytes2Hex(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(k string) string {
		switch k {
		case "KEY":
			return "0x" + keyHex
		case "MPP_SECRET":
			return "a test secret of thirty-two bytes or more"
		}
		return ""
	}})
	return &mppRig{dev: dev, chain: chain, g: g, srv: srv, seen: &seen}
}

// mppCredential answers the Payment challenge of a 402 from url with dev's
// payer.
func mppCredential(t *testing.T, dev *devchain.Chain, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs, err := mpp.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if err != nil || len(cs) != 1 {
		t.Fatalf("challenges %+v (%v), want one", cs, err)
	}
	req, err := evmcharge.DecodeRequest(&cs[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := eip3009.NewKey(crypto.FromECDSA(dev.Payer))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := evmcharge.Authorize(key, &cs[0], req, devchain.TokenName, devchain.TokenVersion, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, err := cred.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func getWith(t *testing.T, url, authorization string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestMPPEVM: one 402 carries both dialects; a Payment credential pays
// once, exactly the price, with a receipt of method evm; the upstream never
// sees it; the same credential again, and the same authorization sent as
// x402, are replays.
func TestMPPEVM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rig := mppGateway(t, ctx)
	dev, g, srv, seen := rig.dev, rig.g, rig.srv, rig.seen
	url := srv.URL + "/weather"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Offers []coinop.Offer `json:"offers"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 402 || resp.Header.Get(x402.HeaderPaymentRequired) == "" || len(resp.Header.Values("WWW-Authenticate")) != 1 {
		t.Fatalf("402: %d, PAYMENT-REQUIRED %q, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get(x402.HeaderPaymentRequired), resp.Header.Values("WWW-Authenticate"))
	}
	if len(body.Offers) != 2 || body.Offers[0].Protocol != "x402" || body.Offers[1].Protocol != "mpp" {
		t.Fatalf("offers %+v, want x402 then mpp", body.Offers)
	}
	// Browsers get both on the page, with the same challenge headers.
	page, _ := http.NewRequest("GET", url, nil)
	page.Header.Set("Accept", "text/html")
	resp, err = http.DefaultClient.Do(page)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 402 || !strings.Contains(string(html), "mpp (evm/charge)") || !strings.Contains(string(html), "x402 (exact)") ||
		len(resp.Header.Values("WWW-Authenticate")) != 1 || resp.Header.Get(x402.HeaderPaymentRequired) == "" {
		t.Errorf("page: %d, WWW-Authenticate %q\n%s", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), html)
	}

	cred := mppCredential(t, dev, url)
	chain := g
	before := rig.balance(t, ctx)
	resp, got := getWith(t, url, cred)
	if resp.StatusCode != 200 || got != "sunny" {
		t.Fatalf("paid: %d %s", resp.StatusCode, got)
	}
	rc, err := mpp.ParseReceipt(resp.Header.Get("Payment-Receipt"))
	if err != nil || rc.Method != "evm" || !strings.HasPrefix(rc.Reference, "0x") {
		t.Fatalf("receipt %+v (%v)", rc, err)
	}
	if d := new(bigInt).Sub(rig.balance(t, ctx), before); d.Int64() != 1000 {
		t.Errorf("payee received %s, want exactly 1000", d)
	}
	if s := seen.Load().(string); s != "" {
		t.Errorf("upstream saw Authorization %q", s)
	}
	ps, err := chain.Store().List(ctx, coinop.StateSettled, 10)
	if err != nil || len(ps) != 1 || ps[0].Rail != "usdc-mpp" || ps[0].Reference != rc.Reference {
		t.Fatalf("settled %+v (%v)", ps, err)
	}

	// The same credential again.
	resp, got = getWith(t, url, cred)
	if resp.StatusCode != 402 || !strings.Contains(got, coinop.ReasonReplayed) || len(resp.Header.Values("WWW-Authenticate")) != 1 {
		t.Errorf("replay: %d %s", resp.StatusCode, got)
	}
	// The same authorization as an x402 payment: the same journal entry.
	parsed, _ := mpp.ParseCredential(cred)
	var pl evmcharge.Payload
	json.Unmarshal(parsed.Payload, &pl)
	var pr x402.PaymentRequired
	x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr)
	raw, _ := json.Marshal(x402.ExactEVMPayload{Signature: pl.Signature, Authorization: x402.ExactAuthorization{
		From: pl.From, To: pl.To, Value: pl.Value, ValidAfter: pl.ValidAfter, ValidBefore: pl.ValidBefore, Nonce: pl.Nonce}})
	h, _ := x402.EncodeHeader(x402.PaymentPayload{X402Version: 2, Accepted: pr.Accepts[0], Payload: raw})
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set(x402.HeaderPaymentSignature, h)
	xr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	xb, _ := io.ReadAll(xr.Body)
	xr.Body.Close()
	if xr.StatusCode != 402 || !strings.Contains(string(xb), "replayed") {
		t.Errorf("the same authorization through x402: %d %s", xr.StatusCode, xb)
	}
	if d := new(bigInt).Sub(rig.balance(t, ctx), before); d.Int64() != 1000 {
		t.Errorf("after the replays the payee received %s, want exactly 1000", d)
	}
}

// TestMPPConcurrentCredential: one credential sent 100 times at once is
// served and settled once.
func TestMPPConcurrentCredential(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rig := mppGateway(t, ctx)
	dev, g, srv, _ := rig.dev, rig.g, rig.srv, rig.seen
	url := srv.URL + "/weather"
	cred := mppCredential(t, dev, url)
	before := rig.balance(t, ctx)
	var wg sync.WaitGroup
	var ok, refused atomic.Int32
	for range 100 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", cred)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 402, 409:
				refused.Add(1)
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || refused.Load() != 99 {
		t.Errorf("%d served, %d refused; want 1 and 99", ok.Load(), refused.Load())
	}
	if d := new(bigInt).Sub(rig.balance(t, ctx), before); d.Int64() != 1000 {
		t.Errorf("payee received %s, want exactly 1000", d)
	}
	ps, _ := g.Store().List(ctx, coinop.StateSettled, 200)
	if len(ps) != 1 {
		t.Errorf("%d settled payments, want 1", len(ps))
	}
}

// TestMPPRefusals: tampered and foreign credentials are refused with the
// Payment scheme's problem types and a fresh challenge, and nothing moves.
func TestMPPRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rig := mppGateway(t, ctx)
	dev, _, srv, _ := rig.dev, rig.g, rig.srv, rig.seen
	url := srv.URL + "/weather"
	good, err := mpp.ParseCredential(mppCredential(t, dev, url))
	if err != nil {
		t.Fatal(err)
	}
	before := rig.balance(t, ctx)
	encode := func(c *mpp.Credential) string { h, _ := c.Encode(); return h }
	tamper := func(f func(c *mpp.Credential)) string {
		c := *good
		f(&c)
		return encode(&c)
	}
	cases := []struct {
		name, auth, typ string
		status          int
	}{
		{"not base64", "Payment !!!", mpp.ProblemMalformed, 400},
		{"padded", encode(good) + "==", mpp.ProblemMalformed, 400},
		{"two credentials", "", mpp.ProblemMalformed, 400},
		{"tampered expires", tamper(func(c *mpp.Credential) { c.Challenge.Expires = "2099-01-01T00:00:00Z" }), mpp.ProblemInvalidChallenge, 402},
		{"tampered request", tamper(func(c *mpp.Credential) {
			var r map[string]any
			mpp.DecodeRequest(c.Challenge.Request, &r)
			r["amount"] = "1"
			c.Challenge.Request, _ = mpp.EncodeRequest(r)
		}), mpp.ProblemInvalidChallenge, 402},
		{"forged id", tamper(func(c *mpp.Credential) { c.Challenge.ID = mpp.ID([]byte("another secret"), &c.Challenge) }), mpp.ProblemInvalidChallenge, 402},
		{"other method", tamper(func(c *mpp.Credential) { c.Challenge.Method = "tempo" }), mpp.ProblemMethodUnsupported, 402},
		{"other realm", tamper(func(c *mpp.Credential) {
			c.Challenge.Realm = "evil.example"
			c.Challenge.ID = "x"
		}), mpp.ProblemInvalidChallenge, 402},
		{"wrong source", tamper(func(c *mpp.Credential) { c.Source = "did:pkh:eip155:1:0x0000000000000000000000000000000000000001" }), mpp.ProblemVerificationFailed, 402},
		{"payload of another type", tamper(func(c *mpp.Credential) {
			c.Payload = []byte(strings.Replace(string(c.Payload), `"authorization"`, `"hash"`, 1))
		}), mpp.ProblemVerificationFailed, 402},
		{"unknown payload member", tamper(func(c *mpp.Credential) {
			c.Payload = []byte(strings.Replace(string(c.Payload), `{`, `{"extra":1,`, 1))
		}), mpp.ProblemInvalidPayload, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", url, nil)
			if tc.auth == "" {
				req.Header.Add("Authorization", encode(good))
				req.Header.Add("Authorization", encode(good))
			} else {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var pd struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			}
			json.NewDecoder(resp.Body).Decode(&pd)
			resp.Body.Close()
			if resp.StatusCode != tc.status || pd.Type != tc.typ {
				t.Errorf("%d %+v, want %d %s", resp.StatusCode, pd, tc.status, tc.typ)
			}
			if resp.StatusCode == 402 && len(resp.Header.Values("WWW-Authenticate")) != 1 {
				t.Errorf("no fresh challenge: %q", resp.Header.Values("WWW-Authenticate"))
			}
		})
	}
	if d := new(bigInt).Sub(rig.balance(t, ctx), before); d.Sign() != 0 {
		t.Errorf("payee received %s from refused credentials", d)
	}
}

// TestMPPAcceptPayment: a client that accepts no evm gets no Payment
// challenge; one that wants it gets it.
func TestMPPAcceptPayment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rig := mppGateway(t, ctx)
	_, _, srv, _ := rig.dev, rig.g, rig.srv, rig.seen
	for _, tc := range []struct {
		accept string
		want   int
	}{{"", 1}, {"evm/charge", 1}, {"*/*", 1}, {"tempo/charge", 0}, {"evm/charge;q=0, */*", 0}, {"evm/session", 0}} {
		req, _ := http.NewRequest("GET", srv.URL+"/weather", nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Payment", tc.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := len(resp.Header.Values("WWW-Authenticate")); got != tc.want {
			t.Errorf("Accept-Payment %q: %d challenges, want %d", tc.accept, got, tc.want)
		}
	}
}

type bigInt = big.Int

// TestMPPReloadKeepsChallenges: an mpp rail without secret_env draws its
// secret once per gateway; a challenge issued before a reload is paid
// after it.
func TestMPPReloadKeepsChallenges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev, _ := startChain(t, ctx)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sunny") }))
	t.Cleanup(upstream.Close)
	cfg := devConfig(t, dev, upstream.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: KEY", `
  - match: GET /weather
    accept:
      - rail: usdc-mpp
        price: "1000"
`, `
rails:
  - name: usdc-mpp
    kind: mpp
    method: evm
`)
	keyHex := common.Bytes2Hex(crypto.FromECDSA(dev.Settler))
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(string) string { return "0x" + keyHex }})
	cred := mppCredential(t, dev, srv.URL+"/weather")
	next, err := config.Parse("coinop.yaml", []byte(mustCanonical(t, cfg, "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	if resp, body := getWith(t, srv.URL+"/weather", cred); resp.StatusCode != 200 {
		t.Fatalf("after the reload: %d %s", resp.StatusCode, body)
	}
}
