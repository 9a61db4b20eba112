package cli_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
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
	"github.com/coinop/coinop/x402"
)

// TestFacilitatorCommand runs `coinop facilitator` in-process against the
// embedded chain and reads /supported from it.
func TestFacilitatorCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := devchain.Start(ctx, devchain.Config{ChainID: 84532})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "settler.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(crypto.FromECDSA(dev.Settler))), 0o600); err != nil {
		t.Fatal(err)
	}

	run, stop := context.WithCancel(ctx)
	out, errOut := &clitest.Buffer{}, &clitest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(run, []string{"facilitator", "--listen", "127.0.0.1:0",
			"--network", "eip155:84532=" + dev.RPCURL, "--settlement-key-file", keyFile,
			"--store", filepath.Join(dir, "facilitator.db")}, cli.Env{Stdout: out, Stderr: errOut})
	}()
	ready := regexp.MustCompile(`facilitator ready: (http://\S+)`)
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; {
		if m := ready.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no ready line\nstdout: %s\nstderr: %s", out, errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
	settler := crypto.PubkeyToAddress(dev.Settler.PublicKey).Hex()
	if !strings.Contains(out.String(), settler) {
		t.Errorf("the ready lines do not name the settlement account %s:\n%s", settler, out)
	}

	resp, err := http.Get(url + "/supported")
	if err != nil {
		t.Fatal(err)
	}
	var sup x402.SupportedResponse
	err = json.NewDecoder(resp.Body).Decode(&sup)
	resp.Body.Close()
	if err != nil || len(sup.Kinds) != 2 || sup.Kinds[1].Network != "base-sepolia" || sup.Signers["eip155:*"][0] != settler {
		t.Fatalf("/supported: %+v %v", sup, err)
	}

	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d\n%s", code, errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("coinop facilitator did not stop")
	}
}

func TestFacilitatorCommandUsage(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int // 2: a usage mistake; 1: a start-up mistake
		want string
	}{
		{"no network", []string{}, 2, "no --network"},
		{"bad network", []string{"--network", "base=http://127.0.0.1:1"}, 2, "not an eip155 network"},
		{"bad rpc", []string{"--network", "eip155:1=127.0.0.1:8545"}, 2, "not an http(s) or ws(s) URL"},
		{"no key", []string{"--network", "eip155:1=http://127.0.0.1:1"}, 2, "no settlement key"},
		{"empty key variable", []string{"--network", "eip155:1=http://127.0.0.1:1", "--settlement-key-env", "NOPE"}, 1, "NOPE is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			errOut := &clitest.Buffer{}
			code := cli.Main(context.Background(), append([]string{"facilitator"}, c.args...), cli.Env{Stdout: &clitest.Buffer{}, Stderr: errOut})
			if code != c.code || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, c.code, c.want)
			}
		})
	}
}
