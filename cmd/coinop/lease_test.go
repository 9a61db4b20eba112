package main_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/store/postgres"
)

// TestRestartingInstanceLeavesOthersPayments runs two gateways on one
// PostgreSQL journal. Instance A takes a stream of paid sync and async
// requests whose upstream holds them, reserved and not yet settled, while
// instance B restarts several times, each start running its recovery pass
// over the journal A is writing. B must leave every one of A's payments to
// A: each is served and settled exactly once, none is failed or released,
// and the audit is clean.
func TestRestartingInstanceLeavesOthersPayments(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a chain")
	}
	dsn := pgSchema(t)
	bin := buildCoinop(t)
	chain, err := devchain.Start(context.Background(), devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()

	// The upstream holds each request until released, so that A's
	// payments stay reserved across B's restarts.
	arrived := make(chan struct{}, 64)
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprintln(w, "ok")
	}))
	defer upstream.Close()
	payee, _ := crypto.GenerateKey()
	dir := t.TempDir()
	payTo := crypto.PubkeyToAddress(payee.PublicKey)
	async := "  - match: GET /async\n    price: \"1000\"\n    settlement: async\n"
	cfgA := writeConfig(t, dir, dsn, upstream.URL, chain, chain.Settler, payTo, async)
	cfgB := writeConfig(t, dir, dsn, upstream.URL, chain, chain.Owner, payTo, async)
	capAsync(t, 1000000, cfgA, cfgB)
	a := startGateway(t, bin, cfgA)

	payer, _ := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	const restarts, perRound = 3, 4
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	for round := range restarts {
		for i := range perRound {
			path := "/paid"
			if i%2 == 1 {
				path = "/async"
			}
			header := signFor(t, a.url+path, payer)
			wg.Go(func() {
				s := sendPaid(a.url+path, header)
				mu.Lock()
				statuses[s]++
				mu.Unlock()
			})
		}
		for range perRound {
			<-arrived // every payment of the round is reserved and upstream
		}
		b := startGateway(t, bin, cfgB)
		// B serves only after its startup recovery pass: a response
		// proves the pass is over.
		if resp, err := http.Get(b.url + "/paid"); err != nil {
			t.Fatalf("round %d: B: %v\n%s", round, err, b.stderr)
		} else {
			resp.Body.Close()
		}
		b.stop(t)
	}
	close(release)
	wg.Wait()
	if statuses[200] != restarts*perRound {
		t.Fatalf("statuses %v, want %d × 200\nA:\n%s", statuses, restarts*perRound, a.stderr)
	}
	a.stop(t) // waits for A's background settlements

	j, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	all, err := j.List(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.State != coinop.StateSettled {
			t.Errorf("payment %s is %s (%s), want settled", p.ID, p.State, p.Reason)
		}
	}
	if len(all) != restarts*perRound {
		t.Errorf("journal holds %d payments, want %d", len(all), restarts*perRound)
	}
	audit(t, bin, cfgA, restarts*perRound)
}
