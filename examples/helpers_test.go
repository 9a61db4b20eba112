//go:build unix

package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/x402"
)

// tool finds an installed program, or skips (fails under COINOP_CI=1).
func tool(t *testing.T, name string, fallbacks ...string) string {
	t.Helper()
	return clitest.Tool(t, name, fallbacks...)
}

// dev is a running `coinop dev`: an embedded chain, a gateway and the demo
// upstream.
type dev struct {
	data    string // --data dir: dev/payer.key, dev/coinop.yaml, dev/chain.json
	gateway string // http://127.0.0.1:port
	state   struct{ RPC, Network, Token, Payer, Payee string }
	cfg     *config.Config // the gateway's generated config
	chain   *evm.Chain
}

// runMain runs a long-running coinop command in-process until the test
// ends, and returns its first ready-line match.
func runMain(t *testing.T, ready *regexp.Regexp, args ...string) string {
	t.Helper()
	return clitest.Start(t, ready, args...)
}

// startDev runs `coinop dev` in-process on free loopback ports.
func startDev(t *testing.T) *dev {
	t.Helper()
	d := &dev{data: t.TempDir()}
	d.gateway = runMain(t, regexp.MustCompile(`ready: gateway (http://\S+)`),
		"dev", "--listen", "127.0.0.1:0", "--rpc-listen", "127.0.0.1:0", "--data", d.data)
	b, err := os.ReadFile(filepath.Join(d.data, "dev", "chain.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d.state); err != nil {
		t.Fatal(err)
	}
	if d.cfg, err = config.Load(filepath.Join(d.data, "dev", "coinop.yaml")); err != nil {
		t.Fatal(err)
	}
	client, err := ethclient.Dial(d.state.RPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	id, err := client.ChainID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.chain, err = evm.NewChain(evm.ChainConfig{ChainID: id.Uint64(), Backend: client}); err != nil {
		t.Fatal(err)
	}
	return d
}

// balance is who's balance of the dev token, in atomic units.
func (d *dev) balance(t *testing.T, who string) *big.Int {
	t.Helper()
	b, err := d.chain.BalanceOf(context.Background(), common.HexToAddress(d.state.Token), common.HexToAddress(who))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// payeeGain runs f and returns how much the dev payee's balance rose.
func (d *dev) payeeGain(t *testing.T, f func()) int64 {
	t.Helper()
	before := d.balance(t, d.state.Payee)
	f()
	return new(big.Int).Sub(d.balance(t, d.state.Payee), before).Int64()
}

// coinop runs a short coinop command in-process.
func coinop(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = cli.Main(ctx, args, cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")})
	return code, out.String(), errOut.String()
}

// serve runs `coinop serve -c path` in-process and returns its URL.
func serve(t *testing.T, path string) string {
	t.Helper()
	return runMain(t, regexp.MustCompile(`coinop ready: serving \S+ on (http://\S+)`), "serve", "-c", path)
}

var placeholder = regexp.MustCompile(`\{\{[A-Z0-9_]+\}\}`)

// fill reads the example template at path and replaces its {{NAME}}
// placeholders with vars; every placeholder must get a value.
func fill(t *testing.T, path string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	if left := placeholder.FindAllString(s, -1); left != nil {
		t.Fatalf("%s: no value for %v", path, left)
	}
	return s
}

// sharedDir makes a directory the web servers' workers can read.
func sharedDir(t *testing.T) string {
	t.Helper()
	return clitest.SharedDir(t)
}

// copyTree copies the directory src into dst, world-readable.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if e.IsDir() {
			if err := os.MkdirAll(to, 0o755); err != nil {
				return err
			}
			return os.Chmod(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return clitest.FreeAddr(t)
}

// startProcess starts cmd and waits until it listens on addr (see
// clitest.StartProcess).
func startProcess(t *testing.T, cmd *exec.Cmd, addr string, logs ...string) error {
	t.Helper()
	return clitest.StartProcess(t, cmd, addr, logs...)
}

// webServer is nginx or Apache httpd, started from an example template.
type webServer struct {
	name  string
	start func(t *testing.T, template string, vars map[string]string) (url, dir string)
}

var webServers = []webServer{{"nginx", startNginx}, {"apache", startApache}}

// startNginx runs the nginx configuration template (relative to examples/)
// with vars and a free {{LISTEN}} address, in a fresh prefix directory.
func startNginx(t *testing.T, template string, vars map[string]string) (url, dir string) {
	t.Helper()
	bin := tool(t, "nginx", "/usr/sbin/nginx")
	for try := 0; ; try++ {
		dir = sharedDir(t)
		addr := freeAddr(t)
		conf := filepath.Join(dir, filepath.Base(template))
		if err := os.WriteFile(conf, []byte(fill(t, template, with(vars, "LISTEN", addr))), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off;")
		err := startProcess(t, cmd, addr, filepath.Join(dir, "error.log"))
		if err == nil {
			return "http://" + addr, dir
		}
		if try == 2 {
			t.Fatalf("nginx: %v", err)
		}
	}
}

// startApache runs the Apache httpd configuration template (relative to
// examples/) with vars and a free {{LISTEN}} address, with a fresh server
// root. /usr/sbin/apache2 is started directly: apache2ctl would read
// Debian's /etc/apache2/envvars, which this self-contained config needs not.
func startApache(t *testing.T, template string, vars map[string]string) (url, dir string) {
	t.Helper()
	bin := tool(t, "apache2", "/usr/sbin/apache2")
	for try := 0; ; try++ {
		dir = sharedDir(t)
		addr := freeAddr(t)
		conf := filepath.Join(dir, filepath.Base(template))
		if err := os.WriteFile(conf, []byte(fill(t, template, with(vars, "LISTEN", addr))), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-d", dir, "-f", conf, "-DFOREGROUND")
		err := startProcess(t, cmd, addr, filepath.Join(dir, "error.log"))
		if err == nil {
			return "http://" + addr, dir
		}
		if try == 2 {
			t.Fatalf("apache: %v", err)
		}
	}
}

// with returns a copy of vars with k set to v.
func with(vars map[string]string, k, v string) map[string]string {
	m := map[string]string{k: v}
	for k, v := range vars {
		m[k] = v
	}
	return m
}

// get sends one GET with optional header pairs ("Name", "value", ...) and
// an optional Host, and returns the response with its body read.
func get(t *testing.T, url, host string, header ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// curlPays runs `coinop curl -i url` and wants a 200 whose output holds
// want, a successful PAYMENT-RESPONSE with its transaction, and the payee
// paid exactly price; it returns the output.
func (d *dev) curlPays(t *testing.T, url, want string, price int64) string {
	t.Helper()
	var out, errOut string
	gain := d.payeeGain(t, func() {
		var code int
		code, out, errOut = coinop(t, "curl", "-i", url, "--data-dir", d.data)
		if code != 0 {
			t.Fatalf("coinop curl exit %d\n%s\n%s", code, out, errOut)
		}
	})
	if !strings.Contains(out, " 200 OK") || !strings.Contains(out, want) {
		t.Fatalf("output:\n%s", out)
	}
	m := regexp.MustCompile(`(?im)^Payment-Response: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no PAYMENT-RESPONSE:\n%s", out)
	}
	var sr x402.SettleResponse
	if err := x402.DecodeHeader(m[1], &sr); err != nil || !sr.Success || len(sr.Transaction) != 66 {
		t.Fatalf("PAYMENT-RESPONSE %+v %v", sr, err)
	}
	if gain != price {
		t.Errorf("payee gained %d, want the price, %d", gain, price)
	}
	return out
}

// signedTwice signs one payment for url with `coinop sign` and sends it
// twice with plain curl: 200, then 402 (a replay), the payee paid price once.
func (d *dev) signedTwice(t *testing.T, url string, price int64) {
	t.Helper()
	curl := tool(t, "curl")
	gain := d.payeeGain(t, func() {
		code, sig, errOut := coinop(t, "sign", url, "--data", d.data)
		if code != 0 {
			t.Fatalf("coinop sign exit %d: %s", code, errOut)
		}
		header := x402.HeaderPaymentSignature + ": " + strings.TrimSpace(sig)
		for i, want := range []string{"200", "402"} { // the second is a replay
			out, err := exec.Command(curl, "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}", "-H", header, url).Output()
			if err != nil {
				t.Fatalf("curl: %v", err)
			}
			if string(out) != want {
				t.Fatalf("request %d with the signed header: %s, want %s", i+1, out, want)
			}
		}
	})
	if gain != price {
		t.Errorf("payee gained %d for one signature sent twice, want %d", gain, price)
	}
}
