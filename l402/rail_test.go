package l402_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/macaroon.v2"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// price is 100 sat, in msat at 3 decimals.
var price = coinop.Price{Amount: big.NewInt(100_000), Symbol: "sat", Decimals: 3}

// node is the development node with switches a test flips: down (every
// call fails as an unreachable node does) and held (invoices report
// ACCEPTED, not SETTLED: a preimage without the money).
type node struct {
	*devnode.Node
	down, held atomic.Bool
	adds       atomic.Int64
}

func (n *node) AddInvoice(ctx context.Context, req lightning.InvoiceRequest) (*lightning.Invoice, error) {
	if n.down.Load() {
		return nil, lightning.ErrUnavailable
	}
	n.adds.Add(1)
	return n.Node.AddInvoice(ctx, req)
}

func (n *node) LookupInvoice(ctx context.Context, h lightning.Hash) (*lightning.Invoice, error) {
	if n.down.Load() {
		return nil, lightning.ErrUnavailable
	}
	inv, err := n.Node.LookupInvoice(ctx, h)
	if err == nil && n.held.Load() {
		inv.State, inv.PaidMsat = lightning.InvoiceAccepted, 0
	}
	return inv, err
}

type rig struct {
	srv   *httptest.Server
	node  *node
	j     journal
	now   atomic.Int64 // unix seconds
	calls atomic.Int64 // upstream calls
	fail  atomic.Bool  // the upstream answers 502
}

// journal is what the tests need of a journal: the engine's, the rail's
// store, and a listing.
type journal interface {
	paywall.Journal
	l402.Store
	List(ctx context.Context, state coinop.State, limit int) ([]*coinop.Payment, error)
	Close() error
}

// openJournal opens a fresh journal: SQLite, or PostgreSQL on $PG_DSN in
// a schema of its own while TestPostgres runs (postgres_test.go).
var openJournal = func(t *testing.T) journal {
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func newRig(t *testing.T, pass time.Duration) *rig {
	t.Helper()
	dn, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rg := &rig{node: &node{Node: dn}}
	rg.now.Store(time.Now().Unix())
	clock := func() time.Time { return time.Unix(rg.now.Load(), 0) }
	rg.j = openJournal(t)
	t.Cleanup(func() { rg.j.Close() })
	rail, err := l402.New(t.Context(), l402.Config{Name: "sats", Node: rg.node, Store: rg.j, Network: "regtest", Pass: pass, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := paywall.New(paywall.Config{Journal: rg.j, Routes: []paywall.Route{
		{Pattern: "GET /weather", Accept: []paywall.Accept{{Rail: rail, Price: price}}},
		{Pattern: "GET /report", Accept: []paywall.Accept{{Rail: rail, Price: price}}},
		{Pattern: "GET /fail", Accept: []paywall.Accept{{Rail: rail, Price: price}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rg.srv = httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rg.calls.Add(1)
		if r.URL.Path == "/fail" || rg.fail.Load() {
			http.Error(w, "upstream broke", http.StatusBadGateway)
			return
		}
		io.WriteString(w, "sunny")
	})))
	t.Cleanup(rg.srv.Close)
	return rg
}

type problem struct {
	Reason string `json:"reason"`
	Offers []struct {
		Rail  string         `json:"rail"`
		Terms map[string]any `json:"terms"`
	} `json:"offers"`
}

func (rg *rig) get(t *testing.T, path string, auth ...string) (*http.Response, problem) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, rg.srv.URL+path, nil)
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p problem
	if resp.StatusCode != http.StatusOK {
		json.Unmarshal(b, &p)
	}
	return resp, p
}

// challenge asks path for a 402 and returns the L402 challenge in it.
func (rg *rig) challenge(t *testing.T, path string) l402.Challenge {
	t.Helper()
	resp, p := rg.get(t, path)
	if resp.StatusCode != http.StatusPaymentRequired || p.Reason != coinop.ReasonPaymentRequired {
		t.Fatalf("GET %s: %d %s, want 402 payment_required", path, resp.StatusCode, p.Reason)
	}
	chs := l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if len(chs) != 2 || chs[0].Scheme != "L402" || chs[0].Version != "0" || chs[1].Scheme != "LSAT" {
		t.Fatalf("challenges %+v in %q, want L402 version 0 then LSAT", chs, resp.Header.Values("WWW-Authenticate"))
	}
	if string(chs[0].Token) != string(chs[1].Token) || chs[0].Invoice != chs[1].Invoice {
		t.Fatal("the L402 and LSAT challenges differ")
	}
	if len(p.Offers) != 1 || p.Offers[0].Terms["invoice"] != chs[0].Invoice {
		t.Errorf("offers %+v do not carry the invoice", p.Offers)
	}
	return chs[0]
}

func (rg *rig) pay(t *testing.T, ch l402.Challenge) lightning.Preimage {
	t.Helper()
	p, err := rg.node.PayInvoice(t.Context(), ch.Invoice, 0)
	if err != nil {
		t.Fatalf("pay: %v", err)
	}
	return p.Preimage
}

func TestPerRequest(t *testing.T) {
	rg := newRig(t, 0)
	ch := rg.challenge(t, "/weather")
	pre := rg.pay(t, ch)
	auth := l402.FormatAuthorization([][]byte{ch.Token}, pre)
	if resp, p := rg.get(t, "/weather", auth); resp.StatusCode != http.StatusOK {
		t.Fatalf("paid request: %d %s", resp.StatusCode, p.Reason)
	}
	ps, err := rg.j.List(t.Context(), coinop.StateSettled, 10)
	if err != nil || len(ps) != 1 {
		t.Fatalf("journal: %v, %v; want one settled payment", ps, err)
	}
	if p := ps[0]; p.Amount.Cmp(price.Amount) != 0 || p.Rail != "sats" || p.Network != "lightning:regtest" || strings.Contains(p.Payload, pre.String()) {
		t.Errorf("journaled %+v: want 100000 msat on lightning:regtest, without the preimage", p)
	}
	// Per request: the token paid for one request.
	if resp, p := rg.get(t, "/weather", auth); resp.StatusCode != http.StatusPaymentRequired || p.Reason != coinop.ReasonReplayed {
		t.Errorf("second use: %d %s, want 402 %s", resp.StatusCode, p.Reason, coinop.ReasonReplayed)
	}
	if n := rg.calls.Load(); n != 1 {
		t.Errorf("upstream called %d times, want 1", n)
	}
}

func TestAccepts(t *testing.T) {
	rg := newRig(t, 0)
	for _, tt := range []struct {
		name string
		auth func(tok []byte, pre lightning.Preimage) []string
	}{
		{"lower-case scheme, upper-case hex", func(tok []byte, pre lightning.Preimage) []string {
			return []string{"l402 " + base64.StdEncoding.EncodeToString(tok) + ":" + strings.ToUpper(pre.String())}
		}},
		{"LSAT scheme, unpadded base64, two spaces", func(tok []byte, pre lightning.Preimage) []string {
			return []string{"LSAT  " + base64.RawStdEncoding.EncodeToString(tok) + ":" + pre.String()}
		}},
		{"the same credential twice, LSAT and L402", func(tok []byte, pre lightning.Preimage) []string {
			a := l402.FormatAuthorization([][]byte{tok}, pre)
			return []string{"LSAT" + strings.TrimPrefix(a, "L402"), a}
		}},
		{"two macaroons of one payment", func(tok []byte, pre lightning.Preimage) []string {
			return []string{l402.FormatAuthorization([][]byte{tok, tok}, pre)}
		}},
		{"a Bearer header beside it", func(tok []byte, pre lightning.Preimage) []string {
			return []string{"Bearer abc", l402.FormatAuthorization([][]byte{tok}, pre)}
		}},
		{"an attenuated token (a caveat added by the holder)", func(tok []byte, pre lightning.Preimage) []string {
			var m macaroon.Macaroon
			m.UnmarshalBinary(tok)
			m.AddFirstPartyCaveat([]byte("other_service_tier=gold"))
			b, _ := m.MarshalBinary()
			return []string{l402.FormatAuthorization([][]byte{b}, pre)}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ch := rg.challenge(t, "/weather")
			pre := rg.pay(t, ch)
			if resp, p := rg.get(t, "/weather", tt.auth(ch.Token, pre)...); resp.StatusCode != http.StatusOK {
				t.Errorf("%d %s, want 200", resp.StatusCode, p.Reason)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	rg := newRig(t, 0)
	paid := rg.challenge(t, "/weather")
	pre := rg.pay(t, paid)
	other := rg.challenge(t, "/weather")
	otherPre := rg.pay(t, other)
	tamper := func(f func(m *macaroon.Macaroon) *macaroon.Macaroon) []byte {
		var m macaroon.Macaroon
		if err := m.UnmarshalBinary(paid.Token); err != nil {
			t.Fatal(err)
		}
		b, _ := f(&m).MarshalBinary()
		return b
	}
	auth := func(tok []byte, p lightning.Preimage) string { return l402.FormatAuthorization([][]byte{tok}, p) }
	for _, tt := range []struct {
		name   string
		path   string
		auth   []string
		status int
		reason string
	}{
		{"no preimage", "/weather", []string{"L402 " + base64.StdEncoding.EncodeToString(paid.Token)}, 400, l402.ReasonMalformed},
		{"short preimage", "/weather", []string{"L402 " + base64.StdEncoding.EncodeToString(paid.Token) + ":abcd"}, 400, l402.ReasonMalformed},
		{"non-hex preimage", "/weather", []string{"L402 " + base64.StdEncoding.EncodeToString(paid.Token) + ":" + strings.Repeat("zz", 32)}, 400, l402.ReasonMalformed},
		{"not base64", "/weather", []string{"L402 !!!:" + pre.String()}, 400, l402.ReasonMalformed},
		{"not a macaroon", "/weather", []string{auth([]byte("hello macaroon"), pre)}, 400, l402.ReasonBadMacaroon},
		{"two different credentials", "/weather", []string{auth(paid.Token, pre), auth(other.Token, otherPre)}, 400, l402.ReasonAmbiguous},
		{"wrong preimage", "/weather", []string{auth(paid.Token, otherPre)}, 402, l402.ReasonPreimageMismatch},
		{"macaroons of two payments", "/weather", []string{l402.FormatAuthorization([][]byte{paid.Token, other.Token}, pre)}, 402, l402.ReasonTokensDisagree},
		{"another route", "/report", []string{auth(paid.Token, pre)}, 402, l402.ReasonWrongRoute},
		{"forged signature", "/weather", []string{auth(tamper(func(m *macaroon.Macaroon) *macaroon.Macaroon {
			sig := m.Signature()
			sig[0] ^= 1
			n, _ := macaroon.New([]byte("k"), m.Id(), m.Location(), macaroon.V2)
			for _, c := range m.Caveats() {
				n.AddFirstPartyCaveat(c.Id)
			}
			n.Bind(sig)
			return n
		}), pre)}, 402, l402.ReasonBadSignature},
		{"expired by attenuation", "/weather", []string{auth(tamper(func(m *macaroon.Macaroon) *macaroon.Macaroon {
			m.AddFirstPartyCaveat([]byte("sats_valid_until=1"))
			return m
		}), pre)}, 402, l402.ReasonExpired},
		{"another service only", "/weather", []string{auth(tamper(func(m *macaroon.Macaroon) *macaroon.Macaroon {
			m.AddFirstPartyCaveat([]byte("services=other:0"))
			return m
		}), pre)}, 402, l402.ReasonWrongService},
		{"a caveat without =", "/weather", []string{auth(tamper(func(m *macaroon.Macaroon) *macaroon.Macaroon {
			m.AddFirstPartyCaveat([]byte("garbage"))
			return m
		}), pre)}, 402, l402.ReasonBadCaveat},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, p := rg.get(t, tt.path, tt.auth...)
			if resp.StatusCode != tt.status || p.Reason != tt.reason {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, p.Reason, tt.status, tt.reason)
			}
			if tt.status == 402 && len(l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))) == 0 {
				t.Error("a refusal without a fresh challenge")
			}
		})
	}
	if n := rg.calls.Load(); n != 0 {
		t.Errorf("upstream called %d times by refused requests", n)
	}
	// The paid token, refused above in every form, still pays once.
	if resp, p := rg.get(t, "/weather", auth(paid.Token, pre)); resp.StatusCode != http.StatusOK {
		t.Errorf("the paid token after the refusals: %d %s", resp.StatusCode, p.Reason)
	}
}

func TestNodeStates(t *testing.T) {
	rg := newRig(t, 0)
	ch := rg.challenge(t, "/weather")
	pre := rg.pay(t, ch)
	auth := l402.FormatAuthorization([][]byte{ch.Token}, pre)

	rg.node.held.Store(true)
	if resp, p := rg.get(t, "/weather", auth); resp.StatusCode != 402 || p.Reason != l402.ReasonInvoiceNotSettled {
		t.Errorf("held invoice: %d %s, want 402 %s", resp.StatusCode, p.Reason, l402.ReasonInvoiceNotSettled)
	}
	rg.node.held.Store(false)

	rg.node.down.Store(true)
	resp, p := rg.get(t, "/weather", auth)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("node down, paid token: %d %s (Retry-After %q), want 503 with Retry-After", resp.StatusCode, p.Reason, resp.Header.Get("Retry-After"))
	}
	if resp, p := rg.get(t, "/weather"); resp.StatusCode != 503 || p.Reason != coinop.ReasonNoOffer {
		t.Errorf("node down, no token: %d %s, want 503 %s", resp.StatusCode, p.Reason, coinop.ReasonNoOffer)
	}
	rg.node.down.Store(false)

	// Nothing was charged on the way: the token still pays.
	if resp, p := rg.get(t, "/weather", auth); resp.StatusCode != 200 {
		t.Errorf("after the node came back: %d %s", resp.StatusCode, p.Reason)
	}

	// Unpaid invoice: the preimage is not known; an expired token is refused by its caveat.
	ch = rg.challenge(t, "/weather")
	pre = rg.pay(t, ch)
	rg.now.Add(int64(2 * time.Hour / time.Second))
	if resp, p := rg.get(t, "/weather", l402.FormatAuthorization([][]byte{ch.Token}, pre)); resp.StatusCode != 402 || p.Reason != l402.ReasonExpired {
		t.Errorf("token past its TTL: %d %s, want 402 %s", resp.StatusCode, p.Reason, l402.ReasonExpired)
	}
}

func TestUpstreamFailureChargesNothing(t *testing.T) {
	rg := newRig(t, 0)
	ch := rg.challenge(t, "/fail")
	pre := rg.pay(t, ch)
	auth := l402.FormatAuthorization([][]byte{ch.Token}, pre)
	for i := 0; i < 2; i++ { // released, so the same token may try again
		if resp, _ := rg.get(t, "/fail", auth); resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("try %d: %d, want the upstream's 502", i, resp.StatusCode)
		}
	}
	if ps, _ := rg.j.List(t.Context(), coinop.StateSettled, 10); len(ps) != 0 {
		t.Errorf("settled %d payments for failed responses", len(ps))
	}
}

func TestConcurrentDuplicates(t *testing.T) {
	rg := newRig(t, 0)
	ch := rg.challenge(t, "/weather")
	auth := l402.FormatAuthorization([][]byte{ch.Token}, rg.pay(t, ch))
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, _ := rg.get(t, "/weather", auth); resp.StatusCode == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || rg.calls.Load() != 1 {
		t.Errorf("%d requests served, upstream called %d times; want 1 and 1", ok.Load(), rg.calls.Load())
	}
}

func TestPass(t *testing.T) {
	rg := newRig(t, time.Hour)
	ch := rg.challenge(t, "/weather")
	auth := l402.FormatAuthorization([][]byte{ch.Token}, rg.pay(t, ch))
	var adds int64
	// Its first use fails upstream: released, nothing journaled, and the
	// pass is not collected yet.
	rg.fail.Store(true)
	if resp, _ := rg.get(t, "/weather", auth); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("failing upstream: %d", resp.StatusCode)
	}
	rg.fail.Store(false)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, p := rg.get(t, "/weather", auth)
			for try := 0; try < 5 && resp.StatusCode == 503 && p.Reason == l402.ReasonPassCollected; try++ {
				resp, p = rg.get(t, "/weather", auth) // lost the race to collect: again, at no charge
			}
			if resp.StatusCode != 200 {
				t.Errorf("pass use: %d %s", resp.StatusCode, p.Reason)
			}
		}()
	}
	wg.Wait()
	// Once collected, the pass is reused with no new invoice.
	adds = rg.node.adds.Load()
	for i := 0; i < 3; i++ {
		if resp, p := rg.get(t, "/weather", auth); resp.StatusCode != 200 {
			t.Errorf("pass use: %d %s", resp.StatusCode, p.Reason)
		}
	}
	if n := rg.node.adds.Load(); n != adds {
		t.Errorf("%d more invoices while a pass was used", n-adds)
	}
	ps, err := rg.j.List(t.Context(), coinop.StateSettled, 100)
	if err != nil || len(ps) != 11 {
		t.Fatalf("journal: %d settled, %v; want 11", len(ps), err)
	}
	total := new(big.Int)
	for _, p := range ps {
		total.Add(total, p.Amount)
	}
	if total.Cmp(price.Amount) != 0 {
		t.Errorf("the pass's uses journal %s msat in all, want its price %s once", total, price.Amount)
	}
	rg.now.Add(int64(2 * time.Hour / time.Second))
	if resp, p := rg.get(t, "/weather", auth); resp.StatusCode != 402 || p.Reason != l402.ReasonExpired {
		t.Errorf("pass after its hour: %d %s, want 402 %s", resp.StatusCode, p.Reason, l402.ReasonExpired)
	}
	if resp, p := rg.get(t, "/report", auth); resp.StatusCode != 402 || p.Reason != l402.ReasonWrongRoute && p.Reason != l402.ReasonExpired {
		t.Errorf("pass on another route: %d %s", resp.StatusCode, p.Reason)
	}
}

func TestReconcile(t *testing.T) {
	rg := newRig(t, 0)
	rail, err := l402.New(t.Context(), l402.Config{Name: "sats", Node: rg.node, Store: rg.j, Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	paid, _ := rg.node.AddInvoice(t.Context(), lightning.InvoiceRequest{AmountMsat: 1000})
	rg.node.PayInvoice(t.Context(), paid.PaymentRequest, 0)
	unpaid, _ := rg.node.AddInvoice(t.Context(), lightning.InvoiceRequest{AmountMsat: 1000})
	for _, tt := range []struct {
		name  string
		p     coinop.Payment
		state coinop.State
	}{
		{"verified, never served", coinop.Payment{State: coinop.StateVerified}, coinop.StateReleased},
		{"settling, invoice settled", coinop.Payment{State: coinop.StateSettling, Details: map[string]string{"payment_hash": paid.Hash.String()}}, coinop.StateSettled},
		{"settling, invoice open", coinop.Payment{State: coinop.StateSettling, Details: map[string]string{"payment_hash": unpaid.Hash.String()}}, coinop.StateFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := rail.Reconcile(t.Context(), &tt.p)
			if err != nil || out.State != tt.state {
				t.Errorf("%+v, %v; want %s", out, err, tt.state)
			}
		})
	}
	rg.node.down.Store(true)
	if _, err := rail.Reconcile(t.Context(), &coinop.Payment{State: coinop.StateSettling, Details: map[string]string{"payment_hash": paid.Hash.String()}}); err == nil {
		t.Error("node down: an outcome, want an error (decided later)")
	}
}

// TestNodeOnAnotherNetwork: a node whose invoices are for another network
// than the rail's gets no offer made: nobody could pay it.
func TestNodeOnAnotherNetwork(t *testing.T) {
	dn, err := devnode.New(devnode.Config{Network: "bc"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	rail, err := l402.New(t.Context(), l402.Config{Name: "sats", Node: dn, Store: j, Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	c := &coinop.Challenge{Header: http.Header{}}
	err = rail.Challenge(t.Context(), c, coinop.Charge{Price: price, Route: "GET /x", Resource: coinop.Resource{Method: "GET"}})
	if coinop.KindOf(err) != coinop.KindUnavailable || len(c.Header.Values("WWW-Authenticate")) != 0 {
		t.Errorf("Challenge: %v, headers %v; want unavailable and no challenge", err, c.Header)
	}
	if _, err := l402.New(t.Context(), l402.Config{Name: "x", Node: dn, Store: j, Network: "litecoin"}); err == nil {
		t.Error("New accepted network litecoin")
	}
}
