package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/coinop/coinop/evm/devchain"
)

// chain is an EVM chain the bench's targets pay on, with the token
// deployed and the payer funded.
type chain struct {
	Kind    string // "anvil" or "devchain"
	RPC     string
	ChainID uint64
	Token   common.Address
	// BatchSettler is the contract async settlements share transactions
	// through (contracts/CoinopBatchSettler.sol).
	BatchSettler common.Address
	Payer        *ecdsa.PrivateKey
	// Settler pays gas for coinop's settlements, Facilitator for the TS
	// facilitator's; each has ether. On the devchain only Settler exists.
	Settler, Facilitator *ecdsa.PrivateKey
	Proc                 *proc
}

// payerFunds is what the payer gets: a million tokens of 6 decimals, a
// billion payments of the bench's price.
var payerFunds = new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(1_000_000))

// startAnvil runs anvil on a free loopback port, funds fresh accounts with
// anvil_setBalance, deploys CoinopUSD and mints the payer's funds.
func startAnvil(ctx context.Context, w *world, anvilBin string) (*chain, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := w.start("anvil", anvilBin, nil, "--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"--chain-id", "31337", "--silent")
	if err != nil {
		return nil, err
	}
	c := &chain{Kind: "anvil", RPC: fmt.Sprintf("http://127.0.0.1:%d", port), ChainID: 31337, Proc: p}
	rc, err := dialReady(ctx, c.RPC)
	if err != nil {
		return nil, fmt.Errorf("anvil: %w (log: %s)", err, p.logPath)
	}
	defer rc.Close()
	owner := mustKey()
	c.Payer, c.Settler, c.Facilitator = mustKey(), mustKey(), mustKey()
	ether := (*hexutil.Big)(new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(1e18)))
	for _, k := range []*ecdsa.PrivateKey{owner, c.Settler, c.Facilitator} {
		if err := rc.CallContext(ctx, nil, "anvil_setBalance", crypto.PubkeyToAddress(k.PublicKey), ether); err != nil {
			return nil, fmt.Errorf("anvil_setBalance: %w", err)
		}
	}
	cl := ethclient.NewClient(rc)
	if c.Token, err = deployToken(ctx, cl, owner, crypto.PubkeyToAddress(c.Payer.PublicKey)); err != nil {
		return nil, err
	}
	if c.BatchSettler, err = devchain.DeployBatchSettler(ctx, cl, owner); err != nil {
		return nil, fmt.Errorf("deploy batch settler: %w", err)
	}
	return c, nil
}

// fund gives key ether on an anvil chain.
func fund(ctx context.Context, c *chain, key *ecdsa.PrivateKey) error {
	rc, err := rpc.DialContext(ctx, c.RPC)
	if err != nil {
		return err
	}
	defer rc.Close()
	ether := (*hexutil.Big)(new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(1e18)))
	return rc.CallContext(ctx, nil, "anvil_setBalance", addrOf(key), ether)
}

// startDevchain runs coinop's embedded chain in a child process (this
// binary's "chain" command), so its CPU is measured apart from the gateway's.
func startDevchain(ctx context.Context, w *world, self string) (*chain, error) {
	p, err := w.start("devchain", self, nil, "chain")
	if err != nil {
		return nil, err
	}
	line, err := p.waitLine(ctx, "chain ", 60*time.Second)
	if err != nil {
		return nil, err
	}
	var st devchainState
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "chain ")), &st); err != nil {
		return nil, fmt.Errorf("devchain: %w", err)
	}
	c := &chain{Kind: "devchain", RPC: st.RPC, ChainID: st.ChainID, Token: common.HexToAddress(st.Token), Proc: p}
	if c.Payer, err = crypto.HexToECDSA(st.Payer); err != nil {
		return nil, err
	}
	if c.Settler, err = crypto.HexToECDSA(st.Settler); err != nil {
		return nil, err
	}
	rc, err := dialReady(ctx, c.RPC)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if c.BatchSettler, err = devchain.DeployBatchSettler(ctx, ethclient.NewClient(rc), c.Settler); err != nil {
		return nil, fmt.Errorf("deploy batch settler: %w", err)
	}
	return c, nil
}

type devchainState struct {
	RPC     string `json:"rpc"`
	ChainID uint64 `json:"chainId"`
	Token   string `json:"token"`
	Payer   string `json:"payer"`
	Settler string `json:"settler"`
}

// runChain is the "chain" command: coinop's embedded chain with a funded
// payer, announced as one JSON line on stdout, until SIGTERM or SIGINT.
func runChain(args []string) error {
	fs := flag.NewFlagSet("chain", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "JSON-RPC address (loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := devchain.Start(ctx, devchain.Config{Listen: *listen, PayerFunds: payerFunds})
	if err != nil {
		return err
	}
	defer c.Close()
	b, _ := json.Marshal(devchainState{
		RPC: c.RPCURL, ChainID: c.ChainID, Token: c.Token.Hex(),
		Payer: hex.EncodeToString(crypto.FromECDSA(c.Payer)), Settler: hex.EncodeToString(crypto.FromECDSA(c.Settler)),
	})
	fmt.Printf("chain %s\n", b)
	<-ctx.Done()
	return nil
}

// dialReady connects to a JSON-RPC endpoint once it answers eth_chainId.
func dialReady(ctx context.Context, url string) (*rpc.Client, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		rc, err := rpc.DialContext(ctx, url)
		if err == nil {
			var id hexutil.Uint64
			if err = rc.CallContext(ctx, &id, "eth_chainId"); err == nil {
				return rc, nil
			}
			rc.Close()
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deployToken deploys CoinopUSD ("USD Coin", version "2") from owner and
// mints payerFunds to payer.
func deployToken(ctx context.Context, cl *ethclient.Client, owner *ecdsa.PrivateKey, payer common.Address) (common.Address, error) {
	token, err := devchain.DeployToken(ctx, cl, owner)
	if err != nil {
		return common.Address{}, err
	}
	return token, devchain.Mint(ctx, cl, owner, token, payer, payerFunds)
}

func mustKey() *ecdsa.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
}

func keyHex(k *ecdsa.PrivateKey) string { return "0x" + hex.EncodeToString(crypto.FromECDSA(k)) }

func addrOf(k *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(k.PublicKey) }

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// anvilPath finds the anvil binary the npm package in bench/ts installs.
func anvilPath(root string) string {
	p := filepath.Join(root, "bench", "ts", "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin", "anvil")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}
