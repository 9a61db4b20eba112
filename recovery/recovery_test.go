package recovery_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/recovery"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/store/storetest"
)

// settles is a reconciler that finds every payment settled, and counts.
type settles struct {
	mu   sync.Mutex
	seen []string
}

func (s *settles) Reconcile(ctx context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, p.ID)
	return coinop.Outcome{State: coinop.StateSettled, Reference: "0xfeed"}, nil
}

// TestRunLeavesLiveLeases: recovery on instance B never finishes a payment
// instance A holds a live lease on, and finishes it once that lease expired;
// reconcilers are found by rail first, then by network.
func TestRunLeavesLiveLeases(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	path := filepath.Join(t.TempDir(), "journal.db")
	open := func(owner string) *sqlite.Store {
		s, err := sqlite.OpenWith(path, sqlite.Options{Owner: owner, Now: clock.Now, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	byRail, byNetwork := storetest.Payment(1), storetest.Payment(2)
	byRail.Rail = "x402/eip155:8453/usdc"
	for _, p := range []*coinop.Payment{byRail, byNetwork} {
		if err := a.Reserve(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if err := a.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	railRec, netRec := &settles{}, &settles{}
	recs := map[string]coinop.Reconciler{byRail.Rail: railRec, byNetwork.Network: netRec}
	log := slog.New(slog.DiscardHandler)

	clock.Advance(30 * time.Second)
	rep, err := recovery.Run(t.Context(), b, recs, clock.Now(), log)
	if err != nil || rep.Leased != 2 || rep.Settled != 0 || len(railRec.seen)+len(netRec.seen) != 0 {
		t.Fatalf("pass under A's live leases: %+v, %v; reconciled %v %v; want both left alone", rep, err, railRec.seen, netRec.seen)
	}
	for _, p := range []*coinop.Payment{byRail, byNetwork} {
		if got, _ := a.Get(t.Context(), p.ID); got.State != coinop.StateSettling {
			t.Errorf("%s is %s after B's pass, want settling", p.ID, got.State)
		}
	}

	clock.Advance(time.Minute)
	rep, err = recovery.Run(t.Context(), b, recs, clock.Now(), log)
	if err != nil || rep.Settled != 2 || rep.Leased != 0 {
		t.Fatalf("pass after A's leases expired: %+v, %v; want both settled", rep, err)
	}
	if len(railRec.seen) != 1 || railRec.seen[0] != byRail.ID || len(netRec.seen) != 1 || netRec.seen[0] != byNetwork.ID {
		t.Errorf("reconciled by rail %v, by network %v; want %s by rail, %s by network", railRec.seen, netRec.seen, byRail.ID, byNetwork.ID)
	}
}
