package cli_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/x402"
)

// curlPeer is a loopback origin whose answers are byte-for-byte
// reproducible (a fixed Date, explicit lengths), so that two clients'
// outputs can be compared exactly.
func curlPeer(t *testing.T) string {
	t.Helper()
	const date = "Tue, 01 Dec 2026 12:00:00 GMT"
	write := func(w http.ResponseWriter, status int, ctype, body string) {
		h := w.Header()
		h.Set("Date", date)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, "text/plain; charset=utf-8", "hello\n")
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		write(w, 404, "text/plain; charset=utf-8", "no such thing\n")
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		write(w, 503, "text/plain; charset=utf-8", "try later\n")
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/ok")
		write(w, http.StatusFound, "", "")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		write(w, 200, "text/plain", r.Method+" ctype="+r.Header.Get("Content-Type")+" accept="+r.Header.Get("Accept")+
			" x="+r.Header.Get("X-Test")+" body="+string(b)+"\n")
	})
	// priced answers a 402 offering amount atomic units, described as price
	// in the problem body.
	priced := func(path, amount, price string) {
		terms, err := x402.EncodeHeader(x402.PaymentRequired{X402Version: 2, Accepts: []x402.PaymentRequirements{{
			Scheme: "exact", Network: "eip155:1337", Amount: amount, Asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
			PayTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", MaxTimeoutSeconds: 60,
		}}})
		if err != nil {
			t.Fatal(err)
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(x402.HeaderPaymentRequired, terms)
			write(w, http.StatusPaymentRequired, "application/problem+json", `{"status":402,"price":"`+price+`"}`+"\n")
		})
	}
	priced("/priced", "1000", "0.001 USDC")
	// 1 USDC in atomic units, described as if the token had 18 decimals.
	priced("/liar", "1000000", "0.000000000001 USDC")
	mux.HandleFunc("/other402", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusPaymentRequired, "text/plain", "pay us somehow\n")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// silentPeer accepts connections and never answers.
func silentPeer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// closedPort is a loopback URL nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	return "http://" + clitest.FreeAddr(t)
}

type curlRun struct {
	code   int
	stdout string
	stderr string
}

func runRealCurl(t *testing.T, curl string, args []string) curlRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, args...)
	// No ~/.curlrc and no proxy: the command line alone decides.
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("curl: %v", err)
	}
	return curlRun{code, out.String(), errOut.String()}
}

func runCoinopCurl(t *testing.T, args []string) curlRun {
	t.Helper()
	var out, errOut bytes.Buffer
	// An empty data dir and environment: no wallet anywhere.
	full := append([]string{"curl", "--data-dir", t.TempDir()}, args...)
	code := cli.Main(context.Background(), full, cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
	return curlRun{code, out.String(), errOut.String()}
}

// TestCurlMatchesRealCurl runs the same command lines through Debian's
// curl and coinop curl and wants the same exit code and the same stdout.
func TestCurlMatchesRealCurl(t *testing.T) {
	curl := clitest.Tool(t, "curl", "/usr/bin/curl")
	peer, silent, closed := curlPeer(t), silentPeer(t), closedPort(t)
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"200", []string{peer + "/ok"}, 0},
		{"404 without -f is written, exit 0", []string{peer + "/missing"}, 0},
		{"503 without -f is written, exit 0", []string{peer + "/broken"}, 0},
		{"404 with -f", []string{"-f", peer + "/missing"}, 22},
		{"404 with --fail -s", []string{"--fail", "-s", peer + "/missing"}, 22},
		{"200 with -f", []string{"-f", peer + "/ok"}, 0},
		{"-i", []string{"-i", peer + "/ok"}, 0},
		{"-i on a 404", []string{"-i", peer + "/missing"}, 0},
		{"-I", []string{"-I", peer + "/ok"}, 0},
		{"--head", []string{"--head", peer + "/missing"}, 0},
		{"-w http_code", []string{"-s", "-o", "/dev/null", "-w", "%{http_code}", peer + "/missing"}, 0},
		{"-w several", []string{"-s", "-w", `\n%{http_code} %{size_download} %{url_effective} %{content_type}\n`, peer + "/ok"}, 0},
		{"-w percent and unknown variable", []string{"-s", "-w", `%%%{nonesuch}|%{response_code}`, peer + "/ok"}, 0},
		{"redirect without -L", []string{peer + "/redirect"}, 0},
		{"-L", []string{"-L", peer + "/redirect"}, 0},
		{"-L -i writes each head", []string{"-L", "-i", peer + "/redirect"}, 0},
		{"-L -w url_effective", []string{"-sL", "-w", `%{url_effective} %{num_redirects}`, peer + "/redirect"}, 0},
		{"--json", []string{"--json", `{"a":1}`, peer + "/echo"}, 0},
		{"-d twice", []string{"-d", "a=1", "-d", "b=2", peer + "/echo"}, 0},
		{"-X and -H", []string{"-X", "PUT", "-H", "X-Test: yes", peer + "/echo"}, 0},
		{"-XDELETE attached", []string{"-XDELETE", peer + "/echo"}, 0},
		{"flags after the URL", []string{peer + "/echo", "-H", "X-Test: after"}, 0},
		{"-H removes a default header", []string{"-H", "Accept:", peer + "/echo"}, 0},
		{"-v writes stdout as without it", []string{"-v", peer + "/ok"}, 0},
		{"-I on a 402 shows its terms and pays nothing", []string{"-I", peer + "/priced"}, 0},
		{"a 402 without x402 terms is written", []string{"-i", peer + "/other402"}, 0},
		{"a 402 without x402 terms with -f", []string{"-f", peer + "/other402"}, 22},
		{"connection refused", []string{closed + "/"}, 7},
		{"connection refused -w", []string{"-s", "-w", "%{http_code}", closed + "/x"}, 7},
		{"host that resolves nowhere", []string{"http://nothing.invalid/"}, 6},
		{"timeout", []string{"-m", "0.5", silent + "/"}, 28},
		{"--max-time with -w", []string{"-s", "--max-time", "0.3", "-w", "%{http_code}", silent + "/"}, 28},
		{"-m 5s is not a number", []string{"-m", "5s", peer + "/ok"}, 2},
		{"-m negative", []string{"-m", "-1", peer + "/ok"}, 2},
		{"unknown option", []string{"--bogus", peer + "/ok"}, 2},
		{"malformed URL", []string{"http://[::1"}, 3},
		{"unsupported protocol", []string{"gopher2://x/"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := runRealCurl(t, curl, c.args)
			got := runCoinopCurl(t, c.args)
			if want.code != c.code {
				t.Fatalf("real curl exited %d, the table says %d (stderr %q)", want.code, c.code, want.stderr)
			}
			if got.code != want.code {
				t.Errorf("exit %d, curl's %d\nstderr: %s", got.code, want.code, got.stderr)
			}
			if got.stdout != want.stdout {
				t.Errorf("stdout differs\ncoinop: %q\ncurl:   %q", got.stdout, want.stdout)
			}
		})
	}
}

// TestCurlWriteOutTime: %{time_total} is seconds with microseconds, as
// curl writes it.
func TestCurlWriteOutTime(t *testing.T) {
	peer := curlPeer(t)
	got := runCoinopCurl(t, []string{"-s", "-o", "/dev/null", "-w", "%{time_total}", peer + "/ok"})
	s, err := strconv.ParseFloat(got.stdout, 64)
	if got.code != 0 || err != nil || s < 0 || len(got.stdout) < len("0.000000") || got.stdout[len(got.stdout)-7] != '.' {
		t.Fatalf("exit %d, time_total %q: %v", got.code, got.stdout, err)
	}
}

// TestCurlOutputFile: -o writes the body to the file and nothing to stdout;
// with -f a failed status leaves no file, as curl does.
func TestCurlOutputFile(t *testing.T) {
	peer := curlPeer(t)
	dir := t.TempDir()
	cases := []struct {
		name, path string
		code       int
		want       string // the file's content; "" for no file
	}{
		{"200", "/ok", 0, "hello\n"},
		{"404 without -f is written", "/missing", 0, "no such thing\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			got := runCoinopCurl(t, []string{"-s", "-o", file, peer + c.path})
			b, _ := os.ReadFile(file)
			if got.code != c.code || got.stdout != "" || string(b) != c.want {
				t.Fatalf("exit %d stdout %q file %q", got.code, got.stdout, b)
			}
		})
	}
	t.Run("404 with -f writes no file", func(t *testing.T) {
		file := filepath.Join(dir, "failed")
		got := runCoinopCurl(t, []string{"-f", "-s", "-o", file, peer + "/missing"})
		if _, err := os.Stat(file); got.code != 22 || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("exit %d, stat %v", got.code, err)
		}
	})
}

// TestCurlPolicyInWholeTokens: a refused offer is named in whole tokens of
// --decimals with the 402's symbol, and no wallet is read to refuse it. A
// server that describes its price with other decimals cannot make a large
// amount pass for a small one.
func TestCurlPolicyInWholeTokens(t *testing.T) {
	peer := curlPeer(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"above --max-amount", []string{"--max-amount", "0.0001", peer + "/priced"}, "0.001 USDC exceeds --max-amount 0.0001 USDC"},
		{"--max-amount 0", []string{"--max-amount", "0", peer + "/priced"}, "0.001 USDC exceeds --max-amount 0 USDC"},
		{"a price described with other decimals", []string{"--max-amount", "0.05", peer + "/liar"},
			"1 of token 0x036CbD53842c5426634e7929541eC2318f3dCF7e exceeds --max-amount 0.05 of token 0x036CbD53842c5426634e7929541eC2318f3dCF7e"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runCoinopCurl(t, c.args)
			if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, c.want) || strings.Contains(got.stderr, "wallet") {
				t.Fatalf("exit %d\nstdout %q\nstderr %s\nwant %q", got.code, got.stdout, got.stderr, c.want)
			}
		})
	}
	if got := runCoinopCurl(t, []string{"--max-amount", "1.5.0", peer + "/priced"}); got.code != 2 {
		t.Errorf("a malformed --max-amount: exit %d, want 2\n%s", got.code, got.stderr)
	}
}
