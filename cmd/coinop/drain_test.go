package main_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coinop/coinop/cli/clitest"
)

// TestSIGTERMDrains sends SIGTERM to `coinop serve` while a request is in
// flight: the gateway logs that it drains, lets the request finish with
// its response, logs the end of the drain with its counts, and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildCoinop(t)
	entered, release := make(chan struct{}), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished\n")
	}))
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "coinop.yaml")
	text := "listen: 127.0.0.1:0\nupstream: " + upstream.URL + "\nstore: journal.db\nroutes:\n  - match: GET /slow\n    free: true\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd, stdout, stderr, exited := startServe(t, bin, cfg)
	url := waitFor(t, stdout, regexp.MustCompile(`ready: serving \S+ on (http://\S+)`), exited)

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stderr, regexp.MustCompile(`msg="(draining)[^"]*" open_connections=1`), exited)
	close(release)
	if r := <-done; r.err != nil || r.status != 200 || r.body != "finished\n" {
		t.Fatalf("the request in flight: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("did not exit after the drain\n%s", stderr)
	}
	if !regexp.MustCompile(`msg=drained connections_served=1 still_open=0 took=\S+`).MatchString(stderr.String()) {
		t.Errorf("no drained line with counts:\n%s", stderr)
	}
}

// startServe starts `bin serve -c cfg`, killed when t ends; exited
// delivers its exit.
func startServe(t *testing.T, bin, cfg string) (cmd *exec.Cmd, stdout, stderr *clitest.Buffer, exited <-chan error) {
	t.Helper()
	cmd = exec.Command(bin, "serve", "-c", cfg)
	stdout, stderr = &clitest.Buffer{}, &clitest.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, stdout, stderr, done
}

// waitFor waits until out matches re and returns the first submatch; the
// process exiting first, or a minute passing, fails t.
func waitFor(t *testing.T, out *clitest.Buffer, re *regexp.Regexp, exited <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-exited:
			t.Fatalf("exited (%v) before %s\n%s", err, re, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute:\n%s", re, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVersion: the binary, built from this checkout, names the module, its
// version ("(devel)", or the pseudo-version the go command derives from the
// commit in a clone, "+dirty" when modified), the Go release and, when the go
// command stamped it (a clone; not a git worktree, whose .git is a file), the
// commit it was built from.
func TestVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "coinop")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	vcs := `  vcs           none recorded \(built without VCS stamping\)\n`
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && strings.Contains(string(out), "vcs.revision") {
		vcs = `  vcs\.revision  ` + regexp.QuoteMeta(strings.TrimSpace(string(head))) + `\n` +
			`  vcs\.time      \d{4}-\d\d-\d\dT\S+\n` +
			`  vcs\.modified  (true|false)\n`
	}
	version := `(\(devel\)|v\d+\.\d+\.\d+\S*)`
	if head, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil && strings.Contains(string(out), "vcs.revision") {
		// The pseudo-version names the commit it was built from.
		version = `(\(devel\)|v\d+\.\d+\.\d+(-\S+)?-` + regexp.QuoteMeta(strings.TrimSpace(string(head))) + `(\+dirty)?)`
	}
	want := regexp.MustCompile(`^coinop github\.com/coinop/coinop ` + version + `\n` + vcs + `  go            go1\.\S+\n$`)
	if !want.Match(out) {
		t.Fatalf("coinop version:\n%s\nwant %s", out, want)
	}
}
