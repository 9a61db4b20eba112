package gateway_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/gateway"
)

// syncBuffer is a log destination safe for the gateway's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAdminMetricsEqualTheJournal: after real payments on the dev chain,
// /metrics parses as Prometheus text and its payment and revenue counters
// equal what the journal holds; /readyz is 503 while the chain's node does
// not answer and 200 again once it does; every request has its access line.
func TestAdminMetricsEqualTheJournal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, _ := startChain(t, ctx)
	// The gateway reaches the node through a proxy that can be cut.
	var down atomic.Bool
	target, _ := url.Parse(dev.RPCURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(node.Close)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sunny") }))
	t.Cleanup(upstream.Close)
	cfg := devConfig(t, dev, upstream.URL, "rpc: "+node.URL+"\n    settlement_key_env: KEY", `
  - match: GET /weather
    price: 0.001 USDC
  - match: GET /free
    free: true
`, "admin:\n  listen: 127.0.0.1:0\n  token_env: ADMIN_TOKEN\n")
	var logs syncBuffer
	env := map[string]string{"KEY": hex.EncodeToString(crypto.FromECDSA(dev.Settler)), "ADMIN_TOKEN": "t0ken"}
	g, srv := startGateway(t, ctx, cfg, gateway.Options{Getenv: func(k string) string { return env[k] },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	h, err := g.Admin(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	adm := httptest.NewServer(h)
	t.Cleanup(adm.Close)
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", adm.URL+path, nil)
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	const paid = 4
	hc := payingClient(t, dev)
	for range paid {
		resp, err := hc.Get(srv.URL + "/weather")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("paid request: %d", resp.StatusCode)
		}
	}
	for _, path := range []string{"/weather", "/free"} { // a 402 and a free answer
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	settled, err := g.Store().List(ctx, coinop.StateSettled, 0)
	if err != nil {
		t.Fatal(err)
	}
	revenue := new(big.Int)
	for _, p := range settled {
		revenue.Add(revenue, p.Amount)
	}
	if len(settled) != paid {
		t.Fatalf("journal holds %d settled payments, want %d", len(settled), paid)
	}
	code, text := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	sum := func(name string, match map[string]string) float64 {
		var v float64
		for _, m := range fams[name].GetMetric() {
			ok := true
			for _, l := range m.GetLabel() {
				if want, set := match[l.GetName()]; set && want != l.GetValue() {
					ok = false
				}
			}
			if ok {
				v += m.GetCounter().GetValue()
			}
		}
		return v
	}
	if got := sum("coinop_payments_total", map[string]string{"step": "settled", "route": "GET /weather"}); got != paid {
		t.Errorf("settled payments counted %v, journal %d", got, paid)
	}
	if got := sum("coinop_revenue_atomic_total", nil); got != float64(revenue.Int64()) {
		t.Errorf("revenue counted %v, journal %s", got, revenue)
	}
	// Each paid request was first challenged, and one was never paid.
	if got := sum("coinop_refusals_total", map[string]string{"reason": "payment_required"}); got != paid+1 {
		t.Errorf("402 challenges counted %v, want %d", got, paid+1)
	}
	if got := sum("coinop_requests_total", map[string]string{"route": "GET /free", "status": "200"}); got != 1 {
		t.Errorf("free requests counted %v, want 1", got)
	}

	// The payments API: revenue per route is the sum of settled payments,
	// and the CSV export round-trips to the journal's rows.
	code, text = get("/revenue?by=route")
	var rev struct {
		Totals []struct {
			Key, Amount string
			Payments    int
		}
	}
	if err := json.Unmarshal([]byte(text), &rev); code != 200 || err != nil || len(rev.Totals) != 1 ||
		rev.Totals[0].Key != "GET /weather" || rev.Totals[0].Amount != revenue.String() || rev.Totals[0].Payments != paid {
		t.Fatalf("/revenue: %d %s (%v), want %s in %d payments", code, text, err, revenue, paid)
	}
	code, text = get("/payments.csv?state=settled")
	rows, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if code != 200 || err != nil || len(rows) != paid+1 {
		t.Fatalf("/payments.csv: %d, %d rows (%v):\n%s", code, len(rows), err, text)
	}
	byID := map[string]*coinop.Payment{}
	for _, p := range settled {
		byID[p.ID] = p
	}
	for _, row := range rows[1:] {
		p := byID[row[0]]
		if p == nil || row[8] != p.Amount.String() || row[10] != p.Reference || row[6] != p.Payer || row[2] != p.Route {
			t.Errorf("CSV row %v does not match the journal's %+v", row, p)
		}
	}
	code, text = get("/payments?state=settled&limit=3")
	var page struct {
		Payments []struct{ ID string }
		Next     string
	}
	if err := json.Unmarshal([]byte(text), &page); code != 200 || err != nil || len(page.Payments) != 3 || page.Next == "" {
		t.Fatalf("/payments page: %d %s", code, text)
	}
	if code, text = get("/payments/" + page.Payments[0].ID); code != 200 || !strings.Contains(text, `"history"`) || !strings.Contains(text, `"settled"`) {
		t.Fatalf("/payments/{id}: %d %s", code, text)
	}
	if code, _ = get("/payments?state=paid"); code != http.StatusBadRequest {
		t.Fatalf("/payments with a bad state: %d, want 400", code)
	}

	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz with everything up: %d %s", code, body)
	}
	down.Store(true)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "chain eip155:") {
		t.Fatalf("/readyz with the node down: %d %s", code, body)
	}
	down.Store(false)
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz with the node back: %d %s", code, body)
	}
	// The node's answers are counted, its failures apart.
	_, text = get("/metrics")
	parser = expfmt.NewTextParser(model.UTF8Validation)
	if fams, err = parser.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	network := fmt.Sprintf("eip155:%d", dev.ChainID)
	if got := sum("coinop_rpc_requests_total", map[string]string{"network": network, "outcome": "error"}); got < 1 {
		t.Errorf("node failures counted %v, want at least the probe's", got)
	}
	if got := sum("coinop_rpc_requests_total", map[string]string{"network": network, "outcome": "ok"}); got < paid {
		t.Errorf("node answers counted %v, want at least one per payment", got)
	}

	// An access line is written once the handler returned, which may be
	// just after the client has read the response.
	lines := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if lines = strings.Count(logs.String(), "msg=request "); lines >= paid*2+2 {
			break
		}
	}
	if lines != paid*2+2 { // each paid request is a 402 and then a paid 200
		t.Errorf("%d access lines, want %d:\n%s", lines, paid*2+2, logs.String())
	}
	if !strings.Contains(logs.String(), `route="GET /weather" status=200`) || !strings.Contains(logs.String(), "outcome=settled") {
		t.Errorf("no access line for a settled request:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "t0ken") {
		t.Error("the admin token reached the log")
	}
}
