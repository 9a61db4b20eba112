package credits_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/credits"
)

type noRecorder struct{ steps []string }

func (*noRecorder) Record(context.Context, string, string) error { return nil }
func (r *noRecorder) Step(s string)                              { r.steps = append(r.steps, s) }

// What a crash leaves at each ledger step, and what recovery makes of it:
// nothing is lost (a debit whose response never left is given back) and
// nothing is taken twice (a second reconciliation releases nothing more).
func TestReconcileAfterCrash(t *testing.T) {
	j := openSQLite(t)
	e := newShopEngine(t, j, 7, time.Now, goods)
	rc := e.buy(t, "pack", "")
	charge := func(id string) *coinop.Payment {
		req := httptest.NewRequest("GET", "http://coinop.test/api/x", nil)
		req.Header.Set("Authorization", "Bearer "+rc.Token)
		p, err := e.rail.Inspect(req, coinop.Charge{Price: coinop.Price{Amount: bigInt(7)}, Resource: coinop.Resource{URL: "http://coinop.test/api/x"}})
		if err != nil || p == nil {
			t.Fatalf("Inspect: %v %v", p, err)
		}
		p.ID, p.Rail = id, "credits"
		if err := e.rail.Verify(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if err := j.Reserve(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	journaled := func(id string) *coinop.Payment {
		p, err := j.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Crash after the reservation: verified, nothing debited.
	charge("credits:verified")
	if out, err := e.rail.Reconcile(t.Context(), journaled("credits:verified")); err != nil || out.State != coinop.StateReleased {
		t.Errorf("verified: %+v %v, want released", out, err)
	}
	// Crash after verified → settling, before the debit: not debited.
	p := charge("credits:owed")
	j.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
	if out, err := e.rail.Reconcile(t.Context(), journaled(p.ID)); err != nil || out.State != coinop.StateFailed || out.Reason != "credits_not_debited" {
		t.Errorf("settling, no debit: %+v %v", out, err)
	}
	// Crash after the debit committed with its reference, before settled.
	p = charge("credits:debited")
	j.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
	rec := &noRecorder{}
	if _, err := e.rail.Settle(t.Context(), p, rec); err != nil {
		t.Fatal(err)
	}
	got := journaled(p.ID)
	if got.State != coinop.StateSettling || got.Reference != "debit:"+p.ID || len(rec.steps) != 1 {
		t.Fatalf("after the debit: %s %q steps %v; want settling with the debit's reference", got.State, got.Reference, rec.steps)
	}
	st, _ := e.ledger.Standing(t.Context(), credits.Holder{TokenHash: credits.HashToken(rc.Token)})
	if st.Balance != 93 {
		t.Fatalf("balance %d after the debit, want 93", st.Balance)
	}
	for range 2 {
		out, err := e.rail.Reconcile(t.Context(), got)
		if err != nil || out.State != coinop.StateFailed || out.Reason != "credits_released_unserved" {
			t.Errorf("settling, debited: %+v %v", out, err)
		}
	}
	st, _ = e.ledger.Standing(t.Context(), credits.Holder{TokenHash: credits.HashToken(rc.Token)})
	tot, _ := e.ledger.Check(t.Context())
	if st.Balance != 100 || !tot.Clean() || tot.Released != 7 || tot.Debited != 7 {
		t.Errorf("after recovery: balance %d, totals %+v; want 100, one debit released once", st.Balance, tot)
	}
}

// TestSettleOwedOneTransaction: the engine's one-write settlement of a
// charge moves the payment from verified to settled with the debit, and a
// charge the balance no longer covers moves nothing at all: the payment
// stays verified (the engine releases it) and the balance is untouched.
func TestSettleOwedOneTransaction(t *testing.T) {
	j := openSQLite(t)
	e := newShopEngine(t, j, 7, time.Now, goods)
	rc := e.buy(t, "pack", "")
	holder := credits.Holder{TokenHash: credits.HashToken(rc.Token)}
	charge := func(id string, cost int64) *coinop.Payment {
		req := httptest.NewRequest("GET", "http://coinop.test/api/x", nil)
		req.Header.Set("Authorization", "Bearer "+rc.Token)
		p, err := e.rail.Inspect(req, coinop.Charge{Price: coinop.Price{Amount: bigInt(cost)}, Resource: coinop.Resource{URL: "http://coinop.test/api/x"}})
		if err != nil || p == nil {
			t.Fatalf("Inspect: %v %v", p, err)
		}
		p.ID, p.Rail = id, "credits"
		if err := e.rail.Verify(t.Context(), p); err != nil && cost <= 100 {
			t.Fatal(err)
		}
		if err := j.Reserve(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := charge("credits:one", 7)
	if _, err := e.rail.SettleOwed(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	got, err := j.Get(t.Context(), p.ID)
	if err != nil || got.State != coinop.StateSettled || got.Reference != "debit:"+p.ID {
		t.Fatalf("after SettleOwed: %+v %v", got, err)
	}
	events, _ := j.Events(t.Context(), p.ID)
	var steps []string
	for _, ev := range events {
		steps = append(steps, string(ev.From)+"→"+string(ev.To))
	}
	if want := "→verified verified→settling settling→settled"; strings.Join(steps, " ") != want {
		t.Errorf("events %q, want %q", steps, want)
	}
	st, _ := e.ledger.Standing(t.Context(), holder)
	if st.Balance != 93 {
		t.Fatalf("balance %d, want 93", st.Balance)
	}

	p = charge("credits:too-much", 1000)
	if _, err := e.rail.SettleOwed(t.Context(), p); coinop.KindOf(err) == coinop.KindUnavailable || err == nil {
		t.Fatalf("a charge beyond the balance: %v", err)
	}
	if got, _ := j.Get(t.Context(), p.ID); got.State != coinop.StateVerified || got.Reference != "" {
		t.Errorf("after a refused charge: %s %q, want verified with nothing recorded", got.State, got.Reference)
	}
	if st, _ := e.ledger.Standing(t.Context(), holder); st.Balance != 93 {
		t.Errorf("balance %d after a refused charge, want 93", st.Balance)
	}
}
