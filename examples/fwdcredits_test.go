//go:build unix

package examples_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/credits"
)

// balanceLine is the balance header in `coinop curl -i` output.
var balanceLine = regexp.MustCompile(`(?im)^Coinop-Credits-Balance: (\d+)\r?$`)

// emptyCoinopHeader is a Coinop-* header line without a value, or with a
// placeholder for one: a proxy copying a header the check did not send.
var emptyCoinopHeader = regexp.MustCompile(`(?im)^(Coinop-[A-Za-z-]+|Payment-Response):[ \t]*(\{.*)?\r?$`)

// curlCredits runs `coinop curl -i url` and returns its output (stdout,
// then what it said on stderr) and the balance header it shows (-1 when
// none).
func (d *dev) curlCredits(t *testing.T, url string) (out string, balance int64) {
	t.Helper()
	code, out, errOut := coinop(t, "curl", "-i", url, "--data-dir", d.data)
	if code != 0 && !strings.Contains(out, " 502 ") {
		t.Fatalf("coinop curl %s exit %d\n%s\n%s", url, code, out, errOut)
	}
	if e := emptyCoinopHeader.FindString(out); e != "" {
		t.Errorf("an empty header reached the client: %q\n%s", e, out)
	}
	m := balanceLine.FindAllStringSubmatch(out, -1)
	out += "\n" + errOut
	if len(m) != 1 {
		return out, -1
	}
	n, err := strconv.ParseInt(m[0][1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return out, n
}

// TestForwardAuthCredits runs the credits route of examples/coinop-auth.yaml
// through examples/nginx-auth-request.conf and examples/Caddyfile: `coinop
// curl` buys the pack once (one transfer) at the check's listener, through
// the proxy, and the next calls are served with no transfer, the balance
// header reaching the client through the proxy and falling by the route's
// cost each time; a failure of the service reported to POST /report gives
// the debit back once (the audit counts the release); a revoked token gets
// the 402 with the top-up offer through the proxy.
func TestForwardAuthCredits(t *testing.T) {
	d := startDev(t)
	svc := startService(t)
	auth, conf := startAuthFile(t, d, "")
	store := &client.CreditStore{Path: filepath.Join(d.data, "credits.json")}
	const cost, pack, price = 3, 1000, 50000
	balance := int64(0) // the wallet's one account, across the proxies
	released := 0
	for _, px := range authProxies {
		t.Run(px.name, func(t *testing.T) {
			front, _ := px.start(t, map[string]string{"UPSTREAM": strings.TrimPrefix(svc.url, "http://"), "AUTH": auth})
			api := front + "/api/data"

			// The first call buys the pack: one transfer of its price.
			var out string
			var got int64
			if gain := d.payeeGain(t, func() { out, got = d.curlCredits(t, api) }); gain != price {
				t.Errorf("the purchase moved %d to the payee, want %d\n%s", gain, price, out)
			}
			balance += pack - cost
			if !strings.Contains(out, " 200 OK") || !strings.Contains(out, svc.secret) || got != balance {
				t.Fatalf("first call through %s: balance %d, want %d\n%s", px.name, got, balance, out)
			}
			h, ok := store.Get(front)
			if !ok || !strings.HasPrefix(h.Token, "cop_") || h.Plan != "pack" {
				t.Fatalf("the buyer holds %+v at %s", h, front)
			}

			// The next calls: no transfer, the balance falls by the cost.
			before := len(svc.apiHeaders())
			gain := d.payeeGain(t, func() {
				for i := range 10 {
					out, got := d.curlCredits(t, api)
					balance -= cost
					if !strings.Contains(out, " 200 OK") || !strings.Contains(out, svc.secret) || got != balance {
						t.Fatalf("call %d through %s: balance %d, want %d\n%s", i+2, px.name, got, balance, out)
					}
				}
			})
			if gain != 0 {
				t.Errorf("10 credits calls moved %d to the payee, want no transfer", gain)
			}
			seen := svc.apiHeaders()[before:]
			if len(seen) != 10 {
				t.Fatalf("the service got %d calls, want 10", len(seen))
			}
			for _, hd := range seen {
				if hd.Get("Authorization") != "" {
					t.Fatalf("the token reached the service through %s", px.name)
				}
				if !strings.HasPrefix(hd.Get("X-Coinop-Payer"), "credits:") || hd.Get("X-Coinop-Payment") == "" {
					t.Fatalf("the service learnt payer %q payment %q", hd.Get("X-Coinop-Payer"), hd.Get("X-Coinop-Payment"))
				}
			}

			// The service fails: charged, then given back once on report.
			before = len(svc.apiHeaders())
			out, got = d.curlCredits(t, front+"/api/fail")
			balance -= cost
			if !strings.Contains(out, " 502 ") || got != balance {
				t.Fatalf("failing call through %s: balance %d, want %d\n%s", px.name, got, balance, out)
			}
			seen = svc.apiHeaders()[before:]
			if len(seen) != 1 || seen[0].Get("X-Coinop-Payment") == "" {
				t.Fatalf("the service saw %d failing calls", len(seen))
			}
			id := seen[0].Get("X-Coinop-Payment")
			// Six reports at once, then one more: given back once.
			report := func() (int, string) {
				req, _ := http.NewRequest(http.MethodPost, "http://"+auth+"/report", nil)
				req.Header.Set("X-Coinop-Payment", id)
				req.Header.Set("X-Upstream-Status", "502")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, err.Error()
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					if code, b := report(); code != 200 || !strings.Contains(b, `"released"`) {
						t.Errorf("a concurrent report: %d %s", code, b)
					}
				})
			}
			wg.Wait()
			if code, b := report(); code != 200 || !strings.Contains(b, `"released"`) {
				t.Fatalf("the report after: %d %s", code, b)
			}
			balance += cost
			released += cost
			code, aout, aerr := coinop(t, "audit", "-c", conf)
			if want := "released " + strconv.Itoa(released) + ","; code != 0 || !strings.Contains(aout, want) || !strings.Contains(aout, "(= purchased - debited + released: true)") {
				t.Errorf("coinop audit exit %d, want %q:\n%s\n%s", code, want, aout, aerr)
			}
			out, got = d.curlCredits(t, api)
			balance -= cost
			if got != balance {
				t.Fatalf("after the report through %s: balance %d, want %d (given back once)\n%s", px.name, got, balance, out)
			}

			// The purchase path passed to coinop unchecked is no way to its
			// report hook: a client cannot give its own charge back.
			last := svc.apiHeaders()
			id = last[len(last)-1].Get("X-Coinop-Payment")
			for _, target := range []string{"/report", "/.well-known/coinop/plans/../../../report", "/.well-known/coinop/plans/%2e%2e/%2e%2e/%2e%2e/report",
				"/.well-known/coinop/plans/..%2f..%2f..%2freport", "/.well-known/coinop/plans/%2E%2E%2F%2E%2E%2F%2E%2E%2Freport",
				"/.well-known/coinop/plans//../../../report", "/.well-known/coinop/plans/pack/../../../../report", "/.well-known/coinop/plans/%2e%2e%2f%2e%2e%2f%2e%2e%2frefusal/x"} {
				a := clitest.SendRaw(strings.TrimPrefix(front, "http://"), "POST", target, "X-Coinop-Payment: "+id, "X-Upstream-Status: 502", "Content-Length: 0")
				t.Logf("POST %s through %s: %d", target, px.name, a.Status)
				if strings.Contains(a.Body, `"released"`) || strings.Contains(a.Body, `"settled"`) || a.Status == http.StatusNoContent {
					t.Errorf("POST %s through %s reached the report hook: %d\n%s", target, px.name, a.Status, a.Body)
				}
			}
			if code, aout, _ := coinop(t, "audit", "-c", conf); code != 0 || !strings.Contains(aout, "released "+strconv.Itoa(released)+",") {
				t.Errorf("after the client's reports: coinop audit exit %d, want released %d:\n%s", code, released, aout)
			}

			// A revoked token: the 402 of the route, with the top-up offer.
			if code, _, errOut := coinop(t, "credits", "revoke", h.Token, "-c", conf); code != 0 {
				t.Fatalf("coinop credits revoke exit %d: %s", code, errOut)
			}
			resp, body := get(t, api, "", "Authorization", "Bearer "+h.Token)
			var p struct {
				Reason string            `json:"reason"`
				Plans  []credits.Offered `json:"plans"`
			}
			if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != http.StatusPaymentRequired || p.Reason != "credits_token_revoked" ||
				len(p.Plans) != 1 || p.Plans[0].URL != front+"/.well-known/coinop/plans/pack" || len(p.Plans[0].Offers) != 1 || p.Plans[0].Offers[0].Amount != strconv.Itoa(price) {
				t.Fatalf("revoked token through %s: %s %v\n%s", px.name, resp.Status, err, body)
			}
			if strings.Contains(string(body), svc.secret) {
				t.Fatalf("the revoked token got the service's answer")
			}
		})
	}
}

func (s *service) apiHeaders() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.api...)
}

// warningLine is the low-balance warning in `coinop curl -i` output.
var warningLine = regexp.MustCompile(`(?im)^Coinop-Credits-Warning: (.+?)\r?$`)

// TestForwardAuthCreditsTopUp spends a pack through each proxy on a route
// that costs most of it: the answer that takes the balance below the
// examples' low_balance carries the warning through the proxy, and the call
// the balance no longer covers makes `coinop curl` top the same account up
// (one more transfer, through the proxy's purchase location) and go on.
func TestForwardAuthCreditsTopUp(t *testing.T) {
	d := startDev(t)
	svc := startService(t)
	const cost, pack, price = 331, 1000, 50000
	auth, _ := startAuthFile(t, d, "  - match: GET /api/\n    accept: [{rail: credits, price: \""+strconv.Itoa(cost)+"\"}]\n")
	store := &client.CreditStore{Path: filepath.Join(d.data, "credits.json")}
	balance := int64(0) // one account per wallet, across the proxies
	for _, px := range authProxies {
		t.Run(px.name, func(t *testing.T) {
			front, _ := px.start(t, map[string]string{"UPSTREAM": strings.TrimPrefix(svc.url, "http://"), "AUTH": auth})
			api := front + "/api/data"
			// The buyer holds no token for this origin: it buys a pack,
			// which tops the wallet's one account up.
			balance += pack
			wantGain := int64(price)
			var account string
			for i := range 4 {
				var out string
				var got int64
				gain := d.payeeGain(t, func() { out, got = d.curlCredits(t, api) })
				balance -= cost
				if i > 0 {
					wantGain = 0
					if balance < 0 {
						balance += pack
						wantGain = price
					}
				}
				if gain != wantGain || got != balance || !strings.Contains(out, svc.secret) {
					t.Fatalf("call %d through %s: moved %d (want %d), balance %d (want %d)\n%s", i+1, px.name, gain, wantGain, got, balance, out)
				}
				w := warningLine.FindStringSubmatch(out)
				if low := balance < 10; low != (w != nil) || low && w[1] != "low; threshold=10" {
					t.Errorf("call %d through %s at balance %d: warning %q", i+1, px.name, balance, w)
				}
				h, _ := store.Get(front)
				if account == "" {
					account = h.Account
				}
				if h.Account != account || h.Account == "" {
					t.Errorf("call %d through %s: account %q, then %q: a top-up is the same account", i+1, px.name, account, h.Account)
				}
			}
		})
	}
}
