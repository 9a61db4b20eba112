// Package recovery finishes what a crash interrupted: it drives every
// journaled payment that is not final to a final state, exactly once, by
// asking the payment's network what became of it. It never guesses and never
// re-signs: a payment whose outcome cannot be known yet is left for the next
// pass.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coinop/coinop"
)

// Journal is the part of a payments journal recovery uses.
type Journal interface {
	Unfinished(ctx context.Context) ([]*coinop.Payment, error)
	Transition(ctx context.Context, id string, from, to coinop.State, tx, reason string) error
}

// Report counts what one pass did.
type Report struct {
	Checked, Settled, Failed, Released, Pending, Skipped int
	// Resettle lists payments whose response was served (async mode) but
	// whose settlement never reached the network; the caller settles them
	// again from their journaled payload.
	Resettle []*coinop.Payment
}

// Run reconciles every unfinished payment last updated before olderThan
// (payments updated later may belong to a request still in progress on this
// or another gateway instance). Reconcilers are looked up by the payment's
// network. A transition that loses a race with another instance is not an
// error: the payment was finished elsewhere.
func Run(ctx context.Context, j Journal, reconcilers map[string]coinop.Reconciler, olderThan time.Time, log *slog.Logger) (Report, error) {
	var rep Report
	ps, err := j.Unfinished(ctx)
	if err != nil {
		return rep, fmt.Errorf("recovery: list unfinished payments: %w", err)
	}
	var errs []error
	for _, p := range ps {
		if !p.Updated.Before(olderThan) {
			rep.Skipped++
			continue
		}
		rep.Checked++
		r, ok := reconcilers[p.Network]
		if !ok {
			errs = append(errs, fmt.Errorf("payment %s: no network %s configured to reconcile it", p.ID, p.Network))
			rep.Pending++
			continue
		}
		out, err := r.Reconcile(ctx, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("payment %s: %w", p.ID, err))
			rep.Pending++
			continue
		}
		if out.Resettle {
			rep.Resettle = append(rep.Resettle, p)
			continue
		}
		if out.State == "" || out.State == p.State && out.Tx == p.Tx {
			rep.Pending++
			continue
		}
		reason := out.Reason
		if reason == "" {
			reason = "recovered"
		}
		if err := j.Transition(ctx, p.ID, p.State, out.State, out.Tx, reason); err != nil {
			if coinop.KindOf(err) == coinop.KindInFlight {
				continue // finished concurrently elsewhere
			}
			errs = append(errs, fmt.Errorf("payment %s: %w", p.ID, err))
			continue
		}
		switch out.State {
		case coinop.StateSettled:
			rep.Settled++
		case coinop.StateFailed:
			rep.Failed++
		case coinop.StateReleased:
			rep.Released++
		}
		log.Info("recovered payment", "payment", p.ID, "from", p.State, "to", out.State, "tx", out.Tx, "reason", reason)
	}
	return rep, errors.Join(errs...)
}
