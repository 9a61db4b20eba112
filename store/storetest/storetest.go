// Package storetest is the conformance suite every payments journal backend
// must pass. It speaks only through the Store interface, so the same tests
// hold SQLite, PostgreSQL and any later backend to one contract.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Store is the journal contract under test. Implementations must be safe for
// concurrent use and make every write durable before returning.
type Store interface {
	// Reserve records p as verified and claims its ID (the replay guard),
	// setting p.State, p.Created and p.Updated to what was recorded, p.Mode
	// to the mode recorded ("" is sync) and p.Served to zero. An ID already
	// held, in any state but released, is KindReplayed ("payment_replayed").
	// A released payment under the
	// same ID is reserved again, with p's Mode, Payload and IdempotencyKey,
	// and is no longer served. An ID held under another key, or a Mode
	// other than "", sync and async, is KindInternal.
	//
	// A non-empty IdempotencyKey is claimed with the payer: if another
	// payment that is not released holds (Payer, IdempotencyKey), Reserve
	// is KindReplayed ("idempotency_key_used"). A released payment's key may
	// be taken by another payment. A replayed payment is "payment_replayed"
	// even when its idempotency key is also taken.
	Reserve(ctx context.Context, p *coinop.Payment) error
	// Transition is a compare-and-set from one state to another: a payment
	// not in state from is KindInFlight, an unknown id wraps
	// store.ErrNotFound, an illegal transition is KindInternal. Non-empty tx
	// and reason replace the stored ones.
	Transition(ctx context.Context, id string, from, to coinop.State, tx, reason string) error
	// RecordTx sets a settling payment's Tx and RawTx, with a
	// settling→settling event carrying the hash. A payment that is not
	// settling is KindInFlight ("payment_state_conflict"), an unknown id
	// wraps store.ErrNotFound, an empty id, hash or raw transaction is
	// KindInternal. A payment reserved again after release has no RawTx.
	RecordTx(ctx context.Context, id, tx, raw string) error
	// MarkServed sets a payment's Served (and Updated) time to the store's
	// clock and writes an event from and to its state with reason
	// store.ReasonServed. A payment already served is KindReplayed
	// ("payment_replayed"); one not served but neither verified, settling
	// nor settled is KindInternal; an unknown id wraps store.ErrNotFound.
	MarkServed(ctx context.Context, id string) error
	// Get returns a payment or an error wrapping store.ErrNotFound.
	Get(ctx context.Context, id string) (*coinop.Payment, error)
	// ByIdempotencyKey returns the payment that is not released and holds
	// (payer, key), or an error wrapping store.ErrNotFound (always so for
	// key "").
	ByIdempotencyKey(ctx context.Context, payer, key string) (*coinop.Payment, error)
	// Unfinished returns verified and settling payments, oldest first
	// (by Created, then ID).
	Unfinished(ctx context.Context) ([]*coinop.Payment, error)
	// List returns up to limit payments in a state ("" = all; limit <= 0 =
	// no limit), newest first (by Created, then ID).
	List(ctx context.Context, state coinop.State, limit int) ([]*coinop.Payment, error)
	// Events returns a payment's history, oldest first, or an error
	// wrapping store.ErrNotFound.
	Events(ctx context.Context, id string) ([]store.Event, error)
	// Ping reports whether the store can be used.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
	// Claim takes a non-final payment's lease if it is expired, absent or
	// the caller's own, returning the payment; otherwise KindInFlight. An
	// unknown id wraps store.ErrNotFound.
	Claim(ctx context.Context, id string) (*coinop.Payment, error)
	// Renew extends the caller's own leases on ids.
	Renew(ctx context.Context, ids []string) error
	// ListPage returns one page of a filtered listing, oldest first by
	// (Created, ID); see store.Filter.
	ListPage(ctx context.Context, f store.Filter) (store.Page, error)
	// Atomically runs fn in one transaction scope (see store.Tx).
	Atomically(ctx context.Context, fn func(tx store.Tx) error) error
	// Migrate runs a rail's ddl once per name.
	Migrate(ctx context.Context, name, ddl string) error
}

// Run runs the suite. It calls open once per subtest for a fresh, empty store
// and closes that store when the subtest ends; open may register cleanups of
// its own with t.Cleanup, which run after Close.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s Store)
	}{
		{"ReserveRoundTrip", testReserveRoundTrip},
		{"ReserveRejectsInvalidPayment", testReserveRejectsInvalidPayment},
		{"ReserveReplayed", testReserveReplayed},
		{"ReserveAgainAfterRelease", testReserveAgainAfterRelease},
		{"ReserveIDUnderOtherKey", testReserveIDUnderOtherKey},
		{"TransitionCompareAndSet", testTransitionCompareAndSet},
		{"TransitionIllegal", testTransitionIllegal},
		{"TransitionTxAndReason", testTransitionTxAndReason},
		{"NotFound", testNotFound},
		{"Events", testEvents},
		{"Unfinished", testUnfinished},
		{"List", testList},
		{"ConcurrentReserveSameKey", testConcurrentReserveSameKey},
		{"ConcurrentReserveDistinctKeys", testConcurrentReserveDistinctKeys},
		{"ConcurrentTransition", testConcurrentTransition},
		{"ReservePaymentFields", testReservePaymentFields},
		{"ReserveAgainAfterReleaseFields", testReserveAgainAfterReleaseFields},
		{"IdempotencyKeyUsed", testIdempotencyKeyUsed},
		{"IdempotencyKeyScope", testIdempotencyKeyScope},
		{"IdempotencyKeyOfReleasedPayment", testIdempotencyKeyOfReleasedPayment},
		{"ByIdempotencyKey", testByIdempotencyKey},
		{"MarkServed", testMarkServed},
		{"MarkServedThenTransition", testMarkServedThenTransition},
		{"ConcurrentReserveSameIdempotencyKey", testConcurrentReserveSameIdempotencyKey},
		{"ConcurrentReserveAgainSameIdempotencyKey", testConcurrentReserveAgainSameIdempotencyKey},
		{"ConcurrentMarkServed", testConcurrentMarkServed},
		{"RecordTx", testRecordTx},
		{"Ping", testPing},
		{"NeutralFields", testNeutralFields},
		{"ListPage", testListPage},
		{"Atomically", testAtomically},
		{"ConcurrentAtomically", testConcurrentAtomically},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.test(t, s)
		})
	}
}

// Payment returns a distinct, valid payment for each n, for backend tests.
// IDs sort in the order of n, so ties on Created still order payments as
// they were reserved.
func Payment(n int) *coinop.Payment {
	amount, _ := new(big.Int).SetString("123456789012345678901234567890", 10) // beyond uint64
	amount.Add(amount, big.NewInt(int64(n)))
	return &coinop.Payment{
		ID:        fmt.Sprintf("pay-%06d", n),
		Rail:      "x402-exact-evm",
		Network:   "eip155:8453",
		Asset:     "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
		Payer:     "0x1111111111111111111111111111111111111111",
		PayTo:     "0x2222222222222222222222222222222222222222",
		ReplayKey: fmt.Sprintf("0x%064x", n),
		Amount:    amount,
		Resource:  fmt.Sprintf("https://api.example/v1/thing/%d", n),
	}
}

func reserve(t *testing.T, s Store, p *coinop.Payment) {
	t.Helper()
	if err := s.Reserve(t.Context(), p); err != nil {
		t.Fatalf("Reserve(%s): %v", p.ID, err)
	}
}

func transition(t *testing.T, s Store, id string, from, to coinop.State, tx, reason string) {
	t.Helper()
	if err := s.Transition(t.Context(), id, from, to, tx, reason); err != nil {
		t.Fatalf("Transition(%s, %s→%s): %v", id, from, to, err)
	}
}

func get(t *testing.T, s Store, id string) *coinop.Payment {
	t.Helper()
	p, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return p
}

// wantError fails unless err is a *coinop.Error of kind k with the reason
// (when reason is not "").
func wantError(t *testing.T, err error, k coinop.Kind, reason string) {
	t.Helper()
	var e *coinop.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want a *coinop.Error of kind %s", err, k)
	}
	if e.Kind != k {
		t.Fatalf("error kind = %s (%v), want %s", e.Kind, err, k)
	}
	if reason != "" && e.Reason != reason {
		t.Fatalf("error reason = %q, want %q", e.Reason, reason)
	}
}

// samePayment compares every journaled field of two payments.
func samePayment(t *testing.T, got, want *coinop.Payment) {
	t.Helper()
	type fields struct {
		ID, Rail, Route, Network, Asset, Payer, PayTo, ReplayKey string
		Bearer                                                   bool
		Amount, Resource                                         string
		State                                                    coinop.State
		Reference, Reason, Prepared, Details                     string
		Mode, Payload, IdempotencyKey                            string
	}
	f := func(p *coinop.Payment) fields {
		return fields{p.ID, p.Rail, p.Route, p.Network, p.Asset, p.Payer, p.PayTo, p.ReplayKey, p.Bearer,
			p.Amount.String(), p.Resource, p.State, p.Reference, p.Reason, p.Prepared, store.EncodeDetails(p.Details),
			p.Mode, p.Payload, p.IdempotencyKey}
	}
	if g, w := f(got), f(want); g != w {
		t.Errorf("payment = %+v\nwant      %+v", g, w)
	}
	if !got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) || !got.Served.Equal(want.Served) {
		t.Errorf("payment %s times (created, updated, served) = (%v, %v, %v), want (%v, %v, %v)",
			want.ID, got.Created, got.Updated, got.Served, want.Created, want.Updated, want.Served)
	}
}

func ids(ps []*coinop.Payment) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func testReserveRoundTrip(t *testing.T, s Store) {
	for i, amount := range []string{"0", "1", "115792089237316195423570985008687907853269984665640564039457584007913129639935"} {
		t.Run("amount="+amount, func(t *testing.T) {
			p := Payment(i)
			p.Amount, _ = new(big.Int).SetString(amount, 10)
			p.State = coinop.StateSettled // ignored: Reserve records verified
			reserve(t, s, p)

			if p.State != coinop.StateVerified {
				t.Errorf("State after Reserve = %q, want %q", p.State, coinop.StateVerified)
			}
			if p.Created.IsZero() || p.Updated.Before(p.Created) {
				t.Errorf("times after Reserve = (%v, %v), want Created set and Updated >= Created", p.Created, p.Updated)
			}
			got := get(t, s, p.ID)
			samePayment(t, got, p)
			if got.Amount.Cmp(p.Amount) != 0 {
				t.Errorf("Amount = %v, want %v", got.Amount, p.Amount)
			}
			if got.Credential != nil {
				t.Errorf("Credential = %v, want nil", got.Credential)
			}
		})
	}
}

func testReserveRejectsInvalidPayment(t *testing.T, s Store) {
	tests := []struct {
		name   string
		modify func(p *coinop.Payment)
	}{
		{"no ID", func(p *coinop.Payment) { p.ID = "" }},
		{"no nonce", func(p *coinop.Payment) { p.ReplayKey = "" }},
		{"no amount", func(p *coinop.Payment) { p.Amount = nil }},
		{"negative amount", func(p *coinop.Payment) { p.Amount = big.NewInt(-1) }},
		{"unknown mode", func(p *coinop.Payment) { p.Mode = "later" }},
		{"mode in capitals", func(p *coinop.Payment) { p.Mode = "SYNC" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Payment(1)
			tt.modify(p)
			wantError(t, s.Reserve(t.Context(), p), coinop.KindInternal, "")
		})
	}
	if err := s.Reserve(t.Context(), nil); err == nil {
		t.Error("Reserve(nil) succeeded")
	}
	if ps, err := s.List(t.Context(), "", 0); err != nil || len(ps) != 0 {
		t.Errorf("List after rejected reserves = %v, %v; want none", ids(ps), err)
	}
}

func testReserveReplayed(t *testing.T, s Store) {
	// Each case journals payment n, moves it through path, then presents
	// it again. The ID is the replay guard (rails derive it from the replay
	// key), so the same key under another ID is another payment.
	tests := []struct {
		name    string
		path    []coinop.State
		otherID bool
	}{
		{"verified", nil, false},
		{"settling", []coinop.State{coinop.StateSettling}, false},
		{"settled", []coinop.State{coinop.StateSettling, coinop.StateSettled}, false},
		{"failed before settling", []coinop.State{coinop.StateFailed}, false},
		{"failed while settling", []coinop.State{coinop.StateSettling, coinop.StateFailed}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Payment(i)
			reserve(t, s, p)
			state := coinop.StateVerified
			for _, next := range tt.path {
				transition(t, s, p.ID, state, next, "", "")
				state = next
			}
			before := get(t, s, p.ID)
			events, err := s.Events(t.Context(), p.ID)
			if err != nil {
				t.Fatal(err)
			}

			again := Payment(i)
			if tt.otherID {
				again.ID = "other-" + p.ID
			}
			err = s.Reserve(t.Context(), again)
			wantError(t, err, coinop.KindReplayed, "payment_replayed")
			if msg := coinop.AsError(err).Message; msg != "this payment was already used" {
				t.Errorf("Message = %q, want %q", msg, "this payment was already used")
			}

			samePayment(t, get(t, s, p.ID), before)
			if after, err := s.Events(t.Context(), p.ID); err != nil || len(after) != len(events) {
				t.Errorf("events after replay = %d, %v; want %d", len(after), err, len(events))
			}
			if tt.otherID {
				if _, err := s.Get(t.Context(), again.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Get(%s) error = %v, want ErrNotFound", again.ID, err)
				}
			}
		})
	}
}

func testReserveAgainAfterRelease(t *testing.T, s Store) {
	p := Payment(1)
	reserve(t, s, p)
	created := p.Created
	transition(t, s, p.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")
	if got := get(t, s, p.ID); got.State != coinop.StateReleased || got.Reason != "upstream_failed" {
		t.Fatalf("after release: state %q reason %q", got.State, got.Reason)
	}

	retry := Payment(1)
	retry.Resource = "https://api.example/v1/other"
	reserve(t, s, retry)
	if retry.State != coinop.StateVerified || !retry.Created.Equal(created) || retry.Updated.Before(created) {
		t.Errorf("re-reserved payment: state %q created %v updated %v; want verified, created %v",
			retry.State, retry.Created, retry.Updated, created)
	}
	samePayment(t, get(t, s, p.ID), retry)

	// Reserved again, the key is held again.
	wantError(t, s.Reserve(t.Context(), Payment(1)), coinop.KindReplayed, "payment_replayed")

	events, err := s.Events(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, e := range events {
		path = append(path, string(e.From)+"→"+string(e.To))
	}
	if want := []string{"→verified", "verified→released", "released→verified"}; !slices.Equal(path, want) {
		t.Errorf("history = %q, want %q", path, want)
	}
}

func testReserveIDUnderOtherKey(t *testing.T, s Store) {
	reserve(t, s, Payment(1))
	p := Payment(2)
	p.ID = Payment(1).ID
	wantError(t, s.Reserve(t.Context(), p), coinop.KindInternal, "")
	if got := get(t, s, p.ID); got.ReplayKey != Payment(1).ReplayKey {
		t.Errorf("journaled nonce = %s, want the first payment's", got.ReplayKey)
	}
	// The refused payment's key stays free.
	reserve(t, s, Payment(2))
}

func testTransitionCompareAndSet(t *testing.T, s Store) {
	p := Payment(1)
	reserve(t, s, p)
	// Every legal transition whose from is not the current state conflicts.
	for _, tt := range []struct{ from, to coinop.State }{
		{coinop.StateSettling, coinop.StateSettled},
		{coinop.StateSettling, coinop.StateFailed},
		{coinop.StateSettling, coinop.StateSettling},
	} {
		err := s.Transition(t.Context(), p.ID, tt.from, tt.to, "0xabc", "x")
		wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
	}
	transition(t, s, p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
	for _, to := range []coinop.State{coinop.StateSettling, coinop.StateReleased, coinop.StateFailed} {
		err := s.Transition(t.Context(), p.ID, coinop.StateVerified, to, "0xabc", "x")
		wantError(t, err, coinop.KindInFlight, "payment_state_conflict")
	}
	transition(t, s, p.ID, coinop.StateSettling, coinop.StateSettled, "0xabc", "")
	err := s.Transition(t.Context(), p.ID, coinop.StateSettling, coinop.StateFailed, "", "late")
	wantError(t, err, coinop.KindInFlight, "payment_state_conflict")

	got := get(t, s, p.ID)
	if got.State != coinop.StateSettled || got.Reference != "0xabc" || got.Reason != "" {
		t.Errorf("after conflicts: state %q tx %q reason %q; want settled, 0xabc, no reason", got.State, got.Reference, got.Reason)
	}
	if events, err := s.Events(t.Context(), p.ID); err != nil || len(events) != 3 {
		t.Errorf("events = %d, %v; want 3 (conflicts leave no trace)", len(events), err)
	}
}

func testTransitionIllegal(t *testing.T, s Store) {
	all := []coinop.State{coinop.StateVerified, coinop.StateSettling, coinop.StateSettled,
		coinop.StateFailed, coinop.StateReleased, "", "bogus"}
	legal := map[[2]coinop.State]bool{
		{coinop.StateVerified, coinop.StateSettling}: true,
		{coinop.StateVerified, coinop.StateReleased}: true,
		{coinop.StateVerified, coinop.StateFailed}:   true,
		{coinop.StateSettling, coinop.StateSettled}:  true,
		{coinop.StateSettling, coinop.StateFailed}:   true,
		{coinop.StateSettling, coinop.StateSettling}: true,
		{coinop.StateSettled, coinop.StateReleased}:  true, // a bearer charge given back
	}
	// Start each transition from a payment in its from state, so that it is
	// refused for being illegal, not for a state conflict.
	journal(t, s, statePaths()...)
	byState := map[coinop.State]string{}
	for n := range 5 {
		p := get(t, s, Payment(n).ID)
		byState[p.State] = p.ID
	}
	for _, from := range all {
		for _, to := range all {
			if legal[[2]coinop.State{from, to}] {
				continue
			}
			id, ok := byState[from]
			if !ok {
				id = byState[coinop.StateVerified]
			}
			t.Run(fmt.Sprintf("%q→%q", from, to), func(t *testing.T) {
				before := get(t, s, id)
				wantError(t, s.Transition(t.Context(), id, from, to, "0xdead", "nope"), coinop.KindInternal, "")
				samePayment(t, get(t, s, id), before)
			})
		}
	}
}

func testTransitionTxAndReason(t *testing.T, s Store) {
	p := Payment(1)
	reserve(t, s, p)
	steps := []struct {
		from, to   coinop.State
		tx, reason string
		wantTx     string
		wantReason string
	}{
		{coinop.StateVerified, coinop.StateSettling, "", "", "", ""},
		{coinop.StateSettling, coinop.StateSettling, "0xaaa", "", "0xaaa", ""},
		{coinop.StateSettling, coinop.StateSettling, "", "resubmitted", "0xaaa", "resubmitted"},
		{coinop.StateSettling, coinop.StateSettling, "0xbbb", "", "0xbbb", "resubmitted"},
		{coinop.StateSettling, coinop.StateFailed, "", "transaction_reverted", "0xbbb", "transaction_reverted"},
	}
	prev := p.Updated
	for _, st := range steps {
		transition(t, s, p.ID, st.from, st.to, st.tx, st.reason)
		got := get(t, s, p.ID)
		if got.State != st.to || got.Reference != st.wantTx || got.Reason != st.wantReason {
			t.Errorf("after %s→%s(%q, %q): state %q tx %q reason %q; want %q %q %q",
				st.from, st.to, st.tx, st.reason, got.State, got.Reference, got.Reason, st.to, st.wantTx, st.wantReason)
		}
		if got.Updated.Before(prev) || !got.Created.Equal(p.Created) {
			t.Errorf("after %s→%s: created %v updated %v; want created %v, updated >= %v",
				st.from, st.to, got.Created, got.Updated, p.Created, prev)
		}
		prev = got.Updated
	}
}

func testNotFound(t *testing.T, s Store) {
	reserve(t, s, Payment(1))
	if _, err := s.Get(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get error = %v, want ErrNotFound", err)
	}
	if _, err := s.Events(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Events error = %v, want ErrNotFound", err)
	}
	err := s.Transition(t.Context(), "missing", coinop.StateVerified, coinop.StateSettling, "", "")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Transition error = %v, want ErrNotFound", err)
	}
}

func testEvents(t *testing.T, s Store) {
	p := Payment(1)
	reserve(t, s, p)
	transition(t, s, p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
	transition(t, s, p.ID, coinop.StateSettling, coinop.StateSettling, "0xabc", "")
	transition(t, s, p.ID, coinop.StateSettling, coinop.StateSettled, "", "")
	reserve(t, s, Payment(2)) // another payment's history stays its own

	got, err := s.Events(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Event{
		{PaymentID: p.ID, From: "", To: coinop.StateVerified},
		{PaymentID: p.ID, From: coinop.StateVerified, To: coinop.StateSettling},
		{PaymentID: p.ID, From: coinop.StateSettling, To: coinop.StateSettling, Reference: "0xabc"},
		{PaymentID: p.ID, From: coinop.StateSettling, To: coinop.StateSettled},
	}
	if len(got) != len(want) {
		t.Fatalf("events = %+v, want %d", got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PaymentID != w.PaymentID || g.From != w.From || g.To != w.To || g.Reference != w.Reference || g.Reason != w.Reason {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
		if g.At.IsZero() || i > 0 && g.At.Before(got[i-1].At) {
			t.Errorf("event %d at %v, want set and not before the previous one", i, g.At)
		}
	}
	if !got[0].At.Equal(p.Created) {
		t.Errorf("reservation event at %v, want Created %v", got[0].At, p.Created)
	}
	if last := get(t, s, p.ID); !got[len(got)-1].At.Equal(last.Updated) {
		t.Errorf("last event at %v, want Updated %v", got[len(got)-1].At, last.Updated)
	}
}

// journal reserves payments 0..len(paths)-1 in order and moves each along
// its path from verified.
func journal(t *testing.T, s Store, paths ...[]coinop.State) {
	t.Helper()
	for i, path := range paths {
		p := Payment(i)
		reserve(t, s, p)
		state := coinop.StateVerified
		for _, next := range path {
			transition(t, s, p.ID, state, next, "", "")
			state = next
		}
	}
}

// statePaths journals payments 0 to 6 as verified, settling, settled,
// failed, released, verified, settling.
func statePaths() [][]coinop.State {
	return [][]coinop.State{
		{},
		{coinop.StateSettling},
		{coinop.StateSettling, coinop.StateSettled},
		{coinop.StateFailed},
		{coinop.StateReleased},
		{},
		{coinop.StateSettling},
	}
}

func testUnfinished(t *testing.T, s Store) {
	if ps, err := s.Unfinished(t.Context()); err != nil || len(ps) != 0 {
		t.Fatalf("Unfinished on an empty store = %v, %v", ids(ps), err)
	}
	journal(t, s, statePaths()...)
	ps, err := s.Unfinished(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{Payment(0).ID, Payment(1).ID, Payment(5).ID, Payment(6).ID}
	if !slices.Equal(ids(ps), want) {
		t.Errorf("Unfinished = %q, want %q", ids(ps), want)
	}
	for _, p := range ps {
		samePayment(t, p, get(t, s, p.ID))
	}
}

func testList(t *testing.T, s Store) {
	journal(t, s, statePaths()...)
	id := func(ns ...int) []string {
		out := []string{}
		for _, n := range ns {
			out = append(out, Payment(n).ID)
		}
		return out
	}
	tests := []struct {
		state coinop.State
		limit int
		want  []string
	}{
		{"", 0, id(6, 5, 4, 3, 2, 1, 0)},
		{"", -1, id(6, 5, 4, 3, 2, 1, 0)},
		{"", 3, id(6, 5, 4)},
		{"", 100, id(6, 5, 4, 3, 2, 1, 0)},
		{coinop.StateVerified, 0, id(5, 0)},
		{coinop.StateSettling, 0, id(6, 1)},
		{coinop.StateSettling, 1, id(6)},
		{coinop.StateSettled, 0, id(2)},
		{coinop.StateFailed, 0, id(3)},
		{coinop.StateReleased, 0, id(4)},
		{"bogus", 0, id()},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%d", tt.state, tt.limit), func(t *testing.T) {
			ps, err := s.List(t.Context(), tt.state, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(ps); !slices.Equal(got, tt.want) {
				t.Errorf("List = %q, want %q", got, tt.want)
			}
			for _, p := range ps {
				samePayment(t, p, get(t, s, p.ID))
			}
		})
	}
}

const goroutines = 100

func testConcurrentReserveSameKey(t *testing.T, s Store) {
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() { errs[i] = s.Reserve(t.Context(), Payment(7)) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		if k := coinop.KindOf(err); k != coinop.KindReplayed {
			t.Errorf("Reserve error = %v (kind %s), want KindReplayed", err, k)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent reserves of one key succeeded, want 1", won, goroutines)
	}
	if events, err := s.Events(t.Context(), Payment(7).ID); err != nil || len(events) != 1 {
		t.Errorf("events = %d, %v; want 1", len(events), err)
	}
}

func testConcurrentReserveDistinctKeys(t *testing.T, s Store) {
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() { errs[i] = s.Reserve(t.Context(), Payment(i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Reserve(%d): %v", i, err)
		}
	}
	ps, err := s.Unfinished(t.Context())
	if err != nil || len(ps) != goroutines {
		t.Errorf("Unfinished = %d payments, %v; want %d", len(ps), err, goroutines)
	}
}

func testConcurrentTransition(t *testing.T, s Store) {
	p := Payment(1)
	reserve(t, s, p)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			errs[i] = s.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, fmt.Sprintf("0x%x", i), "")
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("goroutines %d and %d both moved the payment", winner, i)
		case err == nil:
			winner = i
		default:
			if k := coinop.KindOf(err); k != coinop.KindInFlight {
				t.Errorf("Transition error = %v (kind %s), want KindInFlight", err, k)
			}
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent transition succeeded")
	}
	if got := get(t, s, p.ID); got.State != coinop.StateSettling || got.Reference != fmt.Sprintf("0x%x", winner) {
		t.Errorf("payment = %q tx %q, want settling with the winner's tx 0x%x", got.State, got.Reference, winner)
	}
}

func testPing(t *testing.T, s Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// RunReopen checks that a journal keeps its data, its history and its
// replay guard across Close and a new open. open must return a new store on
// the same, initially empty, database each time it is called.
func RunReopen(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	p := Payment(1)
	if err := s.Reserve(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := s.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, "0xfeed", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t)
	defer s.Close()
	got, err := s.Get(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != coinop.StateSettling || got.Reference != "0xfeed" || got.Amount.Cmp(p.Amount) != 0 || !got.Created.Equal(p.Created) {
		t.Errorf("after reopen: %+v", got)
	}
	if events, err := s.Events(t.Context(), p.ID); err != nil || len(events) != 2 {
		t.Errorf("events after reopen = %d, %v; want 2", len(events), err)
	}
	if ps, err := s.Unfinished(t.Context()); err != nil || len(ps) != 1 {
		t.Errorf("Unfinished after reopen = %d, %v; want 1", len(ps), err)
	}
	// The replay guard survives too.
	if err := s.Reserve(t.Context(), Payment(1)); coinop.KindOf(err) != coinop.KindReplayed {
		t.Errorf("Reserve after reopen = %v, want KindReplayed", err)
	}
}
