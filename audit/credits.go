package audit

import (
	"context"
	"strings"

	"github.com/coinop/coinop/credits"
)

// CreditsReport is the credits ledger's part of an audit.
type CreditsReport struct {
	Totals credits.Totals
	// Charges counts the journal's settled credits charges.
	Charges int
}

// Credits audits the credits ledger led against the journal entries Run
// found: the ledger's sums agree (balances = purchases − debits +
// releases, account by account), and every settled credits charge of the
// journal has its debit in the ledger, no more and no fewer (debits not
// released). Problems go into rep.
func (rep *Report) Credits(ctx context.Context, led *credits.Ledger) (CreditsReport, error) {
	t, err := led.Check(ctx)
	if err != nil {
		return CreditsReport{}, err
	}
	out := CreditsReport{Totals: t, Charges: len(rep.credits)}
	for _, id := range t.Mismatched {
		rep.problem("credits account %s: its balance is not the sum of its movements", id)
	}
	if t.Balances != t.Purchased-t.Debited+t.Released {
		rep.problem("credits ledger: balances sum to %d, but purchases − debits + releases = %d − %d + %d", t.Balances, t.Purchased, t.Debited, t.Released)
	}
	for _, p := range rep.credits {
		if !strings.HasPrefix(p.Reference, "debit:") {
			rep.problem("credits charge %s is settled without a ledger debit (reference %q)", p.ID, p.Reference)
		}
	}
	if live := t.Debits - t.ReleasedCount; int64(len(rep.credits)) != live {
		rep.problem("the journal has %d settled credits charges, the ledger %d debits not released", len(rep.credits), live)
	}
	return out, nil
}
