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
