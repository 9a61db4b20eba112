package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/admin"
	"github.com/coinop/coinop/store/sqlite"
)

// journal opens a SQLite journal whose clock advances a second a write,
// from 2026-12-01, and journals payments in it: one per state given.
func journal(t testing.TB, states ...coinop.State) *sqlite.Store {
	t.Helper()
	var tick atomic.Int64
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s, err := sqlite.OpenWith(filepath.Join(t.TempDir(), "j.db"), sqlite.Options{Now: func() time.Time {
		return start.Add(time.Duration(tick.Add(1)) * time.Second)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	for i, st := range states {
		p := &coinop.Payment{ID: fmt.Sprintf("pay-%02d", i), Rail: "x402", Route: []string{"GET /a", "GET /b"}[i%2], Network: "eip155:1337",
			Asset: "0x00000000000000000000000000000000000000aa", Payer: fmt.Sprintf("0x%040x", i), PayTo: "0x00000000000000000000000000000000000000bb",
			ReplayKey: fmt.Sprintf("0x%064x", i), Amount: big.NewInt(int64(1000 * (i + 1))), Resource: "http://x/a"}
		if err := s.Reserve(ctx, p); err != nil {
			t.Fatal(err)
		}
		step := func(from, to coinop.State, ref, reason string) {
			if err := s.Transition(ctx, p.ID, from, to, ref, reason); err != nil {
				t.Fatalf("%s %s→%s: %v", p.ID, from, to, err)
			}
		}
		switch st {
		case coinop.StateSettling:
			step(coinop.StateVerified, coinop.StateSettling, "", "")
		case coinop.StateSettled:
			step(coinop.StateVerified, coinop.StateSettling, "", "")
			step(coinop.StateSettling, coinop.StateSettled, fmt.Sprintf("0x%064x", 0xf00+i), "")
		case coinop.StateFailed:
			step(coinop.StateVerified, coinop.StateSettling, "", "")
			step(coinop.StateSettling, coinop.StateFailed, "", "transfer_amount_exceeds_balance")
		case coinop.StateReleased:
			step(coinop.StateVerified, coinop.StateReleased, "", "upstream_failed")
		}
	}
	return s
}

func body(t *testing.T, h http.Handler, path, auth string) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, rec.Header(), string(b)
}

// TestDashboardPage: the page is served from the binary at / and
// /dashboard, without the token (it holds no figures), while every
// figure the API serves still needs it; its CSP runs exactly its own
// script and styles and lets it talk to its own origin only; it loads
// nothing from anywhere.
func TestDashboardPage(t *testing.T) {
	h := admin.Handler(admin.Config{Token: "s3cret", Journal: journal(t, coinop.StateSettled)})
	for _, path := range []string{"/", "/dashboard"} {
		code, hdr, html := body(t, h, path, "")
		if code != 200 || hdr.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("%s: %d %s", path, code, hdr.Get("Content-Type"))
		}
		csp := hdr.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q has no %q", csp, want)
			}
		}
		for _, tag := range []string{"script", "style"} {
			found := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(html, -1)
			if len(found) != 1 {
				t.Fatalf("%d <%s> elements", len(found), tag)
			}
			sum := sha256.Sum256([]byte(found[0][1]))
			if want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
				t.Errorf("CSP %q does not allow the page's %s (%s)", csp, tag, want)
			}
		}
		if strings.Contains(html, "src=") || strings.Count(html, "href=") != strings.Count(html, `href="data:,"`) ||
			strings.Contains(strings.ReplaceAll(html, "'http://www.w3.org/2000/svg'", ""), "http") { // a namespace name, never fetched
			t.Errorf("the page refers to something outside itself:\n%s", html)
		}
		if hdr.Get("Referrer-Policy") != "no-referrer" || hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v", hdr)
		}
	}
	for _, path := range []string{"/summary", "/networks", "/payments", "/revenue", "/readyz", "/dashboard/", "/index.html"} {
		if code, _, _ := body(t, h, path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
	}
	if code, _, _ := body(t, h, "/summary", "Bearer s3cret"); code != 200 {
		t.Errorf("/summary with the token: %d", code)
	}
	req := httptest.NewRequest("POST", "/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("POST / without the token: %d, want 401", rec.Code)
	}
}

// TestSummary counts the journal's payments by state and adds their
// amounts per asset; a filter narrows it as it narrows a listing.
func TestSummary(t *testing.T) {
	j := journal(t, coinop.StateSettled, coinop.StateSettled, coinop.StateSettling, coinop.StateFailed, coinop.StateReleased, coinop.StateVerified, coinop.StateSettled)
	h := admin.Handler(admin.Config{Journal: j})
	var s struct {
		States map[string]int
		Totals []struct {
			Key, Network, Asset, Amount string
			Payments                    int
		}
	}
	code, _, text := body(t, h, "/summary", "")
	if err := json.Unmarshal([]byte(text), &s); code != 200 || err != nil {
		t.Fatalf("/summary: %d %v %s", code, err, text)
	}
	want := map[string]int{"settled": 3, "settling": 1, "failed": 1, "released": 1, "verified": 1}
	for k, v := range want {
		if s.States[k] != v {
			t.Errorf("states %v, want %v", s.States, want)
		}
	}
	amounts := map[string]string{}
	for _, tot := range s.Totals {
		amounts[tot.Key] = tot.Amount
	}
	// Payment i is worth 1000·(i+1): settled are 0, 1 and 6.
	if amounts["settled"] != "10000" || amounts["failed"] != "4000" || amounts["settling"] != "3000" {
		t.Errorf("amounts by state %v", amounts)
	}
	code, _, text = body(t, h, "/summary?route=GET+/b", "")
	if err := json.Unmarshal([]byte(text), &s); code != 200 || err != nil || s.States["settled"] != 1 || s.States["failed"] != 1 || s.States["settling"] != 0 {
		t.Errorf("/summary?route=GET /b: %d %s", code, text)
	}
	if code, _, _ := body(t, h, "/summary?from=yesterday", ""); code != http.StatusBadRequest {
		t.Errorf("/summary with a bad from: %d, want 400", code)
	}
}

// TestNewestFirst: order=newest lists the recent payments first, and its
// cursor continues in that order to the oldest, each payment once.
func TestNewestFirst(t *testing.T) {
	j := journal(t, coinop.StateSettled, coinop.StateSettled, coinop.StateFailed, coinop.StateSettled, coinop.StateSettling)
	h := admin.Handler(admin.Config{Journal: j})
	var got []string
	cursor := ""
	for range 5 {
		var page struct {
			Payments []struct{ ID string }
			Next     string
		}
		code, _, text := body(t, h, "/payments?order=newest&limit=2&cursor="+cursor, "")
		if err := json.Unmarshal([]byte(text), &page); code != 200 || err != nil {
			t.Fatalf("%d %s", code, text)
		}
		for _, p := range page.Payments {
			got = append(got, p.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if want := "pay-04 pay-03 pay-02 pay-01 pay-00"; strings.Join(got, " ") != want {
		t.Errorf("newest first: %v, want %s", got, want)
	}
	for _, q := range []string{"order=desc", "order=", "order=NEWEST"} {
		code, hdr, text := body(t, h, "/payments?"+q, "")
		if want := 200; q == "order=" {
			if code != want {
				t.Errorf("%s: %d", q, code)
			}
			continue
		}
		if code != http.StatusBadRequest || hdr.Get("Content-Type") != "application/problem+json" || !strings.Contains(text, "bad_query") {
			t.Errorf("%s: %d %s %s", q, code, hdr.Get("Content-Type"), text)
		}
	}
}

// TestNetworks lists the configured networks, assets and explorers, and
// an empty list when none is configured.
func TestNetworks(t *testing.T) {
	h := admin.Handler(admin.Config{Networks: []admin.Network{{ID: "eip155:8453", Name: "base", Explorer: "https://basescan.org/tx/{tx}",
		Assets: []admin.Asset{{Symbol: "USDC", Address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", Decimals: 6}}}, {ID: "eip155:1"}}})
	code, _, text := body(t, h, "/networks", "")
	want := `{"networks":[{"id":"eip155:8453","name":"base","explorer":"https://basescan.org/tx/{tx}","assets":[{"symbol":"USDC","address":"0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913","decimals":6}]},{"id":"eip155:1","assets":[]}]}`
	var a, b any
	json.Unmarshal([]byte(text), &a)
	json.Unmarshal([]byte(want), &b)
	if code != 200 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("/networks: %d %s\nwant %s", code, text, want)
	}
	_, _, text = body(t, admin.Handler(admin.Config{}), "/networks", "")
	if !strings.Contains(text, `"networks": []`) {
		t.Errorf("/networks with none: %s", text)
	}
}

// FuzzQuery sends any query string to the listings: the answer is a 200
// whose payments all match the filter the query states, or a 400 problem
// document naming a bad query or cursor; never a 500 or a panic.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{"", "state=settled", "route=GET+/a&order=newest&limit=1", "from=2026-12-01T10:00:03Z&to=2026-12-02T00:00:00Z",
		"cursor=!!", "limit=0", "order=up", "payer=0x0000000000000000000000000000000000000001&state=failed", "state=%ff", "by=day", "by=payer"} {
		f.Add(q)
	}
	j := journal(f, coinop.StateSettled, coinop.StateFailed, coinop.StateSettling, coinop.StateSettled, coinop.StateReleased)
	h := admin.Handler(admin.Config{Journal: j})
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return // not what a browser or curl sends
		}
		for _, path := range []string{"/payments", "/summary", "/revenue", "/payments.csv"} {
			req := httptest.NewRequest("GET", path, nil)
			req.URL.RawQuery = query
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusOK:
			case http.StatusBadRequest:
				if rec.Header().Get("Content-Type") != "application/problem+json" || !regexp.MustCompile(`"(bad_query|bad_cursor)"`).Match(rec.Body.Bytes()) {
					t.Fatalf("%s?%s: 400 %s %s", path, query, rec.Header().Get("Content-Type"), rec.Body)
				}
				continue
			default:
				t.Fatalf("%s?%s: %d %s", path, query, rec.Code, rec.Body)
			}
			if path != "/payments" {
				continue
			}
			var page struct {
				Payments []struct{ Route, State, Payer, Rail string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
				t.Fatalf("%s?%s: %v", path, query, err)
			}
			for _, p := range page.Payments {
				for k, v := range map[string]string{"route": p.Route, "state": p.State, "payer": p.Payer, "rail": p.Rail} {
					if want := q.Get(k); want != "" && want != v {
						t.Fatalf("%s?%s listed a payment with %s %q", path, query, k, v)
					}
				}
			}
		}
	})
}
