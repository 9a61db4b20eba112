package lightningcharge_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/lightningcharge"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// node is the development node as a seller's node, whose answers a test
// may change: held (invoices paid to the node but not settled: ACCEPTED)
// or down (ErrUnavailable).
type node struct {
	*devnode.Node
	held, down atomic.Bool
	upstream   atomic.Int32
	// failing makes the upstream answer 500.
	failing atomic.Bool
	// later moves the gateway's clock ahead by this many seconds.
	later atomic.Int64
}

func (n *node) AddInvoice(ctx context.Context, req lightning.InvoiceRequest) (*lightning.Invoice, error) {
	if n.down.Load() {
		return nil, fmt.Errorf("test: %w", lightning.ErrUnavailable)
	}
	return n.Node.AddInvoice(ctx, req)
}

func (n *node) LookupInvoice(ctx context.Context, h lightning.Hash) (*lightning.Invoice, error) {
	if n.down.Load() {
		return nil, fmt.Errorf("test: %w", lightning.ErrUnavailable)
	}
	inv, err := n.Node.LookupInvoice(ctx, h)
	if err == nil && n.held.Load() {
		inv.State, inv.PaidMsat = lightning.InvoiceAccepted, 0
	}
	return inv, err
}

// gateway serves GET /a for 20 sat and GET /b for 21 sat through a
// lightning rail on n, behind the real engine and journal.
func gateway(t testing.TB, n *node) *httptest.Server {
	t.Helper()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	now := func() time.Time { return time.Now().Add(time.Duration(n.later.Load()) * time.Second) }
	rail := &mpp.Rail{Method: &lightningcharge.Method{Node: n, Network: "regtest"}, Secret: []byte("0123456789abcdef0123456789abcdef"), Expires: time.Minute, Now: now}
	route := func(p string, sat int64) paywall.Route {
		return paywall.Route{Pattern: p, Accept: []paywall.Accept{{Rail: rail, Price: coinop.Price{Amount: big.NewInt(sat * 1000), Symbol: "sat", Decimals: 3}}}}
	}
	pw, err := paywall.New(paywall.Config{Journal: j, Routes: []paywall.Route{route("GET /a", 20), route("GET /b", 21)},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.failing.Load() {
			http.Error(w, "upstream down", http.StatusInternalServerError)
			return
		}
		n.upstream.Add(1)
		io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	return srv
}

func newNode(t *testing.T) *node {
	t.Helper()
	d, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &node{Node: d}
}

type answer struct {
	status int
	header http.Header
	reason string
	typ    string
	body   string
}

func get(t *testing.T, url, auth string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p struct{ Reason, Type string }
	json.Unmarshal(b, &p)
	return answer{resp.StatusCode, resp.Header, p.Reason, p.Type, string(b)}
}

// challenge is the lightning challenge of a 402 for url, and its request.
func challenge(t *testing.T, url string) (mpp.Challenge, *lightningcharge.Offer) {
	t.Helper()
	a := get(t, url, "")
	cs, err := mpp.ParseChallenges(a.header.Values("WWW-Authenticate"))
	if a.status != 402 || err != nil || len(cs) != 1 || cs[0].Method != "lightning" || cs[0].Intent != "charge" {
		t.Fatalf("402 %d, challenges %+v (%v)", a.status, cs, err)
	}
	o, err := lightningcharge.DecodeRequest(cs[0].Request)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0], o
}

func credential(t *testing.T, c mpp.Challenge, payload string) string {
	t.Helper()
	h, err := (&mpp.Credential{Challenge: c, Payload: json.RawMessage(payload)}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func pay(t *testing.T, n *node, o *lightningcharge.Offer) lightning.Preimage {
	t.Helper()
	p, err := n.PayInvoice(context.Background(), o.MethodDetails.Invoice, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.Preimage
}

// TestCharge: the 402's request carries a fresh invoice of the price; its
// preimage buys one response with a receipt naming the payment hash and
// the challenge; the same credential again is a replay.
func TestCharge(t *testing.T) {
	n := newNode(t)
	srv := gateway(t, n)
	c, o := challenge(t, srv.URL+"/a")
	if o.Amount != "20" || o.Currency != "sat" || o.Invoice.AmountMsat != 20_000 || o.Network != "regtest" ||
		o.MethodDetails.PaymentHash != fmt.Sprintf("%x", o.Invoice.Hash) {
		t.Fatalf("request %+v, invoice %d msat", o.Request, o.Invoice.AmountMsat)
	}
	if cc := get(t, srv.URL+"/a", "").header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("402 Cache-Control %q, want no-store", cc)
	}
	if c2, _ := challenge(t, srv.URL+"/a"); c2.Request == c.Request {
		t.Error("two challenges carry the same invoice")
	}
	pre := pay(t, n, o)
	cred := credential(t, c, string(lightningcharge.EncodePayload(pre)))
	a := get(t, srv.URL+"/a", cred)
	if a.status != 200 || a.body != "ok" {
		t.Fatalf("paid: %d %s", a.status, a.body)
	}
	rc, err := mpp.ParseReceipt(a.header.Get("Payment-Receipt"))
	if err != nil || rc.Method != "lightning" || rc.Status != "success" || rc.ChallengeID != c.ID || rc.Reference != o.MethodDetails.PaymentHash {
		t.Fatalf("receipt %+v (%v)", rc, err)
	}
	if strings.Contains(a.header.Get("Payment-Receipt"), pre.String()) {
		t.Error("the receipt carries the preimage")
	}
	if a := get(t, srv.URL+"/a", cred); a.status != 402 || a.reason != coinop.ReasonReplayed || len(a.header.Values("WWW-Authenticate")) != 1 {
		t.Errorf("replay: %d %s, %d challenges", a.status, a.reason, len(a.header.Values("WWW-Authenticate")))
	}
	if got := n.upstream.Load(); got != 1 {
		t.Errorf("upstream served %d times, want 1", got)
	}
}

// TestUpstreamFailure: a paid request whose upstream fails is not
// charged: the payment is released, and the same credential then buys the
// response it paid for, once.
func TestUpstreamFailure(t *testing.T) {
	n := newNode(t)
	srv := gateway(t, n)
	c, o := challenge(t, srv.URL+"/a")
	cred := credential(t, c, string(lightningcharge.EncodePayload(pay(t, n, o))))
	n.failing.Store(true)
	if a := get(t, srv.URL+"/a", cred); a.status < 500 || a.header.Get("Payment-Receipt") != "" {
		t.Fatalf("upstream failing: %d, receipt %q", a.status, a.header.Get("Payment-Receipt"))
	}
	n.failing.Store(false)
	if a := get(t, srv.URL+"/a", cred); a.status != 200 || a.header.Get("Payment-Receipt") == "" {
		t.Fatalf("the same credential after the failure: %d %s", a.status, a.body)
	}
	if a := get(t, srv.URL+"/a", cred); a.status != 402 || a.reason != coinop.ReasonReplayed {
		t.Errorf("a third time: %d %s", a.status, a.reason)
	}
	if n.upstream.Load() != 1 {
		t.Errorf("served %d times, want 1", n.upstream.Load())
	}
}

// TestRefusals: every way a credential fails gets its reason, and nothing
// is served.
func TestRefusals(t *testing.T) {
	n := newNode(t)
	srv := gateway(t, n)

	c, o := challenge(t, srv.URL+"/a")
	pre := pay(t, n, o)
	wrong := pre
	wrong[0] ^= 1
	upper := strings.ToUpper(pre.String())
	for _, tc := range []struct {
		name, url, payload string
		status             int
		reason, typ        string
	}{
		{"wrong preimage", "/a", string(lightningcharge.EncodePayload(wrong)), 402, lightningcharge.ReasonPreimage, lightningcharge.ProblemInvalidPreimage},
		{"upper-case hex", "/a", `{"preimage":"` + upper + `"}`, 402, lightningcharge.ReasonPayload, lightningcharge.ProblemMalformed},
		{"short preimage", "/a", `{"preimage":"` + pre.String()[:62] + `"}`, 402, lightningcharge.ReasonPayload, lightningcharge.ProblemMalformed},
		{"unknown member", "/a", `{"preimage":"` + pre.String() + `","x":1}`, 402, lightningcharge.ReasonPayload, lightningcharge.ProblemMalformed},
		{"not an object", "/a", `["` + pre.String() + `"]`, 402, lightningcharge.ReasonPayload, lightningcharge.ProblemMalformed},
		{"another route's price", "/b", string(lightningcharge.EncodePayload(pre)), 402, mpp.ReasonInvalidChallenge, lightningcharge.ProblemUnknownChallenge},
	} {
		a := get(t, srv.URL+tc.url, credential(t, c, tc.payload))
		if a.status != tc.status || a.reason != tc.reason || a.typ != tc.typ || len(a.header.Values("WWW-Authenticate")) != 1 {
			t.Errorf("%s: %d %s %s, want %d %s %s (%s)", tc.name, a.status, a.reason, a.typ, tc.status, tc.reason, tc.typ, a.body)
		}
	}

	// The challenge echoed with another challenge's request (another
	// invoice, whose preimage the payer holds) no longer binds its id.
	c4, o4 := challenge(t, srv.URL+"/a")
	pre4 := pay(t, n, o4)
	swapped := c
	swapped.Request = c4.Request
	if a := get(t, srv.URL+"/a", credential(t, swapped, string(lightningcharge.EncodePayload(pre4)))); a.status != 402 || a.reason != mpp.ReasonInvalidChallenge || a.typ != lightningcharge.ProblemUnknownChallenge {
		t.Errorf("swapped request: %d %s %s", a.status, a.reason, a.typ)
	}

	// A preimage of another challenge's invoice does not answer this one.
	c2, _ := challenge(t, srv.URL+"/a")
	if a := get(t, srv.URL+"/a", credential(t, c2, string(lightningcharge.EncodePayload(pre)))); a.status != 402 || a.reason != lightningcharge.ReasonPreimage {
		t.Errorf("preimage under another challenge: %d %s", a.status, a.reason)
	}

	// A held invoice: the node knows the preimage, but was not paid.
	c3, o3 := challenge(t, srv.URL+"/a")
	pre3 := pay(t, n, o3)
	n.held.Store(true)
	cred3 := credential(t, c3, string(lightningcharge.EncodePayload(pre3)))
	if a := get(t, srv.URL+"/a", cred3); a.status != 402 || a.reason != lightningcharge.ReasonNotSettled {
		t.Errorf("held invoice: %d %s", a.status, a.reason)
	}
	n.held.Store(false)

	// The node down: fail closed, then the same credential pays.
	n.down.Store(true)
	if a := get(t, srv.URL+"/a", cred3); a.status != 503 || a.header.Get("Retry-After") == "" || a.reason != lightningcharge.ReasonNodeUnavailable {
		t.Errorf("node down at verification: %d %s Retry-After %q", a.status, a.reason, a.header.Get("Retry-After"))
	}
	if a := get(t, srv.URL+"/a", ""); a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Errorf("node down at the challenge: %d %s Retry-After %q", a.status, a.reason, a.header.Get("Retry-After"))
	}
	n.down.Store(false)
	if n.upstream.Load() != 0 {
		t.Fatalf("upstream served %d refused requests", n.upstream.Load())
	}
	if a := get(t, srv.URL+"/a", cred3); a.status != 200 {
		t.Errorf("after the node is back: %d %s", a.status, a.body)
	}
}

// TestExpired: a credential presented after its challenge expired is
// refused with the draft's expired-invoice type when its invoice was not
// paid, and served when it was (paid in time: refusing it would keep the
// money).
func TestExpired(t *testing.T) {
	n := newNode(t)
	srv := gateway(t, n)
	c, _ := challenge(t, srv.URL+"/a")
	var guess lightning.Preimage
	copy(guess[:], "not the preimage")
	c2, o2 := challenge(t, srv.URL+"/a")
	paid := credential(t, c2, string(lightningcharge.EncodePayload(pay(t, n, o2))))
	n.later.Store(61)
	// An invoice nobody paid: only a forged preimage could answer it, and
	// that fails first; so the late, unpaid case is the held one.
	if a := get(t, srv.URL+"/a", credential(t, c, string(lightningcharge.EncodePayload(guess)))); a.status != 402 || a.reason != lightningcharge.ReasonPreimage {
		t.Errorf("late, wrong preimage: %d %s %s", a.status, a.reason, a.typ)
	}
	n.held.Store(true)
	if a := get(t, srv.URL+"/a", paid); a.status != 402 || a.reason != mpp.ReasonExpired || a.typ != lightningcharge.ProblemExpiredInvoice {
		t.Errorf("late, invoice not settled: %d %s %s", a.status, a.reason, a.typ)
	}
	if n.upstream.Load() != 0 {
		t.Errorf("served %d", n.upstream.Load())
	}
	n.held.Store(false)
	if a := get(t, srv.URL+"/a", paid); a.status != 200 {
		t.Errorf("late, invoice settled in time: %d %s", a.status, a.body)
	}
}

// TestUnpaid: a preimage the payer made up for an invoice nobody paid
// cannot exist; one for an invoice the node does not know is refused. The
// request's own preimage check runs before the node is asked.
func TestUnpaid(t *testing.T) {
	n := newNode(t)
	srv := gateway(t, n)
	c, o := challenge(t, srv.URL+"/a")
	var guess lightning.Preimage
	if sha256.Sum256(guess[:]) == o.Invoice.Hash {
		t.Fatal("the zero preimage pays the invoice")
	}
	if a := get(t, srv.URL+"/a", credential(t, c, string(lightningcharge.EncodePayload(guess)))); a.status != 402 || a.reason != lightningcharge.ReasonPreimage {
		t.Errorf("unpaid: %d %s", a.status, a.reason)
	}
}

// TestConcurrent: one credential sent 50 times at once is served once.
func TestConcurrent(t *testing.T) {
	n := newNode(t)
	srv := gateway(t, n)
	c, o := challenge(t, srv.URL+"/a")
	cred := credential(t, c, string(lightningcharge.EncodePayload(pay(t, n, o))))
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", srv.URL+"/a", nil)
			req.Header.Set("Authorization", cred)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || n.upstream.Load() != 1 {
		t.Errorf("%d answers 200, upstream served %d; want 1, 1", ok.Load(), n.upstream.Load())
	}
}

// TestDecodeRequest: a request whose convenience fields disagree with its
// invoice is refused, as a client must.
func TestDecodeRequest(t *testing.T) {
	d, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := &lightningcharge.Method{Node: d, Network: "regtest"}
	req, err := m.Issue(context.Background(), coinop.Charge{Price: coinop.Price{Amount: big.NewInt(5000)}})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(f func(r map[string]any)) string {
		b, _ := json.Marshal(req)
		var r map[string]any
		json.Unmarshal(b, &r)
		f(r)
		s, err := mpp.EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := lightningcharge.DecodeRequest(enc(func(map[string]any) {})); err != nil {
		t.Fatalf("the issued request: %v", err)
	}
	details := func(r map[string]any) map[string]any { return r["methodDetails"].(map[string]any) }
	for name, f := range map[string]func(r map[string]any){
		"amount":       func(r map[string]any) { r["amount"] = "6" },
		"amount form":  func(r map[string]any) { r["amount"] = "05" },
		"currency":     func(r map[string]any) { r["currency"] = "msat" },
		"payment hash": func(r map[string]any) { details(r)["paymentHash"] = strings.Repeat("0", 64) },
		"network":      func(r map[string]any) { details(r)["network"] = "mainnet" },
		"no network":   func(r map[string]any) { delete(details(r), "network") }, // mainnet by default
		"invoice":      func(r map[string]any) { details(r)["invoice"] = "lnbcrt1" },
	} {
		if _, err := lightningcharge.DecodeRequest(enc(f)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := m.Issue(context.Background(), coinop.Charge{Price: coinop.Price{Amount: big.NewInt(5500)}}); err == nil {
		t.Error("a price of 5.5 sat was issued as a request in whole sats")
	}
}

// TestReconcile: a payment verified but never settled is released; one
// settling is settled while the node shows its invoice SETTLED.
func TestReconcile(t *testing.T) {
	n := newNode(t)
	m := &lightningcharge.Method{Node: n, Network: "regtest"}
	ctx := context.Background()
	inv, err := n.AddInvoice(ctx, lightning.InvoiceRequest{AmountMsat: 1000})
	if err != nil {
		t.Fatal(err)
	}
	p := &coinop.Payment{ID: "x", ReplayKey: inv.Hash.String(), State: coinop.StateVerified}
	if out, err := m.Reconcile(ctx, p); err != nil || out.State != coinop.StateReleased {
		t.Errorf("verified: %+v %v", out, err)
	}
	p.State = coinop.StateSettling
	if out, err := m.Reconcile(ctx, p); err != nil || out.State != coinop.StateFailed {
		t.Errorf("settling, invoice open: %+v %v", out, err)
	}
	if _, err := n.PayInvoice(ctx, inv.PaymentRequest, 0); err != nil {
		t.Fatal(err)
	}
	if out, err := m.Reconcile(ctx, p); err != nil || out.State != coinop.StateSettled || out.Reference != inv.Hash.String() {
		t.Errorf("settling, invoice settled: %+v %v", out, err)
	}
	n.down.Store(true)
	if _, err := m.Reconcile(ctx, p); err == nil {
		t.Error("node down: reconciled anyway")
	}
}
