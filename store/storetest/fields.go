package storetest

// The tests of what a payment carries besides its replay key and state: its
// settlement mode, its payload, its idempotency key and when it was served.

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// keyed returns payment n holding idempotency key key.
func keyed(n int, key string) *coinop.Payment {
	p := Payment(n)
	p.IdempotencyKey = key
	return p
}

// largePayload is a credential of 16 KiB, the most a payment header is
// expected to carry, in the base64 alphabet such headers use.
func largePayload() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	return strings.Repeat(alphabet, 16<<10/len(alphabet))
}

func markServed(t *testing.T, s Store, id string) {
	t.Helper()
	if err := s.MarkServed(t.Context(), id); err != nil {
		t.Fatalf("MarkServed(%s): %v", id, err)
	}
}

func events(t *testing.T, s Store, id string) []store.Event {
	t.Helper()
	es, err := s.Events(t.Context(), id)
	if err != nil {
		t.Fatalf("Events(%s): %v", id, err)
	}
	return es
}

// wantMessage fails unless err is a *coinop.Error with message msg.
func wantMessage(t *testing.T, err error, msg string) {
	t.Helper()
	if got := coinop.AsError(err).Message; got != msg {
		t.Errorf("error message = %q, want %q", got, msg)
	}
}

func wantNotFound(t *testing.T, s Store, payer, key string) {
	t.Helper()
	if p, err := s.ByIdempotencyKey(t.Context(), payer, key); !errors.Is(err, store.ErrNotFound) {
		id := ""
		if p != nil {
			id = p.ID
		}
		t.Errorf("ByIdempotencyKey(%s, %q) = %q, %v; want ErrNotFound", payer, key, id, err)
	}
}

func wantHolder(t *testing.T, s Store, payer, key, id string) {
	t.Helper()
	p, err := s.ByIdempotencyKey(t.Context(), payer, key)
	if err != nil {
		t.Fatalf("ByIdempotencyKey(%s, %q): %v; want payment %s", payer, key, err, id)
	}
	if p.ID != id {
		t.Errorf("ByIdempotencyKey(%s, %q) = payment %s, want %s", payer, key, p.ID, id)
	}
	samePayment(t, p, get(t, s, id))
}

func testReservePaymentFields(t *testing.T, s Store) {
	tests := []struct {
		name, mode, payload, key string
		wantMode                 string
	}{
		{"none set", "", "", "", coinop.ModeSync},
		{"sync", coinop.ModeSync, "eyJ4NDAyVmVyc2lvbiI6Mn0=", "order-1", coinop.ModeSync},
		{"async with a 16 KiB payload", coinop.ModeAsync, largePayload(), "order-2", coinop.ModeAsync},
		{"key of any text", coinop.ModeAsync, "{\"a\": \"é\"}\n", "Ключ 🔑 with spaces, 'quotes' and \\", coinop.ModeAsync},
	}
	want := map[string]*coinop.Payment{}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := keyed(i, tt.key)
			p.Mode, p.Payload = tt.mode, tt.payload
			reserve(t, s, p)
			want[p.ID] = p
			if p.Mode != tt.wantMode || !p.Served.IsZero() {
				t.Errorf("after Reserve: Mode %q, Served %v; want %q, zero", p.Mode, p.Served, tt.wantMode)
			}
			got := get(t, s, p.ID)
			samePayment(t, got, p)
			if got.Payload != tt.payload { // samePayment said so; this says how
				t.Errorf("Payload = %d bytes, want %d", len(got.Payload), len(tt.payload))
			}
			if tt.key == "" {
				wantNotFound(t, s, p.Payer, "")
			} else {
				wantHolder(t, s, p.Payer, tt.key, p.ID)
			}
		})
	}
	lists := map[string]func() ([]*coinop.Payment, error){
		"List":       func() ([]*coinop.Payment, error) { return s.List(t.Context(), "", 0) },
		"Unfinished": func() ([]*coinop.Payment, error) { return s.Unfinished(t.Context()) },
	}
	for name, list := range lists {
		ps, err := list()
		if err != nil || len(ps) != len(tests) {
			t.Fatalf("%s = %q, %v; want %d payments", name, ids(ps), err, len(tests))
		}
		for _, p := range ps {
			samePayment(t, p, want[p.ID])
		}
	}
}

func testReserveAgainAfterReleaseFields(t *testing.T, s Store) {
	p := keyed(1, "first")
	p.Mode, p.Payload = coinop.ModeSync, "first payload"
	reserve(t, s, p)
	markServed(t, s, p.ID)
	transition(t, s, p.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")

	// A released payment keeps its key as a record, but no longer holds it.
	released := get(t, s, p.ID)
	if released.IdempotencyKey != "first" || released.Served.IsZero() {
		t.Errorf("released payment: key %q, served %v; want its key and served time kept", released.IdempotencyKey, released.Served)
	}
	wantNotFound(t, s, p.Payer, "first")

	retry := keyed(1, "second")
	retry.Mode, retry.Payload = coinop.ModeAsync, "second payload"
	reserve(t, s, retry)
	if !retry.Served.IsZero() || retry.Mode != coinop.ModeAsync {
		t.Errorf("after Reserve: Served %v, Mode %q; want zero, async", retry.Served, retry.Mode)
	}
	got := get(t, s, p.ID)
	samePayment(t, got, retry)
	if !got.Served.IsZero() {
		t.Errorf("re-reserved payment served at %v, want not served", got.Served)
	}
	wantHolder(t, s, p.Payer, "second", p.ID)
	wantNotFound(t, s, p.Payer, "first")
	// Reserved again, it may be served again, once.
	markServed(t, s, p.ID)
	wantError(t, s.MarkServed(t.Context(), p.ID), coinop.KindReplayed, "payment_replayed")

	// Reserved again without a key, it holds none.
	transition(t, s, p.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")
	retry = Payment(1)
	reserve(t, s, retry)
	if got := get(t, s, p.ID); got.IdempotencyKey != "" || got.Mode != coinop.ModeSync || got.Payload != "" {
		t.Errorf("re-reserved without key: key %q mode %q payload %q; want none, sync, none", got.IdempotencyKey, got.Mode, got.Payload)
	}
	wantNotFound(t, s, p.Payer, "second")
	reserve(t, s, keyed(2, "second"))
}

func testIdempotencyKeyUsed(t *testing.T, s Store) {
	tests := []struct {
		name string
		path []coinop.State
	}{
		{"verified", nil},
		{"settling", []coinop.State{coinop.StateSettling}},
		{"settled", []coinop.State{coinop.StateSettling, coinop.StateSettled}},
		{"failed before settling", []coinop.State{coinop.StateFailed}},
		{"failed while settling", []coinop.State{coinop.StateSettling, coinop.StateFailed}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("purchase-%d", i)
			holder := keyed(2*i, key)
			reserve(t, s, holder)
			state := coinop.StateVerified
			for _, next := range tt.path {
				transition(t, s, holder.ID, state, next, "", "")
				state = next
			}
			before := get(t, s, holder.ID)
			history := events(t, s, holder.ID)

			other := keyed(2*i+1, key) // another nonce, the same payer and key
			other.Mode, other.Payload = coinop.ModeAsync, "another credential"
			err := s.Reserve(t.Context(), other)
			wantError(t, err, coinop.KindReplayed, "idempotency_key_used")
			wantMessage(t, err, "another payment with this idempotency key exists")

			if _, err := s.Get(t.Context(), other.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s) after refused Reserve = %v, want ErrNotFound", other.ID, err)
			}
			samePayment(t, get(t, s, holder.ID), before)
			if after := events(t, s, holder.ID); len(after) != len(history) {
				t.Errorf("holder has %d events after the refusal, want %d", len(after), len(history))
			}
			wantHolder(t, s, holder.Payer, key, holder.ID)
			// Refused, the other payment's replay key stays free.
			reserve(t, s, Payment(2*i+1))
		})
	}
}

func testIdempotencyKeyScope(t *testing.T, s Store) {
	const key = "purchase"
	first := keyed(1, key)
	reserve(t, s, first)

	t.Run("another payer", func(t *testing.T) {
		p := keyed(2, key)
		p.Payer = "0x9999999999999999999999999999999999999999"
		reserve(t, s, p)
		wantHolder(t, s, p.Payer, key, p.ID)
		wantHolder(t, s, first.Payer, key, first.ID)
	})
	t.Run("another key", func(t *testing.T) {
		reserve(t, s, keyed(3, key+"-2"))
		wantHolder(t, s, first.Payer, key+"-2", Payment(3).ID)
	})
	t.Run("keys differ in case", func(t *testing.T) {
		reserve(t, s, keyed(4, strings.ToUpper(key)))
	})
	t.Run("no key", func(t *testing.T) {
		for n := 5; n < 8; n++ {
			reserve(t, s, Payment(n))
		}
		wantNotFound(t, s, first.Payer, "")
	})
	t.Run("replay wins over key", func(t *testing.T) {
		// The same payment again, with its key or another one held by
		// another payment, is a replay.
		for _, again := range []*coinop.Payment{keyed(1, key), keyed(1, key+"-2"), keyed(1, "fresh")} {
			err := s.Reserve(t.Context(), again)
			wantError(t, err, coinop.KindReplayed, "payment_replayed")
		}
		// The replay claimed nothing.
		reserve(t, s, keyed(8, "fresh"))
	})
}

func testIdempotencyKeyOfReleasedPayment(t *testing.T, s Store) {
	const key = "purchase"
	first := keyed(1, key)
	reserve(t, s, first)
	transition(t, s, first.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")

	// The purchase is retried with another payment: the key is free.
	second := keyed(2, key)
	reserve(t, s, second)
	wantHolder(t, s, first.Payer, key, second.ID)

	// Presented again, the released payment may not take the key back.
	history := events(t, s, first.ID)
	err := s.Reserve(t.Context(), keyed(1, key))
	wantError(t, err, coinop.KindReplayed, "idempotency_key_used")
	wantMessage(t, err, "another payment with this idempotency key exists")
	if got := get(t, s, first.ID); got.State != coinop.StateReleased {
		t.Errorf("refused payment is %q, want still released", got.State)
	}
	if after := events(t, s, first.ID); len(after) != len(history) {
		t.Errorf("refused payment has %d events, want %d", len(after), len(history))
	}
	wantHolder(t, s, first.Payer, key, second.ID)

	// Once the holder is released too, it may.
	transition(t, s, second.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")
	wantNotFound(t, s, first.Payer, key)
	reserve(t, s, keyed(1, key))
	wantHolder(t, s, first.Payer, key, first.ID)
	wantError(t, s.Reserve(t.Context(), keyed(2, key)), coinop.KindReplayed, "idempotency_key_used")
}

func testByIdempotencyKey(t *testing.T, s Store) {
	const key = "purchase"
	payer := Payment(1).Payer
	wantNotFound(t, s, payer, key)
	wantNotFound(t, s, payer, "")

	p := keyed(1, key)
	reserve(t, s, p)
	reserve(t, s, Payment(2)) // no key
	got, err := s.ByIdempotencyKey(t.Context(), payer, key)
	if err != nil {
		t.Fatal(err)
	}
	samePayment(t, got, p)
	if got.Credential != nil {
		t.Errorf("Credential = %v, want nil", got.Credential)
	}
	wantNotFound(t, s, payer, "")
	wantNotFound(t, s, payer, key+"x")
	wantNotFound(t, s, "0x9999999999999999999999999999999999999999", key)

	// It follows the payment through its life, up to release.
	transition(t, s, p.ID, coinop.StateVerified, coinop.StateSettling, "0xabc", "")
	markServed(t, s, p.ID)
	transition(t, s, p.ID, coinop.StateSettling, coinop.StateSettled, "", "")
	wantHolder(t, s, payer, key, p.ID)
	if got, _ := s.ByIdempotencyKey(t.Context(), payer, key); got.State != coinop.StateSettled || got.Served.IsZero() {
		t.Errorf("ByIdempotencyKey = state %q served %v, want settled and served", got.State, got.Served)
	}

	q := keyed(3, "other")
	reserve(t, s, q)
	wantHolder(t, s, payer, "other", q.ID)
	transition(t, s, q.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")
	wantNotFound(t, s, payer, "other")
}

func testMarkServed(t *testing.T, s Store) {
	tests := []struct {
		name string
		path []coinop.State
		want coinop.Kind // KindReplayed: served
	}{
		{"verified", nil, coinop.KindReplayed},
		{"settling", []coinop.State{coinop.StateSettling}, coinop.KindReplayed},
		{"settled", []coinop.State{coinop.StateSettling, coinop.StateSettled}, coinop.KindReplayed},
		{"failed before settling", []coinop.State{coinop.StateFailed}, coinop.KindInternal},
		{"failed while settling", []coinop.State{coinop.StateSettling, coinop.StateFailed}, coinop.KindInternal},
		{"released", []coinop.State{coinop.StateReleased}, coinop.KindInternal},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := keyed(i, fmt.Sprintf("purchase-%d", i))
			p.Mode, p.Payload = coinop.ModeAsync, "credential"
			reserve(t, s, p)
			state := coinop.StateVerified
			for _, next := range tt.path {
				transition(t, s, p.ID, state, next, "0xabc", "")
				state = next
			}
			before := get(t, s, p.ID)
			history := events(t, s, p.ID)

			if tt.want == coinop.KindInternal {
				wantError(t, s.MarkServed(t.Context(), p.ID), coinop.KindInternal, "")
				samePayment(t, get(t, s, p.ID), before)
				if after := events(t, s, p.ID); len(after) != len(history) {
					t.Errorf("%d events after refused MarkServed, want %d", len(after), len(history))
				}
				return
			}

			markServed(t, s, p.ID)
			got := get(t, s, p.ID)
			if got.Served.IsZero() || !got.Served.Equal(got.Updated) || got.Served.Before(before.Updated) {
				t.Errorf("served at %v, updated at %v; want set, equal, and not before %v", got.Served, got.Updated, before.Updated)
			}
			want := *before
			want.Served, want.Updated = got.Served, got.Updated
			samePayment(t, got, &want) // nothing else changed

			after := events(t, s, p.ID)
			if len(after) != len(history)+1 {
				t.Fatalf("%d events after MarkServed, want %d", len(after), len(history)+1)
			}
			e := after[len(after)-1]
			wantEvent := store.Event{PaymentID: p.ID, From: state, To: state, Reason: store.ReasonServed}
			if e.PaymentID != wantEvent.PaymentID || e.From != wantEvent.From || e.To != wantEvent.To || e.Reference != "" || e.Reason != wantEvent.Reason {
				t.Errorf("served event = %+v, want %+v", e, wantEvent)
			}
			if !e.At.Equal(got.Served) {
				t.Errorf("served event at %v, want Served %v", e.At, got.Served)
			}

			// Served at most once.
			err := s.MarkServed(t.Context(), p.ID)
			wantError(t, err, coinop.KindReplayed, "payment_replayed")
			wantMessage(t, err, "this payment's response was already served")
			samePayment(t, get(t, s, p.ID), got)
			if again := events(t, s, p.ID); len(again) != len(after) {
				t.Errorf("%d events after a second MarkServed, want %d", len(again), len(after))
			}
		})
	}
	t.Run("unknown payment", func(t *testing.T) {
		if err := s.MarkServed(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MarkServed error = %v, want ErrNotFound", err)
		}
	})
}

func testMarkServedThenTransition(t *testing.T, s Store) {
	// Async: served once verified, then settled.
	p := Payment(1)
	p.Mode = coinop.ModeAsync
	reserve(t, s, p)
	markServed(t, s, p.ID)
	served := get(t, s, p.ID).Served
	transition(t, s, p.ID, coinop.StateVerified, coinop.StateSettling, "0xabc", "")
	transition(t, s, p.ID, coinop.StateSettling, coinop.StateSettled, "", "")
	got := get(t, s, p.ID)
	if !got.Served.Equal(served) || got.Updated.Before(served) {
		t.Errorf("after settling: served %v updated %v; want served %v kept", got.Served, got.Updated, served)
	}
	var path []string
	for _, e := range events(t, s, p.ID) {
		path = append(path, string(e.From)+"→"+string(e.To)+" "+e.Reason)
	}
	want := "→verified |verified→verified served|verified→settling |settling→settled "
	if strings.Join(path, "|") != want {
		t.Errorf("history = %q, want %q", strings.Join(path, "|"), want)
	}
	if ps, err := s.List(t.Context(), coinop.StateSettled, 0); err != nil || len(ps) != 1 || !ps[0].Served.Equal(served) {
		t.Errorf("List(settled) = %q, %v; want the payment, served at %v", ids(ps), err, served)
	}

	// Served, then its settlement failed: still served, and says so.
	q := Payment(2)
	reserve(t, s, q)
	markServed(t, s, q.ID)
	transition(t, s, q.ID, coinop.StateVerified, coinop.StateFailed, "", "authorization_expired")
	wantError(t, s.MarkServed(t.Context(), q.ID), coinop.KindReplayed, "payment_replayed")
	if got := get(t, s, q.ID); got.Served.IsZero() {
		t.Error("failed payment lost its served time")
	}
	ps, err := s.Unfinished(t.Context())
	if err != nil || len(ps) != 0 {
		t.Errorf("Unfinished = %q, %v; want none", ids(ps), err)
	}
}

func testConcurrentReserveSameIdempotencyKey(t *testing.T, s Store) {
	const key = "purchase"
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() { errs[i] = s.Reserve(t.Context(), keyed(i, key)) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("payments %d and %d both reserved idempotency key %q", winner, i, key)
		case err == nil:
			winner = i
		default:
			if e := coinop.AsError(err); e.Kind != coinop.KindReplayed || e.Reason != "idempotency_key_used" {
				t.Errorf("Reserve(%d) error = %v, want KindReplayed idempotency_key_used", i, err)
			}
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent reserve succeeded")
	}
	wantHolder(t, s, Payment(0).Payer, key, Payment(winner).ID)
	if ps, err := s.List(t.Context(), "", 0); err != nil || len(ps) != 1 {
		t.Errorf("List = %q, %v; want only the winner", ids(ps), err)
	}
}

// testConcurrentReserveAgainSameIdempotencyKey reserves again, at once,
// several released payments that held one key in turn: the key goes to one.
func testConcurrentReserveAgainSameIdempotencyKey(t *testing.T, s Store) {
	const key, released = "purchase", 10
	for n := range released {
		reserve(t, s, keyed(n, key))
		transition(t, s, Payment(n).ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")
	}
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() { errs[i] = s.Reserve(t.Context(), keyed(i%released, key)) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("goroutines %d and %d both reserved a payment with idempotency key %q", winner, i, key)
		case err == nil:
			winner = i
		default:
			// Replayed: another goroutine reserved the same payment again.
			if e := coinop.AsError(err); e.Kind != coinop.KindReplayed ||
				e.Reason != "idempotency_key_used" && e.Reason != "payment_replayed" {
				t.Errorf("Reserve error = %v, want KindReplayed", err)
			}
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent reserve succeeded")
	}
	wantHolder(t, s, Payment(0).Payer, key, Payment(winner%released).ID)
	if ps, err := s.List(t.Context(), coinop.StateVerified, 0); err != nil || len(ps) != 1 {
		t.Errorf("List(verified) = %q, %v; want only the winner", ids(ps), err)
	}
}

func testConcurrentMarkServed(t *testing.T, s Store) {
	p := Payment(1)
	reserve(t, s, p)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() { errs[i] = s.MarkServed(t.Context(), p.ID) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		if e := coinop.AsError(err); e.Kind != coinop.KindReplayed || e.Reason != "payment_replayed" {
			t.Errorf("MarkServed error = %v, want KindReplayed payment_replayed", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent MarkServed calls succeeded, want 1", won, goroutines)
	}
	if es := events(t, s, p.ID); len(es) != 2 || es[1].Reason != store.ReasonServed {
		t.Errorf("events = %+v, want the reservation and one served event", es)
	}
}
