package mpp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// fakeMethod is a method of the tests' own: its payload {"n": "<nonce>"}
// is a single-use credential that Verify always accepts, and Settle counts.
type fakeMethod struct {
	name    string
	settled atomic.Int32
}

func (m *fakeMethod) Name() string   { return m.name }
func (m *fakeMethod) Intent() string { return mpp.IntentCharge }
func (m *fakeMethod) Request(ch coinop.Charge) (map[string]any, error) {
	return map[string]any{"amount": ch.Price.Amount.String(), "currency": "fake"}, nil
}
func (m *fakeMethod) Offer(ch coinop.Charge) coinop.Offer {
	return coinop.Offer{Scheme: m.name + "/charge", Amount: ch.Price.Amount.String(), Price: ch.Price.String()}
}
func (m *fakeMethod) Check(c *mpp.Checked) (*coinop.Payment, error) {
	var pl struct{ N string }
	if err := json.Unmarshal(c.Credential.Payload, &pl); err != nil || pl.N == "" {
		return nil, coinop.Errorf(coinop.KindMalformed, "fake_payload", "bad payload")
	}
	return &coinop.Payment{ID: m.name + ":" + pl.N, ReplayKey: pl.N, Network: "fake", Asset: "fake", Payer: "p", Amount: c.Charge.Price.Amount}, nil
}
func (m *fakeMethod) Verify(context.Context, *coinop.Payment, *mpp.Checked) error { return nil }
func (m *fakeMethod) Settle(_ context.Context, p *coinop.Payment, _ *mpp.Checked, rec coinop.Recorder) (*coinop.Receipt, error) {
	if err := rec.Record(context.Background(), "ref-"+p.ReplayKey, ""); err != nil {
		return nil, err
	}
	m.settled.Add(1)
	return &coinop.Receipt{Success: true, Reference: "ref-" + p.ReplayKey}, nil
}

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(c.t.Load(), 0) }
func (c *fakeClock) add(d time.Duration) { c.t.Add(int64(d / time.Second)) }
func newClock(at time.Time) *fakeClock   { c := &fakeClock{}; c.t.Store(at.Unix()); return c }
func price(n int64) coinop.Price {
	return coinop.Price{Amount: big.NewInt(n), Symbol: "F", Decimals: 0}
}
func challengesOf(h http.Header) []mpp.Challenge {
	cs, _ := mpp.ParseChallenges(h.Values("WWW-Authenticate"))
	return cs
}

// engine serves /a (price 5) and /b (price 9) through two Payment rails,
// methods "alpha" and "beta", behind the real engine and journal.
func engine(t *testing.T, clock *fakeClock) (*httptest.Server, *fakeMethod, *fakeMethod) {
	t.Helper()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	alpha, beta := &fakeMethod{name: "alpha"}, &fakeMethod{name: "beta"}
	ra := &mpp.Rail{Method: alpha, Secret: []byte("secret-a"), Now: clock.now, Expires: time.Minute}
	rb := &mpp.Rail{Method: beta, Secret: []byte("secret-b"), Now: clock.now, Expires: time.Minute}
	route := func(p string, n int64) paywall.Route {
		return paywall.Route{Pattern: p, Accept: []paywall.Accept{{Rail: ra, Price: price(n)}, {Rail: rb, Price: price(n)}}}
	}
	pw, err := paywall.New(paywall.Config{Journal: j, Routes: []paywall.Route{route("GET /a", 5), route("GET /b", 9)},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	t.Cleanup(srv.Close)
	return srv, alpha, beta
}

func do(t *testing.T, url string, h ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func credentialFor(c mpp.Challenge, n string) string {
	h, _ := (&mpp.Credential{Challenge: c, Payload: json.RawMessage(`{"n":"` + n + `"}`)}).Encode()
	return h
}

// TestRail: each rail adds its challenge; a credential goes to the rail
// whose challenge it echoes; it pays once with a receipt; a challenge of
// one route is refused on another (its request differs), and an expired
// one is refused with a fresh challenge.
func TestRail(t *testing.T) {
	clock := newClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	srv, alpha, beta := engine(t, clock)
	resp, _ := do(t, srv.URL+"/a")
	cs := challengesOf(resp.Header)
	if resp.StatusCode != 402 || len(cs) != 2 || cs[0].Method != "alpha" || cs[1].Method != "beta" {
		t.Fatalf("402 %d with challenges %+v", resp.StatusCode, cs)
	}
	if cs[0].Opaque == cs[1].Opaque {
		t.Error("two challenges share a nonce")
	}

	// beta's challenge pays through beta.
	resp, body := do(t, srv.URL+"/a", "Authorization", credentialFor(cs[1], "n1"))
	rc, err := mpp.ParseReceipt(resp.Header.Get("Payment-Receipt"))
	if resp.StatusCode != 200 || body != "ok" || err != nil || rc.Method != "beta" || rc.Reference != "ref-n1" {
		t.Fatalf("paid: %d %s, receipt %+v (%v)", resp.StatusCode, body, rc, err)
	}
	if alpha.settled.Load() != 0 || beta.settled.Load() != 1 {
		t.Errorf("settled alpha %d beta %d", alpha.settled.Load(), beta.settled.Load())
	}
	if resp, body := do(t, srv.URL+"/a", "Authorization", credentialFor(cs[1], "n1")); resp.StatusCode != 402 || !strings.Contains(body, "payment_replayed") {
		t.Errorf("replay: %d %s", resp.StatusCode, body)
	}

	// /a's challenge (price 5) at /b (price 9).
	resp, body = do(t, srv.URL+"/b", "Authorization", credentialFor(cs[0], "n2"))
	if resp.StatusCode != 402 || !strings.Contains(body, mpp.ProblemInvalidChallenge) || len(challengesOf(resp.Header)) != 2 {
		t.Errorf("a cheaper route's challenge: %d %s", resp.StatusCode, body)
	}

	// Expired.
	clock.add(2 * time.Minute)
	resp, body = do(t, srv.URL+"/a", "Authorization", credentialFor(cs[0], "n3"))
	if resp.StatusCode != 402 || !strings.Contains(body, mpp.ProblemExpired) || len(challengesOf(resp.Header)) != 2 {
		t.Errorf("expired: %d %s", resp.StatusCode, body)
	}
	if alpha.settled.Load() != 0 || beta.settled.Load() != 1 {
		t.Errorf("settled alpha %d beta %d after the refusals", alpha.settled.Load(), beta.settled.Load())
	}
}

// TestAcceptPaymentOrders: the Payment challenges follow the client's
// weights; q=0 leaves a method out.
func TestAcceptPaymentOrders(t *testing.T) {
	srv, _, _ := engine(t, newClock(time.Now()))
	for _, tc := range []struct{ accept, want string }{
		{"", "alpha,beta"}, {"beta/charge, alpha/charge;q=0.5", "beta,alpha"}, {"alpha/*;q=0, */*", "beta"}, {"gamma/charge", ""},
	} {
		var h []string
		if tc.accept != "" {
			h = []string{"Accept-Payment", tc.accept}
		}
		resp, _ := do(t, srv.URL+"/a", h...)
		var got []string
		for _, c := range challengesOf(resp.Header) {
			got = append(got, c.Method)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("Accept-Payment %q: %v, want %s", tc.accept, got, tc.want)
		}
	}
}

// TestRestore: a journaled credential is rebuilt; one keyed by another
// secret is not.
func TestRestore(t *testing.T) {
	clock := newClock(time.Now())
	m := &fakeMethod{name: "alpha"}
	r := &mpp.Rail{Method: m, Secret: []byte("s"), Now: clock.now}
	c := &coinop.Challenge{Header: http.Header{}}
	ch := coinop.Charge{Price: price(5), Resource: coinop.Resource{URL: "http://x/a"}}
	if err := r.Challenge(context.Background(), c, ch); err != nil {
		t.Fatal(err)
	}
	cred := credentialFor(challengesOf(c.Header)[0], "n9")
	req := httptest.NewRequest("GET", "http://x/a", nil)
	req.Header.Set("Authorization", cred)
	p, err := r.Inspect(req, ch)
	if err != nil {
		t.Fatal(err)
	}
	back := &coinop.Payment{ID: p.ID, Amount: p.Amount, Resource: p.Resource, Payload: p.Payload}
	if err := r.Restore(back); err != nil || back.Credential == nil {
		t.Fatalf("Restore: %v", err)
	}
	other := &mpp.Rail{Method: m, Secret: []byte("other"), Now: clock.now}
	if err := other.Restore(&coinop.Payment{ID: p.ID, Amount: p.Amount, Payload: p.Payload}); err == nil {
		t.Error("a rail of another secret restored the payment")
	}
}
