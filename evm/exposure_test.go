package evm_test

import (
	"context"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/recovery"
	"github.com/coinop/coinop/x402"
)

const methodReceipt = "eth_getTransactionReceipt"

// An async payment whose settlement is pending (sent, receipt late) was
// served and is not paid yet: it stays counted against its payer's
// exposure cap until it is known settled. Otherwise a payer whose
// settlements stay pending (and who may empty the wallet before they are
// mined) would get a fresh cap each time.
func TestPendingAsyncSettlementStaysExposed(t *testing.T) {
	r, f, ch := newFaultRigWith(t, func(r *rig) {
		r.exposure = big.NewInt(price) // room for one async payment
		r.receiptTimeout = time.Second
	})
	f.always(methodReceipt, stall)

	if a := r.get(t, "/async/1", x402.HeaderPaymentSignature, r.newPayment(t).header(t)); a.status != 200 {
		t.Fatalf("first payment: %d %s", a.status, a.body)
	}
	// The background's wait for the receipt ended: the settlement is pending.
	deadline := time.Now().Add(30 * time.Second)
	for f.givenUp(methodReceipt) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background never gave up waiting for the receipt")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a := r.get(t, "/async/2", x402.HeaderPaymentSignature, r.newPayment(t).header(t)); a.status != 200 {
		t.Fatalf("second payment: %d %s", a.status, a.body)
	}
	ps, err := r.store.List(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	async := 0
	for _, p := range ps {
		if p.Mode == coinop.ModeAsync {
			async++
		}
		if p.State != coinop.StateSettling {
			t.Errorf("payment %s is %s, want settling (pending)", p.ID, p.State)
		}
	}
	if len(ps) != 2 || async != 1 {
		t.Fatalf("%d payments, %d of them served before settling; want 2 and 1: the pending one still fills the cap", len(ps), async)
	}

	// Once the receipts come, recovery settles both.
	f.heal()
	rec := map[string]coinop.Reconciler{r.reqs.Network: ch}
	r.eventuallyAll(t, 2, "settled after recovery", func(ps []*coinop.Payment) bool {
		for _, p := range ps {
			if p.State != coinop.StateSettled {
				if _, err := recovery.Run(context.Background(), r.store, rec, time.Now().Add(time.Second), slog.New(slog.DiscardHandler)); err != nil {
					t.Logf("recovery: %v", err)
				}
				return false
			}
		}
		return true
	})
}
