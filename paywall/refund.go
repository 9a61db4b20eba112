package paywall

import (
	"context"
	"errors"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Refund gives back the collected bearer charge id because the purchase it
// paid for failed where the engine could not see it: a forward-auth check
// answered 2xx, then the proxy's upstream failed. The charge's rail credits
// the payer again (coinop.Refunder), then the journal records the charge
// released with reason; a charge released already is left as it is (Refund
// is idempotent), and so is one that failed (nothing was charged).
//
// Only bearer charges are given back: a single-use payment settled on a
// network (x402) is refused with KindConflict, as is a charge on a rail that
// is not a Refunder, and one still being collected (KindInFlight). An ID the
// journal does not hold is KindNotFound. The returned payment is the charge
// as the journal holds it afterwards.
func (pw *Paywall) Refund(ctx context.Context, id, reason string) (*coinop.Payment, error) {
	p, err := pw.cfg.Journal.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, coinop.Errorf(coinop.KindNotFound, coinop.ReasonRefundUnknown, "no payment %q is journaled", id)
	case err != nil:
		return nil, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonJournalFailed, err, "the journal could not be read; try again")
	case !p.Bearer:
		return p, coinop.Errorf(coinop.KindConflict, coinop.ReasonRefundNotBearer, "payment %s settled on %s; what moved there is not given back", id, p.Network)
	}
	switch p.State {
	case coinop.StateReleased, coinop.StateFailed:
		return p, nil
	case coinop.StateSettled:
	default:
		return p, coinop.Errorf(coinop.KindInFlight, coinop.ReasonRefundNotSettled, "charge %s is still being collected; report it once the check answered", id)
	}
	refunder, ok := pw.rails[p.Rail].(coinop.Refunder)
	if !ok {
		return p, coinop.Errorf(coinop.KindConflict, coinop.ReasonRefundUnsupported, "rail %s cannot give charges back", p.Rail)
	}
	if err := refunder.Refund(ctx, p); err != nil {
		return p, err
	}
	if err := pw.cfg.Journal.Transition(ctx, id, coinop.StateSettled, coinop.StateReleased, "", reason); err != nil {
		// Another refund of the same charge may have recorded it first.
		if q, gerr := pw.cfg.Journal.Get(ctx, id); gerr == nil && q.State == coinop.StateReleased {
			return q, nil
		}
		return p, err
	}
	p.State, p.Reason = coinop.StateReleased, reason
	pw.log.Info("bearer charge given back: the purchase failed after the check", "payment", id, "rail", p.Rail, "payer", p.Payer, "reason", reason)
	pw.lc.Step("released", p)
	return p, nil
}
