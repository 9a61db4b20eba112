package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

// lazyUpstream is a keep-alive HTTP/1.1 server that never reads request
// bodies, as many servers do for GET: whatever body a request carries is
// parsed as the next request on the connection. It records each request it
// parsed ("GET /path", with any method- or URL-override header).
type lazyUpstream struct {
	ln  net.Listener
	mu  sync.Mutex
	got []string
	wg  sync.WaitGroup
}

func startLazyUpstream(t *testing.T) *lazyUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &lazyUpstream{ln: ln}
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		u.wg.Wait()
	})
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				u.serve(c)
			}()
		}
	}()
	return u
}

func (u *lazyUpstream) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return
		}
		seen := f[0] + " " + f[1]
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if h == "\r\n" || h == "\n" {
				break
			}
			if k, v, ok := strings.Cut(h, ":"); ok && (strings.Contains(strings.ToLower(k), "method") || strings.HasSuffix(strings.ToLower(k), "-url")) {
				seen += " " + http.CanonicalHeaderKey(k) + "=" + strings.TrimSpace(v)
			}
		}
		u.mu.Lock()
		u.got = append(u.got, seen)
		u.mu.Unlock()
		body := "free content"
		if strings.HasPrefix(f[1], "/paid") {
			body = "PAID CONTENT"
		}
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
			return
		}
	}
}

func (u *lazyUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.got...)
}

// hygieneGateway runs a gateway in front of upstream with a free GET /free, a
// priced GET /paid, and unmatched requests free. Its network's node is never
// dialed: no payment is made.
func hygieneGateway(t *testing.T, upstream string) string {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `upstream: %s
store: %s
data_dir: %s
unmatched: free
pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
networks:
  - id: eip155:84532
    rpc: http://127.0.0.1:1
    settlement_key_env: KEY
    assets:
      - symbol: USDC
        address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        eip712_name: USDC
        eip712_version: "2"
routes:
  - match: GET /free
    free: true
  - match: GET /paid
    price: 0.01 USDC
`, upstream, filepath.Join(dir, "coinop.db"), dir))
	if err != nil {
		t.Fatal(err)
	}
	hexKey := fmt.Sprintf("%x", crypto.FromECDSA(key))
	g, err := gateway.New(context.Background(), cfg, gateway.Options{
		Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return hexKey },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rawRequest writes one raw request on a fresh connection to addr and reads
// the response.
func rawRequest(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGetBodyDoesNotReachUpstream smuggles a request for the priced route in
// the body of a free GET. An upstream that does not read GET bodies would
// answer it on the shared connection, and the next client's free request
// would get the paid response. The gateway refuses such requests, so the
// upstream never parses the smuggled one and nobody gets the paid content.
func TestGetBodyDoesNotReachUpstream(t *testing.T) {
	smuggled := "GET /paid HTTP/1.1\r\nHost: upstream\r\n\r\n"
	for _, tc := range []struct {
		name, request string
	}{
		{"GET with Content-Length", "GET /free HTTP/1.1\r\nHost: g\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
		{"GET chunked", "GET /free HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(smuggled)), 16) + "\r\n" + smuggled + "\r\n0\r\n\r\n"},
		{"HEAD with Content-Length", "HEAD /free HTTP/1.1\r\nHost: g\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
		{"unmatched GET with Content-Length", "GET /other HTTP/1.1\r\nHost: g\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startLazyUpstream(t)
			gw := hygieneGateway(t, "http://"+up.ln.Addr().String())
			// Warm the pool so both requests could share one upstream connection.
			if code, body := rawRequest(t, gw, "GET /free HTTP/1.1\r\nHost: g\r\n\r\n"); code != 200 || body != "free content" {
				t.Fatalf("free request: %d %q", code, body)
			}
			code, body := rawRequest(t, gw, tc.request)
			if code != http.StatusBadRequest || strings.Contains(body, "PAID") {
				t.Fatalf("request with a body: %d %q, want 400", code, body)
			}
			if !strings.Contains(body, `"body_not_allowed"`) && !strings.HasPrefix(tc.request, "HEAD") {
				t.Errorf("no body_not_allowed reason: %s", body)
			}
			for range 5 {
				if code, body := rawRequest(t, gw, "GET /free HTTP/1.1\r\nHost: g\r\n\r\n"); code != 200 || body != "free content" {
					t.Fatalf("next client's free request: %d %q", code, body)
				}
			}
			for _, r := range up.requests() {
				if r != "GET /free" {
					t.Errorf("upstream parsed %q; want only the free requests", r)
				}
			}
		})
	}
}

// TestOverridesNeverReachUpstream: on a priced route the method- and
// URL-override headers are refused, elsewhere removed before the upstream
// sees them.
func TestOverridesNeverReachUpstream(t *testing.T) {
	for _, tc := range []struct {
		name, request string
		status        int
	}{
		{"priced route", "GET /paid HTTP/1.1\r\nHost: g\r\nX-HTTP-Method-Override: POST\r\n\r\n", 400},
		{"free route", "GET /free HTTP/1.1\r\nHost: g\r\nX-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\n\r\n", 200},
		{"unmatched", "GET /other HTTP/1.1\r\nHost: g\r\nX-Method-Override: PUT\r\n\r\n", 200},
		{"URL override on a priced route", "GET /paid HTTP/1.1\r\nHost: g\r\nX-Rewrite-URL: /free\r\n\r\n", 400},
		{"URL override on a free route", "GET /free HTTP/1.1\r\nHost: g\r\nX-Original-URL: /paid\r\nX-Rewrite-URL: /paid\r\n\r\n", 200},
		{"priced path, other method", "POST /paid HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startLazyUpstream(t)
			gw := hygieneGateway(t, "http://"+up.ln.Addr().String())
			if code, body := rawRequest(t, gw, tc.request); code != tc.status || strings.Contains(body, "PAID") {
				t.Fatalf("%d %q, want %d", code, body, tc.status)
			}
			for _, r := range up.requests() {
				if strings.Contains(r, "=") || strings.HasPrefix(r, "POST") {
					t.Errorf("upstream got %q", r)
				}
			}
		})
	}
}

// TestUpstreamGetsCanonicalPath: the upstream receives the path the route
// was decided on, decoded once and encoded one way, whatever encoding the
// client chose.
func TestUpstreamGetsCanonicalPath(t *testing.T) {
	up := startLazyUpstream(t)
	gw := hygieneGateway(t, "http://"+up.ln.Addr().String())
	for _, tc := range []struct{ target, upstream string }{
		{"/fr%65e", "/free"},
		{"/%66%72%65%65", "/free"},
		{"/other/%41%7e", "/other/A~"},
		{"/other/a%20b", "/other/a%20b"},
		{"/other/é", "/other/%C3%A9"},
		{"/other/%c3%a9", "/other/%C3%A9"},
		{"/other/a%3Fb?q=%2F", "/other/a%3Fb?q=%2F"},
		{"/other/a%23b", "/other/a%23b"},
		{"/other/a%2Cb%3Dc", "/other/a,b=c"},
		{"http://elsewhere.example/other/x", "/other/x"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			before := len(up.requests())
			if code, body := rawRequest(t, gw, "GET "+tc.target+" HTTP/1.1\r\nHost: g\r\n\r\n"); code != 200 {
				t.Fatalf("%d %q", code, body)
			}
			got := up.requests()
			if len(got) != before+1 || got[before] != "GET "+tc.upstream {
				t.Fatalf("upstream got %q, want %q", got[before:], "GET "+tc.upstream)
			}
		})
	}
}

// TestTrailersCannotForgeHeaders sends a chunked request whose trailer
// carries the headers the gateway sets for the upstream (the payer) or keeps
// from it (the payment). The upstream must see no value of them: a trailer
// is a header that arrives late, and some servers merge trailers into
// headers. (httputil.ReverseProxy forwards a declared trailer's name, not
// the values the client sends after the body.)
func TestTrailersCannotForgeHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r.Trailer.Clone()
	}))
	t.Cleanup(up.Close)
	gw := hygieneGateway(t, up.URL)
	for _, tc := range []struct{ name, declared string }{
		{"declared", "Trailer: X-Coinop-Payer, X-Coinop-Payment, Payment-Signature, X-Payment\r\n"},
		{"undeclared", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "POST /other HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n" + tc.declared + "\r\n" +
				"1\r\nx\r\n0\r\nX-Coinop-Payer: 0x1111111111111111111111111111111111111111\r\nX-Coinop-Payment: forged\r\nPayment-Signature: e30=\r\nX-Payment: e30=\r\n\r\n"
			if code, body := rawRequest(t, gw, raw); code != http.StatusOK {
				t.Fatalf("%d %q", code, body)
			}
			tr := <-got
			for _, k := range []string{"X-Coinop-Payer", "X-Coinop-Payment", "Payment-Signature", "X-Payment"} {
				if v := tr.Get(k); v != "" {
					t.Errorf("the upstream got trailer %s: %q", k, v)
				}
			}
		})
	}
}
