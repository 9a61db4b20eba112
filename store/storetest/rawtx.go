package storetest

// The tests of a payment's signed settlement transaction, journaled before
// it is broadcast.

import (
	"errors"
	"strings"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

func testRecordTx(t *testing.T, s Store) {
	raw := "0x02" + strings.Repeat("ab", 2<<10) // a batch of 50 is about 30 KiB of hex; a single one far less
	t.Run("settling", func(t *testing.T) {
		p := Payment(1)
		reserve(t, s, p)
		transition(t, s, p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
		if err := s.RecordTx(t.Context(), p.ID, "0xaaa", raw); err != nil {
			t.Fatalf("RecordTx: %v", err)
		}
		got := get(t, s, p.ID)
		if got.State != coinop.StateSettling || got.Reference != "0xaaa" || got.Prepared != raw {
			t.Errorf("after RecordTx: state %q tx %q raw %d bytes; want settling, 0xaaa, %d bytes", got.State, got.Reference, len(got.Prepared), len(raw))
		}
		es := events(t, s, p.ID)
		if last := es[len(es)-1]; last.From != coinop.StateSettling || last.To != coinop.StateSettling || last.Reference != "0xaaa" {
			t.Errorf("last event %+v; want settling→settling with tx 0xaaa", last)
		}
		// Unfinished is what recovery reads: it must carry the bytes.
		ps, err := s.Unfinished(t.Context())
		if err != nil || len(ps) != 1 || ps[0].Prepared != raw {
			t.Errorf("Unfinished = %d payments, %v; want the one with its raw transaction", len(ps), err)
		}
		// A later transaction (a rebroadcast never re-signs, but a batch
		// falling back to a single settlement does) replaces both.
		if err := s.RecordTx(t.Context(), p.ID, "0xbbb", "0x02cd"); err != nil {
			t.Fatalf("second RecordTx: %v", err)
		}
		if got := get(t, s, p.ID); got.Reference != "0xbbb" || got.Prepared != "0x02cd" {
			t.Errorf("after second RecordTx: tx %q raw %q", got.Reference, got.Prepared)
		}
		transition(t, s, p.ID, coinop.StateSettling, coinop.StateSettled, "", "")
		if got := get(t, s, p.ID); got.Reference != "0xbbb" || got.Prepared != "0x02cd" {
			t.Errorf("settled: tx %q raw %q; want both kept", got.Reference, got.Prepared)
		}
	})
	tests := []struct {
		name     string
		state    []coinop.State // path from verified
		id       string
		tx, raw  string
		kind     coinop.Kind
		reason   string
		notFound bool
	}{
		{name: "verified", tx: "0xaaa", raw: raw, kind: coinop.KindInFlight, reason: "payment_state_conflict"},
		{name: "settled", state: []coinop.State{coinop.StateSettling, coinop.StateSettled}, tx: "0xaaa", raw: raw, kind: coinop.KindInFlight, reason: "payment_state_conflict"},
		{name: "released", state: []coinop.State{coinop.StateReleased}, tx: "0xaaa", raw: raw, kind: coinop.KindInFlight, reason: "payment_state_conflict"},
		{name: "unknown id", id: "nobody", tx: "0xaaa", raw: raw, notFound: true},
		{name: "no hash", state: []coinop.State{coinop.StateSettling}, raw: raw, kind: coinop.KindInternal, reason: "internal_error"},
		{name: "no bytes", state: []coinop.State{coinop.StateSettling}, tx: "0xaaa", kind: coinop.KindInternal, reason: "internal_error"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Payment(10 + i)
			reserve(t, s, p)
			from := coinop.StateVerified
			for _, to := range tt.state {
				transition(t, s, p.ID, from, to, "", "")
				from = to
			}
			id := p.ID
			if tt.id != "" {
				id = tt.id
			}
			err := s.RecordTx(t.Context(), id, tt.tx, tt.raw)
			if tt.notFound {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("RecordTx = %v, want store.ErrNotFound", err)
				}
				return
			}
			wantError(t, err, tt.kind, tt.reason)
			if got := get(t, s, p.ID); got.Reference != "" || got.Prepared != "" || got.State != from {
				t.Errorf("refused RecordTx changed the payment: state %q tx %q raw %q", got.State, got.Reference, got.Prepared)
			}
		})
	}
}

// CheckMigratedSettling checks a settling payment id written before the
// journal had raw transactions, after its schema was brought up to date:
// it has no raw transaction, and its transaction can be journaled now.
func CheckMigratedSettling(t *testing.T, s Store, id string) {
	t.Helper()
	if got := get(t, s, id); got.State != coinop.StateSettling || got.Prepared != "" {
		t.Errorf("migrated payment %s: state %q raw %q; want settling, none", id, got.State, got.Prepared)
	}
	if err := s.RecordTx(t.Context(), id, "0xbeef", "0x02ef"); err != nil {
		t.Fatalf("RecordTx on a migrated payment: %v", err)
	}
	if got := get(t, s, id); got.Reference != "0xbeef" || got.Prepared != "0x02ef" {
		t.Errorf("migrated payment %s after RecordTx: tx %q raw %q", id, got.Reference, got.Prepared)
	}
}
