package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// ledgerDDL is a rail's own table, in SQL both backends run.
const ledgerDDL = `CREATE TABLE test_ledger (account TEXT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0));
INSERT INTO test_ledger (account, balance) VALUES ('alice', 100)`

func balance(t *testing.T, s Store) int64 {
	t.Helper()
	var b int64
	if err := s.Atomically(t.Context(), func(tx store.Tx) error {
		return tx.QueryRow(t.Context(), `SELECT balance FROM test_ledger WHERE account = ?`, []any{"alice"}, &b)
	}); err != nil {
		t.Fatalf("read balance: %v", err)
	}
	return b
}

// debit is a rail's ledger write: it fails (dooming the scope) when the
// balance would go negative.
func debit(ctx context.Context, tx store.Tx, n int64) error {
	_, err := tx.Exec(ctx, `UPDATE test_ledger SET balance = balance - ? WHERE account = ?`, n, "alice")
	return err
}

// testAtomically: a journal write and a rail table write commit together,
// or neither does, whichever of them (or fn) fails; a rail migration runs
// once per name.
func testAtomically(t *testing.T, s Store) {
	for range 2 {
		if err := s.Migrate(t.Context(), "test-ledger-0001", ledgerDDL); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	if b := balance(t, s); b != 100 {
		t.Fatalf("balance after migrating twice = %d, want 100 (one insert)", b)
	}

	p := Payment(1)
	if err := s.Atomically(t.Context(), func(tx store.Tx) error {
		if err := tx.Reserve(t.Context(), p); err != nil {
			return err
		}
		return debit(t.Context(), tx, 10)
	}); err != nil {
		t.Fatalf("Atomically: %v", err)
	}
	if got := get(t, s, p.ID); got.State != coinop.StateVerified || balance(t, s) != 90 {
		t.Fatalf("after commit: payment %s, balance %d; want verified, 90", got.State, balance(t, s))
	}

	refused := errors.New("refused by the rail")
	tests := []struct {
		name string
		fn   func(tx store.Tx) error
		want func(t *testing.T, err error)
	}{
		{"fn fails after both writes", func(tx store.Tx) error {
			if err := tx.Reserve(t.Context(), Payment(2)); err != nil {
				return err
			}
			if err := debit(t.Context(), tx, 10); err != nil {
				return err
			}
			return refused
		}, func(t *testing.T, err error) {
			if !errors.Is(err, refused) {
				t.Errorf("error = %v, want fn's", err)
			}
		}},
		{"journal write refused, error ignored by fn", func(tx store.Tx) error {
			if err := debit(t.Context(), tx, 10); err != nil {
				return err
			}
			tx.Transition(t.Context(), p.ID, coinop.StateSettling, coinop.StateSettled, "", "") // p is verified
			return nil
		}, func(t *testing.T, err error) { wantError(t, err, coinop.KindInFlight, "payment_state_conflict") }},
		{"rail write refused", func(tx store.Tx) error {
			if err := tx.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
				return err
			}
			return debit(t.Context(), tx, 1000) // below zero: the CHECK refuses it
		}, func(t *testing.T, err error) {
			if err == nil {
				t.Error("Atomically succeeded, want the ledger's refusal")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(events(t, s, p.ID))
			tt.want(t, s.Atomically(t.Context(), tt.fn))
			if b := balance(t, s); b != 90 {
				t.Errorf("balance = %d, want 90 (rolled back)", b)
			}
			if got := get(t, s, p.ID); got.State != coinop.StateVerified || len(events(t, s, p.ID)) != before {
				t.Errorf("payment %s is %s with %d events, want verified with %d", p.ID, got.State, len(events(t, s, p.ID)), before)
			}
			if _, err := s.Get(t.Context(), Payment(2).ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s) error = %v, want ErrNotFound (rolled back)", Payment(2).ID, err)
			}
		})
	}
}

// testConcurrentAtomically: concurrent scopes, each reserving its own
// payment and debiting one shared balance, commit each exactly as a whole:
// the balance falls by one per payment journaled, and the scopes the
// balance could not pay for journal nothing.
func testConcurrentAtomically(t *testing.T, s Store) {
	if err := s.Migrate(t.Context(), "test-ledger-0001", ledgerDDL); err != nil {
		t.Fatal(err)
	}
	const n = 120 // more than the balance of 100
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Atomically(t.Context(), func(tx store.Tx) error {
				if err := tx.Reserve(t.Context(), Payment(i)); err != nil {
					return err
				}
				return debit(t.Context(), tx, 1)
			})
		})
	}
	wg.Wait()
	journaled := 0
	for i, err := range errs {
		_, gerr := s.Get(t.Context(), Payment(i).ID)
		switch {
		case err == nil && gerr == nil:
			journaled++
		case err != nil && errors.Is(gerr, store.ErrNotFound):
		default:
			t.Errorf("scope %d: Atomically error %v, Get error %v; want both nil or a refusal and nothing journaled", i, err, gerr)
		}
	}
	if b := balance(t, s); journaled != 100 || b != 0 {
		t.Errorf("journaled %d payments, balance %d; want 100 and 0", journaled, b)
	}
}
