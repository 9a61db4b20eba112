package credits_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// journal is what a gateway gives the ledger and the engine: both stores.
type journal interface {
	credits.Store
	paywall.Journal
}

// cashRail is the tests' money rail, of no real protocol, on which plans
// are bought: X-Cash: <nonce> pays once, whatever the price; it counts
// settlements (the "on-chain transfers").
type cashRail struct{ settles atomic.Int64 }

func (*cashRail) Name() string { return "cash" }
func (*cashRail) Headers() coinop.Headers {
	return coinop.Headers{Request: []string{"X-Cash"}}
}
func (*cashRail) Challenge(_ context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	c.Offers = append(c.Offers, coinop.Offer{Rail: "cash", Protocol: "cash", Network: "cash", Asset: "cent",
		Amount: ch.Price.Amount.String(), Price: ch.Price.String(), Header: "X-Cash"})
	return nil
}
func (*cashRail) Inspect(r *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	v := r.Header.Get("X-Cash")
	if v == "" {
		return nil, nil
	}
	return &coinop.Payment{ID: "cash:" + v, ReplayKey: v, Network: "cash", Asset: "cent", Payer: "buyer", PayTo: "seller",
		Amount: new(big.Int).Set(ch.Price.Amount), Resource: ch.Resource.URL}, nil
}
func (*cashRail) Verify(context.Context, *coinop.Payment) error { return nil }
func (c *cashRail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	if err := rec.Record(ctx, "cash-ref:"+p.ID, ""); err != nil {
		return nil, err
	}
	c.settles.Add(1)
	return &coinop.Receipt{Success: true, Reference: "cash-ref:" + p.ID, Network: "cash"}, nil
}

// shopEngine is an engine selling plans on the cash rail and charging
// credits on /api/ (cost each), in front of upstream.
type shopEngine struct {
	srv     *httptest.Server // nil for a direct engine (synctest bubbles)
	handler http.Handler
	rail    *credits.Rail
	ledger  *credits.Ledger
	cash    *cashRail
	j       journal
}

var plans = []credits.Plan{
	{Name: "pack", Credits: 100},
	{Name: "hour", Duration: time.Hour},
	{Name: "capped", Duration: time.Hour, Requests: 3},
}

func newShopEngine(t testing.TB, j journal, cost int64, now func() time.Time, upstream http.Handler) *shopEngine {
	return newEngine(t, j, cost, now, upstream, false)
}

// newEngine is newShopEngine, without a server when direct.
func newEngine(t testing.TB, j journal, cost int64, now func() time.Time, upstream http.Handler, direct bool) *shopEngine {
	t.Helper()
	led, err := credits.Open(t.Context(), j, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &shopEngine{ledger: led, cash: &cashRail{}, j: j}
	e.rail = &credits.Rail{ID: "credits", Ledger: led, Store: j, Low: 10, Now: now}
	shop := &credits.Shop{Ledger: led}
	for _, p := range plans {
		shop.Sale = append(shop.Sale, credits.ForSale{Plan: p, Paths: []string{"/.well-known/coinop/plans/" + p.Name},
			Accept: []paywall.Accept{{Rail: e.cash, Price: coinop.Price{Amount: big.NewInt(500), Symbol: "cent"}}}})
	}
	e.rail.Seller = shop
	routes := append(shop.Routes(), paywall.Route{Pattern: "/api/", Accept: []paywall.Accept{
		{Rail: e.rail, Price: coinop.Price{Amount: big.NewInt(cost), Symbol: credits.Symbol}},
	}})
	pw, err := paywall.New(paywall.Config{Journal: j, Routes: routes, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	shopH := shop.Handler()
	e.handler = pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/") {
			shopH.ServeHTTP(w, r)
			return
		}
		upstream.ServeHTTP(w, r)
	}))
	if !direct {
		e.srv = httptest.NewServer(e.handler)
		t.Cleanup(e.srv.Close)
	}
	return e
}

// send makes a request of e: through its server, or to its handler.
func (e *shopEngine) send(t testing.TB, method, path string, h http.Header) answer {
	t.Helper()
	if e.srv != nil {
		return do(t, e.srv.URL+path, method, h)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, "http://coinop.test"+path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, req)
	return answer{w.Code, w.Result().Header, w.Body.String()}
}

func openSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, url, method string, h http.Header) answer {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

var nonces atomic.Int64

// buy buys plan on e with a fresh cash payment and returns the receipt.
func (e *shopEngine) buy(t testing.TB, plan string, token string) credits.Receipt {
	t.Helper()
	h := http.Header{"X-Cash": {"n" + strconv.FormatInt(nonces.Add(1), 10)}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	a := e.send(t, "POST", "/.well-known/coinop/plans/"+plan, h)
	if a.status != 200 {
		t.Fatalf("buying %s: %d %s", plan, a.status, a.body)
	}
	var rc credits.Receipt
	if err := json.Unmarshal([]byte(a.body), &rc); err != nil {
		t.Fatal(err)
	}
	if token == "" && (rc.Token == "" || a.header.Get(credits.HeaderToken) != "Bearer "+rc.Token) {
		t.Fatalf("purchase answered token %q, header %q", rc.Token, a.header.Get(credits.HeaderToken))
	}
	return rc
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

var goods = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("goods")) })

// A pack bought with one payment pays for 100 calls with no other payment,
// the balance header falling by exactly the cost each time; then the
// balance is too low and the 402 offers the plans beside the per-request
// offer. Every movement is in the ledger and the sums agree.
func TestPackPaysForCalls(t *testing.T) {
	j := openSQLite(t)
	e := newShopEngine(t, j, 1, time.Now, goods)
	rc := e.buy(t, "pack", "")
	if rc.Credits != 100 {
		t.Fatalf("receipt %+v, want 100 credits settled", rc)
	}
	for i := range 100 {
		a := do(t, e.srv.URL+"/api/x", "GET", bearer(rc.Token))
		if a.status != 200 || a.body != "goods" {
			t.Fatalf("call %d: %d %s", i+1, a.status, a.body)
		}
		if got, want := a.header.Get(credits.HeaderBalance), strconv.Itoa(99-i); got != want {
			t.Fatalf("call %d: balance header %q, want %q", i+1, got, want)
		}
		if low := a.header.Get(credits.HeaderLow) != ""; low != (99-i < 10) {
			t.Errorf("call %d: warning %q at balance %d (threshold 10)", i+1, a.header.Get(credits.HeaderLow), 99-i)
		}
	}
	if n := e.cash.settles.Load(); n != 1 {
		t.Errorf("%d cash settlements, want 1 (the purchase)", n)
	}
	a := do(t, e.srv.URL+"/api/x", "GET", bearer(rc.Token))
	var body struct {
		Reason string            `json:"reason"`
		Offers []coinop.Offer    `json:"offers"`
		Plans  []credits.Offered `json:"plans"`
	}
	json.Unmarshal([]byte(a.body), &body)
	if a.status != 402 || body.Reason != credits.ReasonBalanceTooLow {
		t.Fatalf("over the balance: %d %s", a.status, a.body)
	}
	if len(body.Offers) != 1 || body.Offers[0].Rail != "credits" || len(body.Plans) != len(plans) {
		t.Fatalf("402 offers %+v plans %+v", body.Offers, body.Plans)
	}
	if p := body.Plans[0]; p.Name != "pack" || p.Credits != 100 || p.URL != e.srv.URL+"/.well-known/coinop/plans/pack" ||
		len(p.Offers) != 1 || p.Offers[0].Rail != "cash" || p.Offers[0].Amount != "500" {
		t.Errorf("plan offered as %+v", p)
	}
	// A top-up with the same token adds to the same account.
	up := e.buy(t, "pack", rc.Token)
	if up.Token != "" || up.Account != rc.Account {
		t.Errorf("top-up answered %+v, want the same account and no new token", up)
	}
	if a := do(t, e.srv.URL+"/api/x", "GET", bearer(rc.Token)); a.status != 200 || a.header.Get(credits.HeaderBalance) != "99" {
		t.Errorf("after the top-up: %d balance %q", a.status, a.header.Get(credits.HeaderBalance))
	}
	tot, err := e.ledger.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !tot.Clean() || tot.Purchased != 200 || tot.Debited != 101 || tot.Balances != 99 || tot.Debits != 101 {
		t.Errorf("ledger totals %+v", tot)
	}
}

// An upstream that fails (status ≥ 400) costs nothing.
func TestUpstreamFailureCostsNothing(t *testing.T) {
	j := openSQLite(t)
	fail := atomic.Bool{}
	e := newShopEngine(t, j, 7, time.Now, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", 502)
			return
		}
		w.Write([]byte("goods"))
	}))
	rc := e.buy(t, "pack", "")
	fail.Store(true)
	for range 3 {
		if a := do(t, e.srv.URL+"/api/x", "GET", bearer(rc.Token)); a.status != 502 || a.header.Get(credits.HeaderBalance) != "" {
			t.Fatalf("failed upstream: %d %q", a.status, a.header.Get(credits.HeaderBalance))
		}
	}
	fail.Store(false)
	if a := do(t, e.srv.URL+"/api/x", "GET", bearer(rc.Token)); a.status != 200 || a.header.Get(credits.HeaderBalance) != "93" {
		t.Fatalf("after the failures: %d balance %q, want 93", a.status, a.header.Get(credits.HeaderBalance))
	}
}

// Tokens a client controls: absent, of another scheme, malformed, unknown,
// revoked. None is charged or served; each gets its reason.
func TestAdversarialTokens(t *testing.T) {
	j := openSQLite(t)
	e := newShopEngine(t, j, 1, time.Now, goods)
	rc := e.buy(t, "pack", "")
	other := e.buy(t, "pack", "")
	if ok, err := e.ledger.Revoke(t.Context(), credits.HashToken(other.Token)); !ok || err != nil {
		t.Fatalf("Revoke: %v %v", ok, err)
	}
	unknown := "cop_" + strings.Repeat("A", 43)
	for _, c := range []struct {
		name   string
		h      http.Header
		status int
		reason string
	}{
		{"none", nil, 402, coinop.ReasonPaymentRequired},
		{"basic", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, 402, coinop.ReasonPaymentRequired},
		{"another bearer", bearer("eyJhbGciOi.x.y"), 402, coinop.ReasonPaymentRequired},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, 400, credits.ReasonTokenMalformed},
		{"short", bearer("cop_abc"), 400, credits.ReasonTokenMalformed},
		{"bad alphabet", bearer("cop_" + strings.Repeat("*", 43)), 400, credits.ReasonTokenMalformed},
		{"two headers", http.Header{"Authorization": {"Bearer " + rc.Token, "Bearer " + rc.Token}}, 400, credits.ReasonTokenMalformed},
		{"unknown", bearer(unknown), 402, credits.ReasonTokenUnknown},
		{"revoked", bearer(other.Token), 402, credits.ReasonTokenRevoked},
		{"lower-case scheme works", http.Header{"Authorization": {"bearer " + rc.Token}}, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := do(t, e.srv.URL+"/api/x", "GET", c.h)
			var p struct {
				Reason string `json:"reason"`
			}
			json.Unmarshal([]byte(a.body), &p)
			if a.status != c.status || p.Reason != c.reason {
				t.Errorf("got %d %q, want %d %q (%s)", a.status, p.Reason, c.status, c.reason, a.body)
			}
		})
	}
	// A top-up with a revoked or unknown token is refused, and its payment
	// released: nothing was charged.
	before := e.cash.settles.Load()
	h := http.Header{"X-Cash": {"topup-revoked"}, "Authorization": {"Bearer " + other.Token}}
	if a := do(t, e.srv.URL+"/.well-known/coinop/plans/pack", "POST", h); a.status != 402 || !strings.Contains(a.body, credits.ReasonTokenRevoked) {
		t.Errorf("top-up of a revoked token: %d %s", a.status, a.body)
	}
	if e.cash.settles.Load() != before {
		t.Error("a refused top-up was charged")
	}
	tot, _ := e.ledger.Check(t.Context())
	if !tot.Clean() || tot.Debited != 1 {
		t.Errorf("ledger totals %+v, want clean with the one served charge", tot)
	}
}

// Concurrent charges of one balance covering K requests: exactly K served,
// the rest 402, the balance zero and the sums clean.
func TestConcurrentChargesSQLite(t *testing.T) {
	j := openSQLite(t)
	e := newShopEngine(t, j, 10, time.Now, goods)
	rc := e.buy(t, "pack", "") // 100 credits: K = 10
	served := hammer(t, []string{e.srv.URL}, rc.Token, 100)
	if served != 10 {
		t.Errorf("%d served, want 10", served)
	}
	checkDrained(t, e.ledger, 10)
}

// hammer sends n concurrent charges of token, spread over urls, and
// returns how many were served; every other must be 402 balance too low.
func hammer(t *testing.T, urls []string, token string, n int) int {
	t.Helper()
	var wg sync.WaitGroup
	var served atomic.Int64
	for i := range n {
		wg.Go(func() {
			a := do(t, urls[i%len(urls)]+"/api/x", "GET", bearer(token))
			switch {
			case a.status == 200:
				served.Add(1)
			case a.status == 402 && strings.Contains(a.body, credits.ReasonBalanceTooLow) && strings.Contains(a.body, `"plans"`):
			default:
				t.Errorf("a charge got %d %s", a.status, a.body)
			}
		})
	}
	wg.Wait()
	return int(served.Load())
}

func checkDrained(t *testing.T, led *credits.Ledger, debits int64) {
	t.Helper()
	tot, err := led.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !tot.Clean() || tot.Balances != 0 || tot.Debits != debits || tot.Purchased != tot.Debited {
		t.Errorf("ledger totals %+v: want clean, drained by %d debits", tot, debits)
	}
}

func bigInt(n int64) *big.Int { return big.NewInt(n) }

// The HTML 402 of a credits route lists the plans, with their prices and
// purchase URLs, beside the per-request offers.
func TestPageListsPlans(t *testing.T) {
	e := newShopEngine(t, openSQLite(t), 1, time.Now, goods)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/api/x", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, want := range []string{`id="plans"`, "<strong>pack</strong>: 100 credits, for 500 cent on", "<strong>capped</strong>: a 1h0m0s pass of 3 requests",
		e.srv.URL + "/.well-known/coinop/plans/hour"} {
		if resp.StatusCode != 402 || !strings.Contains(page, want) {
			t.Errorf("the 402 page (%d) lacks %q", resp.StatusCode, want)
		}
	}
}
