package main_test

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/store/postgres"
)

// exposureWatch is a monitor the test installs in the journal's schema: at
// every move of a payment to settling async it records, serialized by a
// lock of its own and after every earlier move committed, what the payer
// then owes asynchronously, its own payment included. Exposure only grows
// at such a move, so the largest record bounds what the payer was ever
// owed at once; a gateway that decided its cap on a stale or per-instance
// count leaves a record above the cap.
const exposureWatch = `
CREATE TABLE exposure_seen (payer text NOT NULL, owed numeric NOT NULL);
CREATE FUNCTION exposure_watch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(4242);
	INSERT INTO exposure_seen SELECT NEW.payer, SUM(amount) FROM payments
		WHERE network = NEW.network AND asset = NEW.asset AND payer = NEW.payer
			AND state = 'settling' AND mode = 'async';
	RETURN NULL;
END $$;
CREATE TRIGGER exposure_watch AFTER UPDATE ON payments FOR EACH ROW
	WHEN (OLD.state = 'verified' AND NEW.state = 'settling' AND NEW.mode = 'async')
	EXECUTE FUNCTION exposure_watch();
`

// capAsync sets the async_exposure of the asset of each config written by
// writeConfig to amount atomic units: async routes need a cap.
func capAsync(t *testing.T, amount int64, cfgs ...string) {
	t.Helper()
	for _, cfg := range cfgs {
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		capped := strings.Replace(string(b), "        eip712_version:", fmt.Sprintf("        async_exposure: \"%d\"\n        eip712_version:", amount), 1)
		if err := os.WriteFile(cfg, []byte(capped), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAsyncExposureTwoInstances runs two gateway processes on one
// PostgreSQL journal with an async route capped at three payments per
// payer. One payer's twelve payments, split across both, are held by the
// upstream until all are reserved, then released at once, so that all
// twelve become owed together: the payer is never owed more than the cap
// (the journal's monitor says so), every request is served, the payments
// past the cap are settled before their responses, and all twelve are
// settled in the end with a clean audit.
func TestAsyncExposureTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a chain")
	}
	const n, price, capN = 12, 1000, 3
	dsn := pgSchema(t)
	bin := buildCoinop(t)
	chain, err := devchain.Start(context.Background(), devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/async" {
			arrived <- struct{}{}
			<-release
		}
		fmt.Fprintln(w, "ok")
	}))
	defer upstream.Close()
	payee, _ := crypto.GenerateKey()
	dir := t.TempDir()
	payTo := crypto.PubkeyToAddress(payee.PublicKey)
	async := fmt.Sprintf("  - match: GET /async\n    price: \"%d\"\n    settlement: async\n", price)
	cfgA := writeConfig(t, dir, dsn, upstream.URL, chain, chain.Settler, payTo, async)
	cfgB := writeConfig(t, dir, dsn, upstream.URL, chain, chain.Owner, payTo, async)
	capAsync(t, capN*price, cfgA, cfgB)
	a, b := startGateway(t, bin, cfgA), startGateway(t, bin, cfgB)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), exposureWatch); err != nil {
		t.Fatal(err)
	}

	payer, _ := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	headers := make([]string, n)
	for i := range headers {
		headers[i] = signFor(t, a.url+"/async", payer)
	}
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i, h := range headers {
		target := a.url
		if i%2 == 1 {
			target = b.url
		}
		wg.Go(func() { statuses <- sendPaid(target+"/async", h) })
	}
	for range n {
		<-arrived // every payment is reserved, its response held
	}
	close(release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("status %d, want all %d served\nA:\n%s\nB:\n%s", s, n, a.stderr, b.stderr)
		}
	}
	var records int
	var most string
	if err := conn.QueryRow(t.Context(), `SELECT count(*), COALESCE(MAX(owed), 0)::text FROM exposure_seen`).Scan(&records, &most); err != nil {
		t.Fatal(err)
	}
	if m, _ := new(big.Int).SetString(most, 10); records == 0 || m == nil || m.Cmp(big.NewInt(capN*price)) > 0 {
		t.Errorf("%d payments owed async, the payer owed up to %s at once; want some, never above the cap %d", records, most, capN*price)
	}
	a.stop(t) // waits for the background settlements
	b.stop(t)

	j, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	all, err := j.List(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int{}
	for _, p := range all {
		modes[p.Mode]++
		if p.State != coinop.StateSettled {
			t.Errorf("payment %s (%s) is %s (%s), want settled", p.ID, p.Mode, p.State, p.Reason)
		}
	}
	if len(all) != n || modes[coinop.ModeAsync] != records {
		t.Errorf("journal holds %d payments, modes %v; want %d, %d async", len(all), modes, n, records)
	}
	t.Logf("modes %v; the payer owed at most %s at once (cap %d)", modes, most, capN*price)
	audit(t, bin, cfgA, n)
}
