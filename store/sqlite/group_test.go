package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
	"github.com/coinop/coinop/store/storetest"
)

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// plug occupies the writer with a write that waits, inside its group's
// transaction, until the returned function is called; the writes queued
// meanwhile all go into the next group. unplug waits for the plug's outcome.
func plug(t *testing.T, s *Store) (unplug func()) {
	t.Helper()
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), "plug", func(context.Context, *wtx) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	return func() {
		t.Helper()
		close(release)
		if err := <-done; err != nil {
			t.Errorf("plug: %v", err)
		}
	}
}

// waitQueued waits until n writes are queued for the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		queued := len(s.queue)
		s.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupFailureIsIsolated commits, in one group, valid writes together
// with writes that must be refused: each refused one fails alone, with the
// error it gets on its own, and changes nothing; the others are committed.
func TestGroupFailureIsIsolated(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "journal.db"))
	defer s.Close()
	ctx := t.Context()
	if err := s.Reserve(ctx, storetest.Payment(1)); err != nil {
		t.Fatal(err)
	}

	type write struct {
		name string
		do   func() error
		want func(error) bool
	}
	isNil := func(err error) bool { return err == nil }
	is := func(k coinop.Kind, reason string) func(error) bool {
		return func(err error) bool { e := coinop.AsError(err); return e.Kind == k && e.Reason == reason }
	}
	writes := []write{
		{"reserve 2", func() error { return s.Reserve(ctx, storetest.Payment(2)) }, isNil},
		{"replay 1", func() error { return s.Reserve(ctx, storetest.Payment(1)) }, is(coinop.KindReplayed, "payment_replayed")},
		{"reserve 3", func() error { return s.Reserve(ctx, storetest.Payment(3)) }, isNil},
		// A replay of a write committed in the same group.
		{"replay 2", func() error { return s.Reserve(ctx, storetest.Payment(2)) }, is(coinop.KindReplayed, "payment_replayed")},
		{"settle 1", func() error {
			return s.Transition(ctx, storetest.Payment(1).ID, coinop.StateVerified, coinop.StateSettling, "0xaa", "")
		}, isNil},
		{"settle 1 again", func() error {
			return s.Transition(ctx, storetest.Payment(1).ID, coinop.StateVerified, coinop.StateSettling, "0xbb", "")
		}, is(coinop.KindInFlight, "payment_state_conflict")},
		{"serve unknown", func() error { return s.MarkServed(ctx, storetest.Payment(404).ID) },
			func(err error) bool { return errors.Is(err, store.ErrNotFound) }},
		{"serve 3", func() error { return s.MarkServed(ctx, storetest.Payment(3).ID) }, isNil},
		{"serve 3 again", func() error { return s.MarkServed(ctx, storetest.Payment(3).ID) }, is(coinop.KindReplayed, "payment_replayed")},
		// A write that fails after writing: its statements are undone.
		{"write then fail", func() error {
			return s.write(ctx, "test", func(ctx context.Context, tx *wtx) error {
				if _, _, err := reserve(ctx, tx, storetest.Payment(5), coinop.ModeSync, 1, lease{}); err != nil {
					return err
				}
				return errors.New("refused after writing")
			})
		}, func(err error) bool { return err != nil && err.Error() == "refused after writing" }},
		{"reserve 4", func() error { return s.Reserve(ctx, storetest.Payment(4)) }, isNil},
	}

	unplug := plug(t, s)
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = w.do() })
		waitQueued(t, s, i+1) // one at a time, so the group applies them in this order
	}
	unplug()
	wg.Wait()
	for i, w := range writes {
		if !w.want(errs[i]) {
			t.Errorf("%s: %v", w.name, errs[i])
		}
	}

	for id, want := range map[string]int{storetest.Payment(1).ID: 2, storetest.Payment(2).ID: 1, storetest.Payment(3).ID: 2, storetest.Payment(4).ID: 1} {
		if events, err := s.Events(ctx, id); err != nil || len(events) != want {
			t.Errorf("%s: %d events, %v; want %d", id, len(events), err, want)
		}
	}
	if p, err := s.Get(ctx, storetest.Payment(1).ID); err != nil || p.State != coinop.StateSettling || p.Reference != "0xaa" {
		t.Errorf("pay-1 = %+v, %v; want settling with 0xaa", p, err)
	}
	if _, err := s.Get(ctx, storetest.Payment(5).ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a write rolled back to its savepoint = %v, want ErrNotFound", err)
	}
}

// TestGroupFailureFailsAll: when a group's transaction fails, every write
// of the group returns KindUnavailable and none is applied; the next group
// works.
func TestGroupFailureFailsAll(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "journal.db"))
	defer s.Close()
	ctx := t.Context()

	unplug := plug(t, s)
	writes := []func() error{
		func() error { return s.Reserve(ctx, storetest.Payment(1)) },
		func() error { return s.Reserve(ctx, storetest.Payment(1)) }, // refused because of the first
		func() error {
			return s.write(ctx, "sabotage", func(ctx context.Context, tx *wtx) error {
				_, err := tx.ExecContext(ctx, `ROLLBACK`) // ends the group's transaction
				return err
			})
		},
		func() error { return s.Reserve(ctx, storetest.Payment(2)) },
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = w() })
		waitQueued(t, s, i+1)
	}
	unplug()
	wg.Wait()
	for i, err := range errs {
		if coinop.KindOf(err) != coinop.KindUnavailable {
			t.Errorf("write %d of a failed group = %v, want KindUnavailable", i, err)
		}
	}
	for _, id := range []string{storetest.Payment(1).ID, storetest.Payment(2).ID} {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s) after its group failed = %v, want ErrNotFound", id, err)
		}
	}
	if err := s.Reserve(ctx, storetest.Payment(1)); err != nil {
		t.Errorf("Reserve after a failed group: %v", err)
	}
}

// TestCancelledWhileQueued: a write whose context ends while it waits for
// the writer returns the context's error and is never applied.
func TestCancelledWhileQueued(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "journal.db"))
	defer s.Close()

	unplug := plug(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Reserve(ctx, storetest.Payment(1)) }()
	waitQueued(t, s, 1)
	cancel()
	err := <-errc // before unplugging: the caller does not wait for the writer
	if coinop.KindOf(err) != coinop.KindUnavailable || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Reserve = %v, want KindUnavailable wrapping context.Canceled", err)
	}
	// Reads do not wait for the writer, which holds an open transaction.
	if _, err := s.Get(t.Context(), storetest.Payment(1).ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get while the writer is busy = %v, want ErrNotFound", err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping while the writer is busy: %v", err)
	}
	unplug()

	if err := s.Reserve(t.Context(), storetest.Payment(2)); err != nil {
		t.Fatal(err) // the next group has run: the cancelled write was skipped
	}
	if _, err := s.Get(t.Context(), storetest.Payment(1).ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of the cancelled reservation = %v, want ErrNotFound", err)
	}
	// Its key was never taken.
	if err := s.Reserve(t.Context(), storetest.Payment(1)); err != nil {
		t.Errorf("Reserve after the cancelled one: %v", err)
	}
	// A context that has ended already is refused before queueing.
	if err := s.Reserve(ctx, storetest.Payment(3)); !errors.Is(err, context.Canceled) {
		t.Errorf("Reserve with an ended context = %v, want context.Canceled", err)
	}
}

// TestCloseDrainsQueue: writes queued when Close is called are applied and
// answered before the store closes; writes after it are refused.
func TestCloseDrainsQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	s := openStore(t, path)

	unplug := plug(t, s)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.Reserve(context.Background(), storetest.Payment(i)) })
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for {
		s.mu.Lock()
		c := s.closed
		s.mu.Unlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Reserve(t.Context(), storetest.Payment(n)); !errors.Is(err, errClosed) || coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Reserve while closing = %v, want KindUnavailable", err)
	}
	unplug()
	wg.Wait()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("queued Reserve(%d): %v", i, err)
		}
	}

	s = openStore(t, path)
	defer s.Close()
	if ps, err := s.Unfinished(t.Context()); err != nil || len(ps) != n {
		t.Errorf("after reopen: %d payments, %v; want %d", len(ps), err, n)
	}
}

// TestBurstSurvivesReopen: after a burst of concurrent writes, some of them
// racing Close, every write that returned without error is in the file when
// it is opened again, with its events, and every other one is not.
func TestBurstSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	s := openStore(t, path)
	const n = 300
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := storetest.Payment(i)
			if errs[i] = s.Reserve(context.Background(), p); errs[i] != nil {
				return
			}
			// Read-your-writes, from the read pool.
			if _, err := s.Get(context.Background(), p.ID); err != nil && i < n/2 {
				t.Errorf("Get(%s) after its Reserve: %v", p.ID, err)
			}
			if i%2 == 0 {
				errs[i] = s.Transition(context.Background(), p.ID, coinop.StateVerified, coinop.StateSettling, "0xfeed", "")
			}
		})
		if i == n/2 {
			wg.Wait() // the first half completes; the second races Close
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	s = openStore(t, path)
	defer s.Close()
	ctx := t.Context()
	ok := 0
	for i, err := range errs {
		id := storetest.Payment(i).ID
		got, gerr := s.Get(ctx, id)
		switch {
		case err == nil:
			ok++
			events, eerr := s.Events(ctx, id)
			want, wantEvents := coinop.StateVerified, 1
			if i%2 == 0 {
				want, wantEvents = coinop.StateSettling, 2
			}
			if gerr != nil || eerr != nil || got.State != want || len(events) != wantEvents {
				t.Errorf("%s after reopen: %+v (%v), %d events (%v); want %s", id, got, gerr, len(events), eerr, want)
			}
		case coinop.KindOf(err) != coinop.KindUnavailable:
			t.Errorf("write %d: %v, want nil or KindUnavailable", i, err)
		case i%2 == 1 && !errors.Is(gerr, store.ErrNotFound):
			// A refused reservation changed nothing. (An even one may have
			// failed at its transition, after its reservation.)
			t.Errorf("%s refused (%v) but journaled: %+v, %v", id, err, got, gerr)
		}
	}
	if ok <= n/2 {
		t.Errorf("%d writes succeeded, want more than the %d before Close", ok, n/2)
	}
}
