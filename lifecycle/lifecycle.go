// Package lifecycle takes one payment through the journal, the same way for
// every caller (the paywall middleware, the x402 facilitator): an in-process
// guard against concurrent duplicates, the journal's word on a credential
// seen before, the rail's verification, the purchase's idempotency key, the
// durable reservation, and, once the caller decides the payment is owed,
// the settlement with every step journaled before it happens.
//
// It knows no payment protocol and no transport: rails come in as
// coinop.Rail, the journal as Journal. What a caller does between the
// reservation and the settlement (call an upstream, wait for its status)
// is the caller's.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"math/big"
	"net/url"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Journal durably records payments. The store packages implement it.
type Journal interface {
	// Reserve records p as verified and claims its ID (and its idempotency
	// key, if any), durably. A payment already reserved or settled yields a
	// *coinop.Error of KindReplayed.
	Reserve(ctx context.Context, p *coinop.Payment) error
	// Transition moves payment id from one state to another (compare and
	// set), recording the reference and reason when non-empty.
	Transition(ctx context.Context, id string, from, to coinop.State, ref, reason string) error
	// Get returns a payment, or an error wrapping store.ErrNotFound.
	Get(ctx context.Context, id string) (*coinop.Payment, error)
	// MarkServed records, once, that a payment's response was released; a
	// second call yields KindReplayed.
	MarkServed(ctx context.Context, id string) error
	// ByIdempotencyKey returns the payer's live payment holding key, or an
	// error wrapping store.ErrNotFound.
	ByIdempotencyKey(ctx context.Context, payer, key string) (*coinop.Payment, error)
	// RecordTx journals a settling payment's reference and prepared bytes
	// (compare and set on settling) before the settlement is first sent.
	RecordTx(ctx context.Context, id, ref, prepared string) error
}

// Lifecycle runs payments through one journal. It is safe for concurrent
// use; its zero value is not: use New.
type Lifecycle struct {
	j        Journal
	log      *slog.Logger
	onStep   func(step string, p *coinop.Payment)
	inflight inflight
}

// New returns a Lifecycle over j. log receives one line per settlement and
// every journal fault; onStep, if set, is called at each step boundary
// ("reserved", "tx_recorded", "tx_sent", "settled", "served", and "failed"
// or "released" for a payment that ends without moving money) and must not
// block.
func New(j Journal, log *slog.Logger, onStep func(step string, p *coinop.Payment)) *Lifecycle {
	if log == nil {
		log = slog.Default()
	}
	return &Lifecycle{j: j, log: log, onStep: onStep}
}

// Journal is the journal l records in.
func (l *Lifecycle) Journal() Journal { return l.j }

// Step reports a step boundary of p.
func (l *Lifecycle) Step(name string, p *coinop.Payment) {
	if l.onStep != nil {
		l.onStep(name, p)
	}
}

// Hold claims key (a payment's ID, or see HoldPurchase) in this process,
// waiting up to wait for a request holding it to finish. It fails with
// KindInFlight when key is still held then: the journal's unique keys are
// the guard across processes, this one keeps two requests in one process
// from racing to the journal with one credential.
func (l *Lifecycle) Hold(ctx context.Context, key string, wait time.Duration) (release func(), err error) {
	release, ok := l.inflight.claim(ctx, key, wait)
	if !ok {
		return nil, coinop.Errorf(coinop.KindInFlight, coinop.ReasonInFlight, "this payment is being processed by another request")
	}
	return release, nil
}

// Previous gives the journal's word on single-use payment p, which rail
// inspected: nil and nil when the journal never saw it or saw it released
// (go on with p); the journaled payment when it was collected and never
// served and p proved to be that very credential for that very purchase
// (serve it again without a new charge); else the error to refuse with.
//
// The journal is asked before the network. Its IDs are derived from public
// facts, so a payment found there is served again only once the rail
// proved (coinop.Reverifier) that p is that payment, signed by its payer.
func (l *Lifecycle) Previous(ctx context.Context, rail coinop.Rail, p *coinop.Payment) (*coinop.Payment, error) {
	prev, err := l.j.Get(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if prev, err = reuse(prev, err); err == nil && prev != nil {
		err = represented(rail, p, prev)
	}
	if err != nil {
		return nil, err
	}
	return prev, nil
}

// HoldPurchase guards and looks up the purchase p's idempotency key names,
// once the rail verified p (the key alone proves nothing: it is looked up
// per payer, and only a verified payment proves who the payer is). It
// returns the journaled payment of that purchase to serve again, or nil to
// go on with p, and release, which the caller calls when done with p. A
// payment without a key or without a payer has no purchase to look up.
func (l *Lifecycle) HoldPurchase(ctx context.Context, p *coinop.Payment, wait time.Duration) (prev *coinop.Payment, release func(), err error) {
	if p.IdempotencyKey == "" || p.Payer == "" {
		return nil, func() {}, nil
	}
	release, ok := l.inflight.claim(ctx, "idem\x00"+p.Payer+"\x00"+p.IdempotencyKey, wait)
	if !ok {
		return nil, nil, coinop.Errorf(coinop.KindInFlight, coinop.ReasonIdempotencyUsed, "another payment for this purchase (same idempotency key) is being processed")
	}
	prev, err = l.j.ByIdempotencyKey(ctx, p.Payer, p.IdempotencyKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, release, nil
	}
	switch {
	case err != nil:
	case !SamePurchase(prev, p):
		err = coinop.Errorf(coinop.KindConflict, coinop.ReasonIdempotencyReused, "this idempotency key belongs to a purchase of another resource or price; use a new key")
	case prev.State == coinop.StateSettled && !prev.Served.IsZero():
		err = coinop.Errorf(coinop.KindInFlight, coinop.ReasonIdempotencyUsed, "this purchase (idempotency key) was already paid for and served")
	}
	if prev, err = reuse(prev, err); err != nil {
		release()
		return nil, nil, err
	}
	return prev, release, nil
}

// Reserve journals p as verified, durably, before anything paid-for is
// done. A race lost to another payment of the same purchase is KindInFlight.
func (l *Lifecycle) Reserve(ctx context.Context, p *coinop.Payment) error {
	if err := l.j.Reserve(ctx, p); err != nil {
		if e := coinop.AsError(err); e.Reason == coinop.ReasonIdempotencyUsed {
			return coinop.Errorf(coinop.KindInFlight, coinop.ReasonIdempotencyUsed, "another payment for this purchase (same idempotency key) is being processed")
		}
		return err
	}
	l.Step("reserved", p)
	return nil
}

// Owe journals that p's settlement is owed (verified → settling), before
// the settlement is sent or, for async payments, the response released. If
// the journal cannot say so, the reservation is released and nothing may
// be served: the error is KindUnavailable.
func (l *Lifecycle) Owe(ctx context.Context, p *coinop.Payment) error {
	if err := l.j.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
		l.Release(p, coinop.ReasonJournalFailed)
		return coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the payment journal is unavailable; nothing was charged")
	}
	p.State = coinop.StateSettling
	return nil
}

// Exposure is a journal that keeps the async exposure cap: it decides, in
// the transaction that makes a payment owed, whether the payment may be
// served before it settles. The store packages implement it.
type Exposure interface {
	// OweWithin moves verified payment id to settling, as Journal.
	// Transition would, and records its mode there: async when the amounts
	// its payer owes asynchronously on its network and asset (payments
	// settling in mode async), plus its own, stay within limit; sync
	// otherwise, and when limit is nil. It reports whether it chose async.
	// Concurrent calls for one payer, from any number of processes on the
	// journal, never together pass limit.
	OweWithin(ctx context.Context, id string, limit *big.Int) (async bool, err error)
}

// OweWithin journals that p's settlement is owed, as Owe, and decides
// whether p may be served before it settles: only if its payer's async
// exposure, as the journal counts it (see Exposure), stays within limit.
// It sets p.Mode to what the journal recorded. A nil limit, or a journal
// that cannot count exposure, owes p synchronously.
func (l *Lifecycle) OweWithin(ctx context.Context, p *coinop.Payment, limit *big.Int) error {
	ex, ok := l.j.(Exposure)
	if !ok {
		p.Mode = coinop.ModeSync
		return l.Owe(ctx, p)
	}
	async, err := ex.OweWithin(ctx, p.ID, limit)
	if err != nil {
		l.Release(p, coinop.ReasonJournalFailed)
		return coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the payment journal is unavailable; nothing was charged")
	}
	p.State, p.Mode = coinop.StateSettling, coinop.ModeSync
	if async {
		p.Mode = coinop.ModeAsync
	}
	return nil
}

// ServingExposure is an Exposure that can also mark a payment it owes
// async served, in the same write: an async payment's response leaves as
// soon as it is owed, so the two need not be two durable writes.
type ServingExposure interface {
	// OweServed is OweWithin that, when it owes payment id async, marks it
	// served as Journal.MarkServed would.
	OweServed(ctx context.Context, id string, limit *big.Int) (async bool, err error)
}

// OweServing is OweWithin for a payment whose response leaves as soon as
// it is owed async: when the journal owes p async it also marks p served,
// in the same write where the journal can (ServingExposure), else in a
// second write (Served). It reports whether p was marked served; a payment
// owed sync is not.
func (l *Lifecycle) OweServing(ctx context.Context, p *coinop.Payment, limit *big.Int) (served bool, err error) {
	ex, ok := l.j.(ServingExposure)
	if !ok || limit == nil {
		if err := l.OweWithin(ctx, p, limit); err != nil {
			return false, err
		}
		if p.Mode != coinop.ModeAsync {
			return false, nil
		}
		l.Served(ctx, p)
		return true, nil
	}
	async, err := ex.OweServed(ctx, p.ID, limit)
	if err != nil {
		l.Release(p, coinop.ReasonJournalFailed)
		return false, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the payment journal is unavailable; nothing was charged")
	}
	p.State, p.Mode = coinop.StateSettling, coinop.ModeSync
	if !async {
		return false, nil
	}
	p.Mode = coinop.ModeAsync
	l.Step("served", p)
	return true, nil
}

// Collect settles owed payment p through rail and journals the outcome (see
// Record). The error is nil only when the money moved.
func (l *Lifecycle) Collect(ctx context.Context, rail coinop.Rail, p *coinop.Payment) (*coinop.Receipt, error) {
	rc, err := rail.Settle(ctx, p, l.Recorder(p))
	return l.Record(ctx, p, rc, err)
}

// SettleOwed settles verified sync payment p through a rail that settles
// in the journal itself (coinop.JournalSettler): owed, moved and settled in
// one journal transaction. The error is nil only when the money moved; on
// an error p is released, nothing having moved.
func (l *Lifecycle) SettleOwed(ctx context.Context, rail coinop.JournalSettler, p *coinop.Payment) (*coinop.Receipt, error) {
	rc, err := rail.SettleOwed(ctx, p)
	if err == nil && (rc == nil || !rc.Success) {
		err = coinop.Errorf(coinop.KindSettleFailed, coinop.ReasonUnexpectedSettle, "settlement did not succeed")
	}
	if err != nil {
		l.Release(p, coinop.AsError(err).Reason)
		return rc, err
	}
	p.State, p.Mode, p.Reference = coinop.StateSettled, coinop.ModeSync, rc.Reference
	l.Step("tx_recorded", p)
	l.log.Info("payment settled", "payer", p.Payer, "amount", p.Amount.String(), "network", p.Network, "rail", p.Rail, "route", p.Route, "tx", rc.Reference, "mode", p.Mode)
	l.Step("settled", p)
	return rc, nil
}

// Recorder is what a rail settling p records through: the journal, before
// anything is sent, and the step hook.
func (l *Lifecycle) Recorder(p *coinop.Payment) coinop.Recorder { return &recorder{l, p} }

type recorder struct {
	l *Lifecycle
	p *coinop.Payment
}

// Record journals a settling payment's reference: with its prepared bytes
// when the rail has them, else the reference alone.
func (rc *recorder) Record(ctx context.Context, ref, prepared string) error {
	if err := writeRecord(ctx, rc.l.j, rc.p.ID, ref, prepared); err != nil {
		return err
	}
	rc.p.Reference, rc.p.Prepared = ref, prepared
	rc.l.Step("tx_recorded", rc.p)
	return nil
}

func (rc *recorder) Step(name string) { rc.l.Step(name, rc.p) }

// recordWriter is what journals a settling payment's reference: the
// journal, or one of its transactions (store.Tx).
type recordWriter interface {
	Transition(ctx context.Context, id string, from, to coinop.State, ref, reason string) error
	RecordTx(ctx context.Context, id, ref, prepared string) error
}

// writeRecord journals payment id's reference, with its prepared bytes when
// there are any.
func writeRecord(ctx context.Context, w recordWriter, id, ref, prepared string) error {
	if prepared == "" {
		return w.Transition(ctx, id, coinop.StateSettling, coinop.StateSettling, ref, "")
	}
	return w.RecordTx(ctx, id, ref, prepared)
}

// Atomic is a journal that commits many writes as one (the store
// packages' Atomically).
type Atomic interface {
	Atomically(ctx context.Context, fn func(tx store.Tx) error) error
}

// RecordGroup implements coinop.GroupRecorder: on a journal that commits
// many writes as one, every payment of the group is journaled with the
// shared reference in one write; otherwise, or when recs holds another
// engine's recorders, one by one.
func (rc *recorder) RecordGroup(ctx context.Context, recs []coinop.Recorder, ref, prepared string) error {
	group := make([]*recorder, 0, len(recs))
	for _, r := range recs {
		lr, ok := r.(*recorder)
		if !ok || lr.l != rc.l {
			group = nil
			break
		}
		group = append(group, lr)
	}
	a, ok := rc.l.j.(Atomic)
	if !ok || group == nil {
		for _, r := range recs {
			if err := r.Record(ctx, ref, prepared); err != nil {
				return err
			}
		}
		return nil
	}
	if err := a.Atomically(ctx, func(tx store.Tx) error {
		for _, r := range group {
			if err := writeRecord(ctx, tx, r.p.ID, ref, prepared); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, r := range group {
		r.p.Reference, r.p.Prepared = ref, prepared
		r.l.Step("tx_recorded", r.p)
	}
	return nil
}

// Record journals a settlement's outcome and returns it: settled; pending
// (left settling with its reference, for recovery); not sent, or
// unavailable on an async payment (left settling, still owed); or failed.
// The error is nil only when the money moved.
func (l *Lifecycle) Record(ctx context.Context, p *coinop.Payment, rc *coinop.Receipt, err error) (*coinop.Receipt, error) {
	switch {
	case err == nil && rc != nil && rc.Success:
		if jerr := l.j.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettled, rc.Reference, ""); jerr != nil {
			// The money moved; the journal lags. Recovery reconciles it from the network.
			l.log.Error("settled but the journal did not record it", "payment", p.ID, "tx", rc.Reference, "err", jerr)
		}
		l.settled(p, rc)
		return rc, nil
	case rc != nil && rc.Pending:
		l.log.Warn("settlement pending; recovery will finish it", "payment", p.ID, "tx", rc.Reference)
		return rc, err
	case err == nil:
		err = coinop.Errorf(coinop.KindSettleFailed, coinop.ReasonUnexpectedSettle, "settlement did not succeed")
	}
	if e := coinop.AsError(err); e.Kind == coinop.KindUnavailable && e.Reason == coinop.ReasonSettlementNotSent {
		// No node is known to hold the settlement, yet it may have reached
		// one: it stays settling, owed, for recovery to find and send
		// again. Nothing was served for it (sync) unless it was served
		// before settling (async).
		l.log.Warn("settlement not sent; recovery will finish it", "payment", p.ID, "tx", p.Reference, "mode", p.Mode, "err", err)
		return rc, err
	}
	if coinop.KindOf(err) == coinop.KindUnavailable && p.Mode == coinop.ModeAsync {
		return rc, err // nothing was sent; still owed, retried in the background
	}
	ref := ""
	if rc != nil {
		ref = rc.Reference
	}
	if jerr := l.j.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateFailed, ref, coinop.AsError(err).Reason); jerr != nil {
		l.log.Error("journal did not record a failed settlement", "payment", p.ID, "err", jerr)
	}
	p.State = coinop.StateFailed
	l.Step("failed", p)
	return rc, err
}

// settled notes, once the journal says so, that p's money moved.
func (l *Lifecycle) settled(p *coinop.Payment, rc *coinop.Receipt) {
	p.State, p.Reference = coinop.StateSettled, rc.Reference
	l.log.Info("payment settled", "payer", p.Payer, "amount", p.Amount.String(), "network", p.Network, "rail", p.Rail, "route", p.Route, "tx", rc.Reference, "mode", p.Mode)
	l.Step("settled", p)
}

// RecordMany is Record for the payments of one batch: the settled ones are
// journaled in one write on a journal that commits many writes as one
// (Atomic), the others (and all of them elsewhere, or if that write fails)
// one by one as Record does. It returns Record's error for each.
func (l *Lifecycle) RecordMany(ctx context.Context, ps []*coinop.Payment, rcs []*coinop.Receipt, errs []error) []error {
	out := make([]error, len(ps))
	done := make([]bool, len(ps))
	if a, ok := l.j.(Atomic); ok {
		var settled []int
		for i := range ps {
			if errs[i] == nil && rcs[i] != nil && rcs[i].Success {
				settled = append(settled, i)
			}
		}
		if len(settled) > 1 && a.Atomically(ctx, func(tx store.Tx) error {
			for _, i := range settled {
				if err := tx.Transition(ctx, ps[i].ID, coinop.StateSettling, coinop.StateSettled, rcs[i].Reference, ""); err != nil {
					return err
				}
			}
			return nil
		}) == nil {
			for _, i := range settled {
				l.settled(ps[i], rcs[i])
				done[i] = true
			}
		}
	}
	for i := range ps {
		if !done[i] {
			_, out[i] = l.Record(ctx, ps[i], rcs[i], errs[i])
		}
	}
	return out
}

// Served marks p's response as released. A failure is logged, not fatal:
// the money has moved (or is owed) and the response goes out.
func (l *Lifecycle) Served(ctx context.Context, p *coinop.Payment) {
	if err := l.j.MarkServed(ctx, p.ID); err != nil {
		l.log.Error("journal did not record a served response", "payment", p.ID, "err", err)
		return
	}
	l.Step("served", p)
}

// Release lifts p's reservation: nothing was charged, and the same
// credential may be presented again.
func (l *Lifecycle) Release(p *coinop.Payment, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.j.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateReleased, "", reason); err != nil {
		l.log.Error("could not release a payment reservation", "payment", p.ID, "err", err)
		return
	}
	p.State = coinop.StateReleased
	l.Step("released", p)
}

// SamePurchase reports whether the journaled payment prev bought what p,
// which passed the rail's checks against the current route, would buy: the
// same resource (path and query) at the same price (network, asset,
// recipient, amount). An identifier or payment that proves one purchase
// proves nothing about another: without this, the identifier of a cheap
// purchase whose response was lost would fetch a dearer route. The scheme
// and host are left out: a client may reach one gateway under several names
// (localhost and 127.0.0.1, a load balancer's and the instance's), and a
// retry through another is still the same purchase.
func SamePurchase(prev, p *coinop.Payment) bool {
	return sameResource(prev.Resource, p.Resource) && prev.Network == p.Network && prev.Asset == p.Asset &&
		prev.PayTo == p.PayTo && prev.Amount != nil && p.Amount != nil && prev.Amount.Cmp(p.Amount) == 0
}

// sameResource compares two resource URLs by path and query.
func sameResource(a, b string) bool {
	ua, erra := url.Parse(a)
	ub, errb := url.Parse(b)
	if erra != nil || errb != nil {
		return a == b
	}
	return ua.EscapedPath() == ub.EscapedPath() && ua.RawQuery == ub.RawQuery
}

// represented checks a payment presented again (same ID as the journaled
// prev, which may be served again): the rail proves it is prev's credential,
// signed by prev's payer (coinop.Reverifier), and it is presented for
// prev's purchase. A rail that cannot reverify never serves a payment twice.
func represented(rail coinop.Rail, p, prev *coinop.Payment) error {
	rv, ok := rail.(coinop.Reverifier)
	if !ok {
		return coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this payment was already used")
	}
	if err := rv.Reverify(p, prev); err != nil {
		return err
	}
	if !SamePurchase(prev, p) {
		return coinop.Errorf(coinop.KindConflict, coinop.ReasonReused, "this payment bought another resource or price; it cannot be used here")
	}
	return nil
}

// reuse decides what an earlier journal entry means for a new request: the
// earlier payment whose response may be served now without a new charge
// (settled, never served: the client lost the response to a crash or a
// network failure and retried), nil to go on with the new payment (the
// earlier one was released), or the error to answer with.
func reuse(prev *coinop.Payment, err error) (*coinop.Payment, error) {
	if err != nil {
		return nil, err
	}
	switch prev.State {
	case coinop.StateReleased:
		return nil, nil // nothing was charged; the payment may be used again
	case coinop.StateSettled:
		if prev.Served.IsZero() {
			return prev, nil
		}
	case coinop.StateVerified, coinop.StateSettling:
		return nil, coinop.Errorf(coinop.KindInFlight, coinop.ReasonInFlight, "this payment is being processed; retry shortly")
	}
	return nil, coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this payment was already used")
}
