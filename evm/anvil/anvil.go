// Package anvil runs Foundry's anvil, the local Ethereum node that most x402
// implementations test against, as a child process on a free loopback port,
// and deploys coinop's EIP-3009 token on it with devchain.DeployToken. Tests
// use it to meet other implementations on a chain none of them owns.
//
// anvil comes from npm (@foundry-rs/anvil-linux-amd64, a static binary);
// this package only needs its path. The node mines a block per transaction
// (automine), keeps its state in memory, and is stopped by Close, or killed
// with the test process on Linux.
package anvil

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/coinop/coinop/evm/devchain"
)

// DefaultChainID is anvil's own default chain id.
const DefaultChainID = 31337

// DefaultStartTimeout bounds Start when Config.StartTimeout is zero.
const DefaultStartTimeout = 30 * time.Second

// etherBalance is what every account Start funds gets: 1,000 ether.
var etherBalance = new(big.Int).Mul(big.NewInt(1000), big.NewInt(1e18))

// Config describes a node. Binary is required.
type Config struct {
	// Binary is the path of the anvil executable.
	Binary string
	// ChainID is the chain id. If zero, DefaultChainID. 84532 makes the
	// chain "base-sepolia" to x402 v1 clients.
	ChainID uint64
	// Payer, Payee and Settler play the parts of devchain.Config's: Payer
	// and Settler get ether, Payer gets PayerFunds tokens. Nil keys are
	// generated.
	Payer, Payee, Settler *ecdsa.PrivateKey
	// PayerFunds is the token amount minted to Payer, in atomic units. If
	// nil, devchain.DefaultPayerFunds; zero mints nothing.
	PayerFunds *big.Int
	// StartTimeout bounds starting the node and deploying the token. If
	// zero, DefaultStartTimeout.
	StartTimeout time.Duration
	// Network is anvil's --network: "" for plain Ethereum, "tempo" for
	// Tempo (TIP-20 tokens such as pathUSD at TempoPathUSD, pre-funded on
	// anvil's own dev accounts, and fees paid in them). On tempo no token
	// is deployed and no account funded: Token is zero, and the dev
	// accounts (TempoDevKey) pay.
	Network string
	// Output receives anvil's standard output and error (one line per RPC
	// call). If nil, they are discarded.
	Output io.Writer
}

// On anvil --network tempo: pathUSD, a TIP-20 token with 6 decimals, and
// the private key of anvil's first dev account, which holds it.
const (
	TempoPathUSD = "0x20c0000000000000000000000000000000000000"
	TempoDevKey  = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
)

// Chain is a running anvil node with the token deployed. Its fields are
// read-only.
type Chain struct {
	// RPCURL is the JSON-RPC endpoint, "http://127.0.0.1:<port>".
	RPCURL  string
	ChainID uint64
	// Token is CoinopUSD; its EIP-712 domain is devchain.TokenName and
	// devchain.TokenVersion.
	Token common.Address
	// Payer, Payee and Settler are Config's keys or generated ones; Owner
	// deployed Token and alone may mint.
	Payer, Payee, Settler, Owner *ecdsa.PrivateKey

	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited
	closeOnce sync.Once
}

// Start runs anvil on 127.0.0.1 with a port the system picks, waits until it
// answers eth_chainId, funds the accounts and deploys the token. ctx bounds
// the start only; the node runs until Close.
func Start(ctx context.Context, cfg Config) (*Chain, error) {
	if cfg.Binary == "" {
		return nil, errors.New("anvil: Config.Binary is required")
	}
	if cfg.ChainID == 0 {
		cfg.ChainID = DefaultChainID
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	funds := big.NewInt(devchain.DefaultPayerFunds)
	if cfg.PayerFunds != nil {
		funds = cfg.PayerFunds
	}
	c := &Chain{ChainID: cfg.ChainID, Payer: cfg.Payer, Payee: cfg.Payee, Settler: cfg.Settler}
	for _, k := range []**ecdsa.PrivateKey{&c.Payer, &c.Payee, &c.Settler, &c.Owner} {
		if *k == nil {
			key, err := crypto.GenerateKey()
			if err != nil {
				return nil, err
			}
			*k = key
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	addr, err := c.run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.RPCURL = "http://" + addr
	if cfg.Network == "tempo" {
		funds = nil
	}
	if err := c.setup(ctx, funds); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// run starts the process and returns the address it listens on.
func (c *Chain) run(ctx context.Context, cfg Config) (string, error) {
	args := []string{"--host", "127.0.0.1", "--port", "0",
		"--chain-id", fmt.Sprint(cfg.ChainID),
		"--accounts", "1", // ours are funded with anvil_setBalance
	}
	if cfg.Network != "" {
		args = append(args, "--network", cfg.Network)
	}
	cmd := exec.Command(cfg.Binary, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.SysProcAttr = sysProcAttr()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("anvil: %w", err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		pw.Close()
		close(c.done)
	}()

	// Read the output until anvil says where it listens; keep reading (and
	// discarding, or copying to Output) so it never blocks on a full pipe.
	found := make(chan string, 1)
	var tail []string // the last lines, to explain a failed start
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if cfg.Output != nil {
				fmt.Fprintln(cfg.Output, line)
			}
			if a, ok := strings.CutPrefix(strings.TrimSpace(line), "Listening on "); ok {
				select {
				case found <- a:
				default:
				}
			}
			mu.Lock()
			if tail = append(tail, line); len(tail) > 20 {
				tail = tail[1:]
			}
			mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	fail := func(why string) (string, error) {
		c.Close()
		mu.Lock()
		defer mu.Unlock()
		return "", fmt.Errorf("anvil: %s; its last output:\n%s", why, strings.Join(tail, "\n"))
	}
	select {
	case a := <-found:
		if !strings.HasPrefix(a, "127.0.0.1:") {
			return fail("it listens on " + a + ", not on loopback")
		}
		return a, nil
	case <-c.done:
		return fail("it exited during start")
	case <-ctx.Done():
		return fail("it did not start in time")
	}
}

// setup waits for the RPC, funds the accounts with ether, and deploys and
// mints the token.
func (c *Chain) setup(ctx context.Context, funds *big.Int) error {
	rc, err := rpc.DialContext(ctx, c.RPCURL)
	if err != nil {
		return fmt.Errorf("anvil: dial %s: %w", c.RPCURL, err)
	}
	client := ethclient.NewClient(rc)
	defer client.Close()
	for {
		id, err := client.ChainID(ctx)
		if err == nil {
			if id.Uint64() != c.ChainID {
				return fmt.Errorf("anvil: eth_chainId is %s, want %d", id, c.ChainID)
			}
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("anvil: eth_chainId: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if funds == nil {
		return nil // tempo: the dev accounts hold what they need
	}
	for _, k := range []*ecdsa.PrivateKey{c.Payer, c.Settler, c.Owner} {
		if err := SetBalance(ctx, rc, crypto.PubkeyToAddress(k.PublicKey), etherBalance); err != nil {
			return err
		}
	}
	if c.Token, err = devchain.DeployToken(ctx, client, c.Owner); err != nil {
		return err
	}
	if funds.Sign() > 0 {
		return devchain.Mint(ctx, client, c.Owner, c.Token, crypto.PubkeyToAddress(c.Payer.PublicKey), funds)
	}
	return nil
}

// SetBalance sets an account's ether balance with anvil_setBalance.
func SetBalance(ctx context.Context, rc *rpc.Client, account common.Address, wei *big.Int) error {
	if err := rc.CallContext(ctx, nil, "anvil_setBalance", account, hexutil.EncodeBig(wei)); err != nil {
		return fmt.Errorf("anvil: anvil_setBalance %s: %w", account, err)
	}
	return nil
}

// Close stops the node (SIGTERM, then SIGKILL after five seconds) and
// waits for it to exit. All state is lost. It is safe to call more than once.
func (c *Chain) Close() error {
	c.closeOnce.Do(func() {
		if c.cmd == nil || c.cmd.Process == nil {
			return
		}
		select {
		case <-c.done:
			return
		default:
		}
		c.cmd.Process.Signal(terminate)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return nil
}
