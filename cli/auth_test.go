package cli_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/evm/devchain"
)

// TestAuthCommand: `coinop auth` serves the forward-auth check of a
// configuration without an upstream, on loopback only unless the config
// allows more; `coinop serve` refuses such a configuration, which has
// nothing to proxy to.
func TestAuthCommand(t *testing.T) {
	f := newStartupFixture(t)
	text := fmt.Sprintf(`store: %s
pay_to: "%s"
networks:
  - id: eip155:%d
    rpc: %s
    settlement_key_file: %s
    assets:
      - symbol: USDC
        address: "%s"
        eip712_name: "%s"
        eip712_version: "%s"
routes:
  - match: GET /paid
    price: 0.001 USDC
auth:
  listen: 127.0.0.1:0
`, filepath.Join(f.dir, "journal.db"), crypto.PubkeyToAddress(f.dev.Payee.PublicKey).Hex(), f.dev.ChainID, f.dev.RPCURL,
		filepath.Join(f.dir, "settler.key"), f.dev.Token.Hex(), devchain.TokenName, devchain.TokenVersion)
	path := filepath.Join(f.dir, "auth.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	if code, out, stderr := runCLI(t, nil, "check", "-c", path); code != 0 {
		t.Errorf("check of an auth-only config: exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr := runCLI(t, nil, "serve", "-c", path)
	if code != 2 || !strings.Contains(stderr, "upstream: not set: this configuration is for forward-auth only; serve it with coinop auth") {
		t.Errorf("serve of an auth-only config: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "auth", "-c", path, "--listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(stderr, "beyond loopback") {
		t.Errorf("auth --listen 0.0.0.0:0: exit %d\n%s", code, stderr)
	}

	url := clitest.Start(t, regexp.MustCompile(`coinop ready: forward-auth check of \S+ on (http://\S+)`), "auth", "-c", path)
	ask := func(pairs ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url+"/check", nil)
		for i := 0; i+1 < len(pairs); i += 2 {
			req.Header.Set(pairs[i], pairs[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ask("X-Original-Method", "GET", "X-Original-URI", "/paid", "X-Original-Host", "shop.example"); code != 402 ||
		!strings.Contains(body, `"resource": "http://shop.example/paid"`) {
		t.Errorf("unpaid check: %d\n%s", code, body)
	}
	if code, body := ask(); code != 400 || !strings.Contains(body, `"auth_original_missing"`) {
		t.Errorf("a check naming nothing: %d\n%s", code, body)
	}
	if code, body := ask("X-Original-Method", "GET", "X-Original-URI", "/other"); code != 404 {
		t.Errorf("unmatched (deny): %d\n%s", code, body)
	}

	// coinop serve with auth.listen serves the check beside the gateway,
	// from the same routes.
	addr := clitest.FreeAddr(t)
	withUpstream := strings.Replace(text, "auth:\n  listen: 127.0.0.1:0\n", "upstream: http://127.0.0.1:9\nauth:\n  listen: "+addr+"\n", 1)
	withUpstream = strings.Replace(withUpstream, "journal.db", "serve.db", 1)
	spath := filepath.Join(f.dir, "serve.yaml")
	if err := os.WriteFile(spath, []byte(withUpstream), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := clitest.Start(t, regexp.MustCompile(`coinop ready: serving \S+ on (http://\S+)`), "serve", "-c", spath)
	url = "http://" + addr
	if code, body := ask("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/paid", "X-Forwarded-Host", "shop.example"); code != 402 ||
		!strings.Contains(body, `"resource": "http://shop.example/paid"`) {
		t.Errorf("the check beside %s: %d\n%s", gw, code, body)
	}
}
