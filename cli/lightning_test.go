package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/regtest"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/lightningcharge"
)

func TestMain(m *testing.M) { os.Exit(regtest.Main(m)) }

// serveConfig writes yaml to dir/coinop.yaml, loads it and serves its
// gateway on loopback until the test ends.
func serveConfig(t *testing.T, dir string, yaml []byte) (*gateway.Gateway, *httptest.Server, string) {
	t.Helper()
	cfgPath := filepath.Join(dir, "coinop.yaml")
	if err := os.WriteFile(cfgPath, yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(t.Context(), cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return g, srv, cfgPath
}

// TestL402Regtest: on a real Lightning network, `coinop curl` paying
// through alice's lnd buys from a gateway whose invoices are bob's.
func TestL402Regtest(t *testing.T) {
	net := regtest.Shared(t)
	ctx := t.Context()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "paid content for "+r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	yaml := fmt.Appendf(nil, `
upstream: %s
store: %s
rails:
  - name: bob
    kind: l402
    lnd: %s
    macaroon_file: %s
    tls_cert_file: %s
    network: regtest
  - name: bob-pass
    kind: l402
    lnd: %s
    macaroon_file: %s
    tls_cert_file: %s
    network: regtest
    pass: 1h
routes:
  - match: GET /weather
    accept:
      - rail: bob
        price: 150 sat
  - match: GET /day
    accept:
      - rail: bob-pass
        price: 2.5 sat
`, upstream.URL, filepath.Join(dir, "gateway.db"), net.Bob.RESTURL, net.Bob.InvoiceMacaroon, net.Bob.TLSCert,
		net.Bob.RESTURL, net.Bob.InvoiceMacaroon, net.Bob.TLSCert)
	g, srv, cfgPath := serveConfig(t, dir, yaml)

	data := t.TempDir()
	curl := func(t *testing.T, path string, extra ...string) (int, string, string) {
		t.Helper()
		args := append([]string{"curl", "--prefer", "l402", "--data-dir", data,
			"--lnd", net.Alice.RESTURL, "--lnd-macaroon", net.Alice.AdminMacaroon, "--lnd-tlscert", net.Alice.TLSCert}, extra...)
		var out, errOut bytes.Buffer
		code := cli.Main(ctx, append(args, srv.URL+path), cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
		return code, out.String(), errOut.String()
	}
	invoices := func(t *testing.T) int {
		t.Helper()
		var out struct {
			Invoices []json.RawMessage `json:"invoices"`
		}
		if err := net.Bob.Client.Call(ctx, http.MethodGet, "/v1/invoices?num_max_invoices=10000", nil, &out); err != nil {
			t.Fatal(err)
		}
		return len(out.Invoices)
	}
	settled := func(t *testing.T, rail string) []*coinop.Payment {
		t.Helper()
		ps, err := g.Store().List(ctx, coinop.StateSettled, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var out []*coinop.Payment
		for _, p := range ps {
			if p.Rail == rail {
				out = append(out, p)
			}
		}
		return out
	}

	t.Run("coinop check probes bob", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := cli.Main(ctx, []string{"check", "-c", cfgPath}, cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
		if code != 0 || strings.Count(out.String(), "answers (the macaroon may not read node info") != 2 {
			t.Errorf("exit %d:\n%s%s", code, out.String(), errOut.String())
		}
	})

	t.Run("pays, invoice settled for exactly the price", func(t *testing.T) {
		code, out, errOut := curl(t, "/weather")
		if code != 0 || out != "paid content for /weather" {
			t.Fatalf("exit %d, out %q, stderr:\n%s", code, out, errOut)
		}
		ps := settled(t, "bob")
		if len(ps) != 1 {
			t.Fatalf("%d settled payments, want 1", len(ps))
		}
		h, err := lightning.ParseHash(ps[0].Reference)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := net.Bob.Client.LookupInvoice(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if inv.State != lightning.InvoiceSettled || inv.PaidMsat != 150_000 || ps[0].Amount.Int64() != 150_000 {
			t.Errorf("bob's invoice %s for %d msat paid, journal %s; want SETTLED, 150000, 150000", inv.State, inv.PaidMsat, ps[0].Amount)
		}
	})

	t.Run("a pass is reused without a second invoice", func(t *testing.T) {
		if code, _, errOut := curl(t, "/day"); code != 0 {
			t.Fatalf("first: exit %d\n%s", code, errOut)
		}
		before := invoices(t)
		for i := 0; i < 3; i++ {
			code, out, errOut := curl(t, "/day")
			if code != 0 || out != "paid content for /day" {
				t.Fatalf("reuse %d: exit %d, %q\n%s", i, code, out, errOut)
			}
			if strings.Contains(errOut, "paying") {
				t.Errorf("reuse %d paid again:\n%s", i, errOut)
			}
		}
		if n := invoices(t) - before; n != 0 {
			t.Errorf("bob issued %d invoices while the pass was reused", n)
		}
		var total int64
		for _, p := range settled(t, "bob-pass") {
			total += p.Amount.Int64()
		}
		if total != 2500 {
			t.Errorf("the pass's uses journal %d msat, want its price, 2500, once", total)
		}
	})

	t.Run("the maximum is honoured", func(t *testing.T) {
		before := len(settled(t, "bob"))
		code, out, errOut := curl(t, "/weather", "--max-sats", "149")
		if strings.Contains(errOut, "* paying") || strings.Contains(out, "paid content") || len(settled(t, "bob")) != before {
			t.Errorf("paid 150 sat with --max-sats 149 (exit %d):\n%s", code, errOut)
		}
	})

	t.Run("unpaid or wrong preimage is refused with its reason", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/weather")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		chs := l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		if resp.StatusCode != 402 || len(chs) == 0 {
			t.Fatalf("%d, challenges %v", resp.StatusCode, chs)
		}
		for _, tt := range []struct {
			auth, reason string
		}{
			{"", coinop.ReasonPaymentRequired},
			{l402.FormatAuthorization([][]byte{chs[0].Token}, lightning.Preimage{1}), l402.ReasonPreimageMismatch},
		} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/weather", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p struct{ Reason string }
			json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if resp.StatusCode != 402 || p.Reason != tt.reason {
				t.Errorf("%d %s, want 402 %s", resp.StatusCode, p.Reason, tt.reason)
			}
		}
	})
}

// TestDevL402: `coinop dev` sells /forecast for sats through its
// development node, and `coinop curl --prefer l402` buys it with no lnd;
// the same 402 offers x402 too, which a plain `coinop curl` pays.
func TestDevL402(t *testing.T) {
	d := startDev(t)
	resp, err := http.Get(d.gateway + "/forecast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 402 || resp.Header.Get("PAYMENT-REQUIRED") == "" || len(l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))) != 2 {
		t.Fatalf("one 402 with both challenges: %d %v", resp.StatusCode, resp.Header)
	}
	code, out, errOut := d.run(t, "curl", "--prefer", "l402", "--data-dir", d.data, d.gateway+"/forecast")
	if code != 0 || !strings.Contains(out, `"days"`) || !strings.Contains(errOut, "20 sat (L402)") {
		t.Fatalf("curl --prefer l402: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = d.run(t, "curl", "--data-dir", d.data, d.gateway+"/forecast")
	if code != 0 || !strings.Contains(out, `"days"`) || !strings.Contains(errOut, "0.002 USDC") {
		t.Fatalf("curl (x402 first): exit %d\n%s\n%s", code, out, errOut)
	}
	// --max-amount in sats bounds Lightning: 20 sat is above it, so the
	// USDC offer of the same 402 is paid instead.
	code, out, errOut = d.run(t, "curl", "--prefer", "l402", "--max-amount", "10 sat", "--data-dir", d.data, d.gateway+"/forecast")
	if code != 0 || strings.Contains(errOut, "(L402)") || !strings.Contains(errOut, "0.002 USDC") {
		t.Fatalf("curl --max-amount '10 sat': exit %d\n%s\n%s", code, out, errOut)
	}
	// coinop sign pays the invoice and prints the Authorization value, for
	// a plain HTTP client to send.
	code, out, errOut = d.run(t, "sign", "--prefer", "l402", "--data", d.data, d.gateway+"/forecast")
	if code != 0 || !strings.HasPrefix(out, "L402 ") {
		t.Fatalf("sign --prefer l402: exit %d\n%s\n%s", code, out, errOut)
	}
	req, _ := http.NewRequest(http.MethodGet, d.gateway+"/forecast", nil)
	req.Header.Set("Authorization", strings.TrimSpace(out))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("plain client with the signed L402 header: %d", resp.StatusCode)
	}
	code, out, errOut = d.run(t, "balance", "--data", d.data)
	if code != 0 || !strings.Contains(out, "lightning  999960 sat spendable, 40 sat receivable") {
		t.Errorf("balance: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestDevMPPLightning: `coinop dev`'s /forecast 402 also carries a
// Payment challenge of method lightning on the development node, and
// `coinop curl --prefer mpp` pays it (Accept-Payment asks for that method
// alone), within --max-sats.
func TestDevMPPLightning(t *testing.T) {
	d := startDev(t)
	resp, err := http.Get(d.gateway + "/forecast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs, err := mpp.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	var methods []string
	for _, c := range cs {
		methods = append(methods, c.Method)
	}
	if resp.StatusCode != 402 || err != nil || strings.Join(methods, ",") != "evm,lightning" {
		t.Fatalf("402 %d: Payment methods %v (%v)", resp.StatusCode, methods, err)
	}
	o, err := lightningcharge.DecodeRequest(cs[1].Request)
	if err != nil || o.Amount != "20" || o.Network != "regtest" {
		t.Fatalf("lightning request %+v: %v", o, err)
	}
	accept := []string{"-H", "Accept-Payment: lightning/charge"}
	code, out, errOut := d.run(t, append([]string{"curl", "--prefer", "mpp", "--max-sats", "19", "--data-dir", d.data}, append(accept, d.gateway+"/forecast")...)...)
	// Above the limit the lightning challenge is not paid (the same 402's
	// USDC offer may be).
	if strings.Contains(errOut, "(lightning)") || !strings.Contains(errOut, "wallet") {
		t.Fatalf("--max-sats 19: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = d.run(t, append([]string{"curl", "-i", "--prefer", "mpp", "--data-dir", d.data}, append(accept, d.gateway+"/forecast")...)...)
	if code != 0 || !strings.Contains(out, `"days"`) || !strings.Contains(errOut, "through the Payment scheme (lightning)") {
		t.Fatalf("curl --prefer mpp: exit %d\n%s\n%s", code, out, errOut)
	}
	var receipt string
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Payment-Receipt") {
			receipt = strings.TrimSpace(v)
		}
	}
	rc, err := mpp.ParseReceipt(receipt)
	if err != nil || rc.Method != "lightning" || len(rc.Reference) != 64 {
		t.Errorf("receipt %q: %+v (%v)", receipt, rc, err)
	}
}

// TestMPPLightningRegtest: on a real Lightning network, `coinop curl` as
// alice pays a gateway whose invoices are bob's through the Payment
// scheme's lightning method: the invoice is SETTLED at bob for exactly the
// price, the receipt is of method lightning, the same credential again is
// refused, a wrong preimage gets 402 with its reason, and one credential
// sent 50 times at once is served once.
func TestMPPLightningRegtest(t *testing.T) {
	net := regtest.Shared(t)
	ctx := t.Context()
	var served atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "paid content for "+r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	yaml := fmt.Appendf(nil, `
upstream: %s
store: %s
rails:
  - name: bob-mpp
    kind: mpp
    method: lightning
    lnd: %s
    macaroon_file: %s
    tls_cert_file: %s
    network: regtest
routes:
  - match: GET /weather
    accept:
      - rail: bob-mpp
        price: 150 sat
`, upstream.URL, filepath.Join(dir, "gateway.db"), net.Bob.RESTURL, net.Bob.InvoiceMacaroon, net.Bob.TLSCert)
	g, srv, cfgPath := serveConfig(t, dir, yaml)
	url := srv.URL + "/weather"
	var out, errOut bytes.Buffer
	if code := cli.Main(ctx, []string{"check", "-c", cfgPath}, cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")}); code != 0 ||
		!strings.Contains(out.String(), "rail bob-mpp lnd "+net.Bob.RESTURL) {
		t.Errorf("coinop check: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	alice := []string{"--lnd", net.Alice.RESTURL, "--lnd-macaroon", net.Alice.AdminMacaroon, "--lnd-tlscert", net.Alice.TLSCert}

	// The credential coinop curl sends, printed by coinop sign.
	code := cli.Main(ctx, append(append([]string{"sign", "--prefer", "mpp", "--data", t.TempDir()}, alice...), url), cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
	cred := strings.TrimSpace(out.String())
	if code != 0 || !strings.HasPrefix(cred, "Payment ") {
		t.Fatalf("sign --prefer mpp: exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	send := func(t *testing.T, auth string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var p struct{ Reason string }
		json.Unmarshal(b, &p)
		return resp.StatusCode, resp.Header, p.Reason
	}

	t.Run("coinop curl pays, invoice settled for exactly the price", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := cli.Main(ctx, append(append([]string{"curl", "-i", "--prefer", "mpp", "--data-dir", t.TempDir()}, alice...), url), cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
		if code != 0 || !strings.Contains(out.String(), "paid content for /weather") || !strings.Contains(errOut.String(), "(lightning)") {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		var receipt string
		for _, l := range strings.Split(out.String(), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Payment-Receipt") {
				receipt = strings.TrimSpace(v)
			}
		}
		rc, err := mpp.ParseReceipt(receipt)
		if err != nil || rc.Method != "lightning" || rc.Status != "success" || rc.ChallengeID == "" {
			t.Fatalf("receipt %q: %+v (%v)", receipt, rc, err)
		}
		h, err := lightning.ParseHash(rc.Reference)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := net.Bob.Client.LookupInvoice(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := g.Store().List(ctx, coinop.StateSettled, 1000)
		if err != nil || len(ps) != 1 || ps[0].Rail != "bob-mpp" || ps[0].Reference != rc.Reference {
			t.Fatalf("settled %+v (%v), want one of bob-mpp, reference %s", ps, err, rc.Reference)
		}
		if inv.State != lightning.InvoiceSettled || inv.PaidMsat != 150_000 || ps[0].Amount.Int64() != 150_000 {
			t.Errorf("bob's invoice %s for %d msat paid, journal %s; want SETTLED, 150000, 150000", inv.State, inv.PaidMsat, ps[0].Amount)
		}
	})

	t.Run("one credential sent 50 times at once is served once", func(t *testing.T) {
		before := served.Load()
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if code, _, _ := send(t, cred); code == 200 {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || served.Load()-before != 1 {
			t.Errorf("%d answers 200, upstream served %d; want 1, 1", ok.Load(), served.Load()-before)
		}
	})

	t.Run("the same credential again is refused", func(t *testing.T) {
		code, h, reason := send(t, cred)
		if code != 402 || reason != coinop.ReasonReplayed || len(h.Values("WWW-Authenticate")) != 1 {
			t.Errorf("%d %s, %d challenges; want 402 %s with a fresh challenge", code, reason, len(h.Values("WWW-Authenticate")), coinop.ReasonReplayed)
		}
	})

	t.Run("a wrong preimage gets 402 with its reason", func(t *testing.T) {
		_, h, _ := send(t, "")
		cs, err := mpp.ParseChallenges(h.Values("WWW-Authenticate"))
		if err != nil || len(cs) != 1 {
			t.Fatalf("challenges %v (%v)", cs, err)
		}
		c, err := (&mpp.Credential{Challenge: cs[0], Payload: lightningcharge.EncodePayload(lightning.Preimage{1})}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if code, _, reason := send(t, c); code != 402 || reason != lightningcharge.ReasonPreimage {
			t.Errorf("%d %s, want 402 %s", code, reason, lightningcharge.ReasonPreimage)
		}
	})
}
