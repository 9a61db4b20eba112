//go:build unix

package examples_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/x402"
)

// TestWebServerInFront runs examples/{nginx,apache}/front.conf in front of
// `coinop dev`: the 402 and its headers pass through unchanged, and a paid
// request through the web server pays exactly the price.
func TestWebServerInFront(t *testing.T) {
	d := startDev(t)
	upstream := strings.TrimPrefix(d.gateway, "http://")
	for _, ws := range webServers {
		t.Run(ws.name, func(t *testing.T) {
			front, _ := ws.start(t, filepath.Join(ws.name, "front.conf"), map[string]string{"UPSTREAM": upstream})
			frontHost := strings.TrimPrefix(front, "http://")
			via := front + "/weather"

			for _, accept := range []string{"application/json", "text/html,application/xhtml+xml,*/*;q=0.8"} {
				// coinop directly, asked for the same Host the web server passes on.
				direct, directBody := get(t, d.gateway+"/weather", frontHost, "Accept", accept)
				proxied, proxiedBody := get(t, via, "", "Accept", accept)
				if direct.StatusCode != http.StatusPaymentRequired || proxied.StatusCode != http.StatusPaymentRequired {
					t.Fatalf("Accept %s: direct %s, through %s %s", accept, direct.Status, ws.name, proxied.Status)
				}
				for _, h := range []string{x402.HeaderPaymentRequired, "Cache-Control", "Access-Control-Expose-Headers"} {
					if direct.Header.Get(h) == "" {
						t.Fatalf("Accept %s: coinop's 402 has no %s header", accept, h)
					}
				}
				for name, want := range direct.Header {
					if name == "Date" {
						continue
					}
					if got := proxied.Header.Values(name); strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Errorf("Accept %s: %s through %s is %q, coinop sent %q", accept, name, ws.name, got, want)
					}
				}
				if string(directBody) != string(proxiedBody) {
					t.Errorf("Accept %s: body through %s differs:\n%s\n--- coinop sent\n%s", accept, ws.name, proxiedBody, directBody)
				}
			}

			// The resource URL payers sign over is the web server's.
			resp, _ := get(t, via, "")
			var pr x402.PaymentRequired
			if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil {
				t.Fatal(err)
			}
			if pr.Resource == nil || pr.Resource.URL != via {
				t.Errorf("resource %+v, want URL %s", pr.Resource, via)
			}

			t.Run("coinop curl pays through it", func(t *testing.T) { d.curlPays(t, via, `"city"`, 1000) })
			t.Run("coinop sign and curl pay through it", func(t *testing.T) { d.signedTwice(t, via, 1000) })
		})
	}
}

// TestWebServerBehind runs `coinop serve` with examples/coinop-behind.yaml in
// front of examples/{nginx,apache}/behind.conf serving examples/www: free
// files pass, priced files are paid for exactly once, the web server learns
// who paid, and a missing file costs nothing.
func TestWebServerBehind(t *testing.T) {
	d := startDev(t)
	report, err := os.ReadFile("www/premium/report.txt")
	if err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile("www/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range webServers {
		t.Run(ws.name, func(t *testing.T) {
			root := sharedDir(t)
			copyTree(t, "www", root)
			upstream, dir := ws.start(t, filepath.Join(ws.name, "behind.conf"), map[string]string{"ROOT": root})

			network, asset := d.cfg.Networks[0], d.cfg.Networks[0].Assets[0]
			data := t.TempDir()
			cfgPath := filepath.Join(data, "coinop.yaml")
			text := fill(t, "coinop-behind.yaml", map[string]string{
				"LISTEN": "127.0.0.1:0", "UPSTREAM": upstream, "DATA": data, "PAY_TO": d.cfg.PayTo,
				"NETWORK": network.ID, "RPC": network.RPC, "SETTLEMENT_KEY_FILE": network.SettlementKeyFile,
				"TOKEN": asset.Address, "EIP712_NAME": asset.EIP712Name, "EIP712_VERSION": asset.EIP712Version,
			})
			if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			gw := serve(t, cfgPath)

			resp, body := get(t, gw+"/", "")
			if resp.StatusCode != 200 || string(body) != string(index) {
				t.Fatalf("free page: %s\n%s", resp.Status, body)
			}

			priced := gw + "/premium/report.txt"
			resp, body = get(t, priced, "")
			var pr x402.PaymentRequired
			if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); resp.StatusCode != 402 || err != nil {
				t.Fatalf("priced file: %s %v\n%s", resp.Status, err, body)
			}
			if len(pr.Accepts) != 1 || pr.Accepts[0].Amount != "2000" || !strings.EqualFold(pr.Accepts[0].PayTo, d.state.Payee) ||
				!strings.Contains(string(body), `"price": "0.002 USDC"`) {
				t.Fatalf("terms %+v\n%s", pr.Accepts, body)
			}

			var out, errOut string
			gain := d.payeeGain(t, func() {
				var code int
				code, out, errOut = coinop(t, "curl", priced, "--data-dir", d.data)
				if code != 0 {
					t.Fatalf("coinop curl exit %d\n%s\n%s", code, out, errOut)
				}
			})
			if out != string(report) {
				t.Fatalf("paid file:\n%s\nwant\n%s", out, report)
			}
			if gain != 2000 {
				t.Errorf("payee gained %d, want the price, 2000", gain)
			}
			logLine(t, filepath.Join(dir, "access.log"),
				regexp.MustCompile(`(?i)"GET /premium/report\.txt HTTP/1\.1" 200 \d+ payer=`+regexp.QuoteMeta(d.state.Payer)+` payment=\S+`))

			gain = d.payeeGain(t, func() {
				code, out, errOut := coinop(t, "curl", "-f", gw+"/premium/missing.txt", "--data-dir", d.data)
				if code != 22 || !strings.Contains(errOut, "404") {
					t.Fatalf("missing file: exit %d\n%s\n%s", code, out, errOut)
				}
			})
			if gain != 0 {
				t.Errorf("payee gained %d for a 404, want 0", gain)
			}
		})
	}
}

// logLine waits briefly for a line matching re in the log file at path: web
// servers write their access log after the response.
func logLine(t *testing.T, path string, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if re.Match(b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no line matching %s:\n%s", path, re, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
