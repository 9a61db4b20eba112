//go:build unix

package examples_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	domain "github.com/coinop/coinop"
	"github.com/coinop/coinop/admin"
	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/contracts"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/store"
	"github.com/coinop/coinop/store/sqlite"
)

// dashboardRun is what interop/dashboard.mjs saw in the page.
type dashboardRun struct {
	Status         int    `json:"status"`
	CSP            string `json:"csp"`
	First          string `json:"first"`
	LoginFocused   string `json:"loginFocused"`
	LoginLabel     string `json:"loginLabel"`
	WrongTokenSays string `json:"wrongTokenSays"`
	Loaded         string `json:"loaded"`
	Stored         string `json:"stored"`
	PageURL        string `json:"pageURL"`
	Board          board  `json:"board"`
	Page2          []row  `json:"page2"`
	Phone          board  `json:"phone"`
	TabOrder       []string
	Refresh        int    `json:"refreshRequests"`
	AfterReload    string `json:"afterReload"`
	Requests       []struct{ Path, Auth string }
	TokenInURL     bool     `json:"tokenInURL"`
	Unauthorized   int      `json:"unauthorized"`
	Foreign        []string `json:"foreign"`
	Errors         []string `json:"errors"`
}

type board struct {
	Health      string `json:"health"`
	HealthState string `json:"healthState"`
	Cards       []struct {
		Kind, Network, Asset, Amount, Payments, Count, Value, Label string
	} `json:"cards"`
	Routes []row `json:"routes"`
	Charts []struct {
		Network, Asset, Label string
		Width                 float64
		Bars                  []struct {
			Day, Amount string
			Height      float64
		}
	} `json:"charts"`
	Pending   []row  `json:"pending"`
	Failed    []row  `json:"failed"`
	Payments  []row  `json:"payments"`
	Checks    []row  `json:"checks"`
	Headers   int    `json:"headers"`
	Older     bool   `json:"older"`
	PageLabel string `json:"pageLabel"`
	Overflow  bool   `json:"overflow"`
	Elements  int    `json:"elements"`
	Contrast  struct {
		Margin, Ratio, Need float64
		Text                string
	} `json:"contrast"`
	Ran bool `json:"ran"`
}

// row is a table row: its data-* attributes, its cells' text and the
// transaction link in it, if any.
type row struct {
	ID, State, Amount, Network, Asset, Route, Payments, Check string
	Cells                                                     []string
	Href, Rel                                                 string
}

// heldRPC is a JSON-RPC proxy in front of a node that can hold every
// eth_sendRawTransaction until released: a settlement signed and journaled
// but not yet on the chain, as when a node is slow to take it.
type heldRPC struct {
	*httptest.Server
	mu      sync.Mutex
	gate    chan struct{} // nil: pass; else closed on release
	arrived chan struct{} // a held request arrived (buffered)
}

func newHeldRPC(t *testing.T, node string) *heldRPC {
	target, err := url.Parse(node)
	if err != nil {
		t.Fatal(err)
	}
	h := &heldRPC{arrived: make(chan struct{}, 64)}
	rp := httputil.NewSingleHostReverseProxy(target)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		h.mu.Lock()
		gate := h.gate
		h.mu.Unlock()
		if gate != nil && bytes.Contains(b, []byte(`"eth_sendRawTransaction"`)) {
			h.arrived <- struct{}{}
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			case <-time.After(45 * time.Second):
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *heldRPC) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gate = make(chan struct{})
}

func (h *heldRPC) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
}

// runDashboard runs interop/dashboard.mjs against the dashboard at url.
func runDashboard(t *testing.T, url, name, token, wrong string) dashboardRun {
	t.Helper()
	var run dashboardRun
	playwright(t, "dashboard.mjs", &run, "URL="+url, "OUT="+t.ArtifactDir(), "NAME="+name, "TOKEN="+token, "WRONG_TOKEN="+wrong)
	return run
}

// TestDashboard runs `coinop serve` on the embedded chain with an admin
// listener that wants a token, takes real payments (sync ones, and an
// async one whose payer empties the wallet before it settles), and reads
// the dashboard in headless Chromium while that settlement is pending and
// again once it failed: every figure on the page equals the journal's,
// listed from the store directly. Screenshots, at a desktop's and at a
// phone's width, are in the test's artifact directory.
func TestDashboard(t *testing.T) {
	tool(t, "node")
	tool(t, "chromium", "/usr/bin/chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	chain, err := devchain.Start(ctx, devchain.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	rpc := newHeldRPC(t, chain.RPCURL)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"city":"Lisbon","sky":"clear"}`)
	}))
	t.Cleanup(upstream.Close)

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "settler.key")
	if err := os.WriteFile(keyFile, []byte("0x"+hex.EncodeToString(crypto.FromECDSA(chain.Settler))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	network := fmt.Sprintf("eip155:%d", chain.ChainID)
	// Never fetched: the page only links to it.
	const explorer = "https://explorer.invalid/tx/{tx}"
	adminAddr := freeAddr(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
upstream: %q
store: %q
data_dir: %q
unmatched: deny
pay_to: %q
networks:
  - id: %q
    rpc: %q
    settlement_key_file: %q
    batch_settler: %q
    explorer: %q
    assets:
      - symbol: USDC
        address: %q
        decimals: 6
        eip712_name: %q
        eip712_version: %q
        async_exposure: "0.05 USDC"
routes:
  - match: GET /weather
    price: 0.001 USDC
  - match: GET /forecast
    price: 0.0025 USDC
  - match: GET /report
    price: 0.01 USDC
    settlement: async
admin:
  listen: %q
  token_env: COINOP_ADMIN_TOKEN
`, upstream.URL, filepath.Join(dir, "coinop.db"), dir, crypto.PubkeyToAddress(chain.Payee.PublicKey).Hex(), network, rpc.URL, keyFile,
		chain.BatchSettler.Hex(), explorer, chain.Token.Hex(), devchain.TokenName, devchain.TokenVersion, adminAddr)
	cfgPath := filepath.Join(dir, "coinop.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "dashboard-test-token"
	gw := serveEnv(t, cfgPath, map[string]string{"COINOP_ADMIN_TOKEN": token})
	dashboard := "http://" + adminAddr + "/"

	key, err := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &client.Transport{Key: key, Policy: client.Policy{MaxAmount: big.NewInt(10_000)}}}
	pay := func(path string) {
		t.Helper()
		resp, err := hc.Get(gw + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("paid GET %s: %s", path, resp.Status)
		}
	}
	// 21 sync payments, more than the 20 of the payments table's first page.
	for i := range 21 {
		pay([]string{"/weather", "/weather", "/forecast"}[i%3])
	}

	journal, err := sqlite.Open(filepath.Join(dir, "coinop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { journal.Close() })
	listAll := func() []*domain.Payment {
		t.Helper()
		var all []*domain.Payment
		f := store.Filter{Limit: store.MaxPageSize}
		for {
			page, err := journal.ListPage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Payments...)
			if f.Cursor = page.Next; f.Cursor == "" {
				return all
			}
		}
	}
	waitFor := func(what string, ok func([]*domain.Payment) bool) []*domain.Payment {
		t.Helper()
		for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			ps := listAll()
			if ok(ps) {
				return ps
			}
			if time.Now().After(deadline) {
				t.Fatalf("the journal never showed %s: %d payments", what, len(ps))
			}
		}
	}
	inState := func(ps []*domain.Payment, s domain.State) (n int) {
		for _, p := range ps {
			if p.State == s {
				n++
			}
		}
		return n
	}

	// The async payment is served at once; its settlement is signed and
	// journaled, and held on its way to the node. Meanwhile the payer
	// empties the wallet, straight on the chain.
	rpc.hold()
	pay("/report")
	select {
	case <-rpc.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the async settlement never reached the node")
	}
	ps := waitFor("the async settlement pending", func(ps []*domain.Payment) bool { return inState(ps, domain.StateSettling) == 1 })
	drain(t, ctx, chain)

	pendingRun := runDashboard(t, dashboard, "dashboard-pending", token, "")
	checkDashboard(t, pendingRun, ps, network, explorer, token)
	if len(pendingRun.Board.Pending) != 1 {
		t.Errorf("pending table: %+v", pendingRun.Board.Pending)
	}

	rpc.release()
	ps = waitFor("the async settlement failed", func(ps []*domain.Payment) bool { return inState(ps, domain.StateFailed) == 1 })
	run := runDashboard(t, dashboard, "dashboard", token, "not-the-token")
	checkDashboard(t, run, ps, network, explorer, token)
	if len(run.Board.Failed) != 1 || run.Board.Failed[0].State != "failed" || !slices.ContainsFunc(run.Board.Failed[0].Cells, func(c string) bool { return c != "—" && c == failedReason(ps) }) {
		t.Errorf("failed table %+v, journal's reason %q", run.Board.Failed, failedReason(ps))
	}
	if len(run.Board.Pending) != 0 {
		t.Errorf("pending table after the failure: %+v", run.Board.Pending)
	}

	// The token flow: asked for, by a labelled field with the focus; a
	// wrong one refused; kept in the tab, sent as a header, never in a URL.
	if run.First != "locked" || run.LoginFocused != "token" || run.LoginLabel != "Admin token" {
		t.Errorf("before the token the page was %q, focus on %q, label %q", run.First, run.LoginFocused, run.LoginLabel)
	}
	if run.WrongTokenSays != "That token was refused." {
		t.Errorf("a wrong token: %q", run.WrongTokenSays)
	}
	if run.Stored != token || run.TokenInURL || strings.Contains(run.PageURL, token) || run.AfterReload != "true" {
		t.Errorf("token stored %q, in a URL %v (%s), after a reload %q", run.Stored, run.TokenInURL, run.PageURL, run.AfterReload)
	}
	for _, r := range run.Requests {
		if r.Path != "/readyz" && r.Auth != "" && r.Auth != "Bearer "+token && r.Auth != "Bearer not-the-token" {
			t.Errorf("%s sent Authorization %q", r.Path, r.Auth)
		}
	}
	// Keyboard: Tab reaches the pager and then Refresh, which reloads.
	if !slices.Contains(run.TabOrder, "older") || !slices.Contains(run.TabOrder, "refresh") || run.Refresh < 5 {
		t.Errorf("Tab went %v; Refresh sent %d requests", run.TabOrder, run.Refresh)
	}
	t.Logf("screenshots in %s", t.ArtifactDir())
	for _, name := range []string{"dashboard.png", "dashboard-pending.png"} {
		screenshot(t, filepath.Join(t.ArtifactDir(), name))
	}
	f, err := os.Open(filepath.Join(t.ArtifactDir(), "dashboard-phone.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	phone, err := png.Decode(f)
	if err != nil || phone.Bounds().Dx() != 390 || phone.Bounds().Dy() < 844 {
		t.Errorf("the phone screenshot: %v %v", phone.Bounds(), err)
	}
}

// TestDashboardWritesTextAsText loads the dashboard of a listener without
// a token (loopback) over a journal whose fields hold markup and script:
// the page opens without asking, shows every field as the text it is, runs
// none of it, and links only what is a transaction hash.
func TestDashboardWritesTextAsText(t *testing.T) {
	tool(t, "node")
	tool(t, "chromium", "/usr/bin/chromium")
	ctx := context.Background()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	const (
		network = "eip155:8453"
		asset   = "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"
		hash    = "0x00000000000000000000000000000000000000000000000000000000000000f0"
	)
	hostile := []struct{ payer, route, ref, reason string }{
		{`<img src=x onerror="window.__coinopRan=1">`, `GET /<script>window.__coinopRan=1</script>`, "javascript:window.__coinopRan=1", ""},
		{`"><iframe src="javascript:window.__coinopRan=1">`, "GET /weather", hash, ""},
		{"0x1111111111111111111111111111111111111111", "GET /weather", `" onmouseover="window.__coinopRan=1`, `<b onload="window.__coinopRan=1">x</b>`},
	}
	for i, h := range hostile {
		p := &domain.Payment{ID: fmt.Sprintf("pay-%d", i), Rail: "x402", Route: h.route, Network: network, Asset: asset, Payer: h.payer,
			PayTo: "0x2222222222222222222222222222222222222222", ReplayKey: fmt.Sprintf("0x%064x", i), Amount: big.NewInt(1500), Resource: "http://x/"}
		if err := j.Reserve(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := j.Transition(ctx, p.ID, domain.StateVerified, domain.StateSettling, "", ""); err != nil {
			t.Fatal(err)
		}
		to := domain.StateSettled
		if h.reason != "" {
			to = domain.StateFailed
		}
		if err := j.Transition(ctx, p.ID, domain.StateSettling, to, h.ref, h.reason); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(admin.Handler(admin.Config{Journal: j, Networks: []admin.Network{{ID: network,
		Explorer: "https://explorer.invalid/tx/{tx}", Assets: []admin.Asset{{Symbol: "USDC", Address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", Decimals: 6}}}}}))
	t.Cleanup(srv.Close)

	run := runDashboard(t, srv.URL+"/dashboard", "dashboard-text", "", "")
	if run.First != "true" || run.Loaded != "true" || run.Stored != "" || run.Unauthorized != 0 {
		t.Fatalf("without a token the page was %q then %q (%d refusals)", run.First, run.Loaded, run.Unauthorized)
	}
	b := run.Board
	if b.Elements != 0 || b.Ran || len(run.Foreign) > 0 || len(run.Errors) > 0 {
		t.Fatalf("the journal's text became %d elements, ran %v; requests elsewhere %q; console %q", b.Elements, b.Ran, run.Foreign, run.Errors)
	}
	if len(b.Payments) != len(hostile) {
		t.Fatalf("payments %+v", b.Payments)
	}
	for i, r := range b.Payments {
		h := hostile[len(hostile)-1-i] // newest first
		if r.Cells[1] != h.route || r.Cells[2] != h.payer || r.Cells[3] != "0.0015 USDC" {
			t.Errorf("row %d shows %q, want the journal's %q %q", i, r.Cells, h.route, h.payer)
		}
		wantHref := ""
		if h.ref == hash {
			wantHref = "https://explorer.invalid/tx/" + hash
		}
		if r.Href != wantHref || r.Cells[6] != h.ref {
			t.Errorf("row %d links %q and shows %q for reference %q", i, r.Href, r.Cells[6], h.ref)
		}
	}
	if len(b.Failed) != 1 || b.Failed[0].Cells[5] != hostile[2].reason {
		t.Errorf("failed %+v", b.Failed)
	}
	if len(b.Routes) != 2 {
		t.Errorf("routes %+v", b.Routes)
	}
}

// serveEnv runs `coinop serve -c path` in-process with the environment
// env until the test ends, and returns the gateway's URL.
func serveEnv(t *testing.T, path string, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &clitest.Buffer{}, &clitest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"serve", "-c", path}, cli.Env{Stdout: out, Stderr: errOut, Stdin: strings.NewReader(""),
			Getenv: func(k string) string { return env[k] }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("coinop serve exited %d\n%s", code, errOut)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("coinop serve did not stop")
		}
	})
	ready := regexp.MustCompile(`coinop ready: serving \S+ on (http://\S+)`)
	for deadline := time.Now().Add(clitest.ReadyTimeout); ; time.Sleep(20 * time.Millisecond) {
		if m := ready.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("coinop serve exited %d before it was ready\n%s\n%s", code, out, errOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("coinop serve not ready after %s\n%s\n%s", clitest.ReadyTimeout, out, errOut)
		}
	}
}

// failedReason is the reason the journal gives for its one failed payment.
func failedReason(ps []*domain.Payment) string {
	for _, p := range ps {
		if p.State == domain.StateFailed {
			return p.Reason
		}
	}
	return ""
}

// checkDashboard compares what the page showed with the journal ps.
func checkDashboard(t *testing.T, run dashboardRun, ps []*domain.Payment, network, explorer, token string) {
	t.Helper()
	if run.Status != 200 || run.Loaded != "true" {
		t.Fatalf("the dashboard answered %d and loaded %q; console %q", run.Status, run.Loaded, run.Errors)
	}
	if len(run.Foreign) > 0 || len(run.Errors) > 0 {
		t.Errorf("the page reached %q; console errors %q", run.Foreign, run.Errors)
	}
	b := run.Board
	// Revenue: settled payments, summed by asset.
	settled := new(big.Int)
	states := map[domain.State]int{}
	byRoute := map[string]*big.Int{}
	routeCount := map[string]int{}
	byDay := map[string]*big.Int{}
	for _, p := range ps {
		states[p.State]++
		if p.State != domain.StateSettled {
			continue
		}
		settled.Add(settled, p.Amount)
		if byRoute[p.Route] == nil {
			byRoute[p.Route] = new(big.Int)
		}
		byRoute[p.Route].Add(byRoute[p.Route], p.Amount)
		routeCount[p.Route]++
		day := p.Created.UTC().Format(time.DateOnly)
		if byDay[day] == nil {
			byDay[day] = new(big.Int)
		}
		byDay[day].Add(byDay[day], p.Amount)
	}
	cards := map[string]int{}
	for _, c := range b.Cards {
		cards[c.Kind]++
		switch c.Kind {
		case "revenue":
			if c.Amount != settled.String() || c.Payments != fmt.Sprint(states[domain.StateSettled]) || c.Value != usdc(settled) || c.Network != network ||
				c.Label != "Revenue in USDC on Local dev chain" {
				t.Errorf("revenue card %+v; journal: %s (%s) in %d payments", c, settled, usdc(settled), states[domain.StateSettled])
			}
		case "pending", "failed":
			want := map[string]domain.State{"pending": domain.StateSettling, "failed": domain.StateFailed}[c.Kind]
			if c.Count != fmt.Sprint(states[want]) || c.Value != c.Count {
				t.Errorf("%s card %+v; journal: %d %s", c.Kind, c, states[want], want)
			}
		}
	}
	if cards["revenue"] != 1 || cards["pending"] != 1 || cards["failed"] != 1 {
		t.Errorf("cards %+v", b.Cards)
	}
	// Per route.
	if len(b.Routes) != len(byRoute) {
		t.Errorf("route rows %+v; journal %v", b.Routes, byRoute)
	}
	for _, r := range b.Routes {
		if want := byRoute[r.Route]; want == nil || r.Amount != want.String() || r.Payments != fmt.Sprint(routeCount[r.Route]) || r.Cells[3] != usdc(want) ||
			r.Cells[1] != "Local dev chain" {
			t.Errorf("route row %+v; journal %v in %d", r, want, routeCount[r.Route])
		}
	}
	// The chart: one per asset, a bar per day, its amount the day's.
	if len(b.Charts) != 1 || len(b.Charts[0].Bars) != 30 {
		t.Fatalf("charts %+v", b.Charts)
	}
	if !strings.Contains(b.Charts[0].Label, usdc(settled)+" in 30 days") {
		t.Errorf("the chart's text alternative %q does not give the total %s", b.Charts[0].Label, usdc(settled))
	}
	var tallest float64
	for _, bar := range b.Charts[0].Bars {
		want := "0"
		if byDay[bar.Day] != nil {
			want = byDay[bar.Day].String()
		}
		if bar.Amount != want || (want == "0") != (bar.Height == 0) {
			t.Errorf("bar %+v, journal %s", bar, want)
		}
		tallest = max(tallest, bar.Height)
	}
	if tallest < 50 {
		t.Errorf("the tallest bar is %v high", tallest)
	}
	// Payments, newest first, a page of 20, then the rest.
	newest := slices.Clone(ps)
	slices.Reverse(newest)
	shown := append(slices.Clone(b.Payments), run.Page2...)
	if len(b.Payments) != 20 || len(shown) != len(ps) || !b.Older {
		t.Errorf("%d payments on page 1 and %d on page 2, journal %d", len(b.Payments), len(run.Page2), len(ps))
	}
	for i, r := range shown {
		if i >= len(newest) {
			break
		}
		p := newest[i]
		wantHref := ""
		if p.Reference != "" {
			wantHref = strings.ReplaceAll(explorer, "{tx}", p.Reference)
		}
		if r.ID != p.ID || r.State != string(p.State) || r.Amount != p.Amount.String() || r.Href != wantHref || r.Cells[3] != usdc(p.Amount) || r.Cells[2] != p.Payer {
			t.Errorf("payment row %d %+v; journal %s %s %s ref %s", i, r, p.ID, p.State, p.Amount, p.Reference)
		}
		if r.Href != "" && !strings.Contains(r.Rel, "noreferrer") {
			t.Errorf("explorer link without noreferrer: %+v", r)
		}
	}
	// Health.
	if b.HealthState != "ok" || len(b.Checks) < 2 {
		t.Errorf("health %q %q, checks %+v", b.HealthState, b.Health, b.Checks)
	}
	if b.Headers < 20 {
		t.Errorf("%d column headers", b.Headers)
	}
	if b.Contrast.Margin < 1 || run.Phone.Contrast.Margin < 1 {
		t.Errorf("text with too little contrast: %+v (phone: %+v)", b.Contrast, run.Phone.Contrast)
	}
	t.Logf("least contrast: %.2f:1 (needs %.1f:1) for %q", b.Contrast.Ratio, b.Contrast.Need, b.Contrast.Text)
	if b.Overflow || run.Phone.Overflow {
		t.Errorf("the page is wider than the window (desktop %v, phone %v)", b.Overflow, run.Phone.Overflow)
	}
	if len(run.Phone.Cards) != len(b.Cards) || len(run.Phone.Charts) != 1 || run.Phone.Charts[0].Width > 390 || b.Charts[0].Width < 900 {
		t.Errorf("at a phone's width, cards %+v, charts %+v (on a desktop %v wide)", run.Phone.Cards, run.Phone.Charts, b.Charts[0].Width)
	}
}

// usdc writes atomic units of a 6-decimal token as the page does.
func usdc(atomic *big.Int) string {
	s := fmt.Sprintf("%07d", atomic)
	whole, frac := s[:len(s)-6], strings.TrimRight(s[len(s)-6:], "0")
	if frac != "" {
		whole += "." + frac
	}
	return whole + " USDC"
}

// drain sends all of the dev payer's tokens to a fresh address, from the
// payer's own account, and waits until it is mined.
func drain(t *testing.T, ctx context.Context, chain *devchain.Chain) {
	t.Helper()
	cl, err := ethclient.DialContext(ctx, chain.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	token, err := abi.JSON(strings.NewReader(contracts.TokenABI))
	if err != nil {
		t.Fatal(err)
	}
	payer := crypto.PubkeyToAddress(chain.Payer.PublicKey)
	out, err := cl.CallContract(ctx, ethereum.CallMsg{To: &chain.Token, Data: must(token.Pack("balanceOf", payer))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	balance := new(big.Int).SetBytes(out)
	elsewhere, _ := crypto.GenerateKey()
	send(t, ctx, cl, chain.Payer, chain.Token, must(token.Pack("transfer", crypto.PubkeyToAddress(elsewhere.PublicKey), balance)))
	out, _ = cl.CallContract(ctx, ethereum.CallMsg{To: &chain.Token, Data: must(token.Pack("balanceOf", payer))}, nil)
	if new(big.Int).SetBytes(out).Sign() != 0 {
		t.Fatalf("the payer still holds %x", out)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// send sends a transaction from key and waits for its successful receipt.
func send(t *testing.T, ctx context.Context, cl *ethclient.Client, key *ecdsa.PrivateKey, to common.Address, data []byte) {
	t.Helper()
	from := crypto.PubkeyToAddress(key.PublicKey)
	id, err := cl.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nonce, err := cl.PendingNonceAt(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	head, err := cl.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tip, err := cl.SuggestGasTipCap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gas, err := cl.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &to, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(id), &types.DynamicFeeTx{ChainID: id, Nonce: nonce, GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip), Gas: gas, To: &to, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rc, err := cl.TransactionReceipt(ctx, tx.Hash()); err == nil {
			if rc.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("transaction %s failed", tx.Hash())
			}
			return
		}
	}
	t.Fatalf("transaction %s not mined", tx.Hash())
}

// TestDevDashboard: `coinop dev` opens an admin listener on loopback,
// named in its banner and its config, with the dashboard and the payments
// API over the dev journal.
func TestDevDashboard(t *testing.T) {
	d := startDev(t)
	addr := d.cfg.Admin.Listen
	if addr == "" || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("dev's admin listener %q", addr)
	}
	resp, page := get(t, "http://"+addr+"/", "")
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<title>coinop dashboard</title>") {
		t.Fatalf("GET /: %s\n%s", resp.Status, page)
	}
	resp, body := get(t, "http://"+addr+"/summary", "")
	var s struct{ States map[string]int }
	if err := json.Unmarshal(body, &s); resp.StatusCode != 200 || err != nil || len(s.States) != 5 {
		t.Fatalf("GET /summary: %s %v\n%s", resp.Status, err, body)
	}
}
