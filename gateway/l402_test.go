package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning/lnd"
)

// l402Config sells GET /weather for price through a development node.
func l402Config(t *testing.T, upstream, dir, price string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
data_dir: %s
rails:
  - name: sats
    kind: l402
    dev: true
routes:
  - match: GET /weather
    accept:
      - rail: sats
        price: %s
`, upstream, filepath.Join(dir, "gateway.db"), dir, price))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestL402Gateway: the credential never reaches the upstream, under any
// name that folds to Authorization; the development node outlives a
// reload, so a token bought before it still pays after.
func TestL402Gateway(t *testing.T) {
	ctx := t.Context()
	var leaked atomic.Value
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k := range r.Header {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "Authorization") {
				leaked.Store(k + ": " + r.Header.Get(k))
			}
		}
		io.WriteString(w, "sunny")
	}))
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	g, srv := startGateway(t, ctx, l402Config(t, upstream.URL, dir, "10 sat"), gateway.Options{})

	b, err := os.ReadFile(gateway.DevNodeFile(dir, "sats"))
	if err != nil {
		t.Fatal(err)
	}
	var dev gateway.DevNode
	if err := json.Unmarshal(b, &dev); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{dev.MacaroonFile, dev.TLSCertFile, gateway.DevNodeFile(dir, "sats")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
	payer, err := lnd.New(lnd.Config{URL: dev.URL, MacaroonFile: dev.MacaroonFile, TLSCertFile: dev.TLSCertFile})
	if err != nil {
		t.Fatal(err)
	}
	buy := func(t *testing.T) string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/weather")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		chs := l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		if resp.StatusCode != 402 || len(chs) == 0 {
			t.Fatalf("%d, %v", resp.StatusCode, chs)
		}
		p, err := payer.PayInvoice(ctx, chs[0].Invoice, 0)
		if err != nil {
			t.Fatal(err)
		}
		return l402.FormatAuthorization([][]byte{chs[0].Token}, p.Preimage)
	}
	send := func(t *testing.T, header map[string]string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/weather", nil)
		for k, v := range header {
			req.Header[k] = []string{v} // as sent, not canonicalized
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	auth := buy(t)
	if code := send(t, map[string]string{"Authorization": auth, "authorization_": "x", "Authorization_": auth}); code != 200 {
		t.Fatalf("paid request: %d", code)
	}
	if v := leaked.Load(); v != nil {
		t.Errorf("the upstream received %v", v)
	}

	auth = buy(t)
	if err := g.Reload(ctx, l402Config(t, upstream.URL, dir, "10 sat")); err != nil {
		t.Fatal(err)
	}
	if code := send(t, map[string]string{"Authorization": auth}); code != 200 {
		t.Errorf("a token bought before the reload: %d, want 200", code)
	}
}
