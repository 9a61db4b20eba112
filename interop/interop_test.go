//go:build linux

package interop_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/anvil"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

// price is what every paid route here costs: 0.001 of a 6-decimal token.
const price = 1000

// scriptTimeout bounds one run of a paying script, and the start of a
// server script.
const scriptTimeout = 90 * time.Second

// anvilBinary is where `npm ci` puts anvil.
const anvilBinary = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

var (
	chainsMu sync.Mutex
	chains   = map[uint64]*anvil.Chain{} // one anvil per chain id, shared by the tests
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range chains {
		c.Close()
	}
	os.Exit(code)
}

// peers skips (or, under COINOP_CI=1, fails) unless node, the npm packages
// and anvil are installed.
func peers(t *testing.T) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("COINOP_CI") == "1" {
			t.Fatalf("%s; run scripts/deps/interop.sh", what)
		}
		t.Skipf("%s; run scripts/deps/interop.sh", what)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not installed")
	}
	for _, f := range []string{anvilBinary, "node_modules/@x402/express/package.json", "node_modules/x402-fetch/package.json"} {
		if _, err := os.Stat(f); err != nil {
			missing("the peer packages are not installed (" + f + ")")
		}
	}
}

// chain returns the shared anvil with the given chain id, starting it on
// first use.
func chain(t *testing.T, id uint64) *anvil.Chain {
	t.Helper()
	peers(t)
	chainsMu.Lock()
	defer chainsMu.Unlock()
	if c, ok := chains[id]; ok {
		return c
	}
	bin, _ := filepath.Abs(anvilBinary)
	c, err := anvil.Start(context.Background(), anvil.Config{Binary: bin, ChainID: id, PayerFunds: new(big.Int)})
	if err != nil {
		t.Fatal(err)
	}
	chains[id] = c
	return c
}

// world is one test's view of a chain: fresh accounts, so balances start
// known.
type world struct {
	t       *testing.T
	c       *anvil.Chain
	eth     *ethclient.Client
	evm     *evm.Chain
	network string
	payer   *ecdsa.PrivateKey
	payee   common.Address
	settler *ecdsa.PrivateKey
}

func newWorld(t *testing.T, chainID uint64) *world {
	t.Helper()
	c := chain(t, chainID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := rpc.DialContext(ctx, c.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	eth := ethclient.NewClient(rc)
	t.Cleanup(eth.Close)
	w := &world{t: t, c: c, eth: eth, network: fmt.Sprintf("eip155:%d", chainID)}
	w.payer, _ = crypto.GenerateKey()
	w.settler, _ = crypto.GenerateKey()
	payee, _ := crypto.GenerateKey()
	w.payee = crypto.PubkeyToAddress(payee.PublicKey)
	if err := anvil.SetBalance(ctx, rc, crypto.PubkeyToAddress(w.settler.PublicKey), big.NewInt(1e18)); err != nil {
		t.Fatal(err)
	}
	if err := devchain.Mint(ctx, eth, c.Owner, c.Token, w.payerAddr(), big.NewInt(10*price)); err != nil {
		t.Fatal(err)
	}
	if w.evm, err = evm.NewChain(evm.ChainConfig{ChainID: chainID, Backend: eth, SettlementKey: w.settler}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) payerAddr() common.Address { return crypto.PubkeyToAddress(w.payer.PublicKey) }

func hexKey(k *ecdsa.PrivateKey) string { return "0x" + hex.EncodeToString(crypto.FromECDSA(k)) }

func (w *world) balance(who common.Address) int64 {
	w.t.Helper()
	b, err := w.evm.BalanceOf(context.Background(), w.c.Token, who)
	if err != nil {
		w.t.Fatal(err)
	}
	return b.Int64()
}

// paid checks that exactly n payments moved: the payee holds n prices and
// the payer the rest of its 10.
func (w *world) paid(n int64) {
	w.t.Helper()
	if got := w.balance(w.payee); got != n*price {
		w.t.Errorf("payee holds %d, want %d", got, n*price)
	}
	if got := w.balance(w.payerAddr()); got != (10-n)*price {
		w.t.Errorf("payer holds %d, want %d", got, (10-n)*price)
	}
}

// gateway starts a coinop gateway selling GET /weather for price. With
// facilitatorURL it verifies and settles through that facilitator, else on
// the chain itself.
func (w *world) gateway(facilitatorURL string) string {
	w.t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"city":"Lisbon","sky":"clear"}`)
	}))
	w.t.Cleanup(upstream.Close)
	settle := "" // the chain itself
	if facilitatorURL != "" {
		settle = "facilitator: " + facilitatorURL
	}
	_, url := w.serveGateway(upstream.URL, settle, "", fmt.Sprintf(`routes:
  - match: GET /weather
    price: "%d"
`, price))
	return url
}

// serveGateway starts a coinop gateway on the world's chain and token in
// front of upstream and returns it with its URL. settle is how the network
// settles ("" for the chain itself, with the world's settler), data the
// gateway's data dir ("" for a fresh one), rest the configuration's rails
// and routes in YAML.
func (w *world) serveGateway(upstream, settle, data, rest string) (*gateway.Gateway, string) {
	w.t.Helper()
	if settle == "" {
		settle = fmt.Sprintf("rpc: %s\n    settlement_key_env: SETTLER", w.c.RPCURL)
	}
	if data == "" {
		data = w.t.TempDir()
	}
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
data_dir: %s
pay_to: "%s"
networks:
  - id: %s
    %s
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"
%s`, upstream, filepath.Join(data, "gateway.db"), data, w.payee.Hex(), w.network, settle,
		w.c.Token.Hex(), devchain.TokenName, devchain.TokenVersion, rest))
	if err != nil {
		w.t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Options{Getenv: func(k string) string {
		if k == "SETTLER" {
			return hexKey(w.settler)
		}
		return ""
	}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	w.t.Cleanup(srv.Close)
	return g, srv.URL
}

// facilitator runs `coinop facilitator` (in-process, as the binary would)
// on the chain, settling from the world's settler, and returns its URL and
// the path of its journal.
func (w *world) facilitator() (url, journal string) {
	w.t.Helper()
	dir := w.t.TempDir()
	journal = filepath.Join(dir, "facilitator.db")
	ctx, stop := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"facilitator", "--listen", "127.0.0.1:0",
			"--network", w.network + "=" + w.c.RPCURL, "--settlement-key-env", "SETTLER", "--store", journal},
			cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string {
				if k == "SETTLER" {
					return hexKey(w.settler)
				}
				return ""
			}})
	}()
	w.t.Cleanup(func() {
		stop()
		select {
		case code := <-done:
			if code != 0 {
				w.t.Errorf("coinop facilitator exited %d:\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			w.t.Error("coinop facilitator did not stop")
		}
	})
	for deadline := time.Now().Add(scriptTimeout); ; time.Sleep(20 * time.Millisecond) {
		if _, after, ok := strings.Cut(stdout.String(), "facilitator ready: "); ok {
			return strings.Fields(after)[0], journal
		}
		select {
		case code := <-done:
			w.t.Fatalf("coinop facilitator exited %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("coinop facilitator did not start:\n%s", stderr.String())
		}
	}
}

// node runs a paying script to completion and decodes its JSON line.
func (w *world) node(script string, env ...string) outcome {
	w.t.Helper()
	line := w.nodeRaw(script, env...)
	var o outcome
	if err := json.Unmarshal([]byte(line), &o); err != nil {
		w.t.Fatalf("node %s printed %q: %v", script, line, err)
	}
	return o
}

// nodeJSON runs a script to completion and decodes the last line it
// printed, JSON, into v.
func (w *world) nodeJSON(script string, v any, env ...string) {
	w.t.Helper()
	line := w.nodeRaw(script, env...)
	if err := json.Unmarshal([]byte(line), v); err != nil {
		w.t.Fatalf("node %s printed %q: %v", script, line, err)
	}
}

// nodeRaw runs a script to completion and returns its last line.
func (w *world) nodeRaw(script string, env ...string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("node %s: %v\n%s%s", script, err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// outcome is what a paying script printed.
type outcome struct {
	Status     int                  `json:"status"`
	Body       string               `json:"body"`
	Settlement *x402.SettleResponse `json:"settlement"`
}

// server starts a server script and returns the URL it prints. The script
// exits when its standard input closes, at the latest when this process
// does.
func (w *world) server(script string, env ...string) string {
	w.t.Helper()
	cmd := exec.Command("node", script)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	w.t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if w.t.Failed() {
			w.t.Logf("%s stderr:\n%s", script, stderr)
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- u
			}
		}
	}()
	select {
	case u := <-ready:
		return u
	case <-exited:
		w.t.Fatalf("%s exited: %s", script, stderr)
	case <-time.After(scriptTimeout):
		w.t.Fatalf("%s did not start: %s", script, stderr)
	}
	return ""
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// goClient is coinop's paying http.Client for the world's payer. Each paid
// request's header goes to onPayment, if set.
func (w *world) goClient(onPayment func(client.Payment)) *http.Client {
	w.t.Helper()
	key, err := eip3009.NewKey(crypto.FromECDSA(w.payer))
	if err != nil {
		w.t.Fatal(err)
	}
	return &http.Client{Timeout: scriptTimeout, Transport: &client.Transport{
		Key: key, Policy: client.Policy{MaxAmount: big.NewInt(price)}, OnPayment: onPayment,
	}}
}

func get(t *testing.T, hc *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func settled(t *testing.T, resp *http.Response, name string) x402.SettleResponse {
	t.Helper()
	var sr x402.SettleResponse
	if err := x402.DecodeHeader(resp.Header.Get(name), &sr); err != nil || !sr.Success || sr.Transaction == "" {
		t.Errorf("%s: %+v %v", name, sr, err)
	}
	return sr
}

// TestOfficialClientPaysCoinopGateway: @x402/fetch pays a coinop gateway
// route, which verifies and settles on the chain itself.
func TestOfficialClientPaysCoinopGateway(t *testing.T) {
	w := newWorld(t, anvil.DefaultChainID)
	url := w.gateway("")
	o := w.node("pay.mjs", "URL="+url+"/weather", "PAYER_KEY="+hexKey(w.payer), "NETWORK="+w.network,
		"TOKEN="+w.c.Token.Hex(), fmt.Sprint("MAX_AMOUNT=", price))
	if o.Status != 200 || !strings.Contains(o.Body, "Lisbon") || o.Settlement == nil || !o.Settlement.Success {
		t.Fatalf("%+v", o)
	}
	w.paid(1)
}

// TestCoinopPaysOfficialServer: coinop's Go client and `coinop curl` pay an
// @x402/express server that verifies and settles with the official
// facilitator code (@x402/core/facilitator, @x402/evm, viem).
func TestCoinopPaysOfficialServer(t *testing.T) {
	w := newWorld(t, anvil.DefaultChainID)
	url := w.server("server.mjs", "RPC="+w.c.RPCURL, fmt.Sprint("CHAIN_ID=", w.c.ChainID), "TOKEN="+w.c.Token.Hex(),
		"PAY_TO="+w.payee.Hex(), fmt.Sprint("PRICE=", price), "FACILITATOR_KEY="+hexKey(w.settler)) + "/weather"

	resp, body := get(t, w.goClient(nil), url)
	if resp.StatusCode != 200 || !strings.Contains(body, "Lisbon") {
		t.Fatalf("Go client: %d %s", resp.StatusCode, body)
	}
	settled(t, resp, x402.HeaderPaymentResponse)
	w.paid(1)

	wallet := filepath.Join(t.TempDir(), "payer.key")
	if err := os.WriteFile(wallet, []byte(hexKey(w.payer)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	code := cli.Main(context.Background(), []string{"curl", url, "--wallet", wallet, "--max-amount", "0.001"},
		cli.Env{Stdout: &stdout, Stderr: &stderr})
	if code != 0 || !strings.Contains(stdout.String(), "Lisbon") {
		t.Fatalf("coinop curl: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "settled on "+w.network) {
		t.Errorf("coinop curl does not report the settlement:\n%s", stderr.String())
	}
	w.paid(2)
}

// TestOfficialServerUsesCoinopFacilitator: an @x402/express server verifies
// and settles through `coinop facilitator`; the official client and
// coinop's pay; a replayed payment is refused and moves nothing.
func TestOfficialServerUsesCoinopFacilitator(t *testing.T) {
	w := newWorld(t, anvil.DefaultChainID)
	furl, journal := w.facilitator()
	url := w.server("server.mjs", fmt.Sprint("CHAIN_ID=", w.c.ChainID), "TOKEN="+w.c.Token.Hex(),
		"PAY_TO="+w.payee.Hex(), fmt.Sprint("PRICE=", price), "FACILITATOR_URL="+furl) + "/weather"

	o := w.node("pay.mjs", "URL="+url, "PAYER_KEY="+hexKey(w.payer), "NETWORK="+w.network,
		"TOKEN="+w.c.Token.Hex(), fmt.Sprint("MAX_AMOUNT=", price))
	if o.Status != 200 || o.Settlement == nil || !o.Settlement.Success {
		t.Fatalf("official client: %+v", o)
	}
	w.paid(1)

	var header, value string
	resp, body := get(t, w.goClient(func(p client.Payment) { header, value = p.Header, p.Value }), url)
	if resp.StatusCode != 200 {
		t.Fatalf("Go client: %d %s", resp.StatusCode, body)
	}
	sr := settled(t, resp, x402.HeaderPaymentResponse)
	w.paid(2)

	resp, body = get(t, http.DefaultClient, url, header, value)
	if resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("a replayed payment: %d %s, want 402", resp.StatusCode, body)
	}
	var pr x402.PaymentRequired
	if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil || pr.Error != x402.ReasonNonceUsed {
		t.Errorf("the replay's PAYMENT-REQUIRED: %+v %v, want error %s", pr, err, x402.ReasonNonceUsed)
	}
	w.paid(2)

	j, err := sqlite.Open(journal)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	list, err := j.List(context.Background(), coinop.StateSettled, 0)
	if err != nil || len(list) != 2 || (list[0].Reference != sr.Transaction && list[1].Reference != sr.Transaction) {
		t.Errorf("facilitator journal: %v %+v", err, list)
	}
}

// TestOfficialServerConcurrentDuplicates sends one payment three times at
// once to an @x402/express server backed by coinop's facilitator: the
// server verifies all three, but the facilitator settles the authorization
// once, so exactly one request is served and one transfer made.
func TestOfficialServerConcurrentDuplicates(t *testing.T) {
	w := newWorld(t, anvil.DefaultChainID)
	furl, _ := w.facilitator()
	url := w.server("server.mjs", fmt.Sprint("CHAIN_ID=", w.c.ChainID), "TOKEN="+w.c.Token.Hex(),
		"PAY_TO="+w.payee.Hex(), fmt.Sprint("PRICE=", price), "FACILITATOR_URL="+furl) + "/weather"

	unpaid, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	unpaid.Body.Close()
	if unpaid.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("unpaid: %d", unpaid.StatusCode)
	}
	pay, err := w.goClient(nil).Transport.(*client.Transport).Pay(url, unpaid)
	if err != nil {
		t.Fatal(err)
	}
	statuses := make([]int, 3)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			resp, _ := get(t, http.DefaultClient, url, pay.Header, pay.Value)
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	served := 0
	for _, s := range statuses {
		if s == 200 {
			served++
		}
	}
	t.Logf("statuses: %v", statuses)
	if served != 1 {
		t.Errorf("statuses %v: %d served, want exactly 1", statuses, served)
	}
	w.paid(1)
}

// TestCoinopGatewayUsesOfficialFacilitator: a coinop gateway whose network
// is configured with `facilitator: URL` verifies and settles through the
// official facilitator code served over HTTP.
func TestCoinopGatewayUsesOfficialFacilitator(t *testing.T) {
	w := newWorld(t, anvil.DefaultChainID)
	furl := w.server("facilitator.mjs", "RPC="+w.c.RPCURL, fmt.Sprint("CHAIN_ID=", w.c.ChainID), "FACILITATOR_KEY="+hexKey(w.settler))
	url := w.gateway(furl) + "/weather"
	resp, body := get(t, w.goClient(nil), url)
	if resp.StatusCode != 200 || !strings.Contains(body, "Lisbon") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	settled(t, resp, x402.HeaderPaymentResponse)
	w.paid(1)
}

// TestLegacyClientPaysCoinopGateway: the v1 client x402-fetch pays a coinop
// gateway on a chain with a v1 name (84532, "base-sepolia"): the 402 body's
// accepts, X-PAYMENT, X-PAYMENT-RESPONSE.
func TestLegacyClientPaysCoinopGateway(t *testing.T) {
	w := newWorld(t, 84532)
	url := w.gateway("")
	o := w.node("pay-v1.mjs", "URL="+url+"/weather", "PAYER_KEY="+hexKey(w.payer), "RPC="+w.c.RPCURL, fmt.Sprint("MAX_AMOUNT=", price))
	if o.Status != 200 || !strings.Contains(o.Body, "Lisbon") || o.Settlement == nil || !o.Settlement.Success {
		t.Fatalf("%+v", o)
	}
	w.paid(1)
}
