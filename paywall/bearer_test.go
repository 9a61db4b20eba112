package paywall_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// bearerJournal gives today's journal, which keys every payment by a replay
// key, one for a bearer charge: its engine-assigned ID, unique per charge.
// It is used only while the journal refuses bearer charges (see
// bearerReadyJournal); the engine's behaviour under test is unchanged by it.
type bearerJournal struct{ *sqlite.Store }

func (j bearerJournal) Reserve(ctx context.Context, p *coinop.Payment) error {
	if !p.Bearer || p.ReplayKey != "" {
		return j.Store.Reserve(ctx, p)
	}
	q := *p
	q.ReplayKey = p.ID
	err := j.Store.Reserve(ctx, &q)
	p.State, p.Created, p.Updated, p.Mode, p.Served = q.State, q.Created, q.Updated, q.Mode, q.Served
	return err
}

// bearerReadyJournal opens a journal that takes bearer charges: the store
// itself once it does, else wrapped in bearerJournal.
func bearerReadyJournal(t *testing.T) (paywall.Config, *sqlite.Store) {
	t.Helper()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	probe := &coinop.Payment{ID: "probe:bearer", Rail: "probe", Bearer: true, Network: "probe", Asset: "probe", Amount: fakePrice(0).Amount}
	if err := j.Reserve(context.Background(), probe); err != nil {
		t.Logf("the journal refuses bearer charges (%v): giving it their IDs as replay keys", err)
		return paywall.Config{Journal: bearerJournal{j}}, j
	}
	return paywall.Config{Journal: j}, j
}

// bearerEngine serves h behind a bearer rail named "credits" that charges
// 3 per request, over a journal that takes bearer charges.
func bearerEngine(t *testing.T, h http.Handler) (*fakeRail, *fakeEngine) {
	t.Helper()
	rail := newBearerRail("credits")
	cfg, _ := bearerReadyJournal(t)
	cfg.Routes = []paywall.Route{priced("/paid/", rail, 3)}
	return rail, newFakeEngine(t, cfg, h)
}

// A bearer credential is charged again and again: every charge is its own
// journal entry with its own ID, nothing is looked up by ID (no replay
// check, no Reverify), and when the balance runs out the client gets the
// rail's offer.
func TestBearer(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	rail, e := bearerEngine(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, paywall.PaymentFrom(r.Context()).ID)
		mu.Unlock()
		w.Write([]byte("goods"))
	}))
	rail.fund("tok-1", 10, "")
	token := http.Header{fakeTokenHeader: {"tok-1"}}
	for i := range 3 {
		if a := e.do(t, "GET", "/paid/x", token); a.status != 200 || a.body != "goods" {
			t.Fatalf("charge %d: %d %s", i+1, a.status, a.body)
		}
	}
	a := e.do(t, "GET", "/paid/x", token)
	if a.status != 402 || a.problem.Reason != "fake_balance_too_low" {
		t.Fatalf("over the balance: %d %q, want 402 fake_balance_too_low", a.status, a.problem.Reason)
	}
	if len(a.problem.Offers) != 1 || a.problem.Offers[0].Rail != "credits" || a.problem.Offers[0].Header != fakeTokenHeader {
		t.Errorf("the refusal offers %+v, want the rail's offer", a.problem.Offers)
	}
	if got := rail.balance("tok-1"); got != 1 {
		t.Errorf("balance %d, want 10 - 3×3 = 1", got)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("two charges share ID %s", id)
		}
		seen[id] = true
		p := e.payment(t, id)
		if p == nil {
			t.Fatalf("charge %s not journaled", id)
		}
		if p.State != coinop.StateSettled || p.Rail != "credits" || p.Payload != "" || p.Amount.Int64() != 3 {
			t.Errorf("charge %s journaled %s rail %q payload %q amount %v", id, p.State, p.Rail, p.Payload, p.Amount)
		}
	}
	if len(ids) != 3 || rail.reverifies.Load() != 0 || rail.settles.Load() != 3 {
		t.Errorf("%d charges, %d reverifies, %d settles; want 3, 0, 3", len(ids), rail.reverifies.Load(), rail.settles.Load())
	}
}

// Concurrent charges of one bearer credential never spend more than its
// balance: the rail's debit is the guard, the engine adds none of its own.
func TestBearerConcurrentCharges(t *testing.T) {
	rail, e := bearerEngine(t, &goods{})
	rail.fund("tok", 10, "")
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do(t, "GET", "/paid/x", http.Header{fakeTokenHeader: {"tok"}}).status
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 402:
		default:
			t.Errorf("a charge got %d", s)
		}
	}
	if ok != 3 || rail.balance("tok") != 1 {
		t.Errorf("%d charges served, balance %d: want 3 and 1 (%v)", ok, rail.balance("tok"), statuses)
	}
}

// An idempotency key ties the retries of one purchase together when the
// bearer credential names its payer: a retry of a purchase already served
// is not charged again, a key reused for another resource is refused, and
// another payer's key of the same name is its own.
func TestBearerIdempotencyKey(t *testing.T) {
	rail, e := bearerEngine(t, &goods{})
	rail.fund("alice-tok", 100, "alice")
	rail.fund("bob-tok", 100, "bob")
	for _, c := range []struct {
		name, token, key, path string
		status                 int
		reason                 string
		balance                int64 // of the token, after
	}{
		{"first purchase", "alice-tok", "k1", "/paid/x", 200, "", 97},
		{"retry, served already", "alice-tok", "k1", "/paid/x", 409, coinop.ReasonIdempotencyUsed, 97},
		{"key reused elsewhere", "alice-tok", "k1", "/paid/y", 409, coinop.ReasonIdempotencyReused, 97},
		{"another key", "alice-tok", "k2", "/paid/x", 200, "", 94},
		{"another payer, same key", "bob-tok", "k1", "/paid/x", 200, "", 97},
		{"no key: charged each time", "alice-tok", "", "/paid/x", 200, "", 91},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{fakeTokenHeader: {c.token}}
			if c.key != "" {
				h.Set("Idempotency-Key", c.key)
			}
			a := e.do(t, "GET", c.path, h)
			if a.status != c.status || a.problem.Reason != c.reason {
				t.Fatalf("got %d %q, want %d %q", a.status, a.problem.Reason, c.status, c.reason)
			}
			if got := rail.balance(c.token); got != c.balance {
				t.Errorf("balance %d, want %d", got, c.balance)
			}
		})
	}
}
