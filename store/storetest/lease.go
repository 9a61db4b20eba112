package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Clock is a settable clock for lease tests, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// LeaseTerm is the lease RunLeases expects its stores to be opened with.
const LeaseTerm = time.Minute

// RunLeases runs the lease suite: two instances sharing one journal never
// finish each other's live payments. open returns, for each subtest, an
// opener of stores on one fresh, shared database; each store it opens must
// take leases under owner, for LeaseTerm, read the clock now, and be closed
// by open's cleanups.
func RunLeases(t *testing.T, open func(t *testing.T) func(owner string, now func() time.Time) Store) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  func(t *testing.T, a, b Store, clock *Clock)
	}{
		{"live lease refuses another owner", func(t *testing.T, a, b Store, clock *Clock) {
			p := Payment(1)
			reserve(t, a, p)
			_, err := b.Claim(t.Context(), p.ID)
			wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
			clock.Advance(LeaseTerm - time.Second)
			transition(t, a, p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
			clock.Advance(LeaseTerm - time.Second) // past the reservation's lease, not the transition's
			_, err = b.Claim(t.Context(), p.ID)
			wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
			if got, err := a.Claim(t.Context(), p.ID); err != nil || got.State != coinop.StateSettling {
				t.Errorf("owner's own Claim = %v, %v; want the settling payment", got, err)
			}
		}},
		{"expired lease is taken over once", func(t *testing.T, a, b Store, clock *Clock) {
			p := Payment(2)
			reserve(t, a, p)
			clock.Advance(LeaseTerm + time.Second)
			got, err := b.Claim(t.Context(), p.ID)
			if err != nil {
				t.Fatalf("Claim of an expired lease: %v", err)
			}
			samePayment(t, got, get(t, a, p.ID))
			_, err = a.Claim(t.Context(), p.ID)
			wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
		}},
		{"renew keeps the lease", func(t *testing.T, a, b Store, clock *Clock) {
			p, q := Payment(3), Payment(4)
			reserve(t, a, p)
			reserve(t, a, q)
			clock.Advance(LeaseTerm / 2)
			if err := a.Renew(t.Context(), []string{p.ID}); err != nil {
				t.Fatal(err)
			}
			clock.Advance(LeaseTerm/2 + time.Second)
			_, err := b.Claim(t.Context(), p.ID)
			wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
			if _, err := b.Claim(t.Context(), q.ID); err != nil {
				t.Errorf("Claim of the payment not renewed: %v", err)
			}
			// Renewing another owner's lease changes nothing.
			if err := a.Renew(t.Context(), []string{q.ID}); err != nil {
				t.Fatal(err)
			}
			_, err = a.Claim(t.Context(), q.ID)
			wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
		}},
		{"served and recorded payments stay leased", func(t *testing.T, a, b Store, clock *Clock) {
			p := Payment(5)
			reserve(t, a, p)
			transition(t, a, p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
			clock.Advance(LeaseTerm - time.Second)
			markServed(t, a, p.ID)
			clock.Advance(LeaseTerm - time.Second)
			if err := a.RecordTx(t.Context(), p.ID, "0xabc", "0x02"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(LeaseTerm - time.Second)
			_, err := b.Claim(t.Context(), p.ID)
			wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
		}},
		{"final payments cannot be claimed", func(t *testing.T, a, b Store, clock *Clock) {
			for i, path := range [][]coinop.State{
				{coinop.StateReleased}, {coinop.StateFailed}, {coinop.StateSettling, coinop.StateSettled},
			} {
				p := Payment(10 + i)
				reserve(t, a, p)
				state := coinop.StateVerified
				for _, next := range path {
					transition(t, a, p.ID, state, next, "", "")
					state = next
				}
				for _, s := range []Store{a, b} {
					_, err := s.Claim(t.Context(), p.ID)
					wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
				}
			}
		}},
		{"unknown payment", func(t *testing.T, a, b Store, clock *Clock) {
			if _, err := a.Claim(t.Context(), "no-such-payment"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Claim(unknown) error = %v, want ErrNotFound", err)
			}
		}},
		{"concurrent claims: one wins", func(t *testing.T, a, b Store, clock *Clock) {
			p := Payment(20)
			reserve(t, a, p)
			clock.Advance(LeaseTerm + time.Second)
			c := open(t)("instance-c", clock.Now)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, s := range []Store{b, c} {
				wg.Go(func() { _, errs[i] = s.Claim(t.Context(), p.ID) })
			}
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) {
				t.Errorf("concurrent Claim errors = %v; want exactly one success", errs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := NewClock(start)
			opener := open(t)
			tt.run(t, opener("instance-a", clock.Now), opener("instance-b", clock.Now), clock)
		})
	}
}
