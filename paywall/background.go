package paywall

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/coinop/coinop"
)

// background settles async payments after their responses went out. Each
// payment is journaled as settling (owed) in mode async before it is
// queued, so a crash loses nothing: recovery hands unsent ones back through
// Resume. The payer's exposure cap is the journal's to keep
// (lifecycle.Exposure): a payment counts against it from the moment it is
// owed async until the journal shows it settled or failed, in whichever
// process or instance finishes it, and across restarts.
type background struct {
	pw    *Paywall
	mu    sync.Mutex
	owned map[string]bool // payment IDs queued or being settled here
	jobs  chan job
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

type job struct {
	rail coinop.Rail
	p    *coinop.Payment
}

func newBackground(pw *Paywall) *background {
	b := &background{pw: pw, owned: map[string]bool{}, jobs: make(chan job, 4096), stop: make(chan struct{})}
	for i := 0; i < pw.cfg.SettleWorkers; i++ {
		b.wg.Add(1)
		go b.work()
	}
	return b
}

func (b *background) enqueue(rail coinop.Rail, p *coinop.Payment) {
	b.mu.Lock()
	b.owned[p.ID] = true
	b.mu.Unlock()
	select {
	case b.jobs <- job{rail, p}:
	case <-b.stop:
	}
}

// maxBatch bounds how many settlements share one transaction.
const maxBatch = 50

func (b *background) work() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case j := <-b.jobs:
			b.settleGroup(b.gather(j))
		}
	}
}

// gather collects, for up to BatchWindow, the settlements queued behind j,
// so that rails that batch can settle them in one transaction.
func (b *background) gather(j job) []job {
	batch := []job{j}
	if _, ok := j.rail.(coinop.BatchSettler); !ok || b.pw.cfg.BatchWindow < 0 {
		return batch
	}
	timer := time.NewTimer(b.pw.cfg.BatchWindow)
	defer timer.Stop()
	for len(batch) < maxBatch {
		select {
		case next := <-b.jobs:
			batch = append(batch, next)
		case <-timer.C:
			return batch
		case <-b.stop:
			return batch
		}
	}
	return batch
}

// settleGroup settles gathered jobs: together per rail where the rail
// batches, alone otherwise. A batch that could not be sent at all (the
// network is down) falls back to single settlements, which wait out the
// outage.
func (b *background) settleGroup(jobs []job) {
	byRail := map[coinop.Rail][]job{}
	var rails []coinop.Rail
	for _, j := range jobs {
		if _, ok := byRail[j.rail]; !ok {
			rails = append(rails, j.rail)
		}
		byRail[j.rail] = append(byRail[j.rail], j)
	}
	for _, r := range rails {
		group := byRail[r]
		bs, ok := r.(coinop.BatchSettler)
		if !ok || len(group) == 1 {
			for _, j := range group {
				b.settle(j)
			}
			continue
		}
		for _, j := range b.settleBatch(bs, group) {
			b.settle(j)
		}
	}
}

// settleBatch settles a group in one transaction and journals each outcome.
// It returns the jobs to retry alone: all of them when nothing was sent.
func (b *background) settleBatch(bs coinop.BatchSettler, group []job) []job {
	ps, recs := make([]*coinop.Payment, len(group)), make([]coinop.Recorder, len(group))
	for i, j := range group {
		ps[i], recs[i] = j.p, b.pw.lc.Recorder(j.p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.pw.cfg.SettleTimeout)
	defer cancel()
	rcs, errs := bs.SettleBatch(ctx, ps, recs)
	var retry, record []job
	var rps []*coinop.Payment
	var rrcs []*coinop.Receipt
	var rerrs []error
	for i, j := range group {
		if errs[i] != nil && coinop.KindOf(errs[i]) == coinop.KindUnavailable && (j.p.Reference == "" || notSent(errs[i])) && (rcs[i] == nil || !rcs[i].Pending) {
			// Never sent, or sent to no node: settle alone (or broadcast
			// the batch's journaled bytes again), waiting out the outage.
			retry = append(retry, j)
			continue
		}
		record, rps, rrcs, rerrs = append(record, j), append(rps, j.p), append(rrcs, rcs[i]), append(rerrs, errs[i])
	}
	// The outcomes in one journal write where the journal can.
	for k, err := range b.pw.lc.RecordMany(ctx, rps, rrcs, rerrs) {
		b.done(record[k], err)
	}
	return retry
}

// done releases a finished job's ownership; err is the settlement's
// outcome. A payment still settling (its transaction sent but its receipt
// late, or left for recovery) stays counted against its payer's exposure,
// in the journal, until the journal shows it finished: it was served and
// is not yet paid, and a pending transaction can still revert.
func (b *background) done(j job, err error) {
	if err != nil && j.p.State == coinop.StateFailed {
		b.pw.log.Error("an async payment's settlement failed after its response was served", "payment", j.p.ID, "payer", j.p.Payer, "amount", j.p.Amount.String(), "err", err)
	}
	b.mu.Lock()
	delete(b.owned, j.p.ID)
	b.mu.Unlock()
}

// settle collects one owed payment, waiting out outages: while the network
// is unavailable it retries with backoff until the paywall closes; then the
// payment stays owed for recovery. A payment whose journaled transaction no
// node accepted is retried by broadcasting that transaction again (through
// a coinop.Resender), never by settling anew; one that a node holds but
// whose receipt is late is left to recovery.
func (b *background) settle(j job) {
	var err error
	defer func() { b.done(j, err) }()
	backoff := time.Second
	for {
		ctx, cancel := context.WithTimeout(context.Background(), b.pw.cfg.SettleTimeout)
		err = b.attempt(ctx, j)
		cancel()
		if err == nil || coinop.KindOf(err) != coinop.KindUnavailable || j.p.Reference != "" && !notSent(err) {
			return
		}
		b.pw.log.Warn("background settlement waits for the network", "payment", j.p.ID, "retry_in", backoff, "err", err)
		// Touch the journal entry so no other instance's recovery takes a
		// payment this one still works on.
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if herr := b.pw.cfg.Journal.Transition(hctx, j.p.ID, coinop.StateSettling, coinop.StateSettling, "", "waiting_for_network"); herr != nil {
			b.pw.log.Warn("journal heartbeat failed", "payment", j.p.ID, "err", herr)
		}
		hcancel()
		select {
		case <-b.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// attempt settles j once: anew, or from its journaled transaction when one
// was signed and no node accepted it. A journaled transaction whose nonce
// another one took can never be mined, so the payment is settled anew; one
// the node refuses for any other reason is left settling: recovery reads the
// chain and decides whether it failed or must be settled anew.
func (b *background) attempt(ctx context.Context, j job) error {
	rs, ok := j.rail.(coinop.Resender)
	if !ok || j.p.Prepared == "" {
		_, err := b.pw.lc.Collect(ctx, j.rail, j.p)
		return err
	}
	rc, err := rs.Resend(ctx, j.p, b.pw.lc.Recorder(j.p))
	if coinop.AsError(err).Reason == coinop.ReasonSettlementNonceTaken {
		// The journaled transaction can never be mined: settle anew.
		j.p.Reference, j.p.Prepared = "", ""
		_, err = b.pw.lc.Collect(ctx, j.rail, j.p)
		return err
	}
	if err != nil && coinop.KindOf(err) != coinop.KindUnavailable {
		b.pw.log.Warn("a resent settlement was refused; recovery will decide", "payment", j.p.ID, "tx", j.p.Reference, "err", err)
		return err
	}
	_, err = b.pw.lc.Record(ctx, j.p, rc, err)
	return err
}

func notSent(err error) bool { return coinop.AsError(err).Reason == coinop.ReasonSettlementNotSent }

func (b *background) close(ctx context.Context) error {
	b.once.Do(func() { close(b.stop) })
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("paywall: background settlements still running at close")
	}
}

// Resume queues, for settlement in the background, async payments that were
// served but whose settlement never reached the network (found by recovery
// after a crash). Each is handed to the rail it names (Payment.Rail), which
// must rebuild its credential from the journaled payload (coinop.Restorer).
// A payment journaled under a rail name no longer registered (journals
// written before rails had names say "x402-exact-evm") is offered to every
// rail that can restore. A payment no rail can restore (for example, its
// authorization expired) is marked failed.
func (pw *Paywall) Resume(ctx context.Context, ps []*coinop.Payment) {
	for _, p := range ps {
		pw.bg.mu.Lock()
		mine := pw.bg.owned[p.ID]
		pw.bg.mu.Unlock()
		if mine {
			continue
		}
		restored, err := pw.restore(p)
		if restored == nil {
			pw.log.Error("an owed payment cannot be settled", "payment", p.ID, "rail", p.Rail, "err", err)
			if err := pw.cfg.Journal.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateFailed, "", "cannot_restore_credential"); err != nil {
				pw.log.Error("journal", "payment", p.ID, "err", err)
			}
			continue
		}
		// Recovery found that the journaled settlement, if any, can never
		// land: the payment is settled anew.
		p.Reference, p.Prepared = "", ""
		pw.bg.enqueue(restored, p) // still settling async: the journal counts it whatever the cap

	}
}

// restore finds the rail that takes journaled payment p and rebuilds its
// credential there.
func (pw *Paywall) restore(p *coinop.Payment) (coinop.Rail, error) {
	candidates := []coinop.Rail{pw.rails[p.Rail]}
	if candidates[0] == nil {
		candidates = candidates[:0]
		names := make([]string, 0, len(pw.rails))
		for n := range pw.rails {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			candidates = append(candidates, pw.rails[n])
		}
	}
	err := fmt.Errorf("no rail named %q can restore it", p.Rail)
	for _, r := range candidates {
		rs, ok := r.(coinop.Restorer)
		if !ok {
			continue
		}
		if err = rs.Restore(p); err == nil {
			return r, nil
		}
	}
	return nil, err
}
