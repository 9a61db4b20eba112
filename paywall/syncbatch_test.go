package paywall_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
)

// batchRail is a fakeRail that settles many payments in one transaction.
// When hold is set, its first settlement alone waits until hold is closed.
type batchRail struct {
	*fakeRail
	hold    chan struct{}
	held    atomic.Bool
	batches atomic.Int32
	sizes   sync.Map // batch number → size
}

func (r *batchRail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	if r.hold != nil && r.held.CompareAndSwap(false, true) {
		<-r.hold
	}
	return r.fakeRail.Settle(ctx, p, rec)
}

var _ interface {
	coinop.BatchSettler
	paywall.Batching
} = (*batchRail)(nil)

func (r *batchRail) Batches(*coinop.Payment) bool { return true }

// SettleBatch refuses the payments of payer "poor" and settles the others
// in one transaction, journaled for all before it is sent.
func (r *batchRail) SettleBatch(ctx context.Context, ps []*coinop.Payment, recs []coinop.Recorder) ([]*coinop.Receipt, []error) {
	n := r.batches.Add(1)
	r.sizes.Store(n, len(ps))
	ref := fmt.Sprintf("fake-batch:%d", n)
	rcs, errs := make([]*coinop.Receipt, len(ps)), make([]error, len(ps))
	var in []coinop.Recorder
	for i, p := range ps {
		if p.Payer == "poor" {
			errs[i] = coinop.Errorf(coinop.KindSettleFailed, "fake_settle_refused", "the network refused this one")
			continue
		}
		in = append(in, recs[i])
	}
	if err := coinop.RecordAll(ctx, in, ref, "fake-prepared:"+ref); err != nil {
		for i := range errs {
			errs[i] = coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "not journaled; nothing sent")
		}
		return rcs, errs
	}
	for i, p := range ps {
		if errs[i] == nil {
			rcs[i] = &coinop.Receipt{Success: true, Reference: ref, Network: r.network, Payer: p.Payer,
				Header: http.Header{fakeReceiptHeader: {ref}}}
		}
	}
	return rcs, errs
}

// TestSyncPaymentsSettleTogether: a sync payment with no other on its way
// settles alone, at once; those owed while it is on its way go together,
// in one transaction, each with its own outcome: the refused one is
// refused and its response withheld, the others are served, journaled
// settled with the batch's reference, exactly once.
func TestSyncPaymentsSettleTogether(t *testing.T) {
	rail := &batchRail{fakeRail: newFakeRail("batchy"), hold: make(chan struct{})}
	g := &goods{}
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("GET /paid", rail, 5)}, SyncBatchWindow: 500 * time.Millisecond}, g)

	first := make(chan answer, 1)
	go func() { first <- e.do(t, "GET", "/paid", pay(fakeCred("batchy", "alice", "first"))) }()
	for !rail.held.Load() {
		time.Sleep(time.Millisecond)
	}
	const n = 12
	payerOf := func(i int) string {
		if i == 3 {
			return "poor"
		}
		return "bob"
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = e.do(t, "GET", "/paid", pay(fakeCred("batchy", payerOf(i), fmt.Sprint("n", i)))) })
	}
	wg.Wait() // the batch went while the first settlement was still on its way
	close(rail.hold)
	if a := <-first; a.status != http.StatusOK || a.header.Get(fakeReceiptHeader) != "fake-ref:batchy:alice:first" {
		t.Errorf("the first payment, alone: %d receipt %q", a.status, a.header.Get(fakeReceiptHeader))
	}
	if b := rail.batches.Load(); b != 1 {
		t.Errorf("%d batches, want 1", b)
	}
	if size, _ := rail.sizes.Load(int32(1)); size != n {
		t.Errorf("the batch held %v payments, want %d", size, n)
	}
	for i, a := range answers {
		p := e.payment(t, fmt.Sprintf("batchy:%s:n%d", payerOf(i), i))
		if i == 3 {
			if a.status == http.StatusOK || p.State != coinop.StateFailed || !p.Served.IsZero() {
				t.Errorf("the refused payment: %d, journaled %s served %v", a.status, p.State, p.Served)
			}
			continue
		}
		if a.status != http.StatusOK || a.header.Get(fakeReceiptHeader) != "fake-batch:1" {
			t.Errorf("payment %d: %d receipt %q", i, a.status, a.header.Get(fakeReceiptHeader))
		}
		if p.State != coinop.StateSettled || p.Reference != "fake-batch:1" || p.Served.IsZero() {
			t.Errorf("payment %d journaled %s %q served %v", i, p.State, p.Reference, p.Served)
		}
	}
	if calls := g.calls.Load(); calls != n+1 {
		t.Errorf("the handler ran %d times, want %d", calls, n+1)
	}

	// Nothing else on its way: alone, at once, through Settle.
	settles := rail.settles.Load()
	start := time.Now()
	if a := e.do(t, "GET", "/paid", pay(fakeCred("batchy", "alice", "alone"))); a.status != http.StatusOK {
		t.Fatalf("a lone payment: %d %q", a.status, a.problem.Reason)
	}
	if rail.batches.Load() != 1 || rail.settles.Load() != settles+1 {
		t.Errorf("a lone payment: %d batches, %d settles (was %d)", rail.batches.Load(), rail.settles.Load(), settles)
	}
	if d := time.Since(start); d >= 500*time.Millisecond {
		t.Errorf("a lone payment took %v: it waited for a batch window", d)
	}
}
