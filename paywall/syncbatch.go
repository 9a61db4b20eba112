package paywall

import (
	"context"
	"sync"
	"time"

	"github.com/coinop/coinop"
)

// Batching is implemented by rails that can settle some payments in one
// network transaction (a coinop.BatchSettler whose chain has a batch
// contract): it says whether p is one of them. A batch settler that
// settles a batch one payment after another must say no, or sync payments
// would wait for each other's settlements in turn.
type Batching interface {
	Batches(p *coinop.Payment) bool
}

// syncBatches settles sync payments that arrive together in one
// transaction. A sync payment owed on a rail with no other sync payment
// being settled goes at once, alone, exactly as unbatched. One owed while
// others are on their way opens a batch (or joins the open one), which
// takes the rail's sync payments owed in the next Config.SyncBatchWindow
// (2 ms: short beside a settlement's own time, a block or a receipt's
// round trip), at most maxBatch of them, and then goes, in its own
// goroutine; the next payment
// opens the next batch. Batches do not wait for each other: on a chain
// with block times, the batches sent within one block land in it, as
// single transactions would. Under load one transaction, one journal write
// for the shared transaction and one for the outcomes carry many payments,
// as in the background.
type syncBatches struct {
	pw *Paywall
	mu sync.Mutex
	// open is each rail's batch still taking payments.
	open map[coinop.Rail]*syncBatch
	// busy counts each rail's sync payments being settled, alone or in
	// batches, open ones included.
	busy map[coinop.Rail]int
}

type syncBatch struct {
	jobs []*syncJob
	full chan struct{} // closed when the batch reached maxBatch
}

type syncJob struct {
	p    *coinop.Payment
	rc   *coinop.Receipt
	err  error
	done chan struct{}
}

func newSyncBatches(pw *Paywall) *syncBatches {
	return &syncBatches{pw: pw, open: map[coinop.Rail]*syncBatch{}, busy: map[coinop.Rail]int{}}
}

// collect settles owed sync payment p in a batch of rail's and journals the
// outcome, as Lifecycle.Collect does alone (with ctx, when p goes alone; a
// batch has its own, bounded by Config.SettleTimeout). It waits for the outcome: a
// payment handed to a batch is settled or failed there, never abandoned.
func (s *syncBatches) collect(ctx context.Context, rail coinop.Rail, p *coinop.Payment) (*coinop.Receipt, error) {
	s.mu.Lock()
	s.busy[rail]++
	alone := s.busy[rail] == 1
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.busy[rail]--; s.busy[rail] == 0 {
			delete(s.busy, rail)
		}
		s.mu.Unlock()
	}()
	if alone {
		return s.pw.lc.Collect(ctx, rail, p)
	}
	j := &syncJob{p: p, done: make(chan struct{})}
	s.mu.Lock()
	b := s.open[rail]
	if b == nil {
		b = &syncBatch{full: make(chan struct{})}
		s.open[rail] = b
		go s.run(rail, b)
	}
	b.jobs = append(b.jobs, j)
	if len(b.jobs) == maxBatch {
		delete(s.open, rail)
		close(b.full)
	}
	s.mu.Unlock()
	<-j.done
	return j.rc, j.err
}

// run closes batch b after the window (or once it is full) and settles it.
func (s *syncBatches) run(rail coinop.Rail, b *syncBatch) {
	t := time.NewTimer(s.pw.cfg.SyncBatchWindow)
	select {
	case <-t.C:
	case <-b.full:
		t.Stop()
	}
	s.mu.Lock()
	if s.open[rail] == b {
		delete(s.open, rail)
	}
	jobs := b.jobs
	s.mu.Unlock()
	s.settle(rail, rail.(coinop.BatchSettler), jobs)
}

func (s *syncBatches) settle(rail coinop.Rail, bs coinop.BatchSettler, batch []*syncJob) {
	lc := s.pw.lc
	ctx, cancel := context.WithTimeout(context.Background(), s.pw.cfg.SettleTimeout)
	defer cancel()
	defer func() {
		for _, j := range batch {
			close(j.done)
		}
	}()
	if len(batch) == 1 {
		batch[0].rc, batch[0].err = lc.Collect(ctx, rail, batch[0].p)
		return
	}
	ps, recs := make([]*coinop.Payment, len(batch)), make([]coinop.Recorder, len(batch))
	for i, j := range batch {
		ps[i], recs[i] = j.p, lc.Recorder(j.p)
	}
	rcs, errs := bs.SettleBatch(ctx, ps, recs)
	for i, err := range lc.RecordMany(ctx, ps, rcs, errs) {
		batch[i].rc, batch[i].err = rcs[i], err
	}
}

// collect settles owed sync payment p through rail: in a batch when the
// rail batches it, else alone.
func (pw *Paywall) collect(ctx context.Context, rail coinop.Rail, p *coinop.Payment) (*coinop.Receipt, error) {
	if b, ok := rail.(Batching); ok && b.Batches(p) {
		if _, ok := rail.(coinop.BatchSettler); ok {
			return pw.sync.collect(ctx, rail, p)
		}
	}
	return pw.lc.Collect(ctx, rail, p)
}
