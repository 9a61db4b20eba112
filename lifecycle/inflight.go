package lifecycle

import (
	"context"
	"sync"
	"time"
)

// DuplicateWait is how long a request waits for another one holding the
// same payment (or the same payer's idempotency key) in this process before
// it is answered 409. The first one's journal entry is final once it is
// done, served mark included, so a client that retries the moment it has
// the response is answered from the journal (a replay, or the purchase
// already served) rather than told to come back.
const DuplicateWait = 2 * time.Second

// inflight holds the purchases this process is handling, by key: a
// payment's ID, and a payer's idempotency key. It is a guard within one
// process; the journal's unique keys are the guard across processes.
type inflight struct {
	m sync.Map // key → chan struct{}, closed when the holder is done
}

// claim takes key, waiting up to wait (or until ctx is done) for a holder
// to finish. It reports false if key is still held then; otherwise the
// caller holds key until it calls release.
func (f *inflight) claim(ctx context.Context, key string, wait time.Duration) (release func(), ok bool) {
	mine := make(chan struct{})
	var timeout <-chan time.Time
	for {
		held, busy := f.m.LoadOrStore(key, mine)
		if !busy {
			return func() {
				f.m.Delete(key)
				close(mine)
			}, true
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-held.(chan struct{}):
		case <-timeout:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}
