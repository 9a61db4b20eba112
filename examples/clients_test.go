//go:build unix

package examples_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/cli/clitest"
)

// raceEnabled is set by race_test.go when the tests run with -race, so the
// coinop binary for pay.sh is built with the same flags and reuses the
// test's build cache.
var raceEnabled bool

// buildCoinop builds cmd/coinop into a temporary directory.
func buildCoinop(t *testing.T) string {
	t.Helper()
	goBin := tool(t, "go", filepath.Join(os.Getenv("GOROOT"), "bin", "go"), "/usr/local/go/bin/go")
	bin := filepath.Join(t.TempDir(), "coinop")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, append(args, "github.com/coinop/coinop/cmd/coinop")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// script runs one example client with a time limit and returns its
// combined output.
func script(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// terms reads the "key: value" lines every example client prints.
func terms(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(k, " ") {
			if _, seen := m[k]; !seen {
				m[k] = v
			}
		}
	}
	return m
}

// checkTerms compares what a client printed with what the gateway asks.
func checkTerms(t *testing.T, out string, want map[string]string) {
	t.Helper()
	got := terms(out)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q\noutput:\n%s", k, got[k], v, out)
		}
	}
}

// TestClientScripts runs examples/pay.sh, pay.py and pay.php against
// `coinop dev`: each reads the 402 and prints the price and how to pay;
// pay.sh then pays with `coinop sign` and plain curl.
func TestClientScripts(t *testing.T) {
	d := startDev(t)
	url := d.gateway + "/weather"
	want := map[string]string{
		"price": "0.001 USDC", "scheme": "exact", "network": d.state.Network, "asset": d.state.Token,
		"payTo": d.state.Payee, "amount": "1000", "header": "PAYMENT-SIGNATURE",
		"to pay": `curl -H "PAYMENT-SIGNATURE: $(coinop sign ` + url + `)" ` + url,
	}

	t.Run("pay.sh", func(t *testing.T) {
		bash := tool(t, "bash")
		tool(t, "curl")
		tool(t, "base64")
		bin := buildCoinop(t)
		env := []string{"COINOP=" + bin, "COINOP_DATA=" + d.data}

		out, err := script(t, append(env, "PAY=0"), bash, "pay.sh", url)
		if err != nil {
			t.Fatalf("PAY=0 pay.sh: %v\n%s", err, out)
		}
		checkTerms(t, out, want)
		if strings.Contains(out, "paying with") {
			t.Errorf("PAY=0 paid:\n%s", out)
		}

		gain := d.payeeGain(t, func() {
			if out, err = script(t, env, bash, "pay.sh", url); err != nil {
				t.Fatalf("pay.sh: %v\n%s", err, out)
			}
		})
		checkTerms(t, out, want)
		checkTerms(t, out, map[string]string{"status": "200"})
		if !regexp.MustCompile(`(?m)^settled: `+d.state.Network+` transaction 0x[0-9a-f]{64}$`).MatchString(out) ||
			!strings.Contains(out, `"city":"Lisbon"`) {
			t.Errorf("no settlement or no weather:\n%s", out)
		}
		if gain != 1000 {
			t.Errorf("payee gained %d, want the price, 1000", gain)
		}

		out, err = script(t, env, bash, "pay.sh", d.gateway+"/")
		if err != nil || !strings.HasPrefix(out, "status: 200 (nothing to pay)") {
			t.Errorf("free page: %v\n%s", err, out)
		}
	})

	t.Run("pay.py", func(t *testing.T) {
		python := tool(t, "python3")
		out, err := script(t, nil, python, "pay.py", url)
		if err != nil {
			t.Fatalf("pay.py: %v\n%s", err, out)
		}
		checkTerms(t, out, want)
	})

	t.Run("pay.php", func(t *testing.T) {
		php := tool(t, "php")
		if err := exec.Command(php, "-r", `exit(function_exists("curl_init") ? 0 : 1);`).Run(); err != nil {
			clitest.Missing(t, "PHP's curl extension is not installed (Debian package php-curl)")
		}
		out, err := script(t, nil, php, "pay.php", url)
		if err != nil {
			t.Fatalf("pay.php: %v\n%s", err, out)
		}
		checkTerms(t, out, want)
	})
}

// TestClientScriptsReadV1 runs pay.py and pay.php against a server that
// speaks only x402 v1: no PAYMENT-REQUIRED header, the terms in the JSON
// body's "accepts", paid with an X-PAYMENT header.
func TestClientScriptsReadV1(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusPaymentRequired)
		w.Write([]byte(`{"x402Version":1,"error":"X-PAYMENT header is required","accepts":[{"scheme":"exact",` +
			`"network":"base-sepolia","maxAmountRequired":"2500","resource":"` + "http://" + r.Host + r.URL.Path + `",` +
			`"description":"v1 resource","mimeType":"application/json","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C",` +
			`"maxTimeoutSeconds":60,"asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","extra":{"name":"USDC","version":"2"}}]}`))
	}))
	defer srv.Close()
	url := srv.URL + "/v1"
	want := map[string]string{
		"price": "2500 atomic units of 0x036CbD53842c5426634e7929541eC2318f3dCF7e", "scheme": "exact",
		"network": "base-sepolia", "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
		"payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "amount": "2500", "header": "X-PAYMENT",
	}
	t.Run("pay.py", func(t *testing.T) {
		out, err := script(t, nil, tool(t, "python3"), "pay.py", url)
		if err != nil {
			t.Fatalf("pay.py: %v\n%s", err, out)
		}
		checkTerms(t, out, want)
	})
	t.Run("pay.php", func(t *testing.T) {
		out, err := script(t, nil, tool(t, "php"), "pay.php", url)
		if err != nil {
			t.Fatalf("pay.php: %v\n%s", err, out)
		}
		checkTerms(t, out, want)
	})
}
