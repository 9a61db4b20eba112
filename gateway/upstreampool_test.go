package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

// connCounter counts an upstream's connections: open now, the most open at
// once, and all accepted.
type connCounter struct {
	mu             sync.Mutex
	open, peak, in int
}

func (c *connCounter) state(_ net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s {
	case http.StateNew:
		c.open++
		c.in++
		c.peak = max(c.peak, c.open)
	case http.StateClosed, http.StateHijacked:
		c.open--
	}
}

func (c *connCounter) counts() (peak, accepted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak, c.in
}

// However many clients are connected, the gateway opens at most
// upstream_connections connections to an upstream and reuses them: 200
// concurrent requests to an upstream that takes 20 ms each are all served
// through 4 connections, counted where the upstream accepts them.
func TestUpstreamConnectionCap(t *testing.T) {
	var cc connCounter
	var busy, busiest atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := busy.Add(1)
		defer busy.Add(-1)
		for {
			if m := busiest.Load(); n <= m || busiest.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	up.Config.ConnState = cc.state
	up.Start()
	defer up.Close()
	const conns, clients = 4, 200
	addr := serveLimited(t, up.URL, fmt.Sprintf("  upstream_connections: %d\n  max_connections: %d\n", conns, clients+10))

	// Every client has its own connection to the gateway.
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			<-start
			path := fmt.Sprintf("/r%d", i)
			resp, err := hc.Get("http://" + addr + path)
			if err != nil {
				errs <- err
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(body) != "ok "+path {
				errs <- fmt.Errorf("%s: %d %q %v", path, resp.StatusCode, body, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	peak, accepted := cc.counts()
	if peak > conns || accepted > conns {
		t.Errorf("the upstream saw %d connections at once and %d in all, want at most %d", peak, accepted, conns)
	}
	// The bound was reached, so the requests beyond it waited for a
	// connection instead of opening one.
	if b := busiest.Load(); b != conns {
		t.Errorf("at most %d requests at the upstream at once, want %d", b, conns)
	}
}

// A route's upstream_connections gives it a pool of its own beside the
// default one of limits.upstream_connections.
func TestUpstreamConnectionCapPerRoute(t *testing.T) {
	var cc connCounter
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = cc.state
	up.Start()
	defer up.Close()
	cfg := freeConfig(t, up.URL, `
  - match: GET /slow
    free: true
    upstream_connections: 1
  - match: GET /
    free: true
`, "limits:\n  upstream_connections: 50\n")
	_, gsrv := startGateway(t, t.Context(), cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	get := func(path string, n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := hc.Get(gsrv.URL + path)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("%s: %d", path, resp.StatusCode)
				}
			})
		}
		wg.Wait()
	}
	get("/slow", 20)
	if _, accepted := cc.counts(); accepted != 1 {
		t.Errorf("/slow opened %d upstream connections, want its 1", accepted)
	}
	get("/other", 20)
	if _, accepted := cc.counts(); accepted < 3 {
		t.Errorf("20 concurrent requests on the default pool opened %d connections in all: they waited for the slow route's one", accepted)
	}
}

// freeConfig is a configuration with routes (a YAML list) to upstream and
// extra top-level YAML, without networks.
func freeConfig(t *testing.T, upstream, routes string, extra ...string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, "upstream: %s\nstore: %s/coinop.db\ndata_dir: %s\nroutes:%s\n%s", upstream, dir, dir, routes, strings.Join(extra, "")))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Small bodies are read whole before the answer goes out; larger ones and
// HEAD answers pass as before, byte for byte.
func TestProxiedBodies(t *testing.T) {
	sizes := []int{1, 1023, 1024, 1025, 4096, 16 << 10, 16<<10 + 1, 100 << 10}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/n/%d", &n)
		body := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		w.Header().Set("Content-Length", fmt.Sprint(n))
		w.Header().Set("X-Up", "kept")
		w.Write(body)
	}))
	defer up.Close()
	cfg := freeConfig(t, up.URL, "\n  - match: /\n    free: true\n")
	_, gsrv := startGateway(t, t.Context(), cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	hc := gsrv.Client()
	for range 2 { // the second round runs on reused buffers
		for _, n := range sizes {
			resp, err := hc.Get(fmt.Sprintf("%s/n/%d", gsrv.URL, n))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.ContentLength != int64(n) || resp.Header.Get("X-Up") != "kept" {
				t.Errorf("%d bytes: %d, %d bytes back (Content-Length %d, X-Up %q), equal %v, %v", n, resp.StatusCode, len(body), resp.ContentLength, resp.Header.Get("X-Up"), bytes.Equal(body, want), err)
			}
		}
	}
	resp, err := hc.Head(gsrv.URL + "/n/100")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 100 {
		t.Errorf("HEAD: %d, Content-Length %d, want 200 and 100", resp.StatusCode, resp.ContentLength)
	}
}

// truncatingUpstream answers every request with a 200 that declares a
// 100-byte body, sends 10 bytes of it and hangs up.
func truncatingUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n0123456789")
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// An upstream that breaks off a small body before its declared length
// failed: the payer gets 502 upstream_unreachable and pays nothing, rather than
// a truncated answer that was charged for.
func TestTruncatedBodyIsNotCharged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, chain := startChain(t, ctx)
	payee := crypto.PubkeyToAddress(dev.Payee.PublicKey)
	cfg := devConfig(t, dev, truncatingUpstream(t), "rpc: "+dev.RPCURL+"\n    settlement_key_env: SETTLER", `
  - match: GET /paid
    price: 0.001 USDC
`)
	settler := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	g, gsrv := startGateway(t, ctx, cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return settler }})
	resp, err := payingClient(t, dev).Get(gsrv.URL + "/paid")
	if err != nil {
		t.Fatal(err)
	}
	var prob struct{ Reason string }
	json.NewDecoder(resp.Body).Decode(&prob)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || prob.Reason != coinop.ReasonUpstreamFailed {
		t.Errorf("%d %q, want 502 %s", resp.StatusCode, prob.Reason, coinop.ReasonUpstreamFailed)
	}
	released, err := g.Store().List(ctx, coinop.StateReleased, 0)
	if err != nil || len(released) != 1 {
		t.Fatalf("released payments: %v %v, want the one", released, err)
	}
	if got, err := chain.BalanceOf(ctx, dev.Token, payee); err != nil || got.Sign() != 0 {
		t.Fatalf("payee holds %v (%v), want nothing", got, err)
	}
}
