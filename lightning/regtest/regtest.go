// Package regtest brings up a real Lightning network on loopback for
// tests: btcd on regtest and two lnd nodes, alice and bob, with alice
// funded and a channel open from alice to bob, ready to pay. The binaries
// are the ones scripts/deps/lightning.sh builds (BinDir).
//
// A test binary brings the network up once (Shared) and tears it down
// after its tests (Main): lnd first, then btcd. Everything lives in a
// temporary directory and listens on 127.0.0.1 only.
package regtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/lnd"
)

// ChannelSats is the capacity of the channel from alice to bob.
const ChannelSats = 1_000_000

// BinDir is where lnd, lncli, btcd and btcctl are: $COINOP_LIGHTNING_BIN,
// else scripts/deps/lightning.sh's cache directory, keyed on the
// repository's tools/lightning/go.sum (found from the working directory
// up). It is an error when they are not all there.
func BinDir() (string, error) {
	dir := os.Getenv("COINOP_LIGHTNING_BIN")
	if dir == "" {
		sum, err := findUp("tools/lightning/go.sum")
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(sum)
		if err != nil {
			return "", err
		}
		h := sha256.Sum256(b)
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "coinop", "lightning", hex.EncodeToString(h[:])[:16], "bin")
	}
	for _, b := range []string{"lnd", "btcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("regtest: %s not built in %s (run scripts/deps/lightning.sh)", b, dir)
		}
	}
	return dir, nil
}

func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("regtest: %s not found above the working directory", rel)
		}
		dir = parent
	}
}

// Node is one lnd of the network.
type Node struct {
	Name string
	// RESTURL, AdminMacaroon, InvoiceMacaroon and TLSCert are what a
	// client of package lightning/lnd is configured with.
	RESTURL         string
	AdminMacaroon   string
	InvoiceMacaroon string
	TLSCert         string
	Pubkey          string // hex
	P2P             string // host:port
	// Client speaks to the node with its admin macaroon.
	Client *lnd.Client

	dir string
	rpc string // gRPC address
	cmd *exec.Cmd
}

// Network is btcd with alice and bob.
type Network struct {
	Alice, Bob *Node
	dir        string
	bins       string
	btcd       *exec.Cmd
	btcdRPC    string
	btcdP2P    string
	rpcCert    string
	log        io.Writer
}

// Start brings the network up in dir, within ctx, writing progress to
// log (nil: nowhere). On error what was started is stopped.
func Start(ctx context.Context, dir string, log io.Writer) (n *Network, err error) {
	bins, err := BinDir()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	n = &Network{dir: dir, bins: bins, log: log, rpcCert: filepath.Join(dir, "btcd", "rpc.cert")}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, n.logTails())
			n.Close()
			n = nil
		}
	}()
	start := time.Now()
	step := func(s string) { fmt.Fprintf(log, "regtest: %5.1fs %s\n", time.Since(start).Seconds(), s) }
	if n.btcdRPC, err = freeAddr(); err != nil {
		return n, err
	}
	if n.btcdP2P, err = freeAddr(); err != nil {
		return n, err
	}
	// lnd waits for a chain backend that is current (a recent tip), so
	// btcd mines one block first, to an address nobody holds.
	if err := n.startBtcd(burnAddress); err != nil {
		return n, err
	}
	if err := n.Generate(ctx, 1); err != nil {
		return n, err
	}
	step("btcd up")
	if n.Alice, err = n.startLnd(ctx, "alice"); err != nil {
		return n, err
	}
	step("alice up")
	var addr struct {
		Address string `json:"address"`
	}
	// The wallet's services register a moment after getinfo answers.
	if err := retry(ctx, 30*time.Second, func() error {
		return n.Alice.Client.Call(ctx, http.MethodGet, "/v1/newaddress?type=WITNESS_PUBKEY_HASH", nil, &addr)
	}); err != nil {
		return n, fmt.Errorf("alice newaddress: %w", err)
	}
	// btcd mines to the address it starts with: restart it with alice's,
	// and alice after it (an lnd that saw its backend restart misses
	// blocks until it reconnects, which takes long).
	n.stop(n.Alice.cmd, 10*time.Second)
	n.stop(n.btcd, 10*time.Second)
	if err := n.startBtcd(addr.Address); err != nil {
		return n, err
	}
	step("btcd mining to alice")
	if n.Alice, err = n.startLndAt(ctx, "alice", n.Alice); err != nil {
		return n, err
	}
	step("alice up again")
	if n.Bob, err = n.startLnd(ctx, "bob"); err != nil {
		return n, err
	}
	step("bob up")
	// Segwit activates on btcd's regtest only after about 432 blocks.
	if err := n.Generate(ctx, 500); err != nil {
		return n, err
	}
	height, err := n.blockCount(ctx)
	if err != nil {
		return n, err
	}
	for _, node := range []*Node{n.Alice, n.Bob} {
		if err := waitSynced(ctx, node, height); err != nil {
			return n, err
		}
	}
	step(fmt.Sprintf("%d blocks, both synced", height))
	if err := n.Alice.Client.Call(ctx, http.MethodPost, "/v1/peers", map[string]any{
		"addr": map[string]string{"pubkey": n.Bob.Pubkey, "host": n.Bob.P2P}, "perm": false,
	}, nil); err != nil {
		return n, fmt.Errorf("alice connect to bob: %w", err)
	}
	pub, _ := hex.DecodeString(n.Bob.Pubkey)
	if err := retry(ctx, 30*time.Second, func() error {
		return n.Alice.Client.Call(ctx, http.MethodPost, "/v1/channels", map[string]any{
			"node_pubkey": base64.StdEncoding.EncodeToString(pub), "local_funding_amount": strconv.Itoa(ChannelSats),
		}, nil)
	}); err != nil {
		return n, fmt.Errorf("alice open channel: %w", err)
	}
	step("channel funding sent")
	if err := n.Generate(ctx, 6); err != nil {
		return n, err
	}
	for _, node := range []*Node{n.Alice, n.Bob} {
		if err := waitActive(ctx, node); err != nil {
			return n, err
		}
	}
	step("channel active")
	// The first payment right after a channel opens can fail
	// (INSUFFICIENT_BALANCE while the channel settles in): pay one until
	// the network routes.
	if err := retry(ctx, 60*time.Second, func() error {
		inv, err := n.Bob.Client.AddInvoice(ctx, lightning.InvoiceRequest{AmountMsat: 1000, Memo: "warm-up"})
		if err != nil {
			return err
		}
		_, err = n.Alice.Client.PayInvoice(ctx, inv.PaymentRequest, 1000)
		return err
	}); err != nil {
		return n, fmt.Errorf("warm-up payment: %w", err)
	}
	step("alice pays bob")
	return n, nil
}

// burnAddress is BIP 173's test witness program on regtest: a valid
// address whose coins nobody spends.
const burnAddress = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (n *Network) startBtcd(miningAddr string) error {
	d := filepath.Join(n.dir, "btcd")
	args := []string{
		"--regtest", "--datadir=" + filepath.Join(d, "data"), "--logdir=" + filepath.Join(d, "logs"),
		"--rpcuser=coinop", "--rpcpass=coinop", "--rpclisten=" + n.btcdRPC, "--listen=" + n.btcdP2P,
		"--rpccert=" + n.rpcCert, "--rpckey=" + filepath.Join(d, "rpc.key"), "--txindex", "--nodnsseed", "--debuglevel=info",
	}
	args = append(args, "--miningaddr="+miningAddr)
	cmd, err := n.spawn(filepath.Join(n.bins, "btcd"), d, args)
	if err != nil {
		return err
	}
	n.btcd = cmd
	// Up once its RPC answers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return retry(ctx, 30*time.Second, func() error {
		_, err := n.rpc(ctx, "getblockcount")
		return err
	})
}

func (n *Network) spawn(bin, dir string, args []string) (*exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, "output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	dieWithParent(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	go func() { cmd.Wait(); out.Close() }()
	return cmd, nil
}

// rpc calls btcd's JSON-RPC.
func (n *Network) rpc(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	pem, err := os.ReadFile(n.rpcCert)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Proxy: nil}}
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": method, "params": params})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+n.btcdRPC, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("coinop", "coinop")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("btcd %s: %d: %w", method, resp.StatusCode, err)
	}
	if out.Error != nil {
		return nil, fmt.Errorf("btcd %s: %s", method, out.Error.Message)
	}
	return out.Result, nil
}

func (n *Network) blockCount(ctx context.Context) (int64, error) {
	raw, err := n.rpc(ctx, "getblockcount")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(raw), 10, 64)
}

// Generate mines blocks (to alice).
func (n *Network) Generate(ctx context.Context, blocks int) error {
	_, err := n.rpc(ctx, "generate", blocks)
	return err
}

func (n *Network) startLnd(ctx context.Context, name string) (*Node, error) {
	return n.startLndAt(ctx, name, nil)
}

// startLndAt starts lnd name, again on prev's addresses and data when
// prev is not nil.
func (n *Network) startLndAt(ctx context.Context, name string, prev *Node) (*Node, error) {
	d := filepath.Join(n.dir, name)
	node := prev
	if node == nil {
		p2p, err := freeAddr()
		if err != nil {
			return nil, err
		}
		rest, err := freeAddr()
		if err != nil {
			return nil, err
		}
		rpc, err := freeAddr()
		if err != nil {
			return nil, err
		}
		node = &Node{Name: name, dir: d, P2P: p2p, RESTURL: "https://" + rest, TLSCert: filepath.Join(d, "tls.cert"), rpc: rpc}
		macs := filepath.Join(d, "data", "chain", "bitcoin", "regtest")
		node.AdminMacaroon, node.InvoiceMacaroon = filepath.Join(macs, "admin.macaroon"), filepath.Join(macs, "invoice.macaroon")
	}
	p2p, rpc, rest := node.P2P, node.rpc, strings.TrimPrefix(node.RESTURL, "https://")
	var err error
	node.cmd, err = n.spawn(filepath.Join(n.bins, "lnd"), d, []string{
		"--lnddir=" + d, "--noseedbackup", "--bitcoin.regtest", "--bitcoin.node=btcd",
		"--btcd.rpchost=" + n.btcdRPC, "--btcd.rpcuser=coinop", "--btcd.rpcpass=coinop", "--btcd.rpccert=" + n.rpcCert,
		"--nobootstrap", "--trickledelay=50", "--tlsextraip=127.0.0.1", "--alias=" + name,
		"--listen=" + p2p, "--rpclisten=" + rpc, "--restlisten=" + rest, "--bitcoin.defaultchanconfs=1",
	})
	if err != nil {
		return nil, err
	}
	// Up once its wallet is made (the macaroons exist) and REST answers.
	if err := retry(ctx, 60*time.Second, func() error {
		if node.Client == nil {
			if _, err := os.Stat(node.AdminMacaroon); err != nil {
				return err
			}
			c, err := lnd.New(lnd.Config{URL: node.RESTURL, MacaroonFile: node.AdminMacaroon, TLSCertFile: node.TLSCert})
			if err != nil {
				return err
			}
			node.Client = c
		}
		info, err := node.Client.GetInfo(ctx)
		if err != nil {
			return err
		}
		node.Pubkey = info.IdentityPubkey
		return nil
	}); err != nil {
		return nil, fmt.Errorf("lnd %s did not come up: %w", name, err)
	}
	return node, nil
}

func waitSynced(ctx context.Context, node *Node, height int64) error {
	return retry(ctx, 90*time.Second, func() error {
		var raw json.RawMessage
		if err := node.Client.Call(ctx, http.MethodGet, "/v1/getinfo", nil, &raw); err != nil {
			return err
		}
		var info lnd.Info
		json.Unmarshal(raw, &info)
		if !info.SyncedToChain || info.BlockHeight < height {
			return fmt.Errorf("%s at height %d of %d, synced %v: %s", node.Name, info.BlockHeight, height, info.SyncedToChain, raw)
		}
		return nil
	})
}

func waitActive(ctx context.Context, node *Node) error {
	return retry(ctx, 90*time.Second, func() error {
		var out struct {
			Channels []struct {
				Active bool `json:"active"`
			} `json:"channels"`
		}
		if err := node.Client.Call(ctx, http.MethodGet, "/v1/channels", nil, &out); err != nil {
			return err
		}
		if len(out.Channels) == 0 || !out.Channels[0].Active {
			return fmt.Errorf("%s: no active channel yet", node.Name)
		}
		return nil
	})
}

// retry calls f until it succeeds, ctx ends or within has passed.
func retry(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Close stops alice and bob, then btcd, and removes nothing: the caller
// owns dir.
func (n *Network) Close() error {
	for _, node := range []*Node{n.Alice, n.Bob} {
		if node != nil && node.cmd != nil {
			n.stop(node.cmd, 5*time.Second)
		}
	}
	if n.btcd != nil {
		n.stop(n.btcd, 10*time.Second)
	}
	return nil
}

// stop interrupts a process and kills it if it is still there after wait.
func (n *Network) stop(cmd *exec.Cmd, wait time.Duration) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	for i := 0; i < 100 && cmd.Process.Signal(syscall.Signal(0)) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// logTails are the last lines each program wrote, for an error message.
func (n *Network) logTails() string {
	var b strings.Builder
	for _, name := range []string{"btcd", "alice", "bob"} {
		out, err := os.ReadFile(filepath.Join(n.dir, name, "output.log"))
		if err != nil || len(out) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		fmt.Fprintf(&b, "\n--- %s:\n%s", name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// shared is the network of this test binary.
var shared struct {
	once sync.Once
	net  *Network
	dir  string
	err  error
}

// Shared returns this test binary's network, brought up on first use
// (bounded to three minutes). Without the binaries the test is skipped,
// or fails under COINOP_CI=1.
func Shared(t testing.TB) *Network {
	t.Helper()
	if _, err := BinDir(); err != nil {
		if os.Getenv("COINOP_CI") != "" {
			t.Fatalf("COINOP_CI: the regtest network is required: %v", err)
		}
		t.Skipf("no Lightning binaries: %v", err)
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "coinop-regtest-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var log bytes.Buffer
		shared.net, shared.err = Start(ctx, shared.dir, &log)
		fmt.Fprint(os.Stderr, log.String())
	})
	if shared.err != nil {
		t.Fatalf("regtest network: %v", shared.err)
	}
	if shared.net == nil {
		t.Fatal("regtest network: not started")
	}
	return shared.net
}

// Main runs a test binary's tests (m.Run) and then tears down its shared
// network, if one was brought up; use it as TestMain's body:
//
//	func TestMain(m *testing.M) { os.Exit(regtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared.net != nil {
		shared.net.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}
