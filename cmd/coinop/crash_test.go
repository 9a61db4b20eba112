package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/x402"
)

// coinopBin is the command, built once for every test of this binary
// (TestMain removes it).
var coinopBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// buildCoinop returns the command built from this checkout, building it on
// the first call.
func buildCoinop(t *testing.T) string {
	t.Helper()
	coinopBin.once.Do(func() {
		if coinopBin.dir, coinopBin.err = os.MkdirTemp("", "coinop-test-bin"); coinopBin.err != nil {
			return
		}
		coinopBin.path = filepath.Join(coinopBin.dir, "coinop")
		if out, err := exec.Command("go", "build", "-o", coinopBin.path, ".").CombinedOutput(); err != nil {
			coinopBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if coinopBin.err != nil {
		t.Fatal(coinopBin.err)
	}
	return coinopBin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if coinopBin.dir != "" {
		os.RemoveAll(coinopBin.dir)
	}
	os.Exit(code)
}

// gatewayProc is one `coinop serve` process.
type gatewayProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan error
}

func startGateway(t *testing.T, bin, cfg string, env ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	g.cmd = exec.Command(bin, "serve", "-c", cfg)
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.Stderr = g.stderr
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := regexp.MustCompile(`ready: serving \S+ on (http://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
	}()
	select {
	case g.url = <-ready:
	case err := <-g.done:
		t.Fatalf("gateway exited before ready: %v\n%s", err, g.stderr)
	case <-time.After(30 * time.Second):
		g.cmd.Process.Kill()
		t.Fatalf("gateway not ready\n%s", g.stderr)
	}
	t.Cleanup(func() { g.cmd.Process.Kill() })
	return g
}

func (g *gatewayProc) stop(t *testing.T) {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("gateway did not stop\n%s", g.stderr)
	}
}

func hexKey(k *ecdsa.PrivateKey) string { return "0x" + hex.EncodeToString(crypto.FromECDSA(k)) }

// purchase is one thing a buyer wants, paid for exactly once.
type purchase struct {
	header string // current signed payment
	ok     bool
}

// TestCrashRecovery kills the gateway with SIGKILL at each step boundary of
// a payment, under concurrent load, restarts it, lets buyers retry with the
// same signed payments (signing anew only when the gateway says the old one
// can no longer be used), and checks that every purchase was served once and
// charged once: paid responses = settled journal entries = on-chain
// transfers, with `coinop audit` clean.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a chain")
	}
	bin := buildCoinop(t)
	ctx := context.Background()
	chain, err := devchain.Start(ctx, devchain.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	payer, err := eip3009.NewKey(crypto.FromECDSA(chain.Payer))
	if err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "the goods")
	}))
	defer upstream.Close()

	for _, step := range []string{"reserved", "tx_recorded", "tx_sent", "settled"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			payee, _ := crypto.GenerateKey() // a fresh payee per step keeps each audit self-contained
			cfg := writeConfig(t, dir, filepath.Join(dir, "journal.db"), upstream.URL, chain, chain.Settler, crypto.PubkeyToAddress(payee.PublicKey))

			g := startGateway(t, bin, cfg, "COINOP_CRASH_AT="+step+":3")
			const n = 6
			tr := &client.Transport{Key: payer, Policy: client.Policy{MaxAmount: big.NewInt(1000)}}
			sign := func(url string) string {
				resp, err := http.Get(url + "/paid")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				p, err := tr.Pay(url+"/paid", resp)
				if err != nil {
					t.Fatal(err)
				}
				return p.Value
			}
			ps := make([]*purchase, n)
			for i := range ps {
				ps[i] = &purchase{header: sign(g.url)}
			}
			send := func(url string, p *purchase) int {
				req, _ := http.NewRequest("GET", url+"/paid", nil)
				req.Header.Set(x402.HeaderPaymentSignature, p.header)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0 // the gateway died under us
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					p.ok = true
				}
				return resp.StatusCode
			}
			var wg sync.WaitGroup
			for _, p := range ps {
				wg.Add(1)
				go func() { defer wg.Done(); send(g.url, p) }()
			}
			wg.Wait()
			select {
			case <-g.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the gateway did not crash at %s\n%s", step, g.stderr)
			}

			g = startGateway(t, bin, cfg)
			for _, p := range ps {
				for attempt := 0; !p.ok; attempt++ {
					if attempt > 50 {
						t.Fatalf("purchase never completed\n%s", g.stderr)
					}
					switch send(g.url, p) {
					case 200:
					case 409: // still being finished; retry
						time.Sleep(100 * time.Millisecond)
					case 402: // this payment can no longer be used: pay anew
						p.header = sign(g.url)
					default:
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
			g.stop(t)

			audit(t, bin, cfg, n)
		})
	}
}
