//go:build unix

package adversarial_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/gateway"
)

// readCorpus reads testdata/paths.txt: one request target per line.
func readCorpus(t *testing.T) []string {
	t.Helper()
	targets := clitest.Targets(t, "testdata/paths.txt")
	if len(targets) < 100 {
		t.Fatalf("testdata/paths.txt has %d targets, want at least 100", len(targets))
	}
	return targets
}

// tree is the document root every upstream serves: a free tree and a paid
// file whose content is unique to this run, so finding it anywhere means it
// leaked.
type tree struct {
	root   string
	secret string
}

func newTree(t *testing.T) tree {
	t.Helper()
	tr := tree{root: clitest.SharedDir(t), secret: "SECRET-" + rand.Text()}
	for name, content := range map[string]string{
		"static/a.txt":      "free file a\n",
		"static/b/c.txt":    "free file c\n",
		"files/secret.txt":  tr.secret + "\n",
		"files/public.txt":  "public file in the paid tree\n",
		"FILES/decoy.txt":   "case decoy\n",
		"static/...keep.md": "three dots\n",
	} {
		p := filepath.Join(tr.root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// upstream starts a real server over a document root and returns its URL.
type upstream struct {
	name  string
	start func(t *testing.T, root string) string
}

var upstreams = []upstream{
	{"go", startGo},
	{"python", startPython},
	{"nginx", startNginx},
	{"php", startPHP},
	{"apache", startApache},
}

func startGo(t *testing.T, root string) string {
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// startListening runs the command cmd(addr) makes, on a free port, retrying
// when another process took the port first.
func startListening(t *testing.T, cmd func(addr string) *exec.Cmd, logs ...string) string {
	t.Helper()
	for try := 0; ; try++ {
		addr := clitest.FreeAddr(t)
		err := clitest.StartProcess(t, cmd(addr), addr, logs...)
		if err == nil {
			return "http://" + addr
		}
		if !errors.Is(err, clitest.ErrAddrInUse) || try == 2 {
			t.Fatal(err)
		}
	}
}

func startPython(t *testing.T, root string) string {
	bin := clitest.Tool(t, "python3")
	return startListening(t, func(addr string) *exec.Cmd {
		host, port, _ := net.SplitHostPort(addr)
		return exec.Command(bin, "-m", "http.server", port, "--bind", host, "--directory", root)
	})
}

func startPHP(t *testing.T, root string) string {
	bin := clitest.Tool(t, "php")
	return startListening(t, func(addr string) *exec.Cmd {
		return exec.Command(bin, "-n", "-S", addr, "-t", root)
	})
}

func startNginx(t *testing.T, root string) string {
	bin := clitest.Tool(t, "nginx", "/usr/sbin/nginx")
	dir := clitest.SharedDir(t)
	return startListening(t, func(addr string) *exec.Cmd {
		conf := filepath.Join(dir, "nginx.conf")
		text := fmt.Sprintf(`worker_processes 1;
pid nginx.pid;
error_log error.log;
events { worker_connections 64; }
http {
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    default_type text/plain;
    access_log access.log;
    server {
        listen %s;
        root %s;
    }
}
`, addr, root)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off;")
	}, filepath.Join(dir, "error.log"))
}

// startApache runs Apache httpd with path info accepted on static files
// (AcceptPathInfo On): /files/secret.txt/x is the secret file to it.
func startApache(t *testing.T, root string) string {
	bin := clitest.Tool(t, "apache2", "/usr/sbin/apache2")
	dir := clitest.SharedDir(t)
	return startListening(t, func(addr string) *exec.Cmd {
		conf := filepath.Join(dir, "httpd.conf")
		const modules = "/usr/lib/apache2/modules/"
		text := fmt.Sprintf(`ServerName localhost
Listen %s
PidFile apache2.pid
DefaultRuntimeDir .
ErrorLog error.log
LogLevel warn
LoadModule mpm_event_module %[3]smod_mpm_event.so
LoadModule authz_core_module %[3]smod_authz_core.so
LoadModule mime_module %[3]smod_mime.so
LoadModule dir_module %[3]smod_dir.so
LoadModule autoindex_module %[3]smod_autoindex.so
User www-data
Group www-data
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 32
TypesConfig /etc/mime.types
AcceptPathInfo On
<Directory />
    Require all denied
</Directory>
DocumentRoot "%[2]s"
<Directory "%[2]s">
    Require all granted
    Options +Indexes
</Directory>
`, addr, root, modules)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return exec.Command(bin, "-d", dir, "-f", conf, "-DFOREGROUND")
	}, filepath.Join(dir, "error.log"))
}

// routing is one gateway configuration and, independently of the gateway's
// code, which decoded paths it prices.
type routing struct {
	name      string
	unmatched string
	routes    string
	priced    func(path string) bool
}

var routings = []routing{
	{
		name: "free static, priced files", unmatched: "deny",
		routes: "  - match: GET /static/\n    free: true\n  - match: /files/\n    price: 0.01 USDC\n",
		priced: func(p string) bool { return p == "/files" || strings.HasPrefix(p, "/files/") },
	},
	{
		name: "unmatched free, priced file", unmatched: "free",
		routes: "  - match: GET /files/secret.txt\n    price: 0.01 USDC\n",
		priced: func(p string) bool { return p == "/files/secret.txt" },
	},
	{
		// A free catch-all serves every method; the priced GET must not
		// leave the file free to POST, OPTIONS or PROPFIND, which file
		// servers answer with it.
		name: "free catch-all, priced file", unmatched: "deny",
		routes: "  - match: /\n    free: true\n  - match: GET /files/secret.txt\n    price: 0.01 USDC\n",
		priced: func(p string) bool { return p == "/files/secret.txt" },
	},
}

// startDevChain starts the embedded dev chain for one test.
func startDevChain(t *testing.T) *devchain.Chain {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev, err := devchain.Start(ctx, devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

// startGateway runs coinop's gateway in-process on the dev chain in front
// of upstream, and returns its host:port.
func startGateway(t *testing.T, dev *devchain.Chain, upstream string, rt routing) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `listen: 127.0.0.1:0
upstream: %s
store: %s
data_dir: %s
unmatched: %s
pay_to: "%s"
networks:
  - id: eip155:%d
    rpc: %s
    settlement_key_env: COINOP_SETTLEMENT_KEY
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"
routes:
%s`, upstream, filepath.Join(dir, "coinop.db"), dir, rt.unmatched, crypto.PubkeyToAddress(dev.Payee.PublicKey).Hex(),
		dev.ChainID, dev.RPCURL, dev.Token.Hex(), devchain.TokenName, devchain.TokenVersion, rt.routes))
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("%x", crypto.FromECDSA(dev.Settler))
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, gateway.Options{
		Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return key },
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("gateway: %v", err)
		}
		g.Close()
	})
	return ln.Addr().String()
}

// answer is a response to one raw request, or why there was none.
type answer = clitest.Answer

// send writes "GET target HTTP/1.1" verbatim on a fresh connection to addr:
// no client library gets to normalize the target.
func send(addr, target string) answer { return clitest.SendRaw(addr, "GET", target) }

// sendRaw writes "method target HTTP/1.1" and the header lines verbatim.
func sendRaw(addr, method, target string, header ...string) answer {
	return clitest.SendRaw(addr, method, target, header...)
}

// decodedPath is the path an upstream that decodes once acts on for a raw
// target: the path part (without an absolute form's scheme and authority,
// and without the query), percent-decoded.
func decodedPath(target string) (string, error) {
	p := target
	for _, scheme := range []string{"http://", "https://"} {
		if rest, ok := strings.CutPrefix(p, scheme); ok {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				p = rest[i:]
			} else {
				p = "/"
			}
		}
	}
	p, _, _ = strings.Cut(p, "?")
	return url.PathUnescape(p)
}

// TestPathVariants sends every target of the corpus through the gateway to
// every upstream, under each routing, without paying. Each answer must be a
// refusal, or a non-200 that carries no paid content, or a 200 whose body is
// exactly the file its decoded path names, on a path the routing leaves free.
func TestPathVariants(t *testing.T) {
	targets := readCorpus(t)
	tr := newTree(t)
	dev := startDevChain(t)

	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			upURL := up.start(t, tr.root)
			for _, rt := range routings {
				t.Run(rt.name, func(t *testing.T) {
					gw := startGateway(t, dev, upURL, rt)
					// The setup works: free content is served, paid content asks for payment.
					if a := send(gw, "/static/a.txt"); a.Status != 200 || a.Body != "free file a\n" {
						t.Fatalf("free file: %d %q %v", a.Status, a.Body, a.Err)
					}
					if a := send(gw, "/files/secret.txt"); a.Status != http.StatusPaymentRequired {
						t.Fatalf("paid file: %d %q %v", a.Status, a.Body, a.Err)
					}
					counts := map[int]int{}
					for _, target := range targets {
						a := send(gw, target)
						counts[a.Status]++
						check(t, tr, rt, target, a)
					}
					t.Logf("%d targets; answers by status (0: connection closed): %v", len(targets), counts)
					// Other methods, and headers that ask for another method or
					// path, on the paid file and through the free tree.
					for _, m := range methodVariants {
						a := sendRaw(gw, m.method, m.target, m.header...)
						if m.method == "OPTIONS" && m.target == "*" {
							// net/http answers it itself, with no body; it never reaches a route.
							if a.Status != http.StatusOK || a.Body != "" {
								t.Errorf("OPTIONS *: %d %q", a.Status, a.Body)
							}
							continue
						}
						if a.Status == http.StatusOK && m.method != "GET" {
							t.Errorf("%s %s %q: 200 without payment", m.method, m.target, m.header)
						}
						check(t, tr, rt, m.target, a)
					}
				})
			}
		})
	}
}

// methodVariants are requests whose method, or a header, asks for
// something else than a GET of their target.
var methodVariants = []struct {
	method, target string
	header         []string
}{
	{"POST", "/files/secret.txt", []string{"Content-Length: 0"}},
	{"PUT", "/files/secret.txt", []string{"Content-Length: 0"}},
	{"DELETE", "/files/secret.txt", nil},
	{"PATCH", "/files/secret.txt", []string{"Content-Length: 0"}},
	{"OPTIONS", "/files/secret.txt", nil},
	{"TRACE", "/files/secret.txt", nil},
	{"PROPFIND", "/files/secret.txt", nil},
	{"get", "/files/secret.txt", nil},
	// Path info under another method: PHP's built-in server and Apache
	// (AcceptPathInfo) serve the file for POST, OPTIONS or PROPFIND too.
	{"POST", "/files/secret.txt/x", []string{"Content-Length: 0"}},
	{"OPTIONS", "/files/secret.txt/x", nil},
	{"PROPFIND", "/files/secret.txt/x", nil},
	{"POST", "/files/secret.txt/", []string{"Content-Length: 0"}},
	// CONNECT with a path (net/http reads it as a path, and ServeMux skips
	// its cleaning for CONNECT), and the asterisk form.
	{"CONNECT", "/files/secret.txt", nil},
	{"CONNECT", "/files/secret.txt/x", nil},
	{"CONNECT", "/static/../files/secret.txt", nil},
	{"OPTIONS", "*", nil},
	{"GET", "*", nil},
	// Framing games on a free GET that smuggle the priced request.
	{"GET", "/static/a.txt", []string{"Transfer-Encoding: chunked", "Content-Length: 0", "", "2b\r\nGET /files/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n"}},
	{"GET", "/static/a.txt", []string{"Expect: 100-continue", "Content-Length: 43", "", "GET /files/secret.txt HTTP/1.1\r\nHost: x\r\n"}},
	// A second Host, and a hop-by-hop list naming the gateway's headers.
	{"GET", "/files/secret.txt", []string{"Host: other"}},
	{"GET", "/static/a.txt", []string{"Connection: X-Forwarded-For, X-Coinop-Payer, Host"}},
	{"POST", "/files/secret.txt", []string{"X-HTTP-Method-Override: GET", "Content-Length: 0"}},
	{"GET", "/static/a.txt", []string{"X-HTTP-Method-Override: GET"}},
	{"GET", "/static/a.txt", []string{"X-Original-URL: /files/secret.txt"}},
	{"GET", "/static/a.txt", []string{"X-Rewrite-URL: /files/secret.txt"}},
	{"GET", "/files/secret.txt", []string{"X-Original-URL: /static/a.txt"}},
	{"GET", "/static/a.txt", []string{"Content-Length: 43", "", "GET /files/secret.txt HTTP/1.1\r\nHost: x\r\n"}},
}

// check states the property for one answer.
func check(t *testing.T, tr tree, rt routing, target string, a answer) {
	t.Helper()
	for k, vs := range a.Header {
		for _, v := range vs {
			if strings.Contains(v, tr.secret) {
				t.Errorf("%q: the paid content is in header %s of a %d", target, k, a.Status)
			}
		}
	}
	if strings.Contains(a.Body, tr.secret) {
		t.Errorf("%q: the paid content was served unpaid with %d", target, a.Status)
		return
	}
	if a.Status != http.StatusOK {
		return // refused, redirected or not found, and nothing paid leaked
	}
	p, err := decodedPath(target)
	if err != nil {
		t.Errorf("%q: 200 for a target that does not decode", target)
		return
	}
	if rt.priced(p) {
		t.Errorf("%q: 200 without payment for the priced path %q", target, p)
		return
	}
	fi, err := os.Stat(filepath.Join(tr.root, filepath.FromSlash(p)))
	switch {
	case err != nil:
		t.Errorf("%q: 200 for %q, which names no file (%v):\n%s", target, p, err, a.Body)
	case fi.IsDir(): // a listing; it holds names, and no content was in it
	default:
		want, err := os.ReadFile(filepath.Join(tr.root, filepath.FromSlash(p)))
		if err != nil || a.Body != string(want) {
			t.Errorf("%q: 200 with %q, want the content of %q: %q", target, a.Body, p, want)
		}
	}
}
