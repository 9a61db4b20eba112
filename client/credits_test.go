package client_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop/client"
)

// plans402 is a credits route's 402 body at origin: a route cost of 5
// credits, a pack of 3 credits (too few), a 10-credit pack for 2000, a
// pass for 500, one plan sold elsewhere, one in a dialect nobody speaks.
func plans402(origin string) string {
	offer := func(amount string) string {
		return `{"rail":"usdc","protocol":"x402","network":"eip155:1337","asset":"0xAbC0000000000000000000000000000000000001","payTo":"0x00000000000000000000000000000000000000F0","amount":"` + amount + `","price":"x USDC"}`
	}
	return `{"status":402,"reason":"payment_required","offers":[{"rail":"credits","protocol":"credits","amount":"5"}],
	"plans":[
	 {"name":"tiny","credits":3,"url":"` + origin + `/.well-known/coinop/plans/tiny","offers":[` + offer("100") + `]},
	 {"name":"pack","credits":10,"url":"` + origin + `/.well-known/coinop/plans/pack","offers":[` + offer("2000") + `]},
	 {"name":"hour","passSeconds":3600,"url":"` + origin + `/.well-known/coinop/plans/hour","offers":[` + offer("500") + `]},
	 {"name":"elsewhere","credits":100,"url":"https://evil.example/.well-known/coinop/plans/x","offers":[` + offer("1") + `]},
	 {"name":"lightning","credits":100,"url":"` + origin + `/.well-known/coinop/plans/ln","offers":[{"protocol":"l402","network":"lightning","amount":"1"}]}
	]}`
}

func challengeFor(t *testing.T, rawURL, body string) *client.Challenge {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	return &client.Challenge{Request: req, Response: &http.Response{StatusCode: 402, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}, Body: []byte(body)}
}

// The plans offered are those that cover the request, bought where they
// are used, on rails the buyer speaks, cheapest first; --plan picks one.
func TestCreditsOptions(t *testing.T) {
	origin := "http://127.0.0.1:8402"
	c := &client.Credits{Pay: []client.Method{&client.X402{}}}
	opts, err := c.Options(context.Background(), challengeFor(t, origin+"/api/x", plans402(origin)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range opts {
		got = append(got, o.Price.Amount.String())
		if o.Method != "credits" || o.Header != "Authorization" || o.Price.Unit != "eip155:1337/0xabc0000000000000000000000000000000000001" || o.PayTo == "" {
			t.Errorf("option %+v", o)
		}
	}
	if strings.Join(got, ",") != "500,2000" {
		t.Errorf("options priced %v, want the pass (500) then the 10-credit pack (2000)", got)
	}
	c.Plan = "pack"
	if opts, _ := c.Options(context.Background(), challengeFor(t, origin+"/api/x", plans402(origin))); len(opts) != 1 || !strings.Contains(opts[0].About, "plan pack") {
		t.Errorf("--plan pack: %+v", opts)
	}
	c.Plan = "elsewhere"
	if opts, _ := c.Options(context.Background(), challengeFor(t, origin+"/api/x", plans402(origin))); len(opts) != 0 {
		t.Errorf("a plan sold at another origin was offered: %+v", opts)
	}
	for _, body := range []string{"", "not json", `{"plans":[]}`, `{"offers":[{"protocol":"x402","amount":"1"}],"plans":[{"name":"p","credits":9,"url":"` + origin + `/p"}]}`} {
		if opts, err := (&client.Credits{Pay: []client.Method{&client.X402{}}}).Options(context.Background(), challengeFor(t, origin+"/api/x", body)); err != nil || len(opts) != 0 {
			t.Errorf("body %q: %v %v, want no options", body, opts, err)
		}
	}
}

// A held token is presented to its origin only; a refusal for an unknown
// or revoked token drops it, one for a low balance keeps it for the top-up
// but stops presenting it, any other 402 leaves it.
func TestCreditsReuseAndForget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credits.json")
	store := &client.CreditStore{Path: path}
	origin := "http://127.0.0.1:8402"
	store.Put(origin, client.CreditHolding{Token: "cop_tok", Balance: 3})
	c := &client.Credits{Store: store}
	req := func(u string) *http.Request { r, _ := http.NewRequest("GET", u, nil); return r }
	forget := func(reason string) {
		body := `{"status":402,"reason":"` + reason + `"}`
		c.Forget(req(origin+"/x"), &http.Response{StatusCode: 402, Body: io.NopCloser(strings.NewReader(body))})
	}
	if r := req("http://other.example/x"); c.Reuse(r) || r.Header.Get("Authorization") != "" {
		t.Error("a token was presented to another origin")
	}
	if r := req(origin + "/x"); !c.Reuse(r) || r.Header.Get("Authorization") != "Bearer cop_tok" {
		t.Error("the held token was not presented to its origin")
	}
	forget("payment_required")
	if _, ok := store.Get(origin); !ok {
		t.Error("a 402 of a route without credits dropped the token")
	}
	forget("credits_balance_too_low")
	if h, ok := store.Get(origin); !ok || !h.Low || c.Reuse(req(origin+"/x")) {
		t.Errorf("after a low balance: %+v %v, want kept, marked low, not presented", h, ok)
	}
	forget("credits_token_revoked")
	if _, ok := store.Get(origin); ok {
		t.Error("a revoked token was kept")
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("store file %v %v, want 0600", st, err)
	}
	if _, err := url.Parse(origin); err != nil {
		t.Fatal(err)
	}
}

// FuzzCreditsOptions: whatever a 402's body says, the credits method offers
// only positive prices on EVM chains for a credential in Authorization, and
// never a plan sold at another origin.
func FuzzCreditsOptions(f *testing.F) {
	f.Add(plans402("http://127.0.0.1:8402"))
	f.Add(plans402("https://evil.example"))
	f.Add(`{"offers":[{"protocol":"credits","amount":"-1"}],"plans":[{"url":"http://127.0.0.1:8402/p","credits":1,"offers":[{"protocol":"x402","network":"eip155:1","amount":"0"}]}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		c := &client.Credits{Pay: []client.Method{&client.X402{}}}
		opts, err := c.Options(context.Background(), challengeFor(t, "http://127.0.0.1:8402/api/x", body))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			if o.Header != "Authorization" || o.Price.Amount == nil || o.Price.Amount.Sign() <= 0 || !strings.HasPrefix(o.Network, "eip155:") || o.Pay == nil {
				t.Fatalf("option %+v", o)
			}
			if strings.Contains(body, "evil.example") && strings.Count(body, "127.0.0.1:8402") == 0 {
				t.Fatalf("a plan of another origin was offered: %+v", o)
			}
		}
	})
}
