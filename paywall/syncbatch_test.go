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

// batchRail is a fakeRail that settles many payments in one transaction:
// its first settlement waits until hold is closed, so the payments that
// arrive meanwhile wait for the next batch.
type batchRail struct {
	*fakeRail
	hold    chan struct{}
	held    atomic.Bool
	batches atomic.Int32
	sizes   sync.Map // batch number → size
}

var _ interface {
	coinop.BatchSettler
	paywall.Batching
} = (*batchRail)(nil)

func (r *batchRail) Batches(*coinop.Payment) bool { return true }

func (r *batchRail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	if r.held.CompareAndSwap(false, true) {
		<-r.hold
	}
	return r.fakeRail.Settle(ctx, p, rec)
}

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

// TestSyncPaymentsSettleTogether: sync payments that arrive while a
// settlement is on its way wait for it and then go together, in one batch,
// each with its own outcome: the refused one is refused and its response
// withheld, the others are served, journaled settled with the batch's
// reference, exactly once.
func TestSyncPaymentsSettleTogether(t *testing.T) {
	rail := &batchRail{fakeRail: newFakeRail("batchy"), hold: make(chan struct{})}
	g := &goods{}
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{priced("GET /paid", rail, 5)}}, g)

	first := make(chan answer, 1)
	go func() { first <- e.do(t, "GET", "/paid", pay(fakeCred("batchy", "alice", "first"))) }()
	for !rail.held.Load() {
		time.Sleep(time.Millisecond)
	}
	const n = 12
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		payer := "bob"
		if i == 3 {
			payer = "poor"
		}
		wg.Go(func() { answers[i] = e.do(t, "GET", "/paid", pay(fakeCred("batchy", payer, fmt.Sprint("n", i)))) })
	}
	// Every one of them is owed and waits behind the first settlement.
	deadline := time.Now().Add(10 * time.Second)
	for {
		owed := 0
		for i := range n {
			payer := "bob"
			if i == 3 {
				payer = "poor"
			}
			if p := e.payment(t, fmt.Sprintf("batchy:%s:n%d", payer, i)); p != nil && p.State == coinop.StateSettling {
				owed++
			}
		}
		if owed == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d payments owed", owed, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(rail.hold)
	if a := <-first; a.status != http.StatusOK {
		t.Fatalf("the first payment: %d %q", a.status, a.problem.Reason)
	}
	wg.Wait()
	if b := rail.batches.Load(); b != 1 {
		t.Errorf("%d batches, want 1", b)
	}
	if size, _ := rail.sizes.Load(int32(1)); size != n {
		t.Errorf("the batch held %v payments, want %d", size, n)
	}
	for i, a := range answers {
		payer := "bob"
		if i == 3 {
			payer = "poor"
		}
		p := e.payment(t, fmt.Sprintf("batchy:%s:n%d", payer, i))
		if i == 3 {
			if a.status == http.StatusOK || p.State != coinop.StateFailed {
				t.Errorf("the refused payment: %d, journaled %s", a.status, p.State)
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
}
