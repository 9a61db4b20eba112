package evm

import (
	"context"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/x402"
)

var _ x402.BatchScheme = (*Exact)(nil)

// Batches implements x402.Batcher: payments share a transaction only
// through the configured batch settler.
func (e *Exact) Batches() bool { return e.cfg.BatchSettler != (common.Address{}) }

// SettleBatch settles payments this scheme checked in one transaction
// through the configured batch settler (one by one when none is configured).
// Every payment's recorder journals the shared hash before it is broadcast.
// Results come back in order: a settled item gets a successful response with
// the batch's transaction; a refused item an error naming the token's
// reason; an unknown outcome a pending response for every item.
func (e *Exact) SettleBatch(ctx context.Context, ps []*coinop.Payment, cs []*x402.Credential, recs []coinop.Recorder) ([]*x402.SettleResponse, []error) {
	resps, errs := make([]*x402.SettleResponse, len(ps)), make([]error, len(ps))
	if e.cfg.BatchSettler == (common.Address{}) {
		for i := range ps {
			resps[i], errs[i] = e.Settle(ctx, ps[i], cs[i], recorderAt(recs, i))
		}
		return resps, errs
	}
	// Authorizations that would expire before the batch is mined stay out
	// of it: each fails alone, and nothing is sent for it.
	var items []BatchItem
	var live []int // the indices of ps in items
	for i := range ps {
		it, err := e.BatchItem(cs[i])
		if err != nil {
			for j := range errs {
				errs[j] = coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedSettle, err, "could not batch the payment")
			}
			return resps, errs
		}
		if err := e.chain.outlives(ctx, &it.Auth); err != nil {
			resps[i] = &x402.SettleResponse{Network: e.chain.cfg.Network, Payer: payerHex(ps[i]), ErrorReason: coinop.AsError(err).Reason}
			errs[i] = err
			continue
		}
		items, live = append(items, it), append(live, i)
	}
	if len(items) == 0 {
		return resps, errs
	}
	liveRecs := make([]coinop.Recorder, 0, len(live))
	for _, i := range live {
		liveRecs = append(liveRecs, recorderAt(recs, i))
	}
	record := func(tx, raw string) error { return coinop.RecordAll(ctx, liveRecs, tx, raw) }
	tx, results, err := e.chain.SettleBatch(ctx, e.cfg.BatchSettler, items, record)
	for k, i := range live {
		p := ps[i]
		resp := &x402.SettleResponse{Network: e.chain.cfg.Network, Payer: payerHex(p), Transaction: tx}
		resps[i] = resp
		switch {
		case err != nil:
			resp.ErrorReason = coinop.AsError(err).Reason
			resp.Pending = resp.ErrorReason == x402.ReasonSettlementPending
			errs[i] = err
		case results[k].Settled:
			resp.Success = true
			if rec := recorderAt(recs, i); rec != nil {
				rec.Step("tx_sent")
			}
		default:
			resp.ErrorReason = batchReason(results[k].Reason)
			errs[i] = coinop.Errorf(coinop.KindSettleFailed, resp.ErrorReason, "the token refused the payment in batch %s: %s", tx, results[k].Reason)
		}
	}
	return resps, errs
}

// batchReason maps a token's revert message to a reason code.
func batchReason(msg string) string {
	switch {
	case strings.Contains(msg, "used or canceled"):
		return x402.ReasonNonceUsed
	case strings.Contains(msg, "exceeds balance"):
		return x402.ReasonInsufficientFunds
	case strings.Contains(msg, "invalid signature"):
		return x402.ReasonInvalidSignature
	case strings.Contains(msg, "expired"):
		return x402.ReasonValidBefore
	case strings.Contains(msg, "not yet valid"):
		return x402.ReasonValidAfter
	}
	return x402.ReasonTransactionFailed
}

// recorderAt is the recorder of the i-th payment of a batch, or nil when the
// caller records nothing.
func recorderAt(recs []coinop.Recorder, i int) coinop.Recorder {
	if i < len(recs) {
		return recs[i]
	}
	return nil
}
