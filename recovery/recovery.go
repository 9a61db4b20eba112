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
	// Claim takes a payment's lease when it is expired or already the
	// caller's, and returns the payment as journaled then; KindInFlight
	// when another live owner holds it.
	Claim(ctx context.Context, id string) (*coinop.Payment, error)
	Transition(ctx context.Context, id string, from, to coinop.State, tx, reason string) error
}

// ReasonUnreconcilable marks a settling payment whose network recovery has
// no way to ask (a remote facilitator's network without an rpc): recovery
// records it once, then leaves the payment alone, counted in each Report,
// for an operator (and `coinop audit`) to see.
const ReasonUnreconcilable = "unreconcilable_no_rpc"

// Report counts what one pass did.
type Report struct {
	Checked, Settled, Failed, Released, Pending, Skipped int
	// Leased counts unfinished payments left alone because another live
	// instance holds their lease.
	Leased int
	// Unreconcilable counts settling payments on networks no reconciler
	// covers; they are left settling with ReasonUnreconcilable.
	Unreconcilable int
	// Resettle lists payments whose response was served (async mode) but
	// whose settlement never reached the network; the caller settles them
	// again from their journaled payload.
	Resettle []*coinop.Payment
}

// Run reconciles every unfinished payment last updated before olderThan
// (payments updated later may belong to a request still in progress on this
// or another gateway instance) whose lease it can claim: a payment leased by
// another live instance is that instance's to finish, whatever its age, and
// is counted in Leased. Reconcilers are looked up by the payment's rail
// (Payment.Rail), then, for rows whose rail has none (journals written
// before rails had names say "x402-exact-evm"), by its network. A
// transition that loses a race with another instance is not an error: the
// payment was finished elsewhere.
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
		claimed, err := j.Claim(ctx, p.ID)
		switch {
		case coinop.KindOf(err) == coinop.KindInFlight:
			rep.Leased++ // another live instance's, or finished meanwhile
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("payment %s: claim: %w", p.ID, err))
			continue
		}
		p = claimed
		r, ok := reconcilers[p.Rail]
		if !ok {
			r, ok = reconcilers[p.Network]
		}
		if !ok {
			if err := unreconcilable(ctx, j, p, &rep, log); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		rep.Checked++
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
		if out.State == "" || out.State == p.State && out.Reference == p.Reference {
			rep.Pending++
			continue
		}
		reason := out.Reason
		if reason == "" {
			reason = "recovered"
		}
		if err := j.Transition(ctx, p.ID, p.State, out.State, out.Reference, reason); err != nil {
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
		if out.State == coinop.StateFailed && !p.Served.IsZero() {
			// The seller gave the response away and will not be paid for it.
			log.Error("a served payment's settlement failed: its response was given away unpaid",
				"payment", p.ID, "payer", p.Payer, "amount", p.Amount.String(), "network", p.Network, "tx", out.Reference, "reason", reason)
			continue
		}
		log.Info("recovered payment", "payment", p.ID, "from", p.State, "to", out.State, "tx", out.Reference, "reason", reason)
	}
	return rep, errors.Join(errs...)
}

// unreconcilable handles a payment on a network without a reconciler. A
// verified one never reached settlement, so its response never left: it is
// released, as on any network. A settling one may or may not have moved
// money, and nothing here can find out: it is marked once with
// ReasonUnreconcilable and a warning, and from then on only counted, never
// retried; a later configuration with a reconciler for its network (an rpc
// beside the facilitator) finishes it.
func unreconcilable(ctx context.Context, j Journal, p *coinop.Payment, rep *Report, log *slog.Logger) error {
	if p.State == coinop.StateVerified {
		rep.Checked++
		if err := j.Transition(ctx, p.ID, p.State, coinop.StateReleased, "", "recovered_before_settlement"); err != nil && coinop.KindOf(err) != coinop.KindInFlight {
			return fmt.Errorf("payment %s: %w", p.ID, err)
		}
		rep.Released++
		return nil
	}
	rep.Unreconcilable++
	if p.Reason == ReasonUnreconcilable {
		return nil
	}
	if err := j.Transition(ctx, p.ID, p.State, p.State, "", ReasonUnreconcilable); err != nil && coinop.KindOf(err) != coinop.KindInFlight {
		return fmt.Errorf("payment %s: %w", p.ID, err)
	}
	log.Warn("a payment's settlement cannot be reconciled: its network has no rpc configured; left settling for an operator",
		"payment", p.ID, "network", p.Network, "payer", p.Payer, "amount", p.Amount.String(), "served", !p.Served.IsZero())
	return nil
}
