package cli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/cli"
	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/evm/devchain"
)

// startupFixture is a dev chain and a directory to write configs and keys
// into, for start-up mistakes made one at a time.
type startupFixture struct {
	dev *devchain.Chain
	dir string
}

func newStartupFixture(t *testing.T) *startupFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := devchain.Start(ctx, devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	f := &startupFixture{dev: dev, dir: t.TempDir()}
	f.writeKey(t, "settler.key", dev.Settler, 0o600)
	return f
}

func (f *startupFixture) writeKey(t *testing.T, name string, k *ecdsa.PrivateKey, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(crypto.FromECDSA(k))), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// startupConfig are the settings of one config file; the zero fields take
// the dev chain's correct values.
type startupConfig struct {
	store, network, rpc, key, token, name, batch string
}

// write writes c as a config file and returns its path. The settlement key
// is on line 9, or 10 with a batch settler.
func (f *startupFixture) write(t *testing.T, c startupConfig) string {
	t.Helper()
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	batch := ""
	if c.batch != "" {
		batch = "\n    batch_settler: \"" + c.batch + "\""
	}
	text := fmt.Sprintf(`listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
store: %s
pay_to: "%s"
networks:
  - id: %s
    rpc: %s
    receipt_timeout: 5s%s
    %s
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: %s
        eip712_version: "%s"
routes:
  - match: GET /paid
    price: 0.001 USDC
`, or(c.store, filepath.Join(f.dir, "journal.db")), crypto.PubkeyToAddress(f.dev.Payee.PublicKey).Hex(),
		or(c.network, fmt.Sprintf("eip155:%d", f.dev.ChainID)), or(c.rpc, f.dev.RPCURL), batch,
		or(c.key, "settlement_key_file: "+filepath.Join(f.dir, "settler.key")),
		or(c.token, f.dev.Token.Hex()), or(c.name, `"`+devchain.TokenName+`"`), devchain.TokenVersion)
	path := filepath.Join(f.dir, "coinop.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCLI runs one command in-process and returns its exit code and output.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = cli.Main(ctx, args, cli.Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(""),
		Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errOut.String()
}

// TestStartupMistakes makes each start-up mistake once, through serve,
// audit and facilitator: each exits 1 with one line on stderr that says
// what is wrong (and where in the config, when a setting caused it), and no
// stack trace.
func TestStartupMistakes(t *testing.T) {
	f := newStartupFixture(t)
	eoa := crypto.PubkeyToAddress(f.dev.Payer.PublicKey).Hex()
	open := f.writeKey(t, "open.key", f.dev.Settler, 0o644)
	for _, c := range []struct {
		name string
		cfg  startupConfig
		cmd  string
		want string // a regexp the one line must match
	}{
		{"unset key variable", startupConfig{key: "settlement_key_env: COINOP_NOT_SET"}, "serve",
			`coinop\.yaml:9: networks\[0\]\.settlement_key_env: settlement key: environment variable COINOP_NOT_SET is empty$`},
		{"missing key file", startupConfig{key: "settlement_key_file: " + filepath.Join(f.dir, "nope.key")}, "serve",
			`coinop\.yaml:9: networks\[0\]\.settlement_key_file: settlement key: open .*nope\.key: no such file or directory$`},
		{"key file others may read", startupConfig{key: "settlement_key_file: " + open}, "serve",
			`coinop\.yaml:9: networks\[0\]\.settlement_key_file: settlement key: .*open\.key: the key file may be accessed by others \(mode 0644\); run chmod 600 `},
		{"unreachable postgres", startupConfig{store: "postgres://coinop:secret@127.0.0.1:1/coinop"}, "serve",
			`coinop\.yaml:3: store: postgres://127\.0\.0\.1:1/coinop: postgres: open: .*(refused|connect)`},
		{"store path under a file", startupConfig{store: "/dev/null/journal.db"}, "serve",
			`coinop\.yaml:3: store: /dev/null/journal\.db: sqlite: open: mkdir /dev/null: not a directory$`},
		{"wrong chain id", startupConfig{network: "eip155:8453"}, "serve",
			`coinop\.yaml:6: networks\[0\]\.id: eip155:8453 chain id: the node serves chain 1337, not 8453`},
		{"wrong EIP-712 name", startupConfig{name: "USDC"}, "serve",
			`coinop\.yaml:13: networks\[0\]\.assets\[0\]\.eip712_name: eip155:1337 USDC 0x[0-9a-fA-F]{40}: the token's DOMAIN_SEPARATOR\(\) is 0x[0-9a-f]{64}, not the hash of the configured EIP-712 domain \(name "USDC", version "2", chain 1337\)`},
		{"token address without code", startupConfig{token: eoa}, "serve",
			`coinop\.yaml:12: networks\[0\]\.assets\[0\]\.address: eip155:1337 USDC ` + eoa + `: no contract at this address on eip155:1337`},
		{"batch settler without code", startupConfig{batch: eoa}, "serve",
			`coinop\.yaml:9: networks\[0\]\.batch_settler: eip155:1337 batch settler ` + eoa + `: no contract at this address`},
		{"audit: unreachable postgres", startupConfig{store: "postgres://coinop:secret@127.0.0.1:1/coinop"}, "audit",
			`coinop audit: store postgres://127\.0\.0\.1:1/coinop: postgres: open: `},
		{"audit: store path under a file", startupConfig{store: "/dev/null/journal.db"}, "audit",
			`coinop audit: store /dev/null/journal\.db: sqlite: open: mkdir /dev/null: not a directory$`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := f.write(t, c.cfg)
			code, _, stderr := runCLI(t, nil, c.cmd, "-c", path)
			checkOneLine(t, code, stderr, c.want)
			if strings.Contains(stderr, "secret") {
				t.Errorf("the password reached stderr: %s", stderr)
			}
		})
	}

	t.Run("unreadable config", func(t *testing.T) {
		for _, cmd := range []string{"serve", "audit", "check"} {
			code, _, stderr := runCLI(t, nil, cmd, "-c", filepath.Join(f.dir, "missing.yaml"))
			checkOneLine(t, code, stderr, `coinop `+cmd+`: open .*missing\.yaml: no such file or directory$`)
		}
	})
	t.Run("config problem", func(t *testing.T) {
		path := filepath.Join(f.dir, "typo.yaml")
		os.WriteFile(path, []byte("upstream: http://127.0.0.1:9\nroutes:\n  - match: GET /x\n    free: true\n    pryce: 1 USDC\n"), 0o600)
		code, _, stderr := runCLI(t, nil, "serve", "-c", path)
		checkOneLine(t, code, stderr, `typo\.yaml:5: routes\[0\]: unknown field "pryce"; did you mean "price"\?$`)
	})
	t.Run("facilitator: missing key file", func(t *testing.T) {
		code, _, stderr := runCLI(t, nil, "facilitator", "--listen", "127.0.0.1:0", "--network", "eip155:1337="+f.dev.RPCURL,
			"--settlement-key-file", filepath.Join(f.dir, "nope.key"), "--store", filepath.Join(f.dir, "f.db"))
		checkOneLine(t, code, stderr, `coinop facilitator: settlement key: open .*nope\.key: no such file or directory$`)
	})
	t.Run("facilitator: wrong chain id", func(t *testing.T) {
		code, _, stderr := runCLI(t, nil, "facilitator", "--listen", "127.0.0.1:0", "--network", "eip155:8453="+f.dev.RPCURL,
			"--settlement-key-file", filepath.Join(f.dir, "settler.key"), "--store", filepath.Join(f.dir, "f.db"))
		checkOneLine(t, code, stderr, `coinop facilitator: --network eip155:8453=\S+: the node serves chain 1337, not 8453`)
	})
	t.Run("facilitator: store path under a file", func(t *testing.T) {
		code, _, stderr := runCLI(t, nil, "facilitator", "--listen", "127.0.0.1:0", "--network", "eip155:1337="+f.dev.RPCURL,
			"--settlement-key-file", filepath.Join(f.dir, "settler.key"), "--store", "/dev/null/f.db")
		checkOneLine(t, code, stderr, `coinop facilitator: store /dev/null/f\.db: sqlite: open: mkdir /dev/null: not a directory$`)
	})
}

// checkOneLine wants exit 1 and exactly one line on stderr matching want.
func checkOneLine(t *testing.T, code int, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if code != 1 || len(lines) != 1 || !regexp.MustCompile(want).MatchString(lines[0]) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line matching %s", code, stderr, want)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("a stack trace reached stderr:\n%s", stderr)
	}
}

// TestServeStartsWithNodeDown: an unreachable node is a warning at start,
// not a refusal; priced requests fail closed until it answers.
func TestServeStartsWithNodeDown(t *testing.T) {
	f := newStartupFixture(t)
	path := f.write(t, startupConfig{rpc: "http://127.0.0.1:1"})
	clitest.Start(t, regexp.MustCompile(`ready: serving \S+ on (http://\S+)`), "serve", "-c", path)
}

// TestCheck runs `coinop check` against the dev chain: a correct config
// passes every probe, each mistake fails with exit 1 and a line naming the
// setting, and a settlement key without gas is a warning only.
func TestCheck(t *testing.T) {
	f := newStartupFixture(t)
	eoa := crypto.PubkeyToAddress(f.dev.Payer.PublicKey).Hex()
	poor, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	poorKey := f.writeKey(t, "poor.key", poor, 0o600)
	for _, c := range []struct {
		name string
		cfg  startupConfig
		code int
		want []string // regexps, each matching one line of stdout
	}{
		{"correct", startupConfig{batch: f.dev.BatchSettler.Hex()}, 0, []string{
			`^ok +\S+coinop\.yaml: valid$`,
			`^ok +store \S+journal\.db: opens`,
			`^ok +eip155:1337 settlement key: loads: account ` + crypto.PubkeyToAddress(f.dev.Settler.PublicKey).Hex(),
			`^ok +eip155:1337 chain id: the node serves chain 1337$`,
			`^ok +eip155:1337 USDC ` + f.dev.Token.Hex() + `: EIP-712 domain "USD Coin" version "2" matches DOMAIN_SEPARATOR\(\)$`,
			`^ok +eip155:1337 batch settler ` + f.dev.BatchSettler.Hex() + `: contract of \d+ bytes$`,
			`^ok +eip155:1337 settlement key 0x[0-9a-fA-F]{40}: holds \d+ wei of gas$`,
		}},
		{"wrong chain id", startupConfig{network: "eip155:8453"}, 1, []string{
			`^FAIL +\S+coinop\.yaml:6: networks\[0\]\.id: eip155:8453 chain id: the node serves chain 1337, not 8453`,
		}},
		{"wrong EIP-712 name", startupConfig{name: "USDC"}, 1, []string{
			`^FAIL +\S+coinop\.yaml:13: networks\[0\]\.assets\[0\]\.eip712_name: eip155:1337 USDC 0x[0-9a-fA-F]{40}: the token's DOMAIN_SEPARATOR\(\) is 0x[0-9a-f]{64}, not the hash of the configured EIP-712 domain \(name "USDC"`,
		}},
		{"token address is an account", startupConfig{token: eoa}, 1, []string{
			`^FAIL +\S+coinop\.yaml:12: networks\[0\]\.assets\[0\]\.address: eip155:1337 USDC ` + eoa + `: no contract at this address`,
		}},
		{"node unreachable", startupConfig{rpc: "http://127.0.0.1:1"}, 1, []string{
			`^FAIL +\S+coinop\.yaml:7: networks\[0\]\.rpc: eip155:1337 node: eth_chainId: .*refused`,
		}},
		{"key without gas", startupConfig{key: "settlement_key_file: " + poorKey}, 0, []string{
			`^ok +eip155:1337 USDC `,
			`^warning +\S+coinop\.yaml:9: networks\[0\]\.settlement_key_file: eip155:1337 settlement key ` + crypto.PubkeyToAddress(poor.PublicKey).Hex() + `: holds no gas`,
		}},
		{"unset key variable", startupConfig{key: "settlement_key_env: COINOP_NOT_SET"}, 1, []string{
			`^FAIL +\S+coinop\.yaml:9: networks\[0\]\.settlement_key_env: eip155:1337: settlement key: environment variable COINOP_NOT_SET is empty$`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := f.write(t, c.cfg)
			code, stdout, stderr := runCLI(t, nil, "check", "-c", path)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s%s", code, c.code, stdout, stderr)
			}
			lines := strings.Split(stdout, "\n")
			for _, w := range c.want {
				re := regexp.MustCompile(w)
				found := false
				for _, l := range lines {
					found = found || re.MatchString(l)
				}
				if !found {
					t.Errorf("no line matches %s in:\n%s", w, stdout)
				}
			}
			if c.code == 0 && strings.Contains(stdout, "FAIL") || c.code != 0 && !strings.Contains(stderr, "checks failed") {
				t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
		})
	}
}

// TestServeBanner: at start, serve writes one line each for its listen
// address, upstream, journal, every route with its price and way to pay
// (or free), and what happens to unmatched requests.
func TestServeBanner(t *testing.T) {
	f := newStartupFixture(t)
	path := f.write(t, startupConfig{})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	extra := "  - match: GET /health\n    free: true\n  - match: GET /report\n    price: \"2500\"\n    upstream: http://127.0.0.1:10\n"
	if err := os.WriteFile(path, append(b, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	url, out := clitest.StartOutput(t, regexp.MustCompile(`ready: serving \S+ on (http://\S+)`), "serve", "-c", path)
	to := ", token " + f.dev.Token.Hex() + ", to " + crypto.PubkeyToAddress(f.dev.Payee.PublicKey).Hex()
	network := fmt.Sprintf("eip155:%d", f.dev.ChainID)
	want := []string{
		"  listen     " + url,
		"  upstream   http://127.0.0.1:9",
		"  journal    sqlite " + filepath.Join(f.dir, "journal.db"),
		"  route      GET /paid    0.001 USDC: x402 exact on " + network + to + ", settled sync",
		"  route      GET /health  free",
		"  route      GET /report  0.0025 USDC: x402 exact on " + network + to + ", settled sync → http://127.0.0.1:10",
		"  unmatched  deny (404)",
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < len(want)+1 {
		t.Fatalf("banner:\n%s", out)
	}
	for i, w := range want {
		if lines[i+1] != w {
			t.Errorf("line %d:\n got %q\nwant %q", i+2, lines[i+1], w)
		}
	}
}
