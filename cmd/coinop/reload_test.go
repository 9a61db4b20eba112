package main_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
)

// TestSIGHUPReloads: a real SIGHUP to `coinop serve` applies the edited
// file's routes to the next request; a file with a mistake is refused with
// its file and line, and the running routes stay.
func TestSIGHUPReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildCoinop(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(upstream.Close)
	srv := upstream.URL
	dir := t.TempDir()
	cfg := filepath.Join(dir, "coinop.yaml")
	write := func(routes string) {
		t.Helper()
		text := "listen: 127.0.0.1:0\nupstream: " + srv + "\nstore: journal.db\nroutes:\n" + routes
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  - match: GET /a\n    free: true\n")
	cmd, stdout, stderr, exited := startServe(t, bin, cfg)
	url := waitFor(t, stdout, regexp.MustCompile(`ready: serving \S+ on (http://\S+)`), exited)
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status("/a") != 200 || status("/b") != http.StatusNotFound {
		t.Fatal("routes before the reload")
	}

	write("  - match: GET /a\n    free: true\n  - match: GET /b\n    free: true\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stderr, regexp.MustCompile(`msg="(reload applied)"`), exited)
	if status("/b") != 200 {
		t.Fatal("the added route is not served after the reload")
	}

	write("  - match: GET /a\n    free: maybe\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stderr, regexp.MustCompile(`msg="reload refused; the running configuration is kept" problems="?([^"]*coinop\.yaml:\d+)`), exited)
	if status("/a") != 200 || status("/b") != 200 {
		t.Fatal("a refused reload changed the routes")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr)
	}
}
