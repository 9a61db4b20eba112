package paywall_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
)

// The engine's lifecycle for a single-use credential, against the fake rail
// and a real journal: what the client gets, what the rail was asked, what
// the journal says.
func TestSingleUse(t *testing.T) {
	type journaled struct {
		state  coinop.State // "" when nothing may be journaled
		reason string
		served bool
		ref    bool // a settlement reference is journaled
	}
	for _, c := range []struct {
		name    string
		rail    func(r *fakeRail)
		handler http.HandlerFunc // nil: goods
		header  http.Header      // nil: a fresh credential
		status  int              // 0: the connection broke
		reason  string           // the problem's reason, "" for none
		goods   bool             // the handler's body reached the client
		settles int32
		journal journaled
	}{
		{name: "paid", status: 200, goods: true, settles: 1,
			journal: journaled{state: coinop.StateSettled, served: true, ref: true}},
		{name: "no credential", header: http.Header{}, status: 402, reason: coinop.ReasonPaymentRequired},
		{name: "malformed credential", header: pay("fake;only-two"), status: 400, reason: "fake_malformed"},
		{name: "verify rejects", rail: func(r *fakeRail) {
			r.verifyErr = coinop.Errorf(coinop.KindRejected, "fake_bad_signature", "the signature does not verify")
		}, status: 402, reason: "fake_bad_signature"},
		{name: "verify unavailable", rail: func(r *fakeRail) {
			r.verifyErr = coinop.Errorf(coinop.KindUnavailable, "fake_rpc_down", "the network cannot be asked")
		}, status: 503, reason: "fake_rpc_down"},
		{name: "upstream 404", handler: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
			status: 404, journal: journaled{state: coinop.StateReleased, reason: coinop.ReasonUpstreamStatus(404)}},
		{name: "upstream 500", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "broken", http.StatusInternalServerError)
		}, status: 500, journal: journaled{state: coinop.StateReleased, reason: coinop.ReasonUpstreamStatus(500)}},
		{name: "handler panics", handler: func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) },
			status: 0, journal: journaled{state: coinop.StateReleased, reason: coinop.ReasonHandlerPanic}},
		{name: "settlement refused", rail: func(r *fakeRail) { r.outcome = settleRefused },
			status: 402, reason: "fake_settle_refused", settles: 1,
			journal: journaled{state: coinop.StateFailed, reason: "fake_settle_refused"}},
		{name: "network unavailable at settlement", rail: func(r *fakeRail) { r.outcome = settleUnavailable },
			status: 503, reason: "fake_network_down", settles: 1,
			journal: journaled{state: coinop.StateFailed, reason: "fake_network_down"}},
		{name: "settlement pending", rail: func(r *fakeRail) { r.outcome = settlePending },
			status: 200, goods: true, settles: 1,
			journal: journaled{state: coinop.StateSettling, served: true, ref: true}},
		{name: "settlement not sent", rail: func(r *fakeRail) { r.outcome = settleNotSent },
			status: 503, reason: coinop.ReasonSettlementNotSent, settles: 1,
			journal: journaled{state: coinop.StateSettling, ref: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rail := newFakeRail("fake")
			if c.rail != nil {
				rail.set(c.rail)
			}
			var h http.Handler = &goods{}
			if c.handler != nil {
				h = c.handler
			}
			e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("/paid/", rail, 5)}}, h)
			header := c.header
			if header == nil {
				header = pay(fakeCred("fake", "alice", "n1"))
			}
			a := e.do(t, "GET", "/paid/x", header)
			if a.status != c.status || a.problem.Reason != c.reason {
				t.Fatalf("got %d %q, want %d %q\n%s", a.status, a.problem.Reason, c.status, c.reason, a.body)
			}
			if got := a.body == "goods"; got != c.goods {
				t.Errorf("goods served: %v, want %v (%q)", got, c.goods, a.body)
			}
			if !c.goods && a.header.Get("X-Upstream") != "" {
				t.Error("a withheld response leaked the handler's headers")
			}
			if c.status == 503 && a.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if n := rail.settles.Load(); n != c.settles {
				t.Errorf("Settle called %d times, want %d", n, c.settles)
			}
			if c.journal.served {
				// The mark follows the response out: wait for it.
				e.steps.wait(t, "served", "fake:alice:n1")
			}
			p := e.payment(t, "fake:alice:n1")
			if c.journal.state == "" {
				if p != nil {
					t.Fatalf("journaled %s although nothing was reserved", p.State)
				}
				return
			}
			if p == nil {
				t.Fatal("nothing journaled")
			}
			if p.State != c.journal.state || p.Reason != c.journal.reason || !p.Served.IsZero() != c.journal.served || (p.Reference != "") != c.journal.ref {
				t.Errorf("journaled %s %q served=%v ref=%q, want %+v", p.State, p.Reason, !p.Served.IsZero(), p.Reference, c.journal)
			}
			if p.Rail != "fake" || p.Amount.Int64() != 5 || p.Payload == "" {
				t.Errorf("journaled rail %q amount %v payload %q", p.Rail, p.Amount, p.Payload)
			}
		})
	}
}

// A 402 says, in headers, JSON and HTML alike, how to pay on every rail.
func TestChallenge(t *testing.T) {
	rail := newFakeRail("fake")
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("GET /paid/", rail, 5)}}, &goods{})
	for _, c := range []struct {
		name, accept, contentType string
		has                       []string // substrings of the body
	}{
		{"json", "application/json", "application/problem+json", []string{`"rail": "fake"`, `"reason": "payment_required"`}},
		{"no accept", "", "application/problem+json", []string{`"amount": "5"`}},
		{"browser", "text/html,application/xhtml+xml,*/*;q=0.8", "text/html", []string{"5 FAKE on fake-net", "5 FAKE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.accept != "" {
				h.Set("Accept", c.accept)
			}
			a := e.do(t, "GET", "/paid/x", h)
			if a.status != 402 || !strings.HasPrefix(a.header.Get("Content-Type"), c.contentType) {
				t.Fatalf("got %d %s, want 402 %s", a.status, a.header.Get("Content-Type"), c.contentType)
			}
			for _, s := range c.has {
				if !strings.Contains(a.body, s) {
					t.Errorf("the body lacks %q:\n%s", s, a.body)
				}
			}
			if got := a.header.Get(fakeOfferHeader); got != "fake=5" {
				t.Errorf("%s = %q, want the rail's challenge header", fakeOfferHeader, got)
			}
			if !strings.Contains(a.header.Get("Access-Control-Expose-Headers"), fakeReceiptHeader) {
				t.Errorf("the rail's receipt header is not exposed: %q", a.header.Get("Access-Control-Expose-Headers"))
			}
			if a.header.Get("Cache-Control") != "no-store" {
				t.Error("a challenge may be cached")
			}
		})
	}
	if rail.inspects.Load() == 0 || rail.verifies.Load() != 0 || rail.settles.Load() != 0 {
		t.Errorf("inspect %d, verify %d, settle %d: a request without credential went past Inspect",
			rail.inspects.Load(), rail.verifies.Load(), rail.settles.Load())
	}
}

// A served payment presented again is a replay, whatever request it comes
// with; a settled one whose response was lost is served again, once,
// without a new charge.
func TestReplay(t *testing.T) {
	rail := newFakeRail("fake")
	g := &goods{}
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("/paid/", rail, 5)}}, g)
	cred := pay(fakeCred("fake", "alice", "n1"))
	if a := e.do(t, "GET", "/paid/x", cred); a.status != 200 {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	for _, c := range []struct{ name, method, path string }{
		{"same request", "GET", "/paid/x"},
		{"other resource", "GET", "/paid/y"},
		{"other method", "POST", "/paid/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := e.do(t, c.method, c.path, cred)
			if a.status != 402 || a.problem.Reason != coinop.ReasonReplayed {
				t.Fatalf("got %d %q, want 402 %s", a.status, a.problem.Reason, coinop.ReasonReplayed)
			}
			if len(a.problem.Offers) != 1 {
				t.Errorf("a replay's 402 offers %d ways to pay, want the rail's one", len(a.problem.Offers))
			}
		})
	}
	if g.calls.Load() != 1 || rail.settles.Load() != 1 {
		t.Errorf("handler %d, settle %d: want one of each", g.calls.Load(), rail.settles.Load())
	}

	t.Run("settled, response lost", func(t *testing.T) {
		// The settlement went through; the client never got the response
		// (the served mark is missing). Its retry is served without a charge.
		p := &coinop.Payment{ID: "fake:bob:n2", Rail: "fake", Network: "fake-net", Asset: "fake-coin", Payer: "bob",
			PayTo: "seller", ReplayKey: "n2", Amount: fakePrice(5).Amount, Resource: e.srv.URL + "/paid/x", Payload: fakeCred("fake", "bob", "n2")}
		ctx := context.Background()
		if err := e.j.Reserve(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := e.j.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
			t.Fatal(err)
		}
		if err := e.j.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettled, "fake-ref:"+p.ID, ""); err != nil {
			t.Fatal(err)
		}
		settles := rail.settles.Load()
		if a := e.do(t, "GET", "/paid/x", pay(p.Payload)); a.status != 200 || a.body != "goods" {
			t.Fatalf("retry: %d %s", a.status, a.body)
		}
		if a := e.do(t, "GET", "/paid/x", pay(p.Payload)); a.status != 402 || a.problem.Reason != coinop.ReasonReplayed {
			t.Fatalf("second retry: %d %q, want a replay", a.status, a.problem.Reason)
		}
		if rail.settles.Load() != settles || rail.reverifies.Load() == 0 {
			t.Errorf("settled again (%d → %d) or served without Reverify (%d)", settles, rail.settles.Load(), rail.reverifies.Load())
		}
	})
}

// Many copies of one credential at once are served once and charged once.
func TestConcurrentDuplicates(t *testing.T) {
	rail := newFakeRail("fake")
	g := &goods{}
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("/paid/", rail, 5)}}, g)
	const n = 8
	statuses := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do(t, "GET", "/paid/x", pay(fakeCred("fake", "alice", "dup")))
		}()
	}
	wg.Wait()
	served := 0
	for _, a := range statuses {
		switch {
		case a.status == 200:
			served++
		case a.status == 402 && a.problem.Reason == coinop.ReasonReplayed,
			a.status == 409 && a.problem.Reason == coinop.ReasonInFlight:
		default:
			t.Errorf("a duplicate got %d %q", a.status, a.problem.Reason)
		}
	}
	if served != 1 || g.calls.Load() != 1 || rail.settles.Load() != 1 {
		t.Errorf("served %d, handler %d, settle %d: want one of each", served, g.calls.Load(), rail.settles.Load())
	}
}

// Every way a handler writes its response goes through the commit point:
// the payment settles before the first byte, status line or connection
// leaves, and a refused settlement replaces the whole response.
func TestWriterPaths(t *testing.T) {
	for _, c := range []struct {
		name    string
		method  string
		outcome settleOutcome
		handler func(rail *fakeRail, seen *[]string) http.HandlerFunc
		status  int
		body    string
		seen    string // what the handler observed, in order
	}{
		{name: "flush before writing", outcome: settleOK, status: 200, body: "goods", seen: "flushed after 1 settlements",
			handler: func(rail *fakeRail, seen *[]string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					http.NewResponseController(w).Flush()
					*seen = append(*seen, fmt.Sprintf("flushed after %d settlements", rail.settles.Load()))
					io.WriteString(w, "goods")
				}
			}},
		{name: "flush after writing", outcome: settleOK, status: 200, body: "goods", seen: "wrote after 1 settlements",
			handler: func(rail *fakeRail, seen *[]string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					io.WriteString(w, "goods")
					*seen = append(*seen, fmt.Sprintf("wrote after %d settlements", rail.settles.Load()))
					http.NewResponseController(w).Flush()
				}
			}},
		{name: "informational first", outcome: settleOK, status: 200, body: "goods", seen: "103 dropped",
			handler: func(rail *fakeRail, seen *[]string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Link", "</paid/app.js>; rel=preload")
					w.WriteHeader(http.StatusEarlyHints)
					if rail.settles.Load() == 0 {
						*seen = append(*seen, "103 dropped")
					}
					io.WriteString(w, "goods")
				}
			}},
		{name: "response replaced", outcome: settleRefused, status: 402, body: "fake_settle_refused", seen: "write refused",
			handler: func(rail *fakeRail, seen *[]string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Set-Cookie", "session=upstream")
					w.WriteHeader(http.StatusCreated)
					if _, err := io.WriteString(w, "goods"); err != nil {
						*seen = append(*seen, "write refused")
					}
					http.NewResponseController(w).Flush()
				}
			}},
		{name: "head", method: "HEAD", outcome: settleOK, status: 200, body: "", seen: "head",
			handler: func(rail *fakeRail, seen *[]string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					*seen = append(*seen, strings.ToLower(r.Method))
					w.Header().Set("Content-Length", "5")
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rail := newFakeRail("fake")
			rail.set(func(r *fakeRail) { r.outcome = c.outcome })
			var seen []string
			e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("/paid/", rail, 5)}}, c.handler(rail, &seen))
			method := c.method
			if method == "" {
				method = "GET"
			}
			a := e.do(t, method, "/paid/x", pay(fakeCred("fake", "alice", "w")))
			if a.status != c.status || !strings.Contains(a.body, c.body) {
				t.Fatalf("got %d %q, want %d with %q", a.status, a.body, c.status, c.body)
			}
			if strings.Join(seen, "; ") != c.seen {
				t.Errorf("the handler saw %q, want %q", seen, c.seen)
			}
			if a.status != 200 && a.header.Get("Set-Cookie") != "" {
				t.Error("the replaced response leaked the handler's Set-Cookie")
			}
			if rail.settles.Load() != 1 {
				t.Errorf("Settle called %d times, want 1", rail.settles.Load())
			}
			want := coinop.StateSettled
			if c.outcome != settleOK {
				want = coinop.StateFailed
			} else {
				e.steps.wait(t, "served", "fake:alice:w")
			}
			if p := e.payment(t, "fake:alice:w"); p == nil || p.State != want || p.Served.IsZero() != (want != coinop.StateSettled) {
				t.Errorf("journaled %+v, want %s", p, want)
			}
		})
	}
}

// On a route that allows upgrades, the switch waits for the money: the
// payment settles synchronously (even on an async route) before the handler
// has the connection, and a refused settlement keeps it from the handler.
func TestUpgradeRoute(t *testing.T) {
	for _, c := range []struct {
		name     string
		outcome  settleOutcome
		status   int
		hijacked bool
	}{
		{"settled", settleOK, http.StatusSwitchingProtocols, true},
		{"refused", settleRefused, http.StatusPaymentRequired, false},
		{"pending is not enough", settlePending, http.StatusServiceUnavailable, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rail := newFakeRail("fake")
			rail.set(func(r *fakeRail) { r.outcome = c.outcome })
			hijacked := make(chan int32, 1)
			rt := priced("/ws", rail, 5)
			rt.Upgrade, rt.Settlement = true, coinop.ModeAsync
			rt.Accept[0].AsyncExposure = fakePrice(1000).Amount
			e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{rt}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					hijacked <- -1
					return
				}
				defer conn.Close()
				hijacked <- rail.settles.Load()
				brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: fake\r\nConnection: Upgrade\r\n\r\n")
				brw.Flush()
			}))
			h := pay(fakeCred("fake", "alice", "ws"))
			h.Set("Upgrade", "fake")
			h.Set("Connection", "Upgrade")
			a := e.do(t, "GET", "/ws", h)
			if a.status != c.status {
				t.Fatalf("got %d, want %d\n%s", a.status, c.status, a.body)
			}
			got := <-hijacked
			if c.hijacked != (got == 1) {
				t.Errorf("the handler had the connection after %d settlements (-1: refused), want it: %v", got, c.hijacked)
			}
			if p := e.payment(t, "fake:alice:ws"); p == nil || p.Mode != coinop.ModeSync {
				t.Errorf("journaled %+v, want a sync payment", p)
			}
		})
	}
}

// Rails with the same name would mix their payments in the journal: New
// refuses them, as it refuses other malformed accept lists.
func TestNewRefuses(t *testing.T) {
	j := openJournal(t, t.TempDir()+"/j.db")
	a, b := newFakeRail("same"), newFakeRail("same")
	for _, c := range []struct {
		name   string
		cfg    paywall.Config
		errHas string
	}{
		{"duplicate names on one route", paywall.Config{Routes: []paywall.Route{{Pattern: "/a",
			Accept: []paywall.Accept{{Rail: a, Price: fakePrice(1)}, {Rail: b, Price: fakePrice(1)}}}}}, `two rails are named "same"`},
		{"duplicate names on two routes", paywall.Config{Routes: []paywall.Route{priced("/a", a, 1), priced("/b", b, 1)}}, `two rails are named "same"`},
		{"duplicate name in Rails", paywall.Config{Rails: []coinop.Rail{a}, Routes: []paywall.Route{priced("/b", b, 1)}}, `two rails are named "same"`},
		{"one rail twice", paywall.Config{Routes: []paywall.Route{{Pattern: "/a",
			Accept: []paywall.Accept{{Rail: a, Price: fakePrice(1)}, {Rail: a, Price: fakePrice(2)}}}}}, "accepted twice"},
		{"no rail", paywall.Config{Routes: []paywall.Route{{Pattern: "/a"}}}, "at least one way to pay"},
		{"no price", paywall.Config{Routes: []paywall.Route{{Pattern: "/a", Accept: []paywall.Accept{{Rail: a}}}}}, "has no price"},
		{"no name", paywall.Config{Routes: []paywall.Route{priced("/a", newFakeRail(""), 1)}}, "has no name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Journal = j
			_, err := paywall.New(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Fatalf("New: %v, want an error with %q", err, c.errHas)
			}
		})
	}
	t.Run("one rail on two routes", func(t *testing.T) {
		pw, err := paywall.New(paywall.Config{Journal: j, Routes: []paywall.Route{priced("/a", a, 1), priced("/b", a, 2)}})
		if err != nil {
			t.Fatal(err)
		}
		pw.Close(context.Background())
	})
}

// A response that breaks off after the payment settled (the handler
// panicked mid-body) is charged but not marked served: the client's retry of
// the same credential gets the response again, without a second charge.
func TestBrokenResponseIsServedAgain(t *testing.T) {
	rail := newFakeRail("fake")
	var broken atomic.Bool
	broken.Store(true)
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("/paid/", rail, 5)}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "go")
		http.NewResponseController(w).Flush()
		if broken.Load() {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ods")
	}))
	cred := pay(fakeCred("fake", "alice", "b1"))
	if a := e.do(t, "GET", "/paid/x", cred); a.body == "goods" {
		t.Fatalf("the broken response arrived whole: %d %q", a.status, a.body)
	}
	p := e.payment(t, "fake:alice:b1")
	if p == nil || p.State != coinop.StateSettled || !p.Served.IsZero() {
		t.Fatalf("journaled %+v, want settled and not served", p)
	}
	broken.Store(false)
	if a := e.do(t, "GET", "/paid/x", cred); a.status != 200 || a.body != "goods" {
		t.Fatalf("retry: %d %q, want the response", a.status, a.body)
	}
	if n := rail.settles.Load(); n != 1 {
		t.Errorf("Settle called %d times, want 1", n)
	}
}

// A rail that breaks the contract (a single-use payment without its replay
// key or ID, a bearer charge with one) gets its request refused as an
// internal error, with a problem document: nothing is journaled or served.
func TestRailContractViolations(t *testing.T) {
	for _, c := range []struct {
		name   string
		bearer bool
		mangle func(p *coinop.Payment)
	}{
		{"single-use without replay key", false, func(p *coinop.Payment) { p.ReplayKey = "" }},
		{"single-use without ID", false, func(p *coinop.Payment) { p.ID = "" }},
		{"bearer with a replay key", true, func(p *coinop.Payment) { p.ReplayKey = "n1" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			rail, header := newFakeRail("fake"), pay(fakeCred("fake", "alice", "n1"))
			if c.bearer {
				rail, header = newBearerRail("fake"), http.Header{fakeTokenHeader: {"tok"}}
				rail.fund("tok", 100, "alice")
			}
			rail.set(func(r *fakeRail) { r.mangle = c.mangle })
			g := &goods{}
			e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("/paid/", rail, 5)}}, g)
			a := e.do(t, "GET", "/paid/x", header)
			if a.status != 500 || a.problem.Reason != coinop.ReasonInternal {
				t.Fatalf("got %d %q, want 500 %s", a.status, a.problem.Reason, coinop.ReasonInternal)
			}
			if g.calls.Load() != 0 || rail.verifies.Load() != 0 || rail.settles.Load() != 0 {
				t.Errorf("handler %d, verify %d, settle %d: want none", g.calls.Load(), rail.verifies.Load(), rail.settles.Load())
			}
		})
	}
}
