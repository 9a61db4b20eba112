//go:build unix

package examples_test

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/x402"
)

// authProxy is a proxy that asks coinop's forward-auth check about each
// request, started from an example file.
type authProxy struct {
	name  string
	start func(t *testing.T, vars map[string]string) (url, dir string)
}

var authProxies = []authProxy{
	{"nginx", func(t *testing.T, vars map[string]string) (string, string) {
		return startNginx(t, "nginx-auth-request.conf", vars)
	}},
	{"caddy", func(t *testing.T, vars map[string]string) (string, string) {
		return startCaddy(t, "Caddyfile", vars)
	}},
}

// startCaddy runs the Caddyfile template (relative to examples/) with vars
// and a free {{LISTEN}} address, its state in a fresh directory.
func startCaddy(t *testing.T, template string, vars map[string]string) (url, dir string) {
	t.Helper()
	bin := tool(t, "caddy", "/usr/bin/caddy")
	for try := 0; ; try++ {
		dir = sharedDir(t)
		addr := freeAddr(t)
		conf := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(conf, []byte(fill(t, template, with(vars, "LISTEN", addr))), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		err := startProcess(t, cmd, addr)
		if err == nil {
			return "http://" + addr, dir
		}
		if try == 2 {
			t.Fatalf("caddy: %v", err)
		}
	}
}

// service is the seller's service behind the proxy: a free page, the paid
// resource (with a secret unique to the run), and what it was sent.
type service struct {
	url    string
	secret string
	mu     sync.Mutex
	seen   []http.Header // the headers of each paid-resource request
	free   http.Header   // the headers of the last free-page request
	api    []http.Header // the headers of each /api/ request
}

func startService(t *testing.T) *service {
	t.Helper()
	s := &service{secret: "PAID-" + rand.Text()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			s.mu.Lock()
			s.free = r.Header.Clone()
			s.mu.Unlock()
			io.WriteString(w, "free page\n")
		case "/paid-resource":
			s.mu.Lock()
			s.seen = append(s.seen, r.Header.Clone())
			s.mu.Unlock()
			io.WriteString(w, s.secret+"\n")
		case "/api/data", "/api/fail":
			s.mu.Lock()
			s.api = append(s.api, r.Header.Clone())
			s.mu.Unlock()
			if r.URL.Path == "/api/fail" {
				http.Error(w, "the service failed", http.StatusBadGateway)
				return
			}
			io.WriteString(w, s.secret+"\n")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *service) paidHeaders() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.seen...)
}

// startAuth runs `coinop auth -c` with examples/coinop-auth.yaml on the dev
// chain (routes replaced when routes is not ""), and returns its host:port.
func startAuth(t *testing.T, d *dev, routes string) string {
	t.Helper()
	addr, _ := startAuthFile(t, d, routes)
	return addr
}

// startAuthFile is startAuth, also returning the config file it runs.
func startAuthFile(t *testing.T, d *dev, routes string) (addr, path string) {
	t.Helper()
	network, asset := d.cfg.Networks[0], d.cfg.Networks[0].Assets[0]
	data := t.TempDir()
	text := fill(t, "coinop-auth.yaml", map[string]string{
		"AUTH": "127.0.0.1:0", "DATA": data, "PAY_TO": d.cfg.PayTo,
		"NETWORK": network.ID, "RPC": network.RPC, "SETTLEMENT_KEY_FILE": network.SettlementKeyFile,
		"TOKEN": asset.Address, "EIP712_NAME": asset.EIP712Name, "EIP712_VERSION": asset.EIP712Version,
	})
	if routes != "" {
		i := strings.Index(text, "\nroutes:\n")
		text = text[:i] + "\nroutes:\n" + routes
	}
	path = filepath.Join(data, "coinop-auth.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	u := runMain(t, regexp.MustCompile(`coinop ready: forward-auth check of \S+ on (http://\S+)`), "auth", "-c", path)
	return strings.TrimPrefix(u, "http://"), path
}

// check asks coinop's check directly about GET target on host, the way a
// proxy would, with optional header pairs.
func check(t *testing.T, auth, target, host string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return get(t, "http://"+auth+"/check", "", append([]string{
		"X-Original-Method", "GET", "X-Original-URI", target, "X-Original-Host", host, "X-Forwarded-Proto", "http",
	}, header...)...)
}

// TestForwardAuth runs examples/nginx-auth-request.conf and examples/Caddyfile
// in front of a service, asking `coinop auth -c examples/coinop-auth.yaml`:
// the 402 reaches the client as coinop wrote it, a payment is settled before
// the service is called and its receipt reaches the client, the service
// learns who paid and never sees the payment, and a payment sent twice (one
// after the other, or at once) pays once.
func TestForwardAuth(t *testing.T) {
	d := startDev(t)
	svc := startService(t)
	auth := startAuth(t, d, "")
	for _, px := range authProxies {
		t.Run(px.name, func(t *testing.T) {
			front, dir := px.start(t, map[string]string{"UPSTREAM": strings.TrimPrefix(svc.url, "http://"), "AUTH": auth})
			t.Cleanup(func() {
				if t.Failed() {
					b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
					t.Logf("%s error log:\n%s", px.name, b)
				}
			})
			frontHost := strings.TrimPrefix(front, "http://")
			paid := front + "/paid-resource"

			// Free, and who paid cannot be forged past the proxy.
			resp, body := get(t, front+"/", "", "X-Coinop-Payer", "0xforged", "X-Coinop-Payment", "forged", x402.HeaderPaymentSignature, "sig")
			if resp.StatusCode != 200 || string(body) != "free page\n" {
				t.Fatalf("free page: %s %q", resp.Status, body)
			}
			svc.mu.Lock()
			free := svc.free
			svc.free = nil
			svc.mu.Unlock()
			// An override header would make a service (Symfony, IIS) act
			// on another path than the one checked: refused, not proxied.
			resp, body = get(t, front+"/", "", "X-Original-URL", "/paid-resource")
			svc.mu.Lock()
			reached := svc.free != nil
			svc.mu.Unlock()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"override_header_refused"`) || reached {
				t.Errorf("X-Original-URL through %s: %s (reached the service: %v)\n%s", px.name, resp.Status, reached, body)
			}
			for _, h := range []string{"X-Coinop-Payer", "X-Coinop-Payment", x402.HeaderPaymentSignature} {
				if free.Get(h) != "" {
					t.Errorf("the client's %s reached the service through %s", h, px.name)
				}
			}

			for _, accept := range []string{"application/json", "text/html,application/xhtml+xml,*/*;q=0.8"} {
				direct, directBody := check(t, auth, "/paid-resource", frontHost, "Accept", accept)
				proxied, proxiedBody := get(t, paid, "", "Accept", accept)
				if direct.StatusCode != http.StatusPaymentRequired || proxied.StatusCode != http.StatusPaymentRequired {
					t.Fatalf("Accept %s: the check %s, through %s %s\n%s", accept, direct.Status, px.name, proxied.Status, proxiedBody)
				}
				for _, h := range []string{x402.HeaderPaymentRequired, "Cache-Control", "Access-Control-Expose-Headers", "Content-Type"} {
					if direct.Header.Get(h) == "" {
						t.Fatalf("Accept %s: the check's 402 has no %s header", accept, h)
					}
				}
				for name, want := range direct.Header {
					if name == "Date" {
						continue
					}
					if got := proxied.Header.Values(name); strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Errorf("Accept %s: %s through %s is %q, coinop sent %q", accept, name, px.name, got, want)
					}
				}
				if proxied.Header.Get("X-Coinop-Refusal") != "" {
					t.Errorf("the kept refusal's ID reached the client")
				}
				if string(directBody) != string(proxiedBody) {
					t.Errorf("Accept %s: body through %s differs:\n%s\n--- coinop sent\n%s", accept, px.name, proxiedBody, directBody)
				}
			}
			resp, _ = get(t, paid, "")
			var pr x402.PaymentRequired
			if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil {
				t.Fatal(err)
			}
			if pr.Resource == nil || pr.Resource.URL != paid {
				t.Errorf("resource %+v, want URL %s", pr.Resource, paid)
			}
			// A client naming another request in the check's headers gets
			// itself refused, never another route's terms.
			// (nginx passes the client's X-Forwarded-Uri beside its own
			// X-Original-URI: a conflict; Caddy overwrites it.)
			for _, forged := range [][]string{{"X-Forwarded-Uri", "/", "X-Forwarded-Method", "GET"}, {"X-Original-URI", "/", "X-Original-Method", "GET"}} {
				resp, body = get(t, paid, "", forged...)
				if !(resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), `"auth_original_conflict"`) ||
					resp.StatusCode == http.StatusPaymentRequired && strings.Contains(string(body), `"resource": "`+paid+`"`)) {
					t.Errorf("forged %s: %s\n%s", forged[0], resp.Status, body)
				}
			}

			t.Run("coinop curl pays through it", func(t *testing.T) {
				before := len(svc.paidHeaders())
				d.curlPays(t, paid, svc.secret, 1000)
				seen := svc.paidHeaders()[before:]
				if len(seen) != 1 {
					t.Fatalf("the service got %d paid requests, want 1", len(seen))
				}
				if got := seen[0].Get("X-Coinop-Payer"); !strings.EqualFold(got, d.state.Payer) {
					t.Errorf("X-Coinop-Payer %q, want %s", got, d.state.Payer)
				}
				if seen[0].Get("X-Coinop-Payment") == "" {
					t.Errorf("no X-Coinop-Payment reached the service")
				}
				if seen[0].Get(x402.HeaderPaymentSignature) != "" {
					t.Errorf("the payment reached the service")
				}
			})

			t.Run("a payment sent again is refused", func(t *testing.T) { d.signedTwice(t, paid, 1000) })

			t.Run("concurrent duplicates pay once", func(t *testing.T) {
				code, sig, errOut := coinop(t, "sign", paid, "--data", d.data)
				if code != 0 {
					t.Fatalf("coinop sign exit %d: %s", code, errOut)
				}
				before := len(svc.paidHeaders())
				var ok, refused atomic.Int32
				gain := d.payeeGain(t, func() {
					var wg sync.WaitGroup
					for range 6 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							a := clitest.SendRaw(frontHost, "GET", "/paid-resource", x402.HeaderPaymentSignature+": "+strings.TrimSpace(sig))
							switch {
							case a.Status == 200 && strings.Contains(a.Body, svc.secret):
								ok.Add(1)
							case a.Status == 402 || a.Status == 409:
								refused.Add(1)
							default:
								t.Errorf("a duplicate: %d %v\n%s", a.Status, a.Err, a.Body)
							}
						}()
					}
					wg.Wait()
				})
				if gain != 1000 {
					t.Errorf("payee gained %d for one signature sent 6 times at once, want 1000", gain)
				}
				if ok.Load() < 1 {
					t.Errorf("no duplicate was served (%d refused)", refused.Load())
				}
				if served := len(svc.paidHeaders()) - before; served != int(ok.Load()) {
					t.Errorf("the service got %d requests, %d were answered 200", served, ok.Load())
				}
				t.Logf("6 duplicates: %d served, %d refused", ok.Load(), refused.Load())
			})
		})
	}

	t.Run("coinop down", func(t *testing.T) {
		for _, px := range authProxies {
			front, _ := px.start(t, map[string]string{"UPSTREAM": strings.TrimPrefix(svc.url, "http://"), "AUTH": freeAddr(t)})
			for _, path := range []string{"/", "/paid-resource"} {
				resp, body := get(t, front+path, "")
				if resp.StatusCode != http.StatusBadGateway || strings.Contains(string(body), svc.secret) || strings.Contains(string(body), "free page") {
					t.Errorf("%s %s with coinop down: %s\n%s", px.name, path, resp.Status, body)
				}
			}
		}
	})

	t.Run("a check that names no request", func(t *testing.T) {
		resp, body := get(t, "http://"+auth+"/check", "")
		var p struct{ Reason string }
		if err := json.Unmarshal(body, &p); resp.StatusCode != http.StatusBadRequest || err != nil || p.Reason != "auth_original_missing" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("%s %v\n%s", resp.Status, err, body)
		}
	})
}

// TestForwardAuthPathVariants sends the encoded-path corpus of the hardening
// suite (adversarial/testdata/paths.txt) through each proxy, which
// normalizes paths its own way before asking coinop about the URI as the
// client sent it. Unpaid, no answer may carry a file of the paid tree; the
// free file stays free.
func TestForwardAuthPathVariants(t *testing.T) {
	targets := clitest.Targets(t, "../adversarial/testdata/paths.txt")
	d := startDev(t)
	root := sharedDir(t)
	secret := "SECRET-" + rand.Text()
	for name, content := range map[string]string{
		"static/a.txt": "free file a\n", "files/secret.txt": secret + "\n", "files/public.txt": "public file in the paid tree\n",
		"FILES/decoy.txt": "case decoy\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(files.Close)
	auth := startAuth(t, d, "  - match: GET /static/\n    free: true\n  - match: /files/\n    accept:\n      - rail: usdc\n        price: \"0.001 USDC\"\n")
	for _, px := range authProxies {
		t.Run(px.name, func(t *testing.T) {
			front, _ := px.start(t, map[string]string{"UPSTREAM": strings.TrimPrefix(files.URL, "http://"), "AUTH": auth})
			addr := strings.TrimPrefix(front, "http://")
			if a := clitest.SendRaw(addr, "GET", "/static/a.txt"); a.Status != 200 || a.Body != "free file a\n" {
				t.Fatalf("free file: %d %q %v", a.Status, a.Body, a.Err)
			}
			if a := clitest.SendRaw(addr, "GET", "/files/secret.txt"); a.Status != http.StatusPaymentRequired {
				t.Fatalf("paid file: %d %q %v", a.Status, a.Body, a.Err)
			}
			counts := map[int]int{}
			for _, target := range targets {
				a := clitest.SendRaw(addr, "GET", target)
				counts[a.Status]++
				if strings.Contains(a.Body, secret) || strings.Contains(a.Body, "public file in the paid tree") {
					t.Errorf("GET %q through %s: %d with a paid file", target, px.name, a.Status)
				}
				for k, vs := range a.Header {
					if strings.Contains(strings.Join(vs, ","), secret) {
						t.Errorf("GET %q through %s: the paid file in header %s", target, px.name, k)
					}
				}
				if a.Status >= 500 && a.Status != http.StatusServiceUnavailable {
					t.Errorf("GET %q through %s: %d\n%s", target, px.name, a.Status, a.Body)
				}
			}
			t.Logf("%d targets; answers by status (0: connection closed): %v", len(targets), counts)
		})
	}
}
