package gateway_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

// serveLimited serves a gateway with free routes to upstream, under
// limits (a YAML block), on a loopback listener, and returns its address.
func serveLimited(t *testing.T, upstream, limits string) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
data_dir: %s
routes:
  - match: /
    free: true
limits:
%s`, upstream, filepath.Join(dir, "coinop.db"), dir, limits))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(t.Context(), cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
		g.Close()
	})
	return ln.Addr().String()
}

// dial opens a connection to addr whose reads and writes give up after a
// bound that only a broken gateway reaches.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// answer reads one response from c and its problem reason, if any.
func answer(t *testing.T, br *bufio.Reader) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var prob struct{ Reason string }
	json.NewDecoder(resp.Body).Decode(&prob)
	return resp.StatusCode, prob.Reason
}

// closedByPeer waits until the gateway closes c and fails if c's own
// deadline came first.
func closedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the gateway kept the connection open")
	}
}

func echoUpstream(t *testing.T) string {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "read %d bytes\n", n)
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// A client that trickles its headers is disconnected after
// read_header_timeout.
func TestSlowHeadersAreCut(t *testing.T) {
	addr := serveLimited(t, echoUpstream(t), "  read_header_timeout: 1s\n")
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	closedByPeer(t, c)
}

// Bodies beyond max_body_bytes get 413, announced or not; a body that does
// not arrive within body_timeout gets 408; a body within bounds goes through.
func TestRequestBodyBounds(t *testing.T) {
	addr := serveLimited(t, echoUpstream(t), "  body_timeout: 1s\n  max_body_bytes: 1024\n")
	big := strings.Repeat("x", 4096)
	cases := []struct {
		name, request string
		status        int
		reason        string
	}{
		{"within bounds", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", 200, ""},
		{"announced too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n" + big, 413, "body_too_large"},
		{"chunked too large", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + big + "\r\n0\r\n\r\n", 413, "body_too_large"},
		{"too slow", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b", 408, "body_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			status, reason := answer(t, bufio.NewReader(c))
			if status != tc.status || reason != tc.reason {
				t.Fatalf("got %d %q, want %d %q", status, reason, tc.status, tc.reason)
			}
		})
	}
}

// With max_connections open, one more connection is answered 503 and
// closed; once one closes, the next is served.
func TestConnectionLimit(t *testing.T) {
	addr := serveLimited(t, echoUpstream(t), "  max_connections: 2\n")
	get := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	var held []*bufio.Reader
	var conns []net.Conn
	for range 2 {
		c := dial(t, addr)
		io.WriteString(c, get)
		br := bufio.NewReader(c)
		if status, _ := answer(t, br); status != 200 {
			t.Fatalf("within the limit: %d", status)
		}
		held, conns = append(held, br), append(conns, c)
	}
	over := dial(t, addr)
	io.WriteString(over, get)
	if status, reason := answer(t, bufio.NewReader(over)); status != 503 || reason != "too_many_connections" {
		t.Fatalf("beyond the limit: %d %q", status, reason)
	}
	closedByPeer(t, over)

	// The gateway closes a connection that asks for it, and its slot is
	// free by the time the client sees the end.
	io.WriteString(conns[0], "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if status, _ := answer(t, held[0]); status != 200 {
		t.Fatalf("closing request: %d", status)
	}
	closedByPeer(t, conns[0])
	next := dial(t, addr)
	io.WriteString(next, get)
	if status, _ := answer(t, bufio.NewReader(next)); status != 200 {
		t.Fatalf("after a slot was freed: %d", status)
	}
}

// An upstream that sends no response headers within the route's
// upstream_timeout gets the client a 504; on a priced route the payment is
// released and nothing moves on chain.
func TestUpstreamTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, chain := startChain(t, ctx)
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the gateway gives up and closes the connection
	}))
	defer stalled.Close()
	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	cfg := devConfig(t, dev, stalled.URL, "rpc: "+dev.RPCURL+"\n    settlement_key_env: SETTLER", `
  - match: GET /paid
    price: 0.001 USDC
    upstream_timeout: 1s
  - match: GET /free
    free: true
`, "limits:\n  upstream_timeout: 1s\n")
	settler := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	g, gsrv := startGateway(t, ctx, cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return settler }})
	hc := payingClient(t, dev)
	for _, path := range []string{"/paid", "/free"} {
		resp, err := hc.Get(gsrv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var prob struct{ Reason string }
		json.NewDecoder(resp.Body).Decode(&prob)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout || prob.Reason != "upstream_timeout" {
			t.Errorf("%s: %d %q, want 504 upstream_timeout", path, resp.StatusCode, prob.Reason)
		}
	}
	released, err := g.Store().List(ctx, coinop.StateReleased, 0)
	if err != nil || len(released) != 1 {
		t.Fatalf("released payments: %v %v, want the one", released, err)
	}
	if all, _ := g.Store().List(ctx, "", 0); len(all) != 1 {
		t.Errorf("journal holds %d payments, want 1", len(all))
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Sign() != 0 {
		t.Fatalf("payee holds %v (%v), want nothing", got, err)
	}
}

// A header block beyond max_header_bytes (plus the 4 KiB net/http allows on
// top) is refused with 431 and never reaches the upstream.
func TestHeaderSizeBound(t *testing.T) {
	addr := serveLimited(t, echoUpstream(t), "  max_header_bytes: 1024\n")
	for _, c := range []struct {
		name   string
		size   int
		status int
	}{{"within", 512, 200}, {"beyond", 8 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		t.Run(c.name, func(t *testing.T) {
			conn := dial(t, addr)
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", c.size)+"\r\n\r\n")
			if status, _ := answer(t, bufio.NewReader(conn)); status != c.status {
				t.Fatalf("got %d, want %d", status, c.status)
			}
		})
	}
}
