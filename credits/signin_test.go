package credits_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/siwx"
	"github.com/coinop/coinop/x402"
)

// walletRail sells plans to a wallet: X-Wallet-Pay: <hex key>;<nonce> is
// a payment by that key's address (a stand-in for x402, whose payer is the
// wallet that signed).
type walletRail struct{ cashRail }

func (*walletRail) Name() string { return "wallet" }
func (*walletRail) Headers() coinop.Headers {
	return coinop.Headers{Request: []string{"X-Wallet-Pay"}}
}
func (*walletRail) Challenge(_ context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	c.Offers = append(c.Offers, coinop.Offer{Rail: "wallet", Protocol: "x402", Network: "eip155:1337", Asset: "0xabc",
		Amount: ch.Price.Amount.String(), Header: "X-Wallet-Pay"})
	return nil
}
func (*walletRail) Inspect(r *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	who, nonce, ok := strings.Cut(r.Header.Get("X-Wallet-Pay"), ";")
	if !ok {
		return nil, nil
	}
	return &coinop.Payment{ID: "wallet:" + who + ":" + nonce, ReplayKey: nonce, Network: "eip155:1337", Asset: "0xabc",
		Payer: who, PayTo: "seller", Amount: new(big.Int).Set(ch.Price.Amount), Resource: ch.Resource.URL}, nil
}

// signInEngine is an engine whose credits rail takes sign-in proofs.
func signInEngine(t *testing.T, now func() time.Time) (*httptest.Server, *credits.Rail) {
	t.Helper()
	j := openSQLite(t)
	led, err := credits.Open(t.Context(), j, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := led.Secret(t.Context(), "sign-in-with-x")
	if err != nil || len(secret) != 32 {
		t.Fatalf("Secret: %x %v", secret, err)
	}
	if again, _ := led.Secret(t.Context(), "sign-in-with-x"); string(again) != string(secret) {
		t.Fatal("the secret changed between calls")
	}
	wr := &walletRail{}
	rail := &credits.Rail{ID: "credits", Ledger: led, Store: j, Now: now, SignIn: &credits.SignIn{Secret: secret}}
	shop := &credits.Shop{Ledger: led, Sale: []credits.ForSale{{Plan: credits.Plan{Name: "pack", Credits: 20},
		Paths:  []string{"/.well-known/coinop/plans/pack"},
		Accept: []paywall.Accept{{Rail: wr, Price: coinop.Price{Amount: big.NewInt(100)}}}}}}
	rail.Seller = shop
	routes := append(shop.Routes(), paywall.Route{Pattern: "/api/", Accept: []paywall.Accept{{Rail: rail, Price: coinop.Price{Amount: big.NewInt(5)}}}})
	pw, err := paywall.New(paywall.Config{Journal: j, Routes: routes, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	sh := shop.Handler()
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/") {
			sh.ServeHTTP(w, r)
			return
		}
		w.Write([]byte("goods"))
	})))
	t.Cleanup(srv.Close)
	return srv, rail
}

// declared reads the sign-in-with-x declaration of a 402.
func declared(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pr x402.PaymentRequired
	if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil {
		t.Fatalf("PAYMENT-REQUIRED: %v", err)
	}
	d, _ := pr.Extensions[siwx.Extension].(map[string]any)
	if d == nil {
		t.Fatalf("no %s extension in %+v", siwx.Extension, pr)
	}
	return d
}

// prove signs the declaration's info with key, as the official client does.
func prove(t *testing.T, d map[string]any, key *eip3009.Key, edit func(p *siwx.Payload)) string {
	t.Helper()
	info := d["info"].(map[string]any)
	str := func(k string) string { s, _ := info[k].(string); return s }
	p := &siwx.Payload{Domain: str("domain"), Address: key.Address().Hex(), URI: str("uri"), Version: str("version"),
		ChainID: "eip155:1337", Type: "eip191", Nonce: str("nonce"), IssuedAt: str("issuedAt"), ExpirationTime: str("expirationTime"),
		Resources: []string{str("uri")}}
	if edit != nil {
		edit(p)
	}
	msg := p.Message()
	sig := key.Sign(eip3009.Keccak256([]byte("\x19Ethereum Signed Message:\n" + strconv.Itoa(len(msg)) + msg)))
	p.Signature = "0x" + hex.EncodeToString(sig[:])
	b, _ := json.Marshal(p)
	return base64.StdEncoding.EncodeToString(b)
}

func newKey(t *testing.T) *eip3009.Key {
	t.Helper()
	var b [32]byte
	rand.Read(b[:])
	k, err := eip3009.NewKey(b[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A wallet that bought a plan signs in and is charged; every proof a
// client could forge, replay or move is refused and charges nothing.
func TestSignIn(t *testing.T) {
	clk := &struct{ t time.Time }{time.Now()}
	now := func() time.Time { return clk.t }
	srv, rail := signInEngine(t, now)
	buyer, stranger := newKey(t), newKey(t)
	wallet := strings.ToLower(buyer.Address().Hex())
	if a := do(t, srv.URL+"/.well-known/coinop/plans/pack", "POST", http.Header{"X-Wallet-Pay": {wallet + ";n1"}}); a.status != 200 {
		t.Fatalf("purchase: %d %s", a.status, a.body)
	}
	url := srv.URL + "/api/x"
	call := func(proof string) answer { return do(t, url, "GET", http.Header{siwx.Header: {proof}}) }
	reason := func(a answer) string {
		var p struct {
			Reason string `json:"reason"`
		}
		json.Unmarshal([]byte(a.body), &p)
		return p.Reason
	}
	declared := func(t *testing.T, url string) map[string]any {
		clk.t = clk.t.Add(time.Millisecond) // a new issue time: a new nonce
		return declared(t, url)
	}
	d := declared(t, url)
	good := prove(t, d, buyer, nil)
	if a := call(good); a.status != 200 || a.header.Get(credits.HeaderBalance) != "15" {
		t.Fatalf("signed in: %d %s balance %q", a.status, a.body, a.header.Get(credits.HeaderBalance))
	}
	if a := call(good); a.status != 402 || reason(a) != coinop.ReasonReplayed {
		t.Errorf("the same proof again: %d %q, want 402 payment_replayed", a.status, reason(a))
	}
	for _, c := range []struct {
		name   string
		proof  func() string
		status int
		reason string
	}{
		{"not base64", func() string { return "%%%" }, 400, credits.ReasonSignInMalformed},
		{"not JSON", func() string { return base64.StdEncoding.EncodeToString([]byte("{")) }, 400, credits.ReasonSignInMalformed},
		{"solana", func() string {
			return prove(t, declared(t, url), buyer, func(p *siwx.Payload) { p.ChainID = "solana:x" })
		}, 400, credits.ReasonSignInMalformed},
		{"multi-line statement", func() string {
			return prove(t, declared(t, url), buyer, func(p *siwx.Payload) { s := "a\nURI: http://evil/"; p.Statement = &s })
		}, 400, credits.ReasonSignInMalformed},
		{"another wallet's signature", func() string {
			d := declared(t, url)
			p := prove(t, d, stranger, nil)
			raw, _ := base64.StdEncoding.DecodeString(p)
			var pl siwx.Payload
			json.Unmarshal(raw, &pl)
			pl.Address = buyer.Address().Hex() // claims the buyer, signed by the stranger
			b, _ := json.Marshal(pl)
			return base64.StdEncoding.EncodeToString(b)
		}, 402, credits.ReasonSignInInvalid},
		{"forged nonce", func() string {
			return prove(t, declared(t, url), buyer, func(p *siwx.Payload) { p.Nonce = "0123456789abcdef0123456789abcdef" })
		}, 402, credits.ReasonSignInInvalid},
		{"another resource", func() string { return prove(t, declared(t, srv.URL+"/api/other"), buyer, nil) }, 402, credits.ReasonSignInInvalid},
		{"another domain", func() string {
			return prove(t, declared(t, url), buyer, func(p *siwx.Payload) { p.Domain = "evil.example" })
		}, 402, credits.ReasonSignInInvalid},
		{"stale", func() string {
			d := declared(t, url)
			clk.t = clk.t.Add(6 * time.Minute)
			return prove(t, d, buyer, nil)
		}, 402, credits.ReasonSignInInvalid},
		{"a wallet with no account", func() string { return prove(t, declared(t, url), stranger, nil) }, 402, credits.ReasonTokenUnknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := call(c.proof())
			if a.status != c.status || reason(a) != c.reason {
				t.Errorf("got %d %q, want %d %q (%s)", a.status, reason(a), c.status, c.reason, a.body)
			}
		})
	}
	st, err := rail.Ledger.Standing(t.Context(), credits.Holder{Wallet: wallet})
	if err != nil || st.Balance != 15 {
		t.Errorf("balance %d (%v), want 15: only the one good proof was charged", st.Balance, err)
	}
}
