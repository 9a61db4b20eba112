package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/x402"
)

// writeCreditsConfig writes a gateway config selling a pack of 100 credits
// for 0.01 USDC; GET /api/ costs cost credits.
func writeCreditsConfig(t *testing.T, dir, name, store, upstream string, chain *devchain.Chain, settlerKey string, cost int) string {
	t.Helper()
	keyFile := filepath.Join(dir, name+".key")
	os.WriteFile(keyFile, []byte(settlerKey), 0o600)
	payee, _ := crypto.GenerateKey()
	cfg := filepath.Join(dir, name+".yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `listen: 127.0.0.1:0
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
rails:
  - name: usdc
    kind: x402
  - name: credits
    kind: credits
    plans:
      - name: pack
        credits: 100
        accept: [{rail: usdc, price: 0.01 USDC}]
routes:
  - match: GET /api/
    accept: [{rail: credits, price: "%d"}]
`, upstream, store, crypto.PubkeyToAddress(payee.PublicKey).Hex(), chain.ChainID, chain.RPCURL, keyFile,
		chain.Token.Hex(), devchain.TokenName, devchain.TokenVersion, cost), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// buyPack buys the pack at url with one x402 payment and returns its token.
func buyPack(t *testing.T, url string, payer *eip3009.Key) string {
	t.Helper()
	plan := url + "/.well-known/coinop/plans/pack"
	req, _ := http.NewRequest("GET", plan, nil)
	req.Header.Set(x402.HeaderPaymentSignature, signUpTo(t, plan, payer, 10000))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rc credits.Receipt
	if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil || resp.StatusCode != 200 || rc.Token == "" {
		t.Fatalf("buying the pack: %d %+v %v", resp.StatusCode, rc, err)
	}
	return rc.Token
}

// charge calls /api/x with token (and an idempotency key, when set): the
// status, the balance header, and the problem's reason.
func charge(url, token, key string) (status int, balance, reason string) {
	req, _ := http.NewRequest("GET", url+"/api/x", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", ""
	}
	defer resp.Body.Close()
	var p struct {
		Reason string `json:"reason"`
	}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &p)
	return resp.StatusCode, resp.Header.Get(credits.HeaderBalance), p.Reason
}

// creditsAudit runs `coinop audit` and checks its ledger line.
func creditsAudit(t *testing.T, bin, cfg string, settled int, ledger string) {
	t.Helper()
	out, err := exec.Command(bin, "audit", "-c", cfg).CombinedOutput()
	want := fmt.Sprintf("%d settled payments checked, %d payee transfers found, 0 discrepancies", settled, settled)
	if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), ledger) {
		t.Fatalf("audit: %v\n%s\nwant %q and %q", err, out, want, ledger)
	}
}

// A balance covering K requests, hit by 10·K concurrent requests split
// across two gateway processes on one PostgreSQL journal: exactly K served,
// the rest 402 with the plans; `coinop audit` finds the ledger and the
// journal in agreement.
func TestCreditsTwoInstancesOnePostgres(t *testing.T) {
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
	dir := t.TempDir()
	const k, cost = 10, 10 // 100 credits
	cfgA := writeCreditsConfig(t, dir, "a", dsn, upstream.URL, chain, hexKey(chain.Settler), cost)
	cfgB := writeCreditsConfig(t, dir, "b", dsn, upstream.URL, chain, hexKey(chain.Owner), cost)
	a, b := startGateway(t, bin, cfgA), startGateway(t, bin, cfgB)
	payer, _ := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	token := buyPack(t, a.url, payer)

	var served, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 10 * k {
		url := a.url
		if i%2 == 1 {
			url = b.url
		}
		wg.Go(func() {
			switch status, _, reason := charge(url, token, ""); {
			case status == 200:
				served.Add(1)
			case status == 402 && reason == credits.ReasonBalanceTooLow:
				refused.Add(1)
			default:
				t.Errorf("a charge got %d %q", status, reason)
			}
		})
	}
	wg.Wait()
	if served.Load() != k || refused.Load() != 9*k {
		t.Errorf("%d served, %d refused; want %d and %d", served.Load(), refused.Load(), k, 9*k)
	}
	a.stop(t)
	b.stop(t)
	// The pack's payee is a's: one transfer; the ledger drained by exactly K debits.
	creditsAudit(t, bin, cfgA, 1, fmt.Sprintf("purchased 100, debited 100, released 0, balances 0 (= purchased - debited + released: true), %d settled charges, %d debits", k, k))
}

// A SIGKILL at every step of a credits charge (reserved; debited with the
// journal's reference; settled; served) loses no credit and spends none
// twice: after a restart (whose recovery gives back a debit never
// answered), a buyer who retries with the same Idempotency-Key, and with a
// new one when the gateway says the old one was used up, is served exactly
// as many times as its balance was debited, and the audit is clean.
func TestCreditsCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a chain")
	}
	bin := buildCoinop(t)
	chain, err := devchain.Start(context.Background(), devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	payer, _ := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	defer upstream.Close()
	const cost, want = 7, 5 // five charges wanted
	for _, step := range []string{"reserved", "tx_recorded", "settled", "served"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeCreditsConfig(t, dir, "g", filepath.Join(dir, "journal.db"), upstream.URL, chain, hexKey(chain.Settler), cost)
			// The purchase passes each step once; the first charge dies at its own.
			g := startGateway(t, bin, cfg, "COINOP_CRASH_AT="+step+":2")
			token := buyPack(t, g.url, payer)
			served, keyN := 0, 0
			key := "charge-0"
			if status, _, _ := charge(g.url, token, key); status == 200 {
				served++
				keyN++
				key = "charge-" + strconv.Itoa(keyN)
			}
			select {
			case <-g.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the gateway did not crash at %s\n%s", step, g.stderr)
			}
			g = startGateway(t, bin, cfg)
			for attempts := 0; served < want; attempts++ {
				if attempts > 50 {
					t.Fatalf("charges never completed\n%s", g.stderr)
				}
				status, _, reason := charge(g.url, token, key)
				switch {
				case status == 200,
					// Served before the crash, the response flushed to a
					// connection that died with the process.
					status == 409 && reason == "idempotency_key_used":
					served++
				case status == 402 && reason == "payment_replayed":
					// The charge was given back and failed: a new key.
				case status == 409:
					time.Sleep(100 * time.Millisecond)
					continue
				default:
					t.Fatalf("a charge got %d %q", status, reason)
				}
				keyN++
				key = "charge-" + strconv.Itoa(keyN)
			}
			status, balance, _ := charge(g.url, token, "")
			if wantBal := strconv.Itoa(100 - cost*(served+1)); status != 200 || balance != wantBal {
				t.Errorf("after %d served charges and one more: %d balance %q, want %s", served, status, balance, wantBal)
			}
			g.stop(t)
			creditsAudit(t, bin, cfg, 1, fmt.Sprintf("balances %d (= purchased - debited + released: true), %d settled charges", 100-cost*(served+1), served+1))
		})
	}
}

// `coinop curl` of a credits route on a real gateway: the first call buys
// the pack (one on-chain transfer), the next 100 are served with no
// further transfer, the balance header falling by exactly the route's cost
// each time; `coinop credits` lists the holding and the token file is the
// owner's alone.
func TestCurlBuysAndSpendsCredits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a chain")
	}
	bin := buildCoinop(t)
	chain, err := devchain.Start(context.Background(), devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	defer upstream.Close()
	dir := t.TempDir()
	const cost = 1
	cfg := writeCreditsConfig(t, dir, "g", filepath.Join(dir, "journal.db"), upstream.URL, chain, hexKey(chain.Settler), cost)
	g := startGateway(t, bin, cfg)
	wallet := filepath.Join(dir, "payer.key")
	os.WriteFile(wallet, []byte(hexKey(chain.Payer)), 0o600)
	data := filepath.Join(dir, "buyer")
	curl := func() (string, string) {
		cmd := exec.Command(bin, "curl", "-i", "--wallet", wallet, "--data-dir", data, g.url+"/api/x")
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("coinop curl: %v\n%s", err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	out, errOut := curl()
	if !strings.Contains(out, "200 OK") || !strings.Contains(errOut, "paying credits plan pack (100 credits)") || !strings.Contains(out, credits.HeaderBalance+": 99") {
		t.Fatalf("first call:\n%s\n%s", out, errOut)
	}
	for i := range 99 {
		out, errOut := curl()
		if want := fmt.Sprintf("%s: %d", credits.HeaderBalance, 98-i); !strings.Contains(out, "200 OK") || !strings.Contains(out, want+"\r\n") || strings.Contains(errOut, "paying") {
			t.Fatalf("call %d: want %q and no payment:\n%s\n%s", i+2, want, out, errOut)
		}
	}
	// The balance is spent: the next call tops up (a second transfer).
	out, errOut = curl()
	if !strings.Contains(out, "200 OK") || !strings.Contains(errOut, "paying credits plan pack") || !strings.Contains(out, credits.HeaderBalance+": 99") {
		t.Fatalf("top-up call:\n%s\n%s", out, errOut)
	}
	list, err := exec.Command(bin, "credits", "--data-dir", data).CombinedOutput()
	if err != nil || !strings.Contains(string(list), g.url) || !strings.Contains(string(list), "balance 99") || strings.Contains(string(list), "cop_") && strings.Count(string(list), "cop_") != 1 {
		t.Errorf("coinop credits: %v\n%s", err, list)
	}
	if st, err := os.Stat(filepath.Join(data, "credits.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v %v, want mode 0600", st, err)
	}
	g.stop(t)
	// Two purchases (two transfers), 101 charges: 200 - 101 = 99 left.
	creditsAudit(t, bin, cfg, 2, "purchased 200, debited 101, released 0, balances 99")

	// The seller revokes the buyer's token; the next call is refused for
	// it, and the buyer's client drops it.
	b, _ := os.ReadFile(filepath.Join(data, "credits.json"))
	var held map[string]struct {
		Token string `json:"token"`
	}
	json.Unmarshal(b, &held)
	token := held[g.url].Token
	if out, err := exec.Command(bin, "credits", "revoke", token, "-c", cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "revoked") {
		t.Fatalf("credits revoke: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "credits", "revoke", "cop_"+strings.Repeat("A", 43), "-c", cfg).CombinedOutput(); err == nil {
		t.Errorf("revoking an unknown token succeeded:\n%s", out)
	}
	g = startGateway(t, bin, cfg)
	if status, _, reason := charge(g.url, token, ""); status != 402 || reason != credits.ReasonTokenRevoked {
		t.Errorf("a revoked token: %d %q", status, reason)
	}
}
