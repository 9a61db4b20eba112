package paywall_test

import (
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
)

// twoRails is a route that takes rail a at 5 and rail b at 7, in that order.
func twoRails(a, b *fakeRail) paywall.Route {
	return paywall.Route{Pattern: "/paid/", Accept: []paywall.Accept{{Rail: a, Price: fakePrice(5)}, {Rail: b, Price: fakePrice(7)}}}
}

// A route that takes several rails asks each in order: a credential for
// another rail's offer goes on to the next, and the one that takes it
// collects at its own price. A credential no rail takes gets the first
// refusal and every offer.
func TestTwoRails(t *testing.T) {
	for _, c := range []struct {
		name    string
		cred    string
		id      string // of the payment journaled, "" none
		status  int
		reason  string
		rail    string // that settled; "" none
		amount  int64
		offers  int
		settles [2]int32
	}{
		{"first rail", fakeCred("fake-a", "alice", "1"), "fake-a:alice:1", 200, "", "fake-a", 5, 0, [2]int32{1, 0}},
		{"second rail", fakeCred("fake-b", "alice", "2"), "fake-b:alice:2", 200, "", "fake-b", 7, 0, [2]int32{0, 1}},
		{"neither rail", fakeCred("fake-c", "alice", "3"), "", 402, "fake_other_offer", "", 0, 2, [2]int32{0, 0}},
		{"malformed stops at the first", "garbage", "", 400, "fake_malformed", "", 0, 2, [2]int32{0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := newFakeRail("fake-a"), newFakeRail("fake-b")
			e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{twoRails(a, b)}}, &goods{})
			got := e.do(t, "GET", "/paid/x", pay(c.cred))
			if got.status != c.status || got.problem.Reason != c.reason {
				t.Fatalf("got %d %q, want %d %q\n%s", got.status, got.problem.Reason, c.status, c.reason, got.body)
			}
			if len(got.problem.Offers) != c.offers {
				t.Errorf("%d offers, want %d", len(got.problem.Offers), c.offers)
			}
			if s := [2]int32{a.settles.Load(), b.settles.Load()}; s != c.settles {
				t.Errorf("settles %v, want %v", s, c.settles)
			}
			if b.inspects.Load() == 0 && c.rail == "fake-b" {
				t.Error("the second rail was never asked")
			}
			if c.rail == "" {
				return
			}
			e.steps.wait(t, "served", c.id)
			p := e.payment(t, c.id)
			if p == nil || p.Rail != c.rail || p.Amount.Int64() != c.amount || p.State != coinop.StateSettled {
				t.Errorf("journaled %+v, want %s at %d, settled", p, c.rail, c.amount)
			}
		})
	}
}

// A rail whose challenge fails (it could not make an invoice) is left out
// of the 402; the others' offers are still shown, at their prices. When no
// rail can make an offer, the answer is 503 no_offer_available.
func TestChallengeErrors(t *testing.T) {
	down := errors.New("invoice service down")
	for _, c := range []struct {
		name       string
		aErr, bErr error
		status     int
		reason     string
		offers     []string // rails offered
		price      string
	}{
		{"both offer", nil, nil, 402, coinop.ReasonPaymentRequired, []string{"fake-a", "fake-b"}, "5 FAKE"},
		{"first fails", down, nil, 402, coinop.ReasonPaymentRequired, []string{"fake-b"}, "7 FAKE"},
		{"second fails", nil, down, 402, coinop.ReasonPaymentRequired, []string{"fake-a"}, "5 FAKE"},
		{"both fail", down, down, 503, coinop.ReasonNoOffer, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := newFakeRail("fake-a"), newFakeRail("fake-b")
			a.set(func(r *fakeRail) { r.challengeErr = c.aErr })
			b.set(func(r *fakeRail) { r.challengeErr = c.bErr })
			e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{twoRails(a, b)}}, &goods{})
			got := e.do(t, "GET", "/paid/x", nil)
			if got.status != c.status || got.problem.Reason != c.reason {
				t.Fatalf("got %d %q, want %d %q\n%s", got.status, got.problem.Reason, c.status, c.reason, got.body)
			}
			var offered []string
			for _, o := range got.problem.Offers {
				offered = append(offered, o.Rail)
			}
			if len(offered) != len(c.offers) || len(offered) > 0 && (offered[0] != c.offers[0] || offered[len(offered)-1] != c.offers[len(c.offers)-1]) {
				t.Errorf("offers from %v, want %v", offered, c.offers)
			}
			if c.price != "" && got.problem.Price != c.price {
				t.Errorf("headline price %q, want %q", got.problem.Price, c.price)
			}
			if c.status == 503 && got.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// queryPricer prices a request at 2 per unit of its ?n= query; n=fail
// makes it fail as a broken price source would.
type queryPricer struct{}

func (queryPricer) Price(r *http.Request) (coinop.Price, error) {
	q := r.URL.Query().Get("n")
	if q == "fail" {
		return coinop.Price{}, errors.New("the price list is unreachable")
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 {
		return coinop.Price{}, coinop.Errorf(coinop.KindMalformed, "fake_bad_quantity", "n must be a positive integer")
	}
	return coinop.Price{Amount: big.NewInt(int64(2 * n)), Symbol: "FAKE"}, nil
}

// A Pricer prices each request: the challenge offers its price, the rail is
// asked for it, and the journal records it. A request it cannot price is
// refused with a problem, never served.
func TestPricer(t *testing.T) {
	rail := newFakeRail("fake")
	g := &goods{}
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{{Pattern: "/paid/", Accept: []paywall.Accept{{Rail: rail, Pricer: queryPricer{}}}}}}, g)
	for _, c := range []struct {
		name, query, nonce string
		pay                bool
		status             int
		reason             string
		amount             string
	}{
		{"challenge", "n=3", "", false, 402, coinop.ReasonPaymentRequired, "6"},
		{"another price", "n=10", "", false, 402, coinop.ReasonPaymentRequired, "20"},
		{"paid", "n=3", "p1", true, 200, "", "6"},
		{"quantity refused", "n=zero", "p2", true, 400, "fake_bad_quantity", ""},
		{"price source down", "n=fail", "p3", true, 500, coinop.ReasonInternal, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h http.Header
			if c.pay {
				h = pay(fakeCred("fake", "alice", c.nonce))
			}
			got := e.do(t, "GET", "/paid/x?"+c.query, h)
			if got.status != c.status || got.problem.Reason != c.reason {
				t.Fatalf("got %d %q, want %d %q\n%s", got.status, got.problem.Reason, c.status, c.reason, got.body)
			}
			if !c.pay && (len(got.problem.Offers) != 1 || got.problem.Offers[0].Amount != c.amount) {
				t.Errorf("offers %+v, want one at %s", got.problem.Offers, c.amount)
			}
			if c.pay && c.status == 200 {
				if p := e.payment(t, "fake:alice:"+c.nonce); p == nil || p.Amount.String() != c.amount {
					t.Errorf("journaled %+v, want amount %s", p, c.amount)
				}
			}
		})
	}
	if g.calls.Load() != 1 {
		t.Errorf("handler called %d times, want once", g.calls.Load())
	}
}
