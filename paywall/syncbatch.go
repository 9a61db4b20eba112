package paywall

import (
	"context"
	"sync"

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
// transaction: while a rail's batch is on its way to the network, the sync
// payments owed on that rail wait, and go together in the next batch once
// it is back. A payment alone goes at once, as it would unbatched; under
// load one transaction, one journal write for the shared transaction and
// one for the outcomes carry many payments, as in the background.
type syncBatches struct {
	pw *Paywall
	mu sync.Mutex
	q  map[coinop.Rail][]*syncJob // waiting
	on map[coinop.Rail]bool       // a batch of the rail is being settled
}

type syncJob struct {
	p    *coinop.Payment
	rc   *coinop.Receipt
	err  error
	done chan struct{}
}

func newSyncBatches(pw *Paywall) *syncBatches {
	return &syncBatches{pw: pw, q: map[coinop.Rail][]*syncJob{}, on: map[coinop.Rail]bool{}}
}

// collect settles owed sync payment p in a batch of rail's and journals the
// outcome, as Lifecycle.Collect does alone. It waits for the outcome even
// when it takes more than one batch: a payment handed to a batch is settled
// or failed there, never abandoned.
func (s *syncBatches) collect(rail coinop.Rail, p *coinop.Payment) (*coinop.Receipt, error) {
	j := &syncJob{p: p, done: make(chan struct{})}
	s.mu.Lock()
	s.q[rail] = append(s.q[rail], j)
	if !s.on[rail] {
		s.on[rail] = true
		go s.run(rail)
	}
	s.mu.Unlock()
	<-j.done
	return j.rc, j.err
}

// run settles rail's waiting payments, a batch at a time, until none waits.
func (s *syncBatches) run(rail coinop.Rail) {
	bs := rail.(coinop.BatchSettler)
	for {
		s.mu.Lock()
		batch := s.q[rail]
		if len(batch) == 0 {
			delete(s.q, rail)
			s.on[rail] = false
			s.mu.Unlock()
			return
		}
		if len(batch) > maxBatch {
			s.q[rail] = append([]*syncJob(nil), batch[maxBatch:]...)
			batch = batch[:maxBatch]
		} else {
			s.q[rail] = nil
		}
		s.mu.Unlock()
		s.settle(rail, bs, batch)
	}
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
			return pw.sync.collect(rail, p)
		}
	}
	return pw.lc.Collect(ctx, rail, p)
}
