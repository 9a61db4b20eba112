package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Exposer is a journal that keeps the async exposure cap
// (lifecycle.Exposure): OweWithin moves a verified payment to settling and
// records it async only while its payer's async payments still settling,
// on its network and asset, plus its own amount, stay within limit; else
// sync (always sync for a nil limit). It reports whether it chose async. A
// payment that is not verified is KindInFlight ("payment_state_conflict"),
// an unknown id wraps store.ErrNotFound.
type Exposer interface {
	Store
	OweWithin(ctx context.Context, id string, limit *big.Int) (async bool, err error)
	// OweServed is OweWithin that marks a payment it owes async served in
	// the same write.
	OweServed(ctx context.Context, id string, limit *big.Int) (async bool, err error)
}

// exposureAmount is the amount of every payment of the exposure suite:
// beyond int64 and uint64, so that a sum through either would be wrong.
func exposureAmount() *big.Int {
	a, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	return a
}

// times is n × exposureAmount.
func times(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), exposureAmount()) }

// exposurePayment is payment n of payer, of exposureAmount.
func exposurePayment(n int, payer string) *coinop.Payment {
	p := Payment(n)
	p.Payer, p.Amount = payer, exposureAmount()
	return p
}

// RunExposure runs the exposure suite. open returns, for each subtest, an
// opener of stores on one fresh, shared database (a second handle stands for
// a second gateway instance, or the same one after a restart); each store
// it opens must be closed by open's cleanups, and closing it earlier must
// be allowed.
func RunExposure(t *testing.T, open func(t *testing.T) func() Exposer) {
	tests := []struct {
		name string
		run  func(t *testing.T, open func() Exposer)
	}{
		{"CapReachedExactly", testCapReachedExactly},
		{"CountedApart", testExposureCountedApart},
		{"FinalStatesFree", testExposureFinalStatesFree},
		{"OweWithinCompareAndSet", testOweWithinCompareAndSet},
		{"Restart", testExposureRestart},
		{"ConcurrentHandles", testExposureConcurrentHandles},
		{"OweServed", testOweServed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

// oweWithin reserves p in s and owes it within limit, returning the mode
// chosen; it checks that the journal recorded what was reported.
func oweWithin(t *testing.T, s Exposer, p *coinop.Payment, limit *big.Int) string {
	t.Helper()
	reserve(t, s, p)
	return owe(t, s, p.ID, limit)
}

// owe owes reserved payment id within limit and returns the mode journaled.
func owe(t *testing.T, s Exposer, id string, limit *big.Int) string {
	t.Helper()
	async, err := s.OweWithin(t.Context(), id, limit)
	if err != nil {
		t.Fatalf("OweWithin(%s, %v): %v", id, limit, err)
	}
	got := get(t, s, id)
	if got.State != coinop.StateSettling || (got.Mode == coinop.ModeAsync) != async {
		t.Fatalf("OweWithin(%s) reported async=%v; journaled %s %s", id, async, got.State, got.Mode)
	}
	return got.Mode
}

func wantModes(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("modes %v, want %v", got, want)
	}
}

// The cap is inclusive, summed exactly: three payments fit a cap of three
// times their amount and not a cap one unit less; the next is sync. A nil
// limit is always sync, and a payment journaled async by an earlier version
// (reserved async, moved by Transition) counts.
func testCapReachedExactly(t *testing.T, open func() Exposer) {
	s := open()
	limit := times(3)
	var modes []string
	for i := range 4 {
		modes = append(modes, oweWithin(t, s, exposurePayment(i, "alice"), limit))
	}
	wantModes(t, modes, "async", "async", "async", "sync")

	under := new(big.Int).Sub(times(3), big.NewInt(1))
	modes = nil
	for i := 10; i < 13; i++ {
		modes = append(modes, oweWithin(t, s, exposurePayment(i, "bob"), under))
	}
	wantModes(t, modes, "async", "async", "sync")

	if m := oweWithin(t, s, exposurePayment(20, "carol"), nil); m != coinop.ModeSync {
		t.Errorf("nil limit: %s, want sync", m)
	}

	old := exposurePayment(30, "dave")
	old.Mode = coinop.ModeAsync
	reserve(t, s, old)
	transition(t, s, old.ID, coinop.StateVerified, coinop.StateSettling, "", "")
	if m := oweWithin(t, s, exposurePayment(31, "dave"), times(1)); m != coinop.ModeSync {
		t.Errorf("after a payment owed async by Transition: %s, want sync", m)
	}
	if m := oweWithin(t, s, exposurePayment(32, "dave"), times(2)); m != coinop.ModeAsync {
		t.Errorf("within a cap of two: %s, want async", m)
	}
}

// Exposure is per payer, network and asset; verified payments (reserved,
// their responses held) and payments owed sync take none of it.
func testExposureCountedApart(t *testing.T, open func() Exposer) {
	s := open()
	limit := times(1)
	if m := oweWithin(t, s, exposurePayment(0, "alice"), limit); m != coinop.ModeAsync {
		t.Fatalf("first: %s", m)
	}
	other := func(n int, f func(p *coinop.Payment)) *coinop.Payment {
		p := exposurePayment(n, "alice")
		f(p)
		return p
	}
	for _, c := range []struct {
		name string
		p    *coinop.Payment
		want string
	}{
		{"same payer, network, asset", exposurePayment(1, "alice"), "sync"},
		{"another payer", exposurePayment(2, "bob"), "async"},
		{"another asset", other(3, func(p *coinop.Payment) { p.Asset = "0x3333333333333333333333333333333333333333" }), "async"},
		{"another network", other(4, func(p *coinop.Payment) { p.Network = "eip155:1" }), "async"},
	} {
		if m := oweWithin(t, s, c.p, limit); m != c.want {
			t.Errorf("%s: %s, want %s", c.name, m, c.want)
		}
	}
	// carol: one payment held verified, one owed sync; neither counts.
	reserve(t, s, exposurePayment(10, "carol"))
	if m := oweWithin(t, s, exposurePayment(11, "carol"), nil); m != coinop.ModeSync {
		t.Fatalf("nil limit: %s", m)
	}
	if m := oweWithin(t, s, exposurePayment(12, "carol"), limit); m != coinop.ModeAsync {
		t.Errorf("verified and sync payments counted: %s, want async", m)
	}
}

// A payment leaves its payer's exposure once it is settled or failed; one
// still settling with its transaction journaled (pending, or not sent)
// stays in it. A released payment was never owed.
func testExposureFinalStatesFree(t *testing.T, open func() Exposer) {
	s := open()
	limit := times(2)
	a, b := exposurePayment(0, "alice"), exposurePayment(1, "alice")
	wantModes(t, []string{oweWithin(t, s, a, limit), oweWithin(t, s, b, limit)}, "async", "async")
	if err := s.RecordTx(t.Context(), a.ID, "0xaaaa", "0x02aaaa"); err != nil {
		t.Fatal(err)
	}
	transition(t, s, b.ID, coinop.StateSettling, coinop.StateSettling, "0xbbbb", "waiting_for_network")
	if m := oweWithin(t, s, exposurePayment(2, "alice"), limit); m != coinop.ModeSync {
		t.Errorf("pending settlements freed the cap: %s, want sync", m)
	}
	transition(t, s, a.ID, coinop.StateSettling, coinop.StateSettled, "0xaaaa", "")
	c := exposurePayment(3, "alice")
	if m := oweWithin(t, s, c, limit); m != coinop.ModeAsync {
		t.Errorf("after a settled one: %s, want async", m)
	}
	if m := oweWithin(t, s, exposurePayment(4, "alice"), limit); m != coinop.ModeSync {
		t.Errorf("cap full again: %s, want sync", m)
	}
	transition(t, s, b.ID, coinop.StateSettling, coinop.StateFailed, "", "settlement_reverted")
	if m := oweWithin(t, s, exposurePayment(5, "alice"), limit); m != coinop.ModeAsync {
		t.Errorf("after a failed one: %s, want async", m)
	}
	r := exposurePayment(6, "bob")
	reserve(t, s, r)
	transition(t, s, r.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_status_502")
	if m := oweWithin(t, s, exposurePayment(7, "bob"), times(1)); m != coinop.ModeAsync {
		t.Errorf("a released payment counted: %s, want async", m)
	}
}

// OweWithin is a compare-and-set on verified, like Transition: of two owes
// of one payment one wins, and the loser changes nothing, not even the
// mode; an unknown payment is not found.
func testOweWithinCompareAndSet(t *testing.T, s0 func() Exposer) {
	s := s0()
	p := exposurePayment(0, "alice")
	if m := oweWithin(t, s, p, nil); m != coinop.ModeSync {
		t.Fatalf("%s", m)
	}
	_, err := s.OweWithin(t.Context(), p.ID, times(5))
	wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
	if got := get(t, s, p.ID); got.Mode != coinop.ModeSync || got.State != coinop.StateSettling {
		t.Errorf("a lost owe changed the payment: %s %s", got.State, got.Mode)
	}
	for _, limit := range []*big.Int{nil, times(1)} {
		if _, err := s.OweWithin(t.Context(), "pay-missing", limit); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown payment, limit %v: %v, want ErrNotFound", limit, err)
		}
	}
	evs := events(t, s, p.ID)
	if len(evs) != 2 || evs[1].From != coinop.StateVerified || evs[1].To != coinop.StateSettling {
		t.Errorf("events %+v, want the reservation and one verified→settling", evs)
	}
}

// What is owed survives the store: a new handle on the same database (a
// restarted instance) counts what the old one left settling.
func testExposureRestart(t *testing.T, open func() Exposer) {
	s := open()
	limit := times(2)
	wantModes(t, []string{oweWithin(t, s, exposurePayment(0, "alice"), limit), oweWithin(t, s, exposurePayment(1, "alice"), limit)}, "async", "async")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	if m := oweWithin(t, s, exposurePayment(2, "alice"), limit); m != coinop.ModeSync {
		t.Errorf("after a restart: %s, want sync", m)
	}
	transition(t, s, Payment(0).ID, coinop.StateSettling, coinop.StateSettled, "0xaaaa", "")
	if m := oweWithin(t, s, exposurePayment(3, "alice"), limit); m != coinop.ModeAsync {
		t.Errorf("after a restart and a settlement: %s, want async", m)
	}
}

// Two handles on one database (two instances), 50 goroutines each, owe one
// payer's payments at once: exactly the cap's worth is async, whatever the
// interleaving, and the journal holds no more.
func testExposureConcurrentHandles(t *testing.T, open func() Exposer) {
	const perHandle, capN = 50, 7
	handles := []Exposer{open(), open()}
	limit := times(capN)
	for i := range 2 * perHandle {
		reserve(t, handles[i%2], exposurePayment(i, "alice"))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		async int
		errs  []error
	)
	start := make(chan struct{})
	for i := range 2 * perHandle {
		wg.Go(func() {
			<-start
			a, err := handles[i%2].OweWithin(t.Context(), Payment(i).ID, limit)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if a {
				async++
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d owes failed, first: %v", len(errs), errs[0])
	}
	if async != capN {
		t.Errorf("%d owed async, want exactly %d", async, capN)
	}
	journaled := new(big.Int)
	for i := range 2 * perHandle {
		p := get(t, handles[0], Payment(i).ID)
		if p.State != coinop.StateSettling {
			t.Errorf("%s is %s, want settling", p.ID, p.State)
		}
		if p.Mode == coinop.ModeAsync {
			journaled.Add(journaled, p.Amount)
		}
	}
	if journaled.Cmp(limit) != 0 {
		t.Errorf("journaled async %v, want the cap %v", journaled, limit)
	}
}

// OweServed marks served, in the same write, exactly the payments it owes
// async: one owed sync is not served, one that is not verified is refused
// with nothing changed, and a served payment cannot be marked again.
func testOweServed(t *testing.T, open func() Exposer) {
	s := open()
	ctx := t.Context()
	limit := times(1)
	a := exposurePayment(1, "erin")
	reserve(t, s, a)
	async, err := s.OweServed(ctx, a.ID, limit)
	if err != nil || !async {
		t.Fatalf("OweServed within the cap: async=%v %v", async, err)
	}
	got := get(t, s, a.ID)
	if got.State != coinop.StateSettling || got.Mode != coinop.ModeAsync || got.Served.IsZero() {
		t.Errorf("owed async: %s %s served %v", got.State, got.Mode, got.Served)
	}
	if err := s.MarkServed(ctx, a.ID); coinop.KindOf(err) != coinop.KindReplayed {
		t.Errorf("MarkServed after OweServed: %v, want KindReplayed", err)
	}
	evs, err := s.Events(ctx, a.ID)
	if err != nil || len(evs) != 3 || evs[2].Reason != store.ReasonServed {
		t.Errorf("events %+v %v: want reserved, owed, served", evs, err)
	}

	b := exposurePayment(2, "erin") // beyond the cap: sync, not served
	reserve(t, s, b)
	if async, err := s.OweServed(ctx, b.ID, limit); err != nil || async {
		t.Fatalf("OweServed beyond the cap: async=%v %v", async, err)
	}
	if got := get(t, s, b.ID); got.Mode != coinop.ModeSync || !got.Served.IsZero() {
		t.Errorf("owed sync: %s served %v", got.Mode, got.Served)
	}

	if _, err := s.OweServed(ctx, a.ID, limit); coinop.KindOf(err) != coinop.KindInFlight {
		t.Errorf("OweServed of a payment already owed: %v, want KindInFlight", err)
	}
	c := exposurePayment(3, "frank")
	reserve(t, s, c)
	transition(t, s, c.ID, coinop.StateVerified, coinop.StateReleased, "", "")
	if _, err := s.OweServed(ctx, c.ID, limit); coinop.KindOf(err) != coinop.KindInFlight {
		t.Errorf("OweServed of a released payment: %v, want KindInFlight", err)
	}
	if got := get(t, s, c.ID); got.State != coinop.StateReleased || !got.Served.IsZero() {
		t.Errorf("a refused OweServed changed the payment: %s served %v", got.State, got.Served)
	}
}
