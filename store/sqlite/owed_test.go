package sqlite

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store/storetest"
)

// owedTable reads async_owed whole, through the writer.
func owedTable(t *testing.T, s *Store) (table, sums map[[3]string]*big.Int) {
	t.Helper()
	table = map[[3]string]*big.Int{}
	if err := s.write(t.Context(), "read owed", func(ctx context.Context, tx *wtx) error {
		rows, err := tx.QueryContext(ctx, `SELECT network, asset, payer, amount FROM async_owed`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k [3]string
			var a string
			if err := rows.Scan(&k[0], &k[1], &k[2], &a); err != nil {
				return err
			}
			table[k], _ = new(big.Int).SetString(a, 10)
		}
		if sums, err = sumOwed(ctx, tx); err != nil {
			return err
		}
		return rows.Err()
	}); err != nil {
		t.Fatal(err)
	}
	return table, sums
}

func sameOwed(a, b map[[3]string]*big.Int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w := b[k]; w == nil || w.Cmp(v) != 0 {
			return false
		}
	}
	return true
}

// TestOwedTotalsFollowPayments drives random payments of three payers
// through every way into and out of settling (owed async or sync within a
// cap, the older async reservation, settled, failed, released and reserved
// again) and checks after each step that the running totals equal the sum
// over the payments themselves.
func TestOwedTotalsFollowPayments(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "journal.db"))
	defer s.Close()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	payers := []string{"0xaaaa", "0xbbbb", "0xcccc"}
	type pay struct {
		p     *coinop.Payment
		state coinop.State
	}
	var pays []*pay
	for step := range 400 {
		switch op := rng.IntN(6); {
		case op <= 1 || len(pays) == 0: // a new payment, owed within a cap
			p := storetest.Payment(step)
			p.Payer = payers[rng.IntN(len(payers))]
			if rng.IntN(4) == 0 {
				p.Mode = coinop.ModeAsync // reserved async, as an older version did
			}
			if err := s.Reserve(ctx, p); err != nil {
				t.Fatal(err)
			}
			pays = append(pays, &pay{p: p, state: coinop.StateVerified})
		default:
			x := pays[rng.IntN(len(pays))]
			var err error
			switch x.state {
			case coinop.StateVerified:
				switch rng.IntN(3) {
				case 0:
					err, x.state = s.Transition(ctx, x.p.ID, x.state, coinop.StateReleased, "", ""), coinop.StateReleased
				case 1:
					err, x.state = s.Transition(ctx, x.p.ID, x.state, coinop.StateSettling, "", ""), coinop.StateSettling
				default:
					limit := new(big.Int).Mul(x.p.Amount, big.NewInt(int64(rng.IntN(4))))
					_, err = s.OweWithin(ctx, x.p.ID, limit)
					x.state = coinop.StateSettling
				}
			case coinop.StateSettling:
				to := []coinop.State{coinop.StateSettled, coinop.StateFailed, coinop.StateSettling}[rng.IntN(3)]
				err, x.state = s.Transition(ctx, x.p.ID, x.state, to, fmt.Sprintf("0x%064x", step), ""), to
			case coinop.StateReleased:
				x.p.Mode = ""
				err, x.state = s.Reserve(ctx, x.p), coinop.StateVerified
			default:
				continue
			}
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if table, sums := owedTable(t, s); !sameOwed(table, sums) {
			t.Fatalf("step %d: running totals %v, the payments sum to %v", step, table, sums)
		}
	}
	if table, _ := owedTable(t, s); len(table) == 0 {
		t.Error("no payer owed anything async at the end: the walk did not test the totals")
	}
}

// TestOwedMigrationBuildsTotals: a journal whose payments were owed async
// before the running totals existed gets them, exactly, from its migration.
func TestOwedMigrationBuildsTotals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	s := openStore(t, path)
	ctx := t.Context()
	for i := range 6 {
		p := storetest.Payment(i)
		p.Payer = []string{"0xaaaa", "0xbbbb"}[i%2]
		if err := s.Reserve(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, err := s.OweWithin(ctx, p.ID, new(big.Int).Lsh(big.NewInt(1), 200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Transition(ctx, storetest.Payment(0).ID, coinop.StateSettling, coinop.StateSettled, "0x01", ""); err != nil {
		t.Fatal(err)
	}
	want, sums := owedTable(t, s)
	if !sameOwed(want, sums) || len(want) != 2 {
		t.Fatalf("totals %v, sums %v", want, sums)
	}
	// Back to the journal as it was before 0006.
	if err := s.write(ctx, "undo 0006", func(ctx context.Context, tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `DROP TABLE async_owed`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM schema_migrations WHERE name = ?`, owedMigration)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, path)
	defer s.Close()
	if got, _ := owedTable(t, s); !sameOwed(got, want) {
		t.Errorf("after the migration: %v, want %v", got, want)
	}
}
