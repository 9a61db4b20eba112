package lifecycle_test

import (
	"context"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lifecycle"
	"github.com/coinop/coinop/store/sqlite"
)

// rail is a rail of the tests' own: it settles as told, recording first,
// and reverifies when reverify is set.
type rail struct {
	settle   func(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error)
	reverify bool
}

func (r *rail) Name() string                                                      { return "test" }
func (r *rail) Headers() coinop.Headers                                           { return coinop.Headers{} }
func (r *rail) Challenge(context.Context, *coinop.Challenge, coinop.Charge) error { return nil }
func (r *rail) Inspect(*http.Request, coinop.Charge) (*coinop.Payment, error)     { return nil, nil }
func (r *rail) Verify(context.Context, *coinop.Payment) error                     { return nil }
func (r *rail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	return r.settle(ctx, p, rec)
}

// reverifying is a rail whose retries prove themselves.
type reverifying struct{ rail }

func (reverifying) Reverify(p, prev *coinop.Payment) error { return nil }

func payment(n int) *coinop.Payment {
	return &coinop.Payment{
		ID: "test:" + string(rune('a'+n)), Rail: "test", Network: "net", Asset: "tok", Payer: "payer", PayTo: "seller",
		ReplayKey: string(rune('a' + n)), Amount: big.NewInt(5), Resource: "http://h/paid?q=1",
	}
}

func open(t *testing.T) (*lifecycle.Lifecycle, *sqlite.Store, *[]string) {
	t.Helper()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	var steps []string
	return lifecycle.New(j, nil, func(s string, _ *coinop.Payment) { steps = append(steps, s) }), j, &steps
}

func settledWith(ref string) func(context.Context, *coinop.Payment, coinop.Recorder) (*coinop.Receipt, error) {
	return func(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
		if err := rec.Record(ctx, ref, "0xsigned"); err != nil {
			return nil, err
		}
		rec.Step("tx_sent")
		return &coinop.Receipt{Success: true, Reference: ref}, nil
	}
}

// TestCollectJournalsEachOutcome: every settlement outcome leaves the
// journal in the state recovery expects, with the reference recorded
// before anything was sent.
func TestCollectJournalsEachOutcome(t *testing.T) {
	cases := []struct {
		name      string
		mode      string
		settle    func(context.Context, *coinop.Payment, coinop.Recorder) (*coinop.Receipt, error)
		wantErr   coinop.Kind // 0: no error
		wantState coinop.State
		wantRef   string
	}{
		{name: "settled", settle: settledWith("0xaa"), wantState: coinop.StateSettled, wantRef: "0xaa"},
		{name: "pending", settle: func(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
			rec.Record(ctx, "0xbb", "0xsigned")
			return &coinop.Receipt{Pending: true, Reference: "0xbb"}, coinop.Errorf(coinop.KindUnavailable, "settlement_pending", "late")
		}, wantErr: coinop.KindUnavailable, wantState: coinop.StateSettling, wantRef: "0xbb"},
		{name: "not sent", settle: func(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
			rec.Record(ctx, "0xcc", "0xsigned")
			return nil, coinop.Errorf(coinop.KindUnavailable, coinop.ReasonSettlementNotSent, "no node took it")
		}, wantErr: coinop.KindUnavailable, wantState: coinop.StateSettling, wantRef: "0xcc"},
		{name: "unavailable async stays owed", mode: coinop.ModeAsync, settle: func(context.Context, *coinop.Payment, coinop.Recorder) (*coinop.Receipt, error) {
			return nil, coinop.Errorf(coinop.KindUnavailable, "chain_unavailable", "down")
		}, wantErr: coinop.KindUnavailable, wantState: coinop.StateSettling},
		{name: "unavailable sync fails", settle: func(context.Context, *coinop.Payment, coinop.Recorder) (*coinop.Receipt, error) {
			return nil, coinop.Errorf(coinop.KindUnavailable, "chain_unavailable", "down")
		}, wantErr: coinop.KindUnavailable, wantState: coinop.StateFailed},
		{name: "refused", settle: func(context.Context, *coinop.Payment, coinop.Recorder) (*coinop.Receipt, error) {
			return &coinop.Receipt{Reference: "0xdd"}, coinop.Errorf(coinop.KindSettleFailed, "transaction_failed", "reverted")
		}, wantErr: coinop.KindSettleFailed, wantState: coinop.StateFailed, wantRef: "0xdd"},
		{name: "no receipt, no error", settle: func(context.Context, *coinop.Payment, coinop.Recorder) (*coinop.Receipt, error) {
			return nil, nil
		}, wantErr: coinop.KindSettleFailed, wantState: coinop.StateFailed},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lc, j, steps := open(t)
			p := payment(i)
			p.Mode = c.mode
			if err := lc.Reserve(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			if err := lc.Owe(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			_, err := lc.Collect(t.Context(), &rail{settle: c.settle}, p)
			if got := coinop.KindOf(err); err != nil && got != c.wantErr || err == nil && c.wantErr != 0 {
				t.Fatalf("err = %v, want kind %v", err, c.wantErr)
			}
			got, err := j.Get(t.Context(), p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != c.wantState || got.Reference != c.wantRef {
				t.Fatalf("journal: state %s ref %q, want %s %q", got.State, got.Reference, c.wantState, c.wantRef)
			}
			if c.wantState == coinop.StateSettled {
				if want := "reserved tx_recorded tx_sent settled"; strings.Join(*steps, " ") != want {
					t.Fatalf("steps %v, want %s", *steps, want)
				}
			}
		})
	}
}

// TestRecordRefusedStopsTheSend: a rail whose Record fails must not send;
// Record fails when the journal cannot hold the reference (here: the
// payment is not settling).
func TestRecordRefusedStopsTheSend(t *testing.T) {
	lc, _, _ := open(t)
	p := payment(1)
	if err := lc.Reserve(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	sent := false
	_, err := lc.Collect(t.Context(), &rail{settle: func(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
		if err := rec.Record(ctx, "0xaa", "0xsigned"); err != nil {
			return nil, err
		}
		sent = true
		return &coinop.Receipt{Success: true, Reference: "0xaa"}, nil
	}}, p)
	if err == nil || sent {
		t.Fatalf("collect of a payment never owed: err %v, sent %v", err, sent)
	}
}

// TestPrevious: the journal's word on a credential seen before.
func TestPrevious(t *testing.T) {
	lc, j, _ := open(t)
	ctx := t.Context()
	plain, proving := &rail{settle: settledWith("0xaa")}, &reverifying{rail{settle: settledWith("0xaa")}}
	collect := func(p *coinop.Payment) {
		t.Helper()
		if err := lc.Reserve(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := lc.Owe(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, err := lc.Collect(ctx, plain, p); err != nil {
			t.Fatal(err)
		}
	}
	if prev, err := lc.Previous(ctx, plain, payment(1)); prev != nil || err != nil {
		t.Fatalf("never seen: %v %v", prev, err)
	}
	collect(payment(2))
	if _, err := lc.Previous(ctx, plain, payment(2)); coinop.AsError(err).Reason != coinop.ReasonReplayed {
		t.Fatalf("collected, rail cannot reverify: %v", err)
	}
	if prev, err := lc.Previous(ctx, proving, payment(2)); err != nil || prev == nil || prev.Reference != "0xaa" {
		t.Fatalf("collected, never served, reverified: %v %v", prev, err)
	}
	other := payment(2)
	other.Resource = "http://h/dearer"
	if _, err := lc.Previous(ctx, proving, other); coinop.AsError(err).Reason != coinop.ReasonReused {
		t.Fatalf("for another purchase: %v", err)
	}
	lc.Served(ctx, payment(2))
	if _, err := lc.Previous(ctx, proving, payment(2)); coinop.AsError(err).Reason != coinop.ReasonReplayed {
		t.Fatalf("served: %v", err)
	}
	p3 := payment(3)
	if err := lc.Reserve(ctx, p3); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Previous(ctx, proving, payment(3)); coinop.KindOf(err) != coinop.KindInFlight {
		t.Fatalf("verified: %v", err)
	}
	lc.Release(p3, coinop.ReasonUpstreamStatus(502))
	if prev, err := lc.Previous(ctx, proving, payment(3)); prev != nil || err != nil {
		t.Fatalf("released: %v %v", prev, err)
	}
	got, _ := j.Get(ctx, p3.ID)
	if got.State != coinop.StateReleased || got.Reason != "upstream_status_502" {
		t.Fatalf("released payment journaled as %s %q", got.State, got.Reason)
	}
}

// TestHoldPurchase: a second payment for a purchase already paid is served
// the first one's response, a key reused for another purchase is refused,
// and a purchase being processed makes its duplicate wait, then refuses it.
func TestHoldPurchase(t *testing.T) {
	lc, _, _ := open(t)
	ctx := t.Context()
	first := payment(1)
	first.IdempotencyKey = "pid:k1"
	if err := lc.Reserve(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := payment(2)
	second.IdempotencyKey = "pid:k1"
	if _, _, err := lc.HoldPurchase(ctx, second, 0); coinop.KindOf(err) != coinop.KindInFlight {
		t.Fatalf("while the first is verified: %v", err)
	}
	if err := lc.Owe(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Collect(ctx, &rail{settle: settledWith("0xaa")}, first); err != nil {
		t.Fatal(err)
	}
	prev, release, err := lc.HoldPurchase(ctx, second, 0)
	if err != nil || prev == nil || prev.ID != first.ID {
		t.Fatalf("settled, never served: %v %v", prev, err)
	}
	release()
	dearer := payment(3)
	dearer.IdempotencyKey, dearer.Amount = "pid:k1", big.NewInt(50)
	if _, _, err := lc.HoldPurchase(ctx, dearer, 0); coinop.AsError(err).Reason != coinop.ReasonIdempotencyReused {
		t.Fatalf("for another price: %v", err)
	}
	lc.Served(ctx, first)
	if _, _, err := lc.HoldPurchase(ctx, second, 0); coinop.AsError(err).Reason != coinop.ReasonIdempotencyUsed {
		t.Fatalf("served: %v", err)
	}

	fresh := payment(4)
	fresh.IdempotencyKey = "pid:k2"
	_, release, err = lc.HoldPurchase(ctx, fresh, 0)
	if err != nil {
		t.Fatal(err)
	}
	dup := payment(5)
	dup.IdempotencyKey = "pid:k2"
	done := make(chan error, 1)
	go func() {
		_, _, err := lc.HoldPurchase(ctx, dup, 20*time.Millisecond)
		done <- err
	}()
	if err := <-done; coinop.AsError(err).Reason != coinop.ReasonIdempotencyUsed {
		t.Fatalf("duplicate past the wait: %v", err)
	}
	release()
	if _, release, err := lc.HoldPurchase(ctx, dup, 0); err != nil {
		t.Fatalf("after the holder is done: %v", err)
	} else {
		release()
	}
}

// TestOweFailureReleases: when the journal cannot say the settlement is
// owed, the reservation is released (nothing may be served) and the error
// is KindUnavailable.
func TestOweFailureReleases(t *testing.T) {
	lc, j, _ := open(t)
	p := payment(1)
	if err := lc.Reserve(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := lc.Owe(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	again := payment(1) // in state settling now: a second Owe is refused
	if err := lc.Owe(t.Context(), again); coinop.KindOf(err) != coinop.KindUnavailable {
		t.Fatalf("owe of a settling payment: %v", err)
	}
	got, err := j.Get(t.Context(), p.ID)
	if err != nil || got.State != coinop.StateSettling {
		t.Fatalf("the first Owe's state was changed: %v %v", got, err)
	}
}

// journalOnly hides every capability of a journal beyond lifecycle.Journal.
type journalOnly struct{ lifecycle.Journal }

// TestOweWithin: the journal decides the mode when the payment is owed,
// and p.Mode says what it recorded; a journal that cannot count exposure
// owes synchronously, and a refused owe is KindUnavailable and changes
// nothing.
func TestOweWithin(t *testing.T) {
	lc, j, _ := open(t)
	limit := big.NewInt(10) // two payments of 5
	var modes []string
	for i := range 3 {
		p := payment(i)
		if err := lc.Reserve(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if err := lc.OweWithin(t.Context(), p, limit); err != nil {
			t.Fatal(err)
		}
		got, err := j.Get(t.Context(), p.ID)
		if err != nil || got.Mode != p.Mode || got.State != coinop.StateSettling || p.State != coinop.StateSettling {
			t.Fatalf("journaled %+v (%v); the payment says %s %s", got, err, p.State, p.Mode)
		}
		modes = append(modes, p.Mode)
	}
	if strings.Join(modes, ",") != "async,async,sync" {
		t.Errorf("modes %v, want async,async,sync", modes)
	}
	if err := lc.OweWithin(t.Context(), payment(0), limit); coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("owe of a settling payment: %v", err)
	}

	plain := lifecycle.New(journalOnly{j}, nil, nil)
	p := payment(5)
	p.Payer = "another"
	if err := plain.Reserve(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := plain.OweWithin(t.Context(), p, limit); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Get(t.Context(), p.ID); err != nil || got.Mode != coinop.ModeSync || p.Mode != coinop.ModeSync || got.State != coinop.StateSettling {
		t.Errorf("without exposure counting: journaled %+v (%v), payment mode %s; want settling sync", got, err, p.Mode)
	}
}

// owed reserves and owes n payments, returning them.
func owed(t *testing.T, lc *lifecycle.Lifecycle, from, n int) []*coinop.Payment {
	t.Helper()
	var ps []*coinop.Payment
	for i := from; i < from+n; i++ {
		p := payment(i)
		if err := lc.Reserve(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if err := lc.Owe(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// A batch's shared transaction is journaled for all its payments in one
// write, or for none: a payment of the group that is no longer settling
// fails the whole group, and the rail must not send.
func TestRecordGroupAllOrNothing(t *testing.T) {
	lc, j, steps := open(t)
	ctx := t.Context()
	ps := owed(t, lc, 0, 3)
	recs := []coinop.Recorder{lc.Recorder(ps[0]), nil, lc.Recorder(ps[1]), lc.Recorder(ps[2])}
	if err := coinop.RecordAll(ctx, recs, "0xbatch", "0xsigned"); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		got, _ := j.Get(ctx, p.ID)
		if got.Reference != "0xbatch" || got.Prepared != "0xsigned" || p.Reference != "0xbatch" {
			t.Errorf("%s: journaled %q %q, in memory %q", p.ID, got.Reference, got.Prepared, p.Reference)
		}
	}
	if n := strings.Count(strings.Join(*steps, " "), "tx_recorded"); n != 3 {
		t.Errorf("steps %v: want three tx_recorded", *steps)
	}

	qs := owed(t, lc, 5, 3)
	if err := j.Transition(ctx, qs[2].ID, coinop.StateSettling, coinop.StateFailed, "", "test"); err != nil {
		t.Fatal(err)
	}
	err := coinop.RecordAll(ctx, []coinop.Recorder{lc.Recorder(qs[0]), lc.Recorder(qs[1]), lc.Recorder(qs[2])}, "0xother", "0xsigned2")
	if err == nil {
		t.Fatal("a group with a payment no longer settling was journaled")
	}
	for _, q := range qs[:2] {
		if got, _ := j.Get(ctx, q.ID); got.Reference != "" || got.Prepared != "" {
			t.Errorf("%s journaled %q from a failed group", q.ID, got.Reference)
		}
	}
}

// The settled outcomes of a batch are journaled together; a refused one
// goes its own way (failed), and the others are not held up by it.
func TestRecordMany(t *testing.T) {
	lc, j, _ := open(t)
	ctx := t.Context()
	ps := owed(t, lc, 0, 4)
	ok := &coinop.Receipt{Success: true, Reference: "0xbatch"}
	refused := coinop.Errorf(coinop.KindSettleFailed, "invalid_exact_evm_payload_signature", "refused")
	errs := lc.RecordMany(ctx, ps, []*coinop.Receipt{ok, ok, {Reference: "0xbatch"}, ok}, []error{nil, nil, refused, nil})
	want := []coinop.State{coinop.StateSettled, coinop.StateSettled, coinop.StateFailed, coinop.StateSettled}
	for i, p := range ps {
		got, _ := j.Get(ctx, p.ID)
		if got.State != want[i] || p.State != want[i] {
			t.Errorf("%s: journaled %s, in memory %s, want %s", p.ID, got.State, p.State, want[i])
		}
		if (errs[i] == nil) != (want[i] == coinop.StateSettled) {
			t.Errorf("%s: error %v", p.ID, errs[i])
		}
	}
}
