//go:build unix

package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/x402"
)

// browserRun is what interop/browser.mjs saw in the page.
type browserRun struct {
	PageStatus int      `json:"pageStatus"`
	CSP        string   `json:"csp"`
	Price      string   `json:"price"`
	Commands   string   `json:"commands"`
	Offers     []string `json:"offers"`
	PayVisible bool     `json:"payVisible"`
	Overflow   bool     `json:"overflow"`
	Focused    string   `json:"focused"`
	State      string   `json:"state"`
	Status     string   `json:"status"`
	Paid       string   `json:"paid"`
	Receipt    string   `json:"receipt"`
	Tx         string   `json:"tx"`
	Signed     int      `json:"signed"`
	Asked      []string `json:"asked"`
	Foreign    []string `json:"foreign"`
	Errors     []string `json:"errors"`
}

// browserPay runs interop/browser.mjs in one scenario against url, with
// the dev payer's key as the wallet's, screenshots into out.
func browserPay(t *testing.T, d *dev, url, scenario, out string) browserRun {
	t.Helper()
	var run browserRun
	playwright(t, "browser.mjs", &run, "URL="+url, "RPC="+d.state.RPC, "OUT="+out, "SCENARIO="+scenario,
		"PAYER_KEY_FILE="+filepath.Join(d.data, "dev", "payer.key"))
	return run
}

// playwright runs a script of interop/ that drives Debian's Chromium with
// playwright-core, with env added to the environment (and CHROMIUM, the
// browser), bounded in time, and decodes the JSON line it prints last
// into result. It skips (fails under COINOP_CI=1) without node, Chromium or
// playwright-core.
func playwright(t *testing.T, script string, result any, env ...string) {
	t.Helper()
	node := tool(t, "node")
	bin := tool(t, "chromium", "/usr/bin/chromium")
	if _, err := os.Stat("../interop/node_modules/playwright-core/package.json"); err != nil {
		clitest.Missing(t, "playwright-core is not installed (scripts/deps/interop.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = "../interop"
	cmd.Env = append(append(os.Environ(), "CHROMIUM="+bin), env...)
	stdout, stderr, err := runGroup(cmd) // node and the browser it starts
	if err != nil {
		t.Fatalf("node %s: %v\n%s%s", script, err, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), result); err != nil {
		t.Fatalf("%s printed %q: %v\n%s", script, stdout, err, stderr)
	}
}

// TestBrowserPays pays a priced URL of `coinop dev` from its HTML 402 page
// in Chromium, with a wallet injected through EIP-6963 that signs with the
// dev payer's key, and goes through the ways it can fail. Money moves
// exactly once, by exactly the price, and only when the person paid.
func TestBrowserPays(t *testing.T) {
	d := startDev(t)
	url := d.gateway + "/weather"
	resp, _ := get(t, url, "")
	var pr x402.PaymentRequired
	if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil || len(pr.Accepts) == 0 {
		t.Fatalf("PAYMENT-REQUIRED: %+v %v", pr, err)
	}
	price, _ := new(big.Int).SetString(pr.Accepts[0].Amount, 10)
	out := t.ArtifactDir()
	t.Logf("screenshots in %s", out)

	for _, tc := range []struct {
		scenario string
		paid     bool
		signed   int
		says     string // in the status region
	}{
		{"pay", true, 1, "Paid 0.001 USDC"},
		{"reject", false, 0, "You rejected the signature request. Nothing was charged."},
		{"wrong-chain", false, 0, "Your wallet is on Ethereum; this payment is on Local dev chain (chain id 1337). You declined the switch."},
		{"poor", false, 0, "holds 0 USDC on Local dev chain, and this costs 0.001 USDC. Nothing was signed or charged."},
		{"no-wallet", false, 0, "No browser wallet was found"},
		{"forged", false, 1, "(" + x402.ReasonInvalidSignature + "). Nothing was charged."},
		{"no-js", false, 0, ""},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			payer := d.balance(t, d.state.Payer)
			var run browserRun
			gain := d.payeeGain(t, func() { run = browserPay(t, d, url, tc.scenario, out) })
			spent := new(big.Int).Sub(payer, d.balance(t, d.state.Payer))
			want := int64(0)
			if tc.paid {
				want = price.Int64()
			}
			if gain != want || spent.Int64() != want {
				t.Errorf("the payee gained %d and the payer spent %s; want %d", gain, spent, want)
			}
			if run.PageStatus != 402 || run.Price != "0.001 USDC" || !strings.Contains(run.Commands, "coinop curl "+url) {
				t.Errorf("the page (status %d) shows price %q, commands %q", run.PageStatus, run.Price, run.Commands)
			}
			if len(run.Offers) != 1 || run.Offers[0] != "0.001 USDC on Local dev chain" {
				t.Errorf("offers %q", run.Offers)
			}
			if len(run.Foreign) > 0 || len(run.Errors) > 0 {
				t.Errorf("the page reached %q; console errors %q", run.Foreign, run.Errors)
			}
			if run.Overflow {
				t.Error("the page is wider than the window")
			}
			if run.Signed != tc.signed {
				t.Errorf("the wallet signed %d times, want %d (asked %v)", run.Signed, tc.signed, run.Asked)
			}
			if tc.scenario == "no-js" {
				if run.PayVisible || run.State != "" {
					t.Errorf("with JavaScript off the page shows a Pay button (%v) or a state %q", run.PayVisible, run.State)
				}
				return
			}
			if !run.PayVisible {
				t.Error("no Pay button")
			}
			if !strings.Contains(run.Status, tc.says) || (run.State == "done") != tc.paid {
				t.Errorf("status %s %q, want %q", run.State, run.Status, tc.says)
			}
			if tc.scenario == "reject" && run.Focused != "pay-button" {
				t.Errorf("Tab reached %q, not the Pay button", run.Focused)
			}
			if !tc.paid {
				return
			}
			var weather struct{ City string }
			if err := json.Unmarshal([]byte(run.Paid), &weather); err != nil || weather.City == "" || !strings.Contains(run.Paid, "\n  ") {
				t.Errorf("paid content %q is not the upstream's JSON, pretty: %v", run.Paid, err)
			}
			if len(run.Tx) != 66 || !strings.Contains(run.Receipt, run.Tx) {
				t.Errorf("receipt %q, transaction %q", run.Receipt, run.Tx)
			}
			before, after := screenshot(t, filepath.Join(out, "page-before.png")), screenshot(t, filepath.Join(out, "page-after.png"))
			if bytes.Equal(before, after) {
				t.Error("the screenshots before and after paying are the same")
			}
		})
	}
}

// screenshot reads a PNG the browser wrote and returns its bytes.
func screenshot(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if s := img.Bounds().Size(); s.X < 800 || s.Y < 600 {
		t.Errorf("%s is %v", path, s)
	}
	return b
}
