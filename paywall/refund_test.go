package paywall_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
)

// refundingRail is a bearer fakeRail that gives charges back: it credits
// the token a charge was collected from, once per charge ID.
type refundingRail struct {
	*fakeRail
	mu       sync.Mutex
	tokens   map[string]string // charge ID → token charged
	refunded map[string]int    // charge ID → refunds made
	fail     error
}

func (r *refundingRail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	rc, err := r.fakeRail.Settle(ctx, p, rec)
	if err == nil {
		r.mu.Lock()
		r.tokens[p.ID] = p.Credential.(string)
		r.mu.Unlock()
	}
	return rc, err
}

func (r *refundingRail) Refund(_ context.Context, p *coinop.Payment) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if r.refunded[p.ID] > 0 {
		return nil // idempotent by ID
	}
	r.refunded[p.ID]++
	r.fakeRail.mu.Lock()
	r.fakeRail.balances[r.tokens[p.ID]].Add(r.fakeRail.balances[r.tokens[p.ID]], p.Amount)
	r.fakeRail.mu.Unlock()
	return nil
}

// Refund gives a collected bearer charge back once, records it released in
// the journal, and refuses what it must not give back.
func TestRefund(t *testing.T) {
	rail := &refundingRail{fakeRail: newBearerRail("credits"), tokens: map[string]string{}, refunded: map[string]int{}}
	plain := newBearerRail("plain") // a bearer rail that cannot refund
	once := newFakeRail("x402ish")  // single-use credentials
	cfg, j := bearerReadyJournal(t)
	cfg.Routes = []paywall.Route{priced("/paid/", rail, 3), priced("/plain/", plain, 3), priced("/once/", once, 3)}
	var mu sync.Mutex
	var last string
	e := newFakeEngine(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = paywall.PaymentFrom(r.Context()).ID
		mu.Unlock()
		w.Write([]byte("goods"))
	}))
	charge := func(path string, h http.Header) string {
		t.Helper()
		if a := e.do(t, "GET", path, h); a.status != 200 {
			t.Fatalf("%s: %d", path, a.status)
		}
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	kind := func(err error) (coinop.Kind, string) {
		var ce *coinop.Error
		if !errors.As(err, &ce) {
			return 255, ""
		}
		return ce.Kind, ce.Reason
	}
	ctx := context.Background()

	rail.fund("tok", 10, "buyer")
	id := charge("/paid/x", http.Header{fakeTokenHeader: {"tok"}})
	if rail.balance("tok") != 7 {
		t.Fatalf("balance %d after a charge of 3, want 7", rail.balance("tok"))
	}
	p, err := e.pw.Refund(ctx, id, coinop.ReasonUpstreamStatus(502))
	if err != nil || p.State != coinop.StateReleased {
		t.Fatalf("Refund: %+v %v", p, err)
	}
	if rail.balance("tok") != 10 {
		t.Errorf("balance %d after the refund, want 10", rail.balance("tok"))
	}
	if got, err := j.Get(ctx, id); err != nil || got.State != coinop.StateReleased || got.Reason != "upstream_status_502" {
		t.Errorf("journaled %+v %v, want released upstream_status_502", got, err)
	}
	// Again: nothing more is given back.
	if p, err := e.pw.Refund(ctx, id, "again"); err != nil || p.State != coinop.StateReleased {
		t.Errorf("second Refund: %+v %v", p, err)
	}
	if rail.balance("tok") != 10 || rail.refunded[id] != 1 {
		t.Errorf("after a second Refund: balance %d, %d refunds", rail.balance("tok"), rail.refunded[id])
	}
	e.steps.wait(t, "released", id)

	// A refund the rail cannot make leaves the charge settled.
	id2 := charge("/paid/y", http.Header{fakeTokenHeader: {"tok"}})
	rail.fail = coinop.Errorf(coinop.KindUnavailable, "ledger_down", "the ledger is down")
	if _, err := e.pw.Refund(ctx, id2, "r"); err == nil {
		t.Fatalf("Refund with the ledger down succeeded")
	}
	if got, _ := j.Get(ctx, id2); got.State != coinop.StateSettled {
		t.Errorf("a failed refund left the charge %s, want settled", got.State)
	}
	rail.fail = nil

	plain.fund("ptok", 10, "")
	pid := charge("/plain/x", http.Header{fakeTokenHeader: {"ptok"}})
	oid := charge("/once/x", http.Header{fakePayHeader: {fakeCred("x402ish", "payer", "n1")}})
	for _, c := range []struct {
		name, id string
		kind     coinop.Kind
		reason   string
	}{
		{"unknown", "credits:nope", coinop.KindNotFound, coinop.ReasonRefundUnknown},
		{"no Refunder", pid, coinop.KindConflict, coinop.ReasonRefundUnsupported},
		{"single-use", oid, coinop.KindConflict, coinop.ReasonRefundNotBearer},
	} {
		_, err := e.pw.Refund(ctx, c.id, "r")
		if k, r := kind(err); k != c.kind || r != c.reason {
			t.Errorf("%s: %v, want %s %s", c.name, err, c.kind, c.reason)
		}
	}
	if got, _ := j.Get(ctx, oid); got.State != coinop.StateSettled {
		t.Errorf("a refused single-use refund left the payment %s", got.State)
	}
}
