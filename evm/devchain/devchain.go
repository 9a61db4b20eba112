// Package devchain runs a throwaway Ethereum chain inside the process, for
// tests and local development: go-ethereum in dev mode (every fork active at
// genesis, state in memory) serving JSON-RPC over HTTP on a loopback address,
// with the CoinopUSD EIP-3009 token and the CoinopBatchSettler already
// deployed and the payer funded.
// Any JSON-RPC client can use it: ethclient, cast, viem.
//
// Like `geth --dev` or anvil's automine, a block is sealed as soon as a
// transaction enters the pool, so a transaction's receipt is available within
// milliseconds of eth_sendRawTransaction and nobody has to "commit".
//
// Block timestamps come from the wall clock, but they are whole seconds and
// each block must be newer than its parent, so more than one block per second
// pushes the chain's time ahead of the wall clock. Left alone, a load test
// settling 50 payments a second would put the chain minutes ahead within
// seconds and every EIP-3009 authorization would then fail as expired. So
// once the chain is Config.MaxClockLead ahead, sealing waits for the clock
// and the transactions that arrive meanwhile share one block.
//
// The other way, a chain that makes blocks only for transactions lets its
// newest block grow old while it is idle, and eth_call judges time against
// that block: after twenty idle minutes, an authorization valid from ten
// minutes ago (as standard x402 clients sign) would be "not yet valid". So
// once the newest block is Config.IdleBlock old, an empty block is sealed,
// stamped with the clock.
package devchain

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/txpool"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/event"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"
)

// The token as deployed: the EIP-712 domain is USDC's, so signatures made for
// it look exactly like signatures for real USDC on another chain id.
const (
	TokenName     = "USD Coin"
	TokenSymbol   = "USDC"
	TokenVersion  = "2"
	TokenDecimals = 6
)

// Defaults for the zero Config.
const (
	DefaultListen  = "127.0.0.1:0"
	DefaultChainID = 1337
)

// DefaultMaxClockLead is Config.MaxClockLead's default: under x402's rule
// that an authorization stay valid for at least 6 more seconds when it is
// verified, so chain time alone never expires one.
const DefaultMaxClockLead = 2 * time.Second

// DefaultIdleBlock is Config.IdleBlock's default: an idle chain's newest
// block is never much older than this, far below the ten minutes standard
// clients backdate validAfter by.
const DefaultIdleBlock = 10 * time.Second

// DefaultPayerFunds is the payer's token balance when Config.PayerFunds is
// nil: 1,000 tokens of 6 decimals.
const DefaultPayerFunds = 1_000_000_000

// genesisEther is every funded account's balance at genesis: 1,000 ether.
var genesisEther = new(big.Int).Mul(big.NewInt(1000), big.NewInt(params.Ether))

// setupTimeout bounds each transaction Start sends, on top of Start's context.
const setupTimeout = 10 * time.Second

// receiptPoll is how often Start polls for a receipt. Blocks are sealed on
// arrival, so the first or second poll normally finds it.
const receiptPoll = 10 * time.Millisecond

// Config describes a chain. The zero value is a valid configuration.
type Config struct {
	// Listen is the host:port the JSON-RPC server binds. The host must be a
	// loopback address or "localhost": the chain's keys are known to its
	// users and it accepts unauthenticated transactions. Port 0 picks a free
	// port; Chain.RPCURL reports the one bound. If empty, DefaultListen.
	Listen string
	// ChainID is the chain id, and the network id. If zero, DefaultChainID.
	ChainID uint64
	// Payer, Payee and Settler are the accounts of an x402 payment: Payer
	// signs EIP-3009 authorizations, Payee receives them, Settler submits
	// them. Payer and Settler get ether at genesis and Payer gets
	// PayerFunds tokens; Payee starts with nothing. Each nil key is
	// generated from Rand.
	Payer, Payee, Settler *ecdsa.PrivateKey
	// Rand is the source for generated keys (Owner always is). A
	// deterministic reader gives deterministic keys and therefore the same
	// token address on every run. If nil, crypto/rand.
	Rand io.Reader
	// PayerFunds is the amount of token atomic units minted to Payer. If
	// nil, DefaultPayerFunds; zero mints nothing.
	PayerFunds *big.Int
	// MaxClockLead bounds how far the newest block's timestamp may be ahead
	// of the wall clock. A transaction that would need a block further ahead
	// waits (at most about a second) and is sealed with whatever else
	// arrived by then. If zero, DefaultMaxClockLead; if negative, no bound:
	// every arrival is sealed at once.
	MaxClockLead time.Duration
	// IdleBlock is how old, by Now, the newest block may grow before an
	// empty block stamped Now is sealed. If zero, DefaultIdleBlock; if
	// negative, blocks are sealed for transactions only.
	IdleBlock time.Duration
	// Now is the chain's clock: idle blocks are stamped with it and
	// MaxClockLead is measured against it. go-ethereum stamps the blocks
	// that carry transactions with the wall clock, or one second past
	// their parent when that is later, so a clock set ahead of the wall
	// clock moves the chain's time forward through idle blocks. If nil,
	// time.Now.
	Now func() time.Time
	// Logger receives go-ethereum's logs. Most of them go through
	// go-ethereum's process-wide root logger, so a non-nil Logger is
	// installed there and stays until another Start replaces it (the last
	// one wins when several chains run). If nil, this chain's own logs are
	// discarded and the root logger is left alone; go-ethereum's default
	// root logger discards everything. The standard library's slog default
	// is never changed.
	Logger *slog.Logger
}

// Chain is a running chain. Its fields are read-only.
type Chain struct {
	// RPCURL is the JSON-RPC endpoint, "http://<host>:<port>" with the
	// port actually bound.
	RPCURL string
	// ChainID is the chain id transactions and EIP-712 domains must use.
	ChainID uint64
	// Token is the CoinopUSD contract. Its EIP-712 domain is TokenName,
	// TokenVersion, ChainID and Token.
	Token common.Address
	// Payer, Payee and Settler are Config's keys, or the generated ones.
	Payer, Payee, Settler *ecdsa.PrivateKey
	// BatchSettler is the CoinopBatchSettler contract, for settling many
	// authorizations of Token in one transaction.
	BatchSettler common.Address
	// Owner deployed Token and is the only account that may call its mint;
	// it holds ether for more mints. It also deployed BatchSettler, which
	// has no owner.
	Owner *ecdsa.PrivateKey

	stack     *node.Node
	backend   *eth.Ethereum
	closeOnce sync.Once
	closeErr  error
}

// Start builds a chain, serves it on cfg.Listen, deploys the token and the
// batch settler and mints cfg.PayerFunds to the payer. ctx bounds the setup only; the chain runs until
// Close. Several chains may run at once, each on its own port.
func Start(ctx context.Context, cfg Config) (*Chain, error) {
	host, port, err := listenAddr(cfg.Listen)
	if err != nil {
		return nil, err
	}
	chainID := cfg.ChainID
	if chainID == 0 {
		chainID = DefaultChainID
	}
	funds := big.NewInt(DefaultPayerFunds)
	if cfg.PayerFunds != nil {
		if cfg.PayerFunds.Sign() < 0 {
			return nil, fmt.Errorf("devchain: negative PayerFunds %s", cfg.PayerFunds)
		}
		funds = new(big.Int).Set(cfg.PayerFunds)
	}
	c := &Chain{ChainID: chainID, Payer: cfg.Payer, Payee: cfg.Payee, Settler: cfg.Settler}
	if err := c.generateKeys(cfg.Rand); err != nil {
		return nil, err
	}
	if cfg.Logger != nil {
		// Not *log.logger, so log.SetDefault leaves slog.Default alone.
		log.SetDefault(rootLogger{log.NewLogger(cfg.Logger.Handler())})
	}

	lead := cfg.MaxClockLead
	if lead == 0 {
		lead = DefaultMaxClockLead
	}
	idle := cfg.IdleBlock
	if idle == 0 {
		idle = DefaultIdleBlock
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if err := c.startNode(host, port, minerClock{maxLead: lead, idle: idle, now: now}, cfg.Logger); err != nil {
		return nil, err
	}
	c.RPCURL = c.stack.HTTPEndpoint()

	if err := c.deployToken(ctx, funds); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	if err := c.waitIndexed(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// Close stops the chain and releases its port. All state is lost. Calls
// after the first return the first call's result.
func (c *Chain) Close() error {
	c.closeOnce.Do(func() {
		if err := c.stack.Close(); err != nil {
			c.closeErr = fmt.Errorf("devchain: close: %w", err)
		}
	})
	return c.closeErr
}

// listenAddr splits and checks Config.Listen.
func listenAddr(listen string) (host string, port int, err error) {
	if listen == "" {
		listen = DefaultListen
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("devchain: listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", 0, fmt.Errorf("devchain: listen address %q: host must be a loopback address", listen)
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("devchain: listen address %q: bad port", listen)
	}
	if port != 0 {
		// go-ethereum builds the chain before it binds and cannot stop
		// it cleanly when binding fails, so check the port is free
		// first. A race with another process remains; port 0 has none.
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return "", 0, fmt.Errorf("devchain: listen address %q: %w", listen, err)
		}
		l.Close()
	}
	return host, port, nil
}

// generateKeys fills the nil keys, in a fixed order so that a deterministic
// Rand gives deterministic keys.
func (c *Chain) generateKeys(r io.Reader) error {
	if r == nil {
		r = rand.Reader
	}
	for _, k := range []**ecdsa.PrivateKey{&c.Payer, &c.Payee, &c.Settler, &c.Owner} {
		if *k != nil {
			continue
		}
		key, err := newKey(r)
		if err != nil {
			return fmt.Errorf("devchain: generate key: %w", err)
		}
		*k = key
	}
	return nil
}

// newKey draws a secp256k1 private key from r by rejection sampling. It reads
// r directly instead of calling ecdsa.GenerateKey, whose use of its reader is
// not a stable contract across Go releases.
func newKey(r io.Reader) (*ecdsa.PrivateKey, error) {
	var b [32]byte
	// A draw is out of range with probability about 2^-128, so running out
	// of attempts means the reader is broken (for example all zeros).
	for range 8 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		if key, err := crypto.ToECDSA(b[:]); err == nil {
			return key, nil
		}
	}
	return nil, errors.New("random source yields no valid secp256k1 key")
}

// startNode assembles and starts the go-ethereum node as ethclient/simulated
// does, plus an HTTP endpoint and a miner.
func (c *Chain) startNode(host string, port int, clock minerClock, logger *slog.Logger) error {
	nodeLog := log.NewLogger(log.DiscardHandler())
	if logger != nil {
		nodeLog = log.NewLogger(logger.Handler())
	}
	nodeConf := node.DefaultConfig
	nodeConf.Name = "coinop-devchain" // web3_clientVersion
	nodeConf.DataDir = ""             // everything in memory; the keystore is a temp dir removed by Close
	nodeConf.Logger = nodeLog
	nodeConf.P2P = p2p.Config{NoDiscovery: true, NoDial: true, MaxPeers: 0, ListenAddr: ""}
	nodeConf.HTTPHost = host
	nodeConf.HTTPPort = port
	nodeConf.HTTPModules = []string{"eth", "net", "web3", "txpool"}
	// Requests by IP always pass go-ethereum's Host check; allow the name too.
	nodeConf.HTTPVirtualHosts = []string{"localhost"}
	stack, err := node.New(&nodeConf)
	if err != nil {
		return fmt.Errorf("devchain: new node: %w", err)
	}

	chainConfig := *params.AllDevChainProtocolChanges
	chainConfig.ChainID = new(big.Int).SetUint64(c.ChainID)
	alloc := core.SystemContractAllocs()
	maps.Copy(alloc, types.GenesisAlloc{
		crypto.PubkeyToAddress(c.Payer.PublicKey):   {Balance: genesisEther},
		crypto.PubkeyToAddress(c.Settler.PublicKey): {Balance: genesisEther},
		crypto.PubkeyToAddress(c.Owner.PublicKey):   {Balance: genesisEther},
	})
	ethConf := ethconfig.Defaults
	ethConf.NetworkId = c.ChainID
	ethConf.Genesis = &core.Genesis{
		Config:   &chainConfig,
		GasLimit: ethconfig.Defaults.Miner.GasCeil,
		Alloc:    alloc,
	}
	ethConf.SyncMode = ethconfig.FullSync
	ethConf.TxPool.NoLocals = true
	// Refuse at eth_sendRawTransaction what the block builder would never
	// include (a tip below its minimum), instead of pooling it forever.
	ethConf.TxPool.PriceLimit = ethConf.Miner.GasPrice.Uint64()

	backend, err := eth.New(stack, &ethConf)
	if err != nil {
		return errors.Join(fmt.Errorf("devchain: new eth service: %w", err), stack.Close())
	}
	filterSystem := filters.NewFilterSystem(backend.APIBackend, filters.Config{})
	stack.RegisterAPIs([]rpc.API{{Namespace: "eth", Service: filters.NewFilterAPI(filterSystem)}})

	beacon, err := catalyst.NewSimulatedBeacon(0, common.Address{}, backend)
	if err != nil {
		return errors.Join(fmt.Errorf("devchain: new beacon: %w", err), stack.Close())
	}
	// Registered after eth: the node starts it after eth and stops it first.
	stack.RegisterLifecycle(newMiner(backend, beacon, clock))

	if err := stack.Start(); err != nil {
		// Start has already closed the node; Close would only say so.
		return fmt.Errorf("devchain: start node: %w", err)
	}
	c.stack, c.backend = stack, backend
	return nil
}

// miner seals a block whenever transactions arrive: period-0 dev mode.
//
// go-ethereum's own version (catalyst.RegisterSimulatedBeaconAPIs with period
// 0) subscribes to the pool from a goroutine it starts unsynchronised, so a
// transaction sent right after startup can be missed and then waits for the
// next arrival; under load (two chains starting at once on two cores) that
// happened about once in a few dozen starts. This one subscribes before the
// node starts, has a single goroutine calling Commit, and stops before the
// eth service does. It also never spins on transactions the block builder
// will not include.
type miner struct {
	beacon  *catalyst.SimulatedBeacon
	chain   *core.BlockChain
	pool    *txpool.TxPool
	txs     chan core.NewTxsEvent
	sub     event.Subscription
	wake    chan struct{} // capacity 1: arrivals during a seal coalesce
	maxLead time.Duration // negative: unbounded
	idle    time.Duration // negative: no idle blocks
	now     func() time.Time
	quit    chan struct{}
	wg      sync.WaitGroup
}

// minerClock is a miner's timing: Config's MaxClockLead, IdleBlock and Now
// with their defaults applied.
type minerClock struct {
	maxLead, idle time.Duration
	now           func() time.Time
}

func newMiner(backend *eth.Ethereum, beacon *catalyst.SimulatedBeacon, clock minerClock) *miner {
	m := &miner{
		beacon:  beacon,
		chain:   backend.BlockChain(),
		pool:    backend.TxPool(),
		maxLead: clock.maxLead,
		idle:    clock.idle,
		now:     clock.now,
		txs:     make(chan core.NewTxsEvent, 1),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
	m.sub = m.pool.SubscribeTransactions(m.txs, true)
	return m
}

// Start implements node.Lifecycle.
func (m *miner) Start() error {
	m.wake <- struct{}{} // seal whatever arrived before Start
	m.wg.Go(m.listen)
	m.wg.Go(m.seal)
	return nil
}

// Stop implements node.Lifecycle. It returns once no block is being sealed.
func (m *miner) Stop() error {
	close(m.quit)
	m.wg.Wait()
	return nil
}

// listen turns pool notifications into wake-ups. It never blocks on the
// sealer: the pool delivers notifications synchronously and sealing waits for
// the pool (TxPool.Sync), so a blocked listener could deadlock the two.
func (m *miner) listen() {
	defer m.sub.Unsubscribe()
	for {
		select {
		case <-m.quit:
			return
		case <-m.sub.Err():
			return
		case <-m.txs:
			select {
			case m.wake <- struct{}{}:
			default:
			}
		}
	}
}

// seal is the one goroutine that seals blocks: for arrivals, and when the
// chain has been idle for m.idle.
func (m *miner) seal() {
	var idle <-chan time.Time
	if m.idle > 0 {
		// Checked often enough that an idle block is at most a second late
		// (by the wall clock), and a clock set ahead is caught up with soon.
		t := time.NewTicker(min(m.idle, time.Second))
		defer t.Stop()
		idle = t.C
	}
	for {
		select {
		case <-m.quit:
			return
		case <-m.wake:
			m.sealPending()
		case <-idle:
			m.sealIdle()
		}
	}
}

// sealIdle seals an empty block stamped with the clock when the newest block
// is m.idle old or older. With transactions pending it does nothing: they
// are being sealed, and their block is stamped by the wall clock.
func (m *miner) sealIdle() {
	head := m.chain.CurrentBlock()
	age := m.now().Sub(time.Unix(int64(head.Time), 0))
	if age < m.idle {
		return
	}
	// AdjustTime seals on top of the head with its time plus age, in whole
	// seconds; it refuses when transactions are pending.
	_ = m.beacon.AdjustTime(age.Truncate(time.Second))
}

// sealPending seals blocks until no executable transaction is left, or until
// a block gains none: what remains pays less than the base fee or the
// minimum tip and waits for the next arrival rather than spinning.
// Notifications for transactions already sealed find the pool empty and
// produce no block.
func (m *miner) sealPending() {
	for {
		select {
		case <-m.quit:
			return
		default:
		}
		if err := m.pool.Sync(); err != nil {
			return // pool closed
		}
		if pending, _ := m.pool.Stats(); pending == 0 {
			return
		}
		if !m.waitForClock() {
			return
		}
		parent := m.chain.CurrentBlock().Hash()
		head := m.beacon.Commit()
		if block := m.chain.GetBlockByHash(head); head == parent || block == nil || len(block.Transactions()) == 0 {
			return
		}
	}
}

// waitForClock waits until the next block's timestamp, one second past its
// parent's, is no more than maxLead ahead of the wall clock. It reports false
// if the miner is stopping.
func (m *miner) waitForClock() bool {
	if m.maxLead < 0 {
		return true
	}
	next := time.Unix(int64(m.chain.CurrentBlock().Time)+1, 0)
	wait := next.Add(-m.maxLead).Sub(m.now())
	if wait <= 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-m.quit:
		return false
	}
}

// deployToken deploys CoinopUSD from Owner, mints the payer's funds and
// deploys CoinopBatchSettler, waiting for each receipt. The token is Owner's
// first transaction, so its address depends on Owner alone.
func (c *Chain) deployToken(ctx context.Context, funds *big.Int) error {
	client := ethclient.NewClient(c.stack.Attach())
	defer client.Close()
	token, err := DeployToken(ctx, client, c.Owner)
	if err != nil {
		return err
	}
	c.Token = token
	if funds.Sign() != 0 {
		if err := Mint(ctx, client, c.Owner, c.Token, crypto.PubkeyToAddress(c.Payer.PublicKey), funds); err != nil {
			return err
		}
	}
	c.BatchSettler, err = DeployBatchSettler(ctx, client, c.Owner)
	return err
}

// waitIndexed waits for the transaction index to catch up with the head, so
// that lookups by hash answer "not found" rather than "indexing in progress"
// once Start returns.
func (c *Chain) waitIndexed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	for !c.backend.BlockChain().TxIndexDone() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("devchain: transaction index: %w", ctx.Err())
		case <-time.After(receiptPoll):
		}
	}
	return nil
}

// indexing reports whether err is go-ethereum's answer for a transaction it
// cannot find while its transaction index lags the head. The index is built in
// the background after every block, so a receipt polled right after sending
// often gets this instead of "not found"; both mean "not yet".
func indexing(err error) bool {
	return strings.Contains(err.Error(), "transaction indexing is in progress")
}

// rootLogger hides go-ethereum's concrete logger type from log.SetDefault,
// which would otherwise also make it the process's slog default.
type rootLogger struct{ log.Logger }
