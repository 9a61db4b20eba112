package freetier_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/freetier"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/postgres"
	"github.com/coinop/coinop/store/postgres/pgtest"
	"github.com/coinop/coinop/store/sqlite"
)

// noRail offers a price and takes no credential: what a free tier stands
// in front of.
type noRail struct{}

func (noRail) Name() string                                  { return "none" }
func (noRail) Headers() coinop.Headers                       { return coinop.Headers{} }
func (noRail) Verify(context.Context, *coinop.Payment) error { return nil }
func (noRail) Challenge(_ context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	c.Offers = append(c.Offers, coinop.Offer{Rail: "none", Amount: ch.Price.Amount.String()})
	return nil
}
func (noRail) Inspect(*http.Request, coinop.Charge) (*coinop.Payment, error) { return nil, nil }
func (noRail) Settle(context.Context, *coinop.Payment, coinop.Recorder) (*coinop.Receipt, error) {
	return nil, coinop.Errorf(coinop.KindSettleFailed, "no", "no")
}

type journal interface {
	freetier.Store
	paywall.Journal
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// engine serves "goods" on /api/ behind a free tier of n per minute.
func engine(t *testing.T, j journal, n int64, now func() time.Time) *httptest.Server {
	t.Helper()
	c, err := freetier.Open(t.Context(), j, now)
	if err != nil {
		t.Fatal(err)
	}
	tier := &freetier.Tier{Name: "/api/", Requests: n, Window: time.Minute, C: c,
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	pw, err := paywall.New(paywall.Config{Journal: j, Logger: slog.New(slog.DiscardHandler), Routes: []paywall.Route{{
		Pattern: "/api/", Allowance: tier, Accept: []paywall.Accept{{Rail: noRail{}, Price: coinop.Price{Amount: big.NewInt(1)}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "goods") })))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, client string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/api/x", nil)
	req.Header.Set("X-Forwarded-For", client) // the engines sit behind a trusted proxy (loopback)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// checkTier hits the tier of n per minute through urls in turn: n served
// with the remaining count falling, then 402 with r=0, every answer with
// the policy; another client has its own n; a new window serves n again.
func checkTier(t *testing.T, urls []string, n int, clk *clock) {
	t.Helper()
	policy := fmt.Sprintf(`"/api/";q=%d;w=60`, n)
	for i := range n + 2 {
		status, h := get(t, urls[i%len(urls)], "198.51.100.7")
		want, left := 200, n-i-1
		if i >= n {
			want, left = 402, 0
		}
		if status != want || h.Get("RateLimit-Policy") != policy || h.Get("RateLimit") != fmt.Sprintf(`"/api/";r=%d;t=60`, left) {
			t.Fatalf("request %d: %d %q %q; want %d, %d left", i+1, status, h.Get("RateLimit-Policy"), h.Get("RateLimit"), want, left)
		}
	}
	if status, _ := get(t, urls[0], "198.51.100.8"); status != 200 {
		t.Errorf("another client: %d, want its own free tier", status)
	}
	clk.add(45 * time.Second)
	if _, h := get(t, urls[0], "198.51.100.7"); h.Get("RateLimit") != `"/api/";r=0;t=15` {
		t.Errorf("later in the window: %q", h.Get("RateLimit"))
	}
	clk.add(15 * time.Second)
	if status, h := get(t, urls[len(urls)-1], "198.51.100.7"); status != 200 || h.Get("RateLimit") != fmt.Sprintf(`"/api/";r=%d;t=60`, n-1) {
		t.Errorf("next window: %d %q", status, h.Get("RateLimit"))
	}
}

func TestFreeTierSQLite(t *testing.T) {
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	clk := &clock{t: time.Unix(1_800_000_000, 0)} // a window boundary
	checkTier(t, []string{engine(t, j, 5, clk.now).URL}, 5, clk)
}

// Two instances on one PostgreSQL share the counters, sequentially and
// under concurrency (exactly N of many concurrent requests are free).
func TestFreeTierTwoInstancesPostgres(t *testing.T) {
	dsn := pgSchema(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	a := engine(t, openPG(t, dsn), 5, clk.now)
	b := engine(t, openPG(t, dsn), 5, clk.now)
	checkTier(t, []string{a.URL, b.URL}, 5, clk)

	var free atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			if status, _ := get(t, []string{a.URL, b.URL}[i%2], "203.0.113.9"); status == 200 {
				free.Add(1)
			}
		})
	}
	wg.Wait()
	if free.Load() != 5 {
		t.Errorf("%d of 60 concurrent requests served free across two instances, want 5", free.Load())
	}
}

// ClientIP believes X-Forwarded-For only from trusted proxies, and only as
// far back as the chain of trusted proxies goes.
func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"198.51.100.1:5000", []string{"1.2.3.4"}, "198.51.100.1"},           // untrusted peer: its header is ignored
		{"10.0.0.1:5000", nil, "10.0.0.1"},                                   // trusted, no header
		{"10.0.0.1:5000", []string{"1.2.3.4"}, "1.2.3.4"},                    // one trusted hop
		{"10.0.0.1:5000", []string{"6.6.6.6, 1.2.3.4, 10.0.0.2"}, "1.2.3.4"}, // a spoofed first entry is never reached
		{"10.0.0.1:5000", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},         // several header lines
		{"10.0.0.1:5000", []string{"6.6.6.6, garbage"}, "10.0.0.1"},          // malformed: stop at the last trusted
		{"[::1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},               // IPv6
		{"[::ffff:10.0.0.1]:5000", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},    // v4-mapped
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := freetier.ClientIP(r, trusted); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// FuzzClientIP: whatever the header says, the client is the peer or an
// address the header names, never anything else, and an untrusted peer is
// always itself.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1", "1.2.3.4, 10.0.0.2")
	f.Add("198.51.100.1", "1.2.3.4")
	f.Add("10.0.0.1", ",,, ::1 , zz")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		a, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = netip.AddrPortFrom(a, 1).String()
		r.Header.Set("X-Forwarded-For", xff)
		got := freetier.ClientIP(r, trusted)
		if !trusted[0].Contains(a.Unmap()) {
			if got != a.Unmap().String() {
				t.Fatalf("untrusted peer %s reported as %s", a, got)
			}
			return
		}
		if got == a.Unmap().String() {
			return
		}
		g, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("client %q is not an address", got)
		}
		found := false
		for _, h := range splitComma(xff) {
			if h2, err := netip.ParseAddr(h); err == nil && h2.Unmap() == g {
				found = true
			}
		}
		if !found {
			t.Fatalf("client %s is neither the peer nor in %q", got, xff)
		}
	})
}

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

func pgSchema(t *testing.T) string {
	t.Helper()
	return pgtest.Schema(t, "freetier_test")
}

func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.OpenWith(t.Context(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
