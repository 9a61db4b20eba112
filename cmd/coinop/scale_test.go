package main_test

import (
	"github.com/coinop/coinop/store/postgres/pgtest"

	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/contracts"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/x402"
)

// writeConfig writes a one-route gateway config for chain and returns its path.
func writeConfig(t *testing.T, dir, store, upstream string, chain *devchain.Chain, settler *ecdsa.PrivateKey, payTo common.Address, moreRoutes ...string) string {
	t.Helper()
	keyFile := filepath.Join(dir, fmt.Sprintf("settler-%x.key", crypto.PubkeyToAddress(settler.PublicKey).Bytes()[:4]))
	os.WriteFile(keyFile, []byte(hexKey(settler)), 0o600)
	cfg := filepath.Join(dir, fmt.Sprintf("coinop-%x.yaml", crypto.PubkeyToAddress(settler.PublicKey).Bytes()[:4]))
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
upstream: %s
store: %q
pay_to: "%s"
networks:
  - id: eip155:%d
    rpc: %s
    settlement_key_file: %s
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: "%s"
        eip712_version: "%s"
routes:
  - match: GET /paid
    price: "1000"
%s`, upstream, store, payTo.Hex(), chain.ChainID, chain.RPCURL, keyFile, chain.Token.Hex(), devchain.TokenName, devchain.TokenVersion, strings.Join(moreRoutes, ""))), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// pgSchema creates a fresh schema on the test PostgreSQL and returns a DSN
// that selects it.
func pgSchema(t *testing.T) string {
	t.Helper()
	return pgtest.Schema(t, "coinop_cmd")
}

// sendPaid sends one GET with a payment header and returns the status (0 on
// a transport error).
func sendPaid(url, header string) int {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set(x402.HeaderPaymentSignature, header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signFor signs one payment for url's 402 with key.
func signFor(t *testing.T, url string, key *eip3009.Key) string {
	t.Helper()
	return signUpTo(t, url, key, 1000)
}

// signUpTo signs a payment for url's current offer, of at most max atomic
// units, with the Go client (which adds a payment identifier).
func signUpTo(t *testing.T, url string, key *eip3009.Key, max int64) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tr := &client.Transport{Key: key, Policy: client.Policy{MaxAmount: big.NewInt(max)}}
	p, err := tr.Pay(url, resp)
	if err != nil {
		t.Fatal(err)
	}
	return p.Value
}

func audit(t *testing.T, bin, cfg string, settled int) {
	t.Helper()
	out, err := exec.Command(bin, "audit", "-c", cfg).CombinedOutput()
	want := fmt.Sprintf("%d settled payments checked, %d payee transfers found, 0 discrepancies", settled, settled)
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("audit: %v\n%s\nwant %q", err, out, want)
	}
}

// TestTwoInstancesOnePostgres runs two gateway processes on one PostgreSQL
// journal (each with its own settlement key) and submits one payment 200
// times at once, split across them: one 200, one transfer.
func TestTwoInstancesOnePostgres(t *testing.T) {
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
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	defer upstream.Close()
	payee, _ := crypto.GenerateKey()
	dir := t.TempDir()
	payTo := crypto.PubkeyToAddress(payee.PublicKey)
	cfgA := writeConfig(t, dir, dsn, upstream.URL, chain, chain.Settler, payTo)
	cfgB := writeConfig(t, dir, dsn, upstream.URL, chain, chain.Owner, payTo)
	a, b := startGateway(t, bin, cfgA), startGateway(t, bin, cfgB)

	payer, _ := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	header := signFor(t, a.url+"/paid", payer)
	const n = 200
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := a.url
			if i%2 == 1 {
				target = b.url
			}
			statuses <- sendPaid(target+"/paid", header)
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[200] != 1 || counts[402]+counts[409] != n-1 {
		t.Fatalf("statuses %v: want one 200 and the rest 402/409\nA:\n%s\nB:\n%s", counts, a.stderr, b.stderr)
	}
	a.stop(t)
	b.stop(t)
	audit(t, bin, cfgA, 1)
}

// TestManyDistinctPayers settles 500 payments from 500 payers, inFlight at
// a time, through one settlement key: no nonce collisions, all settled,
// audit clean.
//
// One key's settlements are signed one after another, each journaled and
// broadcast under the key's lock; on a loaded 2-core machine running every
// package's tests, with this process's chain under the race detector, that
// took up to a quarter of a second per transaction. With all 500 sent at
// once, the last ones waited longer than a sync settlement may take (the
// paywall's SettleTimeout) and longer than their authorizations lived.
// inFlight bounds each payment's wait to inFlight transactions, and keeps
// that many settlements contending for the key's lock at every moment.
func TestManyDistinctPayers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a chain")
	}
	const n, inFlight = 500, 64
	bin := buildCoinop(t)
	ctx := context.Background()
	chain, err := devchain.Start(ctx, devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	cl, err := ethclient.Dial(chain.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	payers := make([]*eip3009.Key, n)
	for i := range payers {
		k, _ := crypto.GenerateKey()
		payers[i], _ = eip3009.NewKey(crypto.FromECDSA(k))
	}
	mintAll(t, cl, chain, payers, big.NewInt(1000))

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	defer upstream.Close()
	payee, _ := crypto.GenerateKey()
	dir := t.TempDir()
	// Every authorization is signed before the first is sent, so the last
	// one settled has waited for all the others: on a loaded machine that
	// took more than a minute, and the default max_timeout (60 s) let the
	// earliest-signed authorizations expire before their turn (refused
	// authorization_expiring, nothing sent). A real client signs when it
	// sends; the window here covers the test's own queue.
	cfg := writeConfig(t, dir, filepath.Join(dir, "journal.db"), upstream.URL, chain, chain.Settler, crypto.PubkeyToAddress(payee.PublicKey),
		"    max_timeout: 10m\n")
	g := startGateway(t, bin, cfg)
	headers := make([]string, n)
	for i, k := range payers {
		headers[i] = signFor(t, g.url+"/paid", k)
	}
	statuses := make(chan int, n)
	slots := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	for _, h := range headers {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			statuses <- sendPaid(g.url+"/paid", h)
			<-slots
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	g.stop(t)
	if counts[200] != n {
		t.Fatalf("statuses %v, want %d × 200\n%s", counts, n, g.stderr)
	}
	if strings.Contains(strings.ToLower(g.stderr.String()), "nonce") {
		t.Fatalf("nonce errors in the gateway log:\n%s", g.stderr)
	}
	audit(t, bin, cfg, n)
}

// mintAll mints amount tokens to every payer from the token owner, sending
// the transactions back to back with locally numbered nonces.
func mintAll(t *testing.T, cl *ethclient.Client, chain *devchain.Chain, payers []*eip3009.Key, amount *big.Int) {
	t.Helper()
	ctx := context.Background()
	parsed, err := abi.JSON(strings.NewReader(contracts.TokenABI))
	if err != nil {
		t.Fatal(err)
	}
	owner := crypto.PubkeyToAddress(chain.Owner.PublicKey)
	nonce, err := cl.PendingNonceAt(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	head, err := cl.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := new(big.Int).SetUint64(chain.ChainID)
	var last common.Hash
	for i, p := range payers {
		data, err := parsed.Pack("mint", common.Address(p.Address()), amount)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := types.SignNewTx(chain.Owner, types.LatestSignerForChainID(id), &types.DynamicFeeTx{
			ChainID: id, Nonce: nonce + uint64(i), GasTipCap: big.NewInt(2e9),
			GasFeeCap: new(big.Int).Add(big.NewInt(2e9), new(big.Int).Mul(head.BaseFee, big.NewInt(4))), Gas: 200000,
			To: &chain.Token, Data: data,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.SendTransaction(ctx, tx); err != nil {
			t.Fatalf("mint %d: %v", i, err)
		}
		last = tx.Hash()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if rc, err := cl.TransactionReceipt(ctx, last); err == nil {
			if rc.Status != 1 {
				t.Fatal("mint reverted")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("mints not mined")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
