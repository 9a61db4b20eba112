package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/store/storetest"
	"github.com/coinop/coinop/x402"
)

type devRun struct {
	data    string
	gateway string
	state   struct{ RPC, Token, Payer, Payee string }
	chain   *evm.Chain
	client  *ethclient.Client
}

// startDev runs `coinop dev` in-process on free loopback ports and waits for
// its ready line.
func startDev(t *testing.T) *devRun {
	t.Helper()
	d := &devRun{data: t.TempDir()}
	d.gateway = clitest.Start(t, regexp.MustCompile(`ready: gateway (http://\S+)`),
		"dev", "--listen", "127.0.0.1:0", "--rpc-listen", "127.0.0.1:0", "--data", d.data)
	b, err := os.ReadFile(filepath.Join(d.data, "dev", "chain.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d.state); err != nil {
		t.Fatal(err)
	}
	if d.client, err = ethclient.Dial(d.state.RPC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.client.Close)
	id, err := d.client.ChainID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.chain, err = evm.NewChain(evm.ChainConfig{ChainID: id.Uint64(), Backend: d.client}); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *devRun) balance(t *testing.T, who string) *big.Int {
	t.Helper()
	b, err := d.chain.BalanceOf(context.Background(), common.HexToAddress(d.state.Token), common.HexToAddress(who))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs one coinop command in-process.
func (d *devRun) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
	return code, out.String(), errOut.String()
}

func TestDevEndToEnd(t *testing.T) {
	d := startDev(t)
	url := d.gateway + "/weather"

	t.Run("free route", func(t *testing.T) {
		resp, err := http.Get(d.gateway + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("free route: %s", resp.Status)
		}
	})

	t.Run("402 states the terms", func(t *testing.T) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 402 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s %v", resp.Status, resp.Header)
		}
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "PAYMENT-REQUIRED") {
			t.Error("payment headers are not exposed to browser scripts")
		}
		var pr x402.PaymentRequired
		if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil {
			t.Fatal(err)
		}
		if pr.X402Version != 2 || len(pr.Accepts) != 1 || pr.Resource == nil || pr.Resource.URL != url {
			t.Fatalf("PAYMENT-REQUIRED: %+v", pr)
		}
		q := pr.Accepts[0]
		if q.Scheme != "exact" || !strings.HasPrefix(q.Network, "eip155:") || q.Amount != "1000" ||
			!strings.EqualFold(q.Asset, d.state.Token) || !strings.EqualFold(q.PayTo, d.state.Payee) ||
			q.MaxTimeoutSeconds <= 0 || q.Extra["name"] != "USD Coin" || q.Extra["version"] != "2" {
			t.Fatalf("accepts[0]: %+v", q)
		}
		var body struct {
			Status int
			Price  string
			Reason string
			Offers []struct{ Amount, PayTo, Network, Protocol string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		// One 402, two dialects: x402 and the Payment scheme's evm method.
		if body.Status != 402 || body.Price != "0.001 USDC" || len(body.Offers) != 2 ||
			body.Offers[0].Protocol != "x402" || body.Offers[1].Protocol != "mpp" ||
			body.Offers[0].Amount != "1000" || body.Offers[1].Amount != "1000" {
			t.Fatalf("body: %+v", body)
		}
		cs, err := mpp.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		if err != nil || len(cs) != 1 || cs[0].Method != "evm" || cs[0].Intent != "charge" {
			t.Fatalf("WWW-Authenticate %q: %+v (%v)", resp.Header.Values("WWW-Authenticate"), cs, err)
		}
	})

	t.Run("browsers get a page", func(t *testing.T) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 402 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(b), "0.001 USDC") || resp.Header.Get(x402.HeaderPaymentRequired) == "" {
			t.Fatalf("%s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), b)
		}
	})

	t.Run("coinop curl pays", func(t *testing.T) {
		payer0, payee0 := d.balance(t, d.state.Payer), d.balance(t, d.state.Payee)
		code, out, errOut := d.run(t, "curl", url, "-i", "--data-dir", d.data)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(out, "200 OK") || !strings.Contains(out, `"city"`) {
			t.Fatalf("output:\n%s", out)
		}
		if !strings.Contains(errOut, "dev payer key") {
			t.Errorf("curl does not say which wallet paid:\n%s", errOut)
		}
		m := regexp.MustCompile(`(?im)^Payment-Response: (\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no PAYMENT-RESPONSE in\n%s", out)
		}
		var sr x402.SettleResponse
		if err := x402.DecodeHeader(m[1], &sr); err != nil || !sr.Success || len(sr.Transaction) != 66 {
			t.Fatalf("PAYMENT-RESPONSE %+v %v", sr, err)
		}
		if got := new(big.Int).Sub(payer0, d.balance(t, d.state.Payer)); got.Int64() != 1000 {
			t.Errorf("payer balance fell by %s, want 1000", got)
		}
		if got := new(big.Int).Sub(d.balance(t, d.state.Payee), payee0); got.Int64() != 1000 {
			t.Errorf("payee balance rose by %s, want 1000", got)
		}
	})

	t.Run("coinop curl --prefer mpp pays through the Payment scheme", func(t *testing.T) {
		payer0, payee0 := d.balance(t, d.state.Payer), d.balance(t, d.state.Payee)
		code, out, errOut := d.run(t, "curl", url, "-i", "--prefer", "mpp", "--data-dir", d.data)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(out, "200 OK") || !strings.Contains(out, `"city"`) || strings.Contains(out, "Payment-Response:") {
			t.Fatalf("output:\n%s", out)
		}
		m := regexp.MustCompile(`(?im)^Payment-Receipt: (\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no Payment-Receipt in\n%s", out)
		}
		rc, err := mpp.ParseReceipt(m[1])
		if err != nil || rc.Method != "evm" || len(rc.Reference) != 66 {
			t.Fatalf("Payment-Receipt %+v %v", rc, err)
		}
		if !strings.Contains(errOut, "paid through the Payment scheme (method evm): "+rc.Reference) || !strings.Contains(errOut, "Payment scheme (evm)") {
			t.Errorf("curl does not show the receipt:\n%s", errOut)
		}
		if got := new(big.Int).Sub(payer0, d.balance(t, d.state.Payer)); got.Int64() != 1000 {
			t.Errorf("payer balance fell by %s, want 1000", got)
		}
		if got := new(big.Int).Sub(d.balance(t, d.state.Payee), payee0); got.Int64() != 1000 {
			t.Errorf("payee balance rose by %s, want 1000", got)
		}
	})

	t.Run("policy refuses an expensive route", func(t *testing.T) {
		code, _, errOut := d.run(t, "curl", d.gateway+"/report", "--max-amount", "0.005", "--data-dir", d.data)
		if code == 0 || !strings.Contains(errOut, "0.01 USDC exceeds --max-amount 0.005 USDC") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})

	t.Run("policy speaks whole tokens and reads no wallet", func(t *testing.T) {
		code, out, errOut := d.run(t, "curl", url, "--max-amount", "0.0001", "--data-dir", t.TempDir())
		if code != 1 || out != "" || !strings.Contains(errOut, "0.001 USDC exceeds --max-amount 0.0001 USDC") || strings.Contains(errOut, "wallet") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("a free URL needs no wallet", func(t *testing.T) {
		code, out, errOut := d.run(t, "curl", "-f", d.gateway+"/", "--data-dir", t.TempDir())
		if code != 0 || out == "" || strings.Contains(errOut, "wallet") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("a 402 with no wallet says how to get one", func(t *testing.T) {
		code, _, errOut := d.run(t, "curl", url, "--data-dir", t.TempDir())
		if code != 1 || !strings.Contains(errOut, "no wallet") {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
	})

	t.Run("plain curl with coinop sign", func(t *testing.T) {
		payee0 := d.balance(t, d.state.Payee)
		code, sig, errOut := d.run(t, "sign", url, "--data", d.data)
		if code != 0 {
			t.Fatalf("sign exit %d: %s", code, errOut)
		}
		header := "PAYMENT-SIGNATURE: " + strings.TrimSpace(sig)
		first := plainGet(t, url, header)
		if first != 200 {
			t.Fatalf("first paid request: %d", first)
		}
		if again := plainGet(t, url, header); again != 402 {
			t.Fatalf("same header again: %d, want 402", again)
		}
		if got := new(big.Int).Sub(d.balance(t, d.state.Payee), payee0); got.Int64() != 1000 {
			t.Fatalf("payee got %s for one signed payment used twice, want 1000", got)
		}
	})

	t.Run("plain curl with coinop sign --prefer mpp", func(t *testing.T) {
		payee0 := d.balance(t, d.state.Payee)
		code, cred, errOut := d.run(t, "sign", "--prefer", "mpp", url, "--data", d.data)
		if code != 0 || !strings.HasPrefix(cred, "Payment ") || !strings.Contains(errOut, "as the Authorization header") {
			t.Fatalf("sign exit %d: %s\n%s", code, cred, errOut)
		}
		header := "Authorization: " + strings.TrimSpace(cred)
		if first := plainGet(t, url, header); first != 200 {
			t.Fatalf("first paid request: %d", first)
		}
		if again := plainGet(t, url, header); again != 402 {
			t.Fatalf("same header again: %d, want 402", again)
		}
		if got := new(big.Int).Sub(d.balance(t, d.state.Payee), payee0); got.Int64() != 1000 {
			t.Fatalf("payee got %s for one credential used twice, want 1000", got)
		}
	})

	t.Run("audit is clean", func(t *testing.T) {
		code, out, errOut := d.run(t, "audit", "-c", filepath.Join(d.data, "dev", "coinop.yaml"))
		if code != 0 || !strings.Contains(out, "4 settled payments checked, 4 payee transfers found, 0 discrepancies") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("balance", func(t *testing.T) {
		code, out, errOut := d.run(t, "balance", "--data", d.data)
		if code != 0 || !strings.Contains(out, "dev payer") || !strings.Contains(out, "0.004 USDC") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("async route settles in the background", func(t *testing.T) {
		code, out, errOut := d.run(t, "curl", d.gateway+"/report", "--max-amount", "0.01", "--data-dir", d.data)
		if code != 0 || !strings.Contains(out, "Daily report") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			_, out, _ := d.run(t, "audit", "-c", filepath.Join(d.data, "dev", "coinop.yaml"))
			if strings.Contains(out, "5 settled payments checked, 5 payee transfers found, 0 discrepancies") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the async payment did not settle:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// TestAuditFindsUnaccountedTransfer pays the payee outside the gateway: the
// audit must flag the transfer and exit 1.
func TestAuditFindsUnaccountedTransfer(t *testing.T) {
	d := startDev(t)
	ctx := context.Background()
	keyBytes, err := os.ReadFile(filepath.Join(d.data, "dev", "payer.key"))
	if err != nil {
		t.Fatal(err)
	}
	payer, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(string(keyBytes)), "0x"))
	if err != nil {
		t.Fatal(err)
	}
	token, payee := common.HexToAddress(d.state.Token), common.HexToAddress(d.state.Payee)
	parsed, err := abi.JSON(strings.NewReader(`[{"type":"function","name":"transfer","inputs":[{"name":"to","type":"address"},{"name":"value","type":"uint256"}],"outputs":[{"name":"","type":"bool"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := parsed.Pack("transfer", payee, big.NewInt(5))
	id, _ := d.client.ChainID(ctx)
	nonce, _ := d.client.PendingNonceAt(ctx, crypto.PubkeyToAddress(payer.PublicKey))
	head, _ := d.client.HeaderByNumber(ctx, nil)
	tx, err := types.SignNewTx(payer, types.LatestSignerForChainID(id), &types.DynamicFeeTx{
		ChainID: id, Nonce: nonce, GasTipCap: big.NewInt(1e9), GasFeeCap: new(big.Int).Add(big.NewInt(1e9), new(big.Int).Mul(head.BaseFee, big.NewInt(2))),
		Gas: 200000, To: &token, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.client.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if rc, err := d.client.TransactionReceipt(ctx, tx.Hash()); err == nil && rc.Status == 1 {
			break
		}
		if i > 500 {
			t.Fatal("transfer not mined")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out, _ := d.run(t, "audit", "-c", filepath.Join(d.data, "dev", "coinop.yaml"))
	if code != 1 || !strings.Contains(out, "has no settled payment") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// TestAuditFindsServedUnpaid: a response served for a payment whose
// settlement then failed is money the seller gave away; the audit names the
// payment and exits 1.
func TestAuditFindsServedUnpaid(t *testing.T) {
	d := startDev(t)
	ctx := context.Background()
	j, err := sqlite.Open(filepath.Join(d.data, "dev", "coinop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	p := storetest.Payment(1)
	p.Network, p.Mode = d.chain.Network(), coinop.ModeAsync
	for _, step := range []func() error{
		func() error { return j.Reserve(ctx, p) },
		func() error { return j.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", "") },
		func() error { return j.MarkServed(ctx, p.ID) },
		func() error {
			return j.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateFailed, "", "authorization_expired_unsent")
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := d.run(t, "audit", "-c", filepath.Join(d.data, "dev", "coinop.yaml"))
	if code != 1 || !strings.Contains(out, "DISCREPANCY payment "+p.ID+" was served") || !strings.Contains(out, "authorization_expired_unsent") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// plainGet sends one GET with one extra header, with the real curl binary
// when the machine has it, and returns the status.
func plainGet(t *testing.T, url, header string) int {
	t.Helper()
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", header, url).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		var code int
		for _, c := range strings.TrimSpace(string(out)) {
			code = code*10 + int(c-'0')
		}
		return code
	}
	req, _ := http.NewRequest("GET", url, nil)
	k, v, _ := strings.Cut(header, ": ")
	req.Header.Set(k, v)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\nroutes:\n  - match: GET /x\n    pryce: 1 USDC\n"), 0o600)
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"serve", "-c", path}, cli.Env{Stdout: &out, Stderr: &errOut})
	if code == 0 || !strings.Contains(errOut.String(), "bad.yaml:5") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), []string{"nope"}, cli.Env{Stdout: &out, Stderr: &errOut}); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(errOut.String()))
	sc.Scan()
	if !strings.Contains(sc.Text(), "unknown command") {
		t.Fatalf("stderr: %s", errOut.String())
	}
}

// TestHelp: every command's --help and -h go to stdout with exit 0 and
// carry a description, the usage line with its arguments and an example;
// `coinop help` lists every command with its description.
func TestHelp(t *testing.T) {
	commands := []struct{ name, args string }{
		{"dev", ""}, {"serve", ""}, {"check", ""}, {"config", " upgrade"}, {"curl", " URL"}, {"sign", " URL"},
		{"balance", " [ADDRESS...]"}, {"audit", ""}, {"facilitator", ""}, {"version", ""}, {"help", " [COMMAND]"},
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli.Main(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
		return code, out.String(), errOut.String()
	}
	_, list, _ := run("help")
	for _, c := range commands {
		if !regexp.MustCompile(`(?m)^  ` + c.name + ` +\S.{10,}$`).MatchString(list) {
			t.Errorf("coinop help does not list %s with a description:\n%s", c.name, list)
		}
		for _, flag := range []string{"--help", "-h"} {
			if c.name == "help" {
				continue
			}
			t.Run(c.name+" "+flag, func(t *testing.T) {
				code, out, errOut := run(c.name, flag)
				if code != 0 || errOut != "" {
					t.Fatalf("exit %d, stderr %q", code, errOut)
				}
				for _, want := range []string{"coinop " + c.name + " — ", "Usage:\n  coinop " + c.name + " [options]" + c.args + "\n", "\nExample:\n  "} {
					if !strings.Contains(out, want) {
						t.Errorf("no %q in\n%s", want, out)
					}
				}
				if _, same, _ := run("help", c.name); same != out {
					t.Errorf("coinop help %s differs from coinop %s --help", c.name, c.name)
				}
			})
		}
	}
	if code, out, _ := run(); code != 2 || out != "" {
		t.Errorf("no arguments: exit %d, stdout %q; want the list on stderr and exit 2", code, out)
	}
	if code, _, errOut := run("curl", "--bogus", "http://127.0.0.1:1/"); code != 2 || !strings.Contains(errOut, "coinop curl --help") {
		t.Errorf("bad option: exit %d, stderr %q", code, errOut)
	}
}

// TestAuditFromAnotherDirectory: a coinop.yaml whose paths are relative
// to its own directory, audited from another directory with a relative
// -c, reads the gateway's journal, with its real payment, and finds the
// books clean. Resolved against the working directory, the audit would
// open an empty journal and report the payment's transfer as unaccounted.
func TestAuditFromAnotherDirectory(t *testing.T) {
	d := startDev(t)
	if code, out, errOut := d.run(t, "curl", "-f", d.gateway+"/weather", "--data-dir", d.data); code != 0 {
		t.Fatalf("paying: exit %d\n%s\n%s", code, out, errOut)
	}
	dir := filepath.Join(d.data, "dev")
	b, err := os.ReadFile(filepath.Join(dir, "coinop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, r := range []struct{ key, value string }{{"store", "coinop.db"}, {"data_dir", ".."}, {"settlement_key_file", "settler.key"}} {
		re := regexp.MustCompile(`(?m)^(\s*` + r.key + `:) "[^"]*"`)
		if !re.MatchString(text) {
			t.Fatalf("no %s in the dev config:\n%s", r.key, text)
		}
		text = re.ReplaceAllString(text, `$1 "`+r.value+`"`)
	}
	cfg := filepath.Join(dir, "relative.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	t.Chdir(elsewhere)
	rel, err := filepath.Rel(elsewhere, cfg)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := d.run(t, "audit", "-c", rel)
	if code != 0 || !strings.Contains(out, "1 settled payments checked, 1 payee transfers found, 0 discrepancies") {
		t.Fatalf("audit -c %s from %s: exit %d\n%s\n%s", rel, elsewhere, code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "coinop.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the audit made a journal in the working directory: %v", err)
	}
}

// `coinop config upgrade` prints the file in the accept form, or rewrites
// it in place with -w; the result loads and configures the same gateway.
func TestConfigUpgrade(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "config", "testdata", "minimal.txt"))
	if err != nil {
		t.Fatal(err)
	}
	input, _, _ := strings.Cut(string(src), "\n----------\n")
	path := filepath.Join(t.TempDir(), "coinop.yaml")
	if err := os.WriteFile(path, []byte(input+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	before, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := before.Canonical()

	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), []string{"config", "upgrade", "-c", path}, cli.Env{Stdout: &out, Stderr: &errOut}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "accept:") || strings.Contains(out.String(), "\n    price:") {
		t.Errorf("printed:\n%s", out.String())
	}
	if got, _ := os.ReadFile(path); string(got) != input+"\n" {
		t.Error("upgrade without -w changed the file")
	}

	out.Reset()
	if code := cli.Main(context.Background(), []string{"config", "upgrade", "-w", "-c", path}, cli.Env{Stdout: &out, Stderr: &errOut}); code != 0 {
		t.Fatalf("-w: exit %d: %s", code, errOut.String())
	}
	after, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := after.Canonical(); !bytes.Equal(got, want) {
		t.Errorf("the rewritten file configures another gateway:\n%s\nwant:\n%s", got, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("upstream: http://127.0.0.1:9\nroutes:\n  - match: GET /x\n    pryce: 1 USDC\n"), 0o600)
	errOut.Reset()
	if code := cli.Main(context.Background(), []string{"config", "upgrade", "-w", "-c", bad}, cli.Env{Stdout: &out, Stderr: &errOut}); code == 0 || !strings.Contains(errOut.String(), "bad.yaml:4") {
		t.Errorf("bad file: exit %d, stderr:\n%s", code, errOut.String())
	}
}
