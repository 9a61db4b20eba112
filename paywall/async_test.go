package paywall_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/recovery"
	"github.com/coinop/coinop/store/sqlite"
)

// asyncRoute is an async route on pattern taking rail at amount, with cap as
// its accept entry's exposure cap (nil: none).
func asyncRoute(pattern string, rail coinop.Rail, amount int64, cap *big.Int) paywall.Route {
	rt := priced(pattern, rail, amount)
	rt.Settlement = coinop.ModeAsync
	rt.Accept[0].AsyncExposure = cap
	return rt
}

// On an async route a payment is served before it settles only while its
// payer's served-but-unsettled total stays within the accept entry's cap;
// the payment that would pass it settles synchronously, before its
// response. Payers are counted apart.
func TestAsyncExposure(t *testing.T) {
	rail := newFakeRail("fake")
	gate := make(chan struct{})
	rail.set(func(r *fakeRail) { r.gate = gate }) // background settlements wait: exposure stays booked
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{
		asyncRoute("/capped/", rail, 4, big.NewInt(10)),
		asyncRoute("/uncapped/", rail, 4, nil),
	}}, &goods{})
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()
	for _, c := range []struct {
		name, path, payer, nonce string
		mode                     string
		state                    coinop.State // right after the response
	}{
		{"first within the cap", "/capped/x", "alice", "a1", coinop.ModeAsync, coinop.StateSettling},
		{"second within the cap", "/capped/x", "alice", "a2", coinop.ModeAsync, coinop.StateSettling},
		{"third passes the cap", "/capped/x", "alice", "a3", coinop.ModeSync, coinop.StateSettled},
		{"another payer", "/capped/x", "bob", "b1", coinop.ModeAsync, coinop.StateSettling},
		{"no cap: sync", "/uncapped/x", "carol", "c1", coinop.ModeSync, coinop.StateSettled},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := "fake:" + c.payer + ":" + c.nonce
			a := e.do(t, "GET", c.path, pay(fakeCred("fake", c.payer, c.nonce)))
			if a.status != 200 || a.body != "goods" {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			e.steps.wait(t, "served", id)
			p := e.payment(t, id)
			if p == nil || p.Mode != c.mode || p.State != c.state {
				t.Fatalf("journaled %+v, want %s %s", p, c.mode, c.state)
			}
		})
	}
	close(gate)
	released = true
	for _, id := range []string{"fake:alice:a1", "fake:alice:a2", "fake:bob:b1"} {
		e.steps.wait(t, "settled", id)
		if p := e.payment(t, id); p == nil || p.State != coinop.StateSettled || p.Reference == "" {
			t.Errorf("background settlement of %s journaled %+v", id, p)
		}
	}
}

// owed journals p the way a crash leaves an async payment: reserved,
// owed (settling) and served, its settlement never sent.
func owed(t *testing.T, j *sqlite.Store, rail, network, payer, nonce string) *coinop.Payment {
	t.Helper()
	ctx := context.Background()
	p := &coinop.Payment{ID: rail + ":" + payer + ":" + nonce, Rail: rail, Network: network, Asset: "fake-coin", Payer: payer,
		PayTo: "seller", ReplayKey: nonce, Amount: big.NewInt(4), Resource: "http://127.0.0.1/paid/x",
		Payload: fakeCred(rail, payer, nonce), Mode: coinop.ModeAsync}
	if err := j.Reserve(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := j.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkServed(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	got, err := j.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// After a crash, a new Paywall resumes owed payments through the rail their
// journal entry names, rebuilt from the journaled payload; one no rail can
// restore is failed, never settled by a rail it does not belong to.
func TestResume(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, filepath.Join(dir, "journal.db"))
	mine := owed(t, j, "fake", "fake-net", "alice", "r1")
	renamed := owed(t, j, "old-name", "fake-net", "bob", "r2") // same terms, rail renamed since
	gone := owed(t, j, "gone", "other-net", "carol", "r3")     // no rail takes these terms
	tampered := owed(t, j, "fake", "fake-net", "dave", "r4")   // payload tampered with
	if err := j.Transition(context.Background(), tampered.ID, coinop.StateSettling, coinop.StateSettling, "", ""); err != nil {
		t.Fatal(err)
	}
	tampered.Payload = "fake;mallory;r4"

	// The process that served them is gone; a new one starts on the same
	// journal with a rail of the same name.
	rail := newFakeRail("fake")
	e := newFakeEngine(t, paywall.Config{Journal: j, Routes: []paywall.Route{asyncRoute("/paid/", rail, 4, big.NewInt(100))}}, &goods{})
	e.pw.Resume(context.Background(), []*coinop.Payment{mine, renamed, gone, tampered})
	for _, c := range []struct {
		name   string
		p      *coinop.Payment
		state  coinop.State
		reason string
	}{
		{"same rail name", mine, coinop.StateSettled, ""},
		{"rail renamed, same terms", renamed, coinop.StateSettled, ""},
		{"unknown rail and terms", gone, coinop.StateFailed, "cannot_restore_credential"},
		{"payload not the payment's", tampered, coinop.StateFailed, "cannot_restore_credential"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.state == coinop.StateSettled {
				e.steps.wait(t, "settled", c.p.ID)
			}
			p := e.payment(t, c.p.ID)
			if p == nil || p.State != c.state || p.Reason != c.reason {
				t.Fatalf("journaled %+v, want %s %q", p, c.state, c.reason)
			}
		})
	}
	if n := rail.settles.Load(); n != 2 {
		t.Errorf("Settle called %d times, want 2 (the two it could restore)", n)
	}
}

// Recovery hands the payments it finds served but never settled to the
// engine (Report.Resettle → Resume), and finishes the others itself from
// what the rail's network says.
func TestRecoveryHandOff(t *testing.T) {
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	ctx := context.Background()
	lost := owed(t, j, "fake", "fake-net", "alice", "h1")
	landed := owed(t, j, "fake", "fake-net", "bob", "h2")
	if err := j.RecordTx(ctx, landed.ID, "fake-ref:"+landed.ID, "fake-prepared:"+landed.ID); err != nil {
		t.Fatal(err)
	}
	rail := newFakeRail("fake")
	e := newFakeEngine(t, paywall.Config{Journal: j, Routes: []paywall.Route{asyncRoute("/paid/", rail, 4, big.NewInt(100))}}, &goods{})
	rep, err := recovery.Run(ctx, j, map[string]coinop.Reconciler{"fake-net": rail}, time.Now().Add(time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Resettle) != 1 || rep.Resettle[0].ID != lost.ID || rep.Settled != 1 {
		t.Fatalf("recovery report %+v, want %s to resettle and one settled", rep, lost.ID)
	}
	e.pw.Resume(ctx, rep.Resettle)
	e.steps.wait(t, "settled", lost.ID)
	for _, id := range []string{lost.ID, landed.ID} {
		if p := e.payment(t, id); p == nil || p.State != coinop.StateSettled {
			t.Errorf("%s journaled %+v, want settled", id, p)
		}
	}
	if n := rail.settles.Load(); n != 1 {
		t.Errorf("Settle called %d times, want 1: a landed settlement is not sent again", n)
	}
}

// A payment whose upstream failed was never served: it is released without
// ever being owed (still sync in the journal), so it takes nothing of its
// payer's exposure and does not push the next one over the cap.
func TestAsyncExposureReleased(t *testing.T) {
	rail := newFakeRail("fake")
	gate := make(chan struct{})
	defer close(gate)
	rail.set(func(r *fakeRail) { r.gate = gate })
	e := newFakeEngine(t, paywall.Config{Routes: []paywall.Route{asyncRoute("/capped/", rail, 4, big.NewInt(4))}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/capped/fail" {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "goods")
		}))
	for _, c := range []struct {
		name, path, nonce string
		status            int
		mode              string
		state             coinop.State
	}{
		{"upstream fails", "/capped/fail", "f1", 500, coinop.ModeSync, coinop.StateReleased},
		{"next one still async", "/capped/x", "f2", 200, coinop.ModeAsync, coinop.StateSettling},
		{"cap reached: sync", "/capped/x", "f3", 200, coinop.ModeSync, coinop.StateSettled},
	} {
		t.Run(c.name, func(t *testing.T) {
			if a := e.do(t, "GET", c.path, pay(fakeCred("fake", "alice", c.nonce))); a.status != c.status {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			if p := e.payment(t, "fake:alice:"+c.nonce); p == nil || p.Mode != c.mode || p.State != c.state {
				t.Fatalf("journaled %+v, want %s %s", p, c.mode, c.state)
			}
		})
	}
}

// Two engines on one journal (two handles on one file, as two instances
// share a PostgreSQL journal) keep one cap per payer between them: of
// concurrent payments from one payer split across both, exactly the cap's
// worth is served before it settles; every other one is settled first.
func TestAsyncExposureAcrossEngines(t *testing.T) {
	const n, capN = 24, 3
	path := filepath.Join(t.TempDir(), "journal.db")
	gate := make(chan struct{})
	var engines [2]*fakeEngine
	for i := range engines {
		rail := newFakeRail("fake")
		rail.set(func(r *fakeRail) { r.gate = gate }) // background settlements wait: exposure stays owed
		engines[i] = newFakeEngine(t, paywall.Config{Journal: openJournal(t, path),
			Routes: []paywall.Route{asyncRoute("/capped/", rail, 4, big.NewInt(4*capN))}}, &goods{})
	}
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses <- engines[i%2].do(t, "GET", "/capped/x", pay(fakeCred("fake", "alice", fmt.Sprint("c", i)))).status
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("status %d, want every payment served", s)
		}
	}
	var async []string
	for i := range n {
		id := fmt.Sprint("fake:alice:c", i)
		engines[i%2].steps.wait(t, "served", id)
		p := engines[0].payment(t, id)
		switch {
		case p == nil:
			t.Fatalf("%s not journaled", id)
		case p.Mode == coinop.ModeAsync && p.State == coinop.StateSettling:
			async = append(async, id)
		case p.Mode != coinop.ModeSync || p.State != coinop.StateSettled:
			t.Errorf("%s journaled %s %s, want async settling or sync settled", id, p.Mode, p.State)
		}
	}
	if len(async) != capN {
		t.Errorf("%d served before settling (%v), want exactly the cap's %d", len(async), async, capN)
	}
	close(gate)
	released = true
	for _, id := range async {
		var i int
		fmt.Sscanf(id, "fake:alice:c%d", &i)
		engines[i%2].steps.wait(t, "settled", id)
	}
}

// What a previous process left owed still counts after a restart: a new
// engine on the journal serves a payer's next payment before it settles
// only once the journal shows room under the cap.
func TestAsyncExposureSurvivesRestart(t *testing.T) {
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	first := owed(t, j, "fake", "fake-net", "alice", "old1")
	owed(t, j, "fake", "fake-net", "alice", "old2")
	// The new process, before its recovery pass hands them back.
	rail := newFakeRail("fake")
	gate := make(chan struct{})
	defer close(gate)
	rail.set(func(r *fakeRail) { r.gate = gate }) // background settlements wait: exposure stays owed
	e := newFakeEngine(t, paywall.Config{Journal: j, Routes: []paywall.Route{asyncRoute("/capped/", rail, 4, big.NewInt(8))}}, &goods{})
	for _, c := range []struct {
		name, nonce string
		before      func()
		mode        string
	}{
		{"cap held by the previous process", "n1", func() {}, coinop.ModeSync},
		{"one of them settled", "n2", func() {
			if err := j.Transition(context.Background(), first.ID, coinop.StateSettling, coinop.StateSettled, "fake-ref:"+first.ID, "recovered"); err != nil {
				t.Fatal(err)
			}
		}, coinop.ModeAsync},
		{"cap full again", "n3", func() {}, coinop.ModeSync},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.before()
			if a := e.do(t, "GET", "/capped/x", pay(fakeCred("fake", "alice", c.nonce))); a.status != 200 {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			id := "fake:alice:" + c.nonce
			e.steps.wait(t, "served", id)
			if p := e.payment(t, id); p == nil || p.Mode != c.mode {
				t.Fatalf("journaled %+v, want %s", p, c.mode)
			}
		})
	}
}

// plainJournal is a journal that cannot keep the exposure cap: only
// paywall.Journal's methods.
type plainJournal struct{ paywall.Journal }

// A journal that cannot keep the cap fails closed: the engine says so at
// start, and an async route settles every payment before its response.
func TestAsyncExposureWithoutJournalSupport(t *testing.T) {
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	var logs strings.Builder
	var mu sync.Mutex
	rail := newFakeRail("fake")
	e := newFakeEngine(t, paywall.Config{Journal: plainJournal{j}, Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)),
		Routes: []paywall.Route{asyncRoute("/capped/", rail, 4, big.NewInt(100))}}, &goods{})
	e.j = j
	if a := e.do(t, "GET", "/capped/x", pay(fakeCred("fake", "alice", "p1"))); a.status != 200 {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	if p := e.payment(t, "fake:alice:p1"); p == nil || p.Mode != coinop.ModeSync || p.State != coinop.StateSettled {
		t.Errorf("journaled %+v, want sync settled", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "cannot keep the async exposure cap") || !strings.Contains(logs.String(), "route=/capped/") {
		t.Errorf("no warning at start:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
