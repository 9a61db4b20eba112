package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/x402"
)

// tokenMethod is a dialect of the tests' own: a 402 offers it in a
// "Test-Offer: <unit> <amount>" header, and a request pays it with
// "Test-Paid: <unit>". It can hold a token for later requests (Reuser) and
// sees the answers (Observer).
type tokenMethod struct {
	name    string
	header  string // the request header its credential sets
	payErr  error
	paid    atomic.Int32
	mu      sync.Mutex
	held    string // a token for Reuse, "" for none
	forgot  []string
	observe []string
}

func (m *tokenMethod) Name() string { return m.name }

func (m *tokenMethod) Options(_ context.Context, ch *client.Challenge) ([]client.Option, error) {
	var opts []client.Option
	for _, v := range ch.Response.Header.Values("Test-Offer") {
		var name, unit string
		var amount int64
		if _, err := fmt.Sscan(v, &name, &unit, &amount); err != nil || name != m.name {
			continue
		}
		opts = append(opts, client.Option{
			Method: m.name, Price: client.Price{Amount: big.NewInt(amount), Unit: unit}, Header: m.header,
			About: fmt.Sprintf("%d %s (%s)", amount, unit, m.name),
			Pay: func(context.Context) (*client.Credential, error) {
				if m.payErr != nil {
					return nil, m.payErr
				}
				m.paid.Add(1)
				h := http.Header{}
				h.Set(m.header, m.name+" "+unit)
				return &client.Credential{Header: h}, nil
			},
		})
	}
	return opts, nil
}

func (m *tokenMethod) Reuse(req *http.Request) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held == "" {
		return false
	}
	req.Header.Set(m.header, m.held)
	return true
}

func (m *tokenMethod) Forget(req *http.Request, _ *http.Response) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgot = append(m.forgot, req.Header.Get(m.header))
	m.held = ""
}

func (m *tokenMethod) Observe(_ *http.Request, resp *http.Response, c *client.Credential) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observe = append(m.observe, fmt.Sprintf("%d paid=%v", resp.StatusCode, c != nil))
}

// dialects is a server whose 402 offers every offer in offers, and that
// serves any request carrying one of accept (a header value).
func dialects(t *testing.T, offers []string, accept map[string]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for h, v := range accept {
			if r.Header.Get(h) == v {
				io.WriteString(w, "paid with "+v)
				return
			}
		}
		for _, o := range offers {
			w.Header().Add("Test-Offer", o)
		}
		w.WriteHeader(http.StatusPaymentRequired)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, tr *client.Transport, url string, header ...string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestPreferChoosesTheDialect(t *testing.T) {
	srv := dialects(t, []string{"a msat 5000", "b eip155:1/0xt 10"}, map[string]string{"Pay-A": "a msat", "Pay-B": "b eip155:1/0xt"})
	policy := client.Policy{MaxAmount: big.NewInt(100), Limits: map[string]client.Limit{"msat": {Max: big.NewInt(10000)}}}
	for _, c := range []struct {
		name   string
		prefer []string
		want   string
	}{
		{"methods' order", nil, "paid with a msat"},
		{"prefer b", []string{"b"}, "paid with b eip155:1/0xt"},
		{"prefer an absent dialect, then a", []string{"c", "a"}, "paid with a msat"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := &tokenMethod{name: "a", header: "Pay-A"}, &tokenMethod{name: "b", header: "Pay-B"}
			tr := &client.Transport{Methods: []client.Method{a, b}, Prefer: c.prefer, Policy: policy}
			code, body, err := get(t, tr, srv.URL)
			if err != nil || code != 200 || body != c.want {
				t.Fatalf("got %d %q %v, want %q", code, body, err, c.want)
			}
			if a.paid.Load()+b.paid.Load() != 1 {
				t.Fatalf("paid %d + %d times", a.paid.Load(), b.paid.Load())
			}
		})
	}
}

// Limits are per unit: a maximum in token units never lets sats through,
// and a unit with no limit is never paid.
func TestPolicyIsPerUnit(t *testing.T) {
	srv := dialects(t, []string{"a msat 5000"}, map[string]string{"Pay-A": "a msat"})
	for _, c := range []struct {
		name   string
		policy client.Policy
		want   string // "" pays
	}{
		{"token maximum only", client.Policy{MaxAmount: big.NewInt(1 << 40)}, "this client sets no limit for msat"},
		{"msat limit too low", client.Policy{Limits: map[string]client.Limit{"msat": {Max: big.NewInt(4999), Name: "--max-sats"}}}, "5000 msat exceeds --max-sats 4999 msat"},
		{"msat limit", client.Policy{Limits: map[string]client.Limit{"msat": {Max: big.NewInt(5000)}}}, ""},
		{"network list leaves out a dialect with no network", client.Policy{Networks: []string{"eip155:1"}, Limits: map[string]client.Limit{"msat": {Max: big.NewInt(5000)}}}, "network (none) is not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &tokenMethod{name: "a", header: "Pay-A"}
			tr := &client.Transport{Methods: []client.Method{a}, Policy: c.policy}
			code, _, err := get(t, tr, srv.URL)
			if c.want == "" {
				if err != nil || code != 200 {
					t.Fatalf("got %d %v", code, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || a.paid.Load() != 0 {
				t.Fatalf("got %d %v after %d payments, want a refusal naming %q", code, err, a.paid.Load(), c.want)
			}
		})
	}
}

func TestBudgetPerUnit(t *testing.T) {
	srv := dialects(t, []string{"a msat 600", "b eip155:1/0xt 600"}, map[string]string{"Pay-A": "a msat", "Pay-B": "b eip155:1/0xt"})
	a, b := &tokenMethod{name: "a", header: "Pay-A"}, &tokenMethod{name: "b", header: "Pay-B"}
	tr := &client.Transport{Methods: []client.Method{a, b}, Policy: client.Policy{
		MaxAmount: big.NewInt(1000), Budget: big.NewInt(1000),
		Limits: map[string]client.Limit{"msat": {Max: big.NewInt(1000), Budget: big.NewInt(1000)}},
	}}
	// The first request pays in msat, the second finds the msat budget
	// spent and pays in the token, the third finds both spent.
	for i, want := range []string{"paid with a msat", "paid with b eip155:1/0xt", ""} {
		code, body, err := get(t, tr, srv.URL)
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "would exceed the budget") {
				t.Fatalf("request %d: %d %q %v, want a budget refusal", i, code, body, err)
			}
			continue
		}
		if err != nil || body != want {
			t.Fatalf("request %d: %d %q %v, want %q", i, code, body, err, want)
		}
	}
	if got := tr.Spent("msat").Int64(); got != 600 {
		t.Errorf("spent %d msat", got)
	}
	if got := tr.Spent("eip155:1/0xt").Int64(); got != 600 {
		t.Errorf("spent %d token units", got)
	}
}

// A failed Pay spends nothing: the next option pays and the budget is as
// before. One that may have spent stops everything and stays booked.
func TestPayFailure(t *testing.T) {
	srv := dialects(t, []string{"a msat 600", "b eip155:1/0xt 600"}, map[string]string{"Pay-B": "b eip155:1/0xt"})
	policy := client.Policy{MaxAmount: big.NewInt(1000), Limits: map[string]client.Limit{"msat": {Max: big.NewInt(1000), Budget: big.NewInt(1000)}}}

	a, b := &tokenMethod{name: "a", header: "Pay-A", payErr: errors.New("node unreachable")}, &tokenMethod{name: "b", header: "Pay-B"}
	tr := &client.Transport{Methods: []client.Method{a, b}, Policy: policy}
	if code, body, err := get(t, tr, srv.URL); err != nil || code != 200 || body != "paid with b eip155:1/0xt" {
		t.Fatalf("got %d %q %v", code, body, err)
	}
	if got := tr.Spent("msat").Sign(); got != 0 {
		t.Errorf("a failed payment stays booked: %s msat", tr.Spent("msat"))
	}

	a, b = &tokenMethod{name: "a", header: "Pay-A", payErr: fmt.Errorf("send: %w", client.ErrMaybeSpent)}, &tokenMethod{name: "b", header: "Pay-B"}
	tr = &client.Transport{Methods: []client.Method{a, b}, Policy: policy}
	if _, _, err := get(t, tr, srv.URL); !errors.Is(err, client.ErrMaybeSpent) || b.paid.Load() != 0 {
		t.Fatalf("got %v after %d payments in b, want ErrMaybeSpent and no other payment", err, b.paid.Load())
	}
	if got := tr.Spent("msat").Int64(); got != 600 {
		t.Errorf("a payment that may have been made is not booked: %d msat", got)
	}
}

// A held credential is presented first; refused (402), it is forgotten and
// a fresh payment made; served, the method observes the answer.
func TestReuse(t *testing.T) {
	srv := dialects(t, []string{"a msat 5"}, map[string]string{"Pay-A": "a msat", "Authorization": "Token good"})
	a := &tokenMethod{name: "a", header: "Authorization", held: "Token good"}
	tr := &client.Transport{Methods: []client.Method{a}, Policy: client.Policy{Limits: map[string]client.Limit{"msat": {Max: big.NewInt(5)}}}}
	if code, body, err := get(t, tr, srv.URL); err != nil || code != 200 || body != "paid with Token good" || a.paid.Load() != 0 {
		t.Fatalf("held token: %d %q %v, %d payments", code, body, err, a.paid.Load())
	}
	a.held = "Token stale"
	// The server wants "Authorization: Token good" or "Pay-A"; this method's
	// credential is "Authorization: a msat", so the fresh payment is refused
	// by the server too and its 402 comes back.
	srv2 := dialects(t, []string{"a msat 5"}, map[string]string{"Authorization": "a msat"})
	if code, body, err := get(t, tr, srv2.URL); err != nil || code != 200 || body != "paid with a msat" {
		t.Fatalf("stale token: %d %q %v", code, body, err)
	}
	if len(a.forgot) != 1 || a.forgot[0] != "Token stale" || a.paid.Load() != 1 {
		t.Fatalf("forgot %q, paid %d", a.forgot, a.paid.Load())
	}
	if strings.Join(a.observe, ",") != "200 paid=false,200 paid=true" {
		t.Errorf("observed %q", a.observe)
	}
}

// A caller's own credential is never replaced or paid over: a request with
// an Authorization header is not given a held token, and an option whose
// header the request carries is not paid.
func TestCallersCredentialStays(t *testing.T) {
	srv := dialects(t, []string{"a msat 5"}, map[string]string{"Authorization": "a msat"})
	a := &tokenMethod{name: "a", header: "Authorization", held: "Token held"}
	tr := &client.Transport{Methods: []client.Method{a}, Policy: client.Policy{Limits: map[string]client.Limit{"msat": {Max: big.NewInt(5)}}}}
	_, _, err := get(t, tr, srv.URL, "Authorization", "Basic dXNlcjpwYXNz")
	if err == nil || !strings.Contains(err.Error(), "already carries Authorization") || a.paid.Load() != 0 || len(a.forgot) != 0 {
		t.Fatalf("got %v, %d payments, forgot %q", err, a.paid.Load(), a.forgot)
	}
	for _, h := range [][2]string{{"Authorization", "L402 mac:pre"}, {"Authorization", "payment eyJ9"}, {x402.HeaderPaymentSignature, "x"}} {
		code, _, err := get(t, tr, srv.URL, h[0], h[1])
		if err != nil || code != 402 || a.paid.Load() != 0 {
			t.Fatalf("%s: %s: got %d %v, %d payments; want the 402 unpaid", h[0], h[1], code, err, a.paid.Load())
		}
	}
}

// A 402 in no dialect the Transport speaks comes back as it is.
func TestUnknownDialect(t *testing.T) {
	srv := dialects(t, []string{"z msat 5"}, nil)
	a := &tokenMethod{name: "a", header: "Pay-A"}
	tr := &client.Transport{Methods: []client.Method{a}, Policy: client.Policy{Limits: map[string]client.Limit{"msat": {Max: big.NewInt(5)}}}}
	if code, _, err := get(t, tr, srv.URL); err != nil || code != 402 {
		t.Fatalf("got %d %v", code, err)
	}
}
