package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

// BenchmarkFreeRoute is one request through the gateway to a loopback
// upstream on a free route: route matching, the reverse proxy, upstream
// connection reuse and the copy of a 1 KiB body.
func BenchmarkFreeRoute(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	defer up.Close()
	dir := b.TempDir()
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(`listen: "127.0.0.1:0"
upstream: %q
store: %q
data_dir: %q
routes:
  - match: "GET /free"
    free: true
`, up.URL, filepath.Join(dir, "coinop.db"), dir)))
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	client := srv.Client()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get(srv.URL + "/free")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 1024 {
			b.Fatal(resp.Status, n)
		}
	}
}

// BenchmarkAuthFree is one forward-auth check of a free route, as nginx's
// auth_request sends it on a keep-alive connection: the original request
// taken from the headers, its target decided, its route matched, 200.
func BenchmarkAuthFree(b *testing.B) {
	dir := b.TempDir()
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(`store: %q
data_dir: %q
routes:
  - match: "GET /free"
    free: true
auth:
  listen: "127.0.0.1:0"
`, filepath.Join(dir, "coinop.db"), dir)))
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Auth())
	defer srv.Close()
	client := srv.Client()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/.coinop/check", nil)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-URI", "/free?q=1")
	req.Header.Set("X-Original-Host", "shop.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Coinop-Refusal", "keep")
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}
