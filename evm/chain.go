// Package evm is coinop's EVM rail: the x402 exact scheme with EIP-3009
// transferWithAuthorization, verified with go-ethereum's secp256k1 (cgo when
// available) and an eth_call simulation, and settled from a configured
// settlement key whose transaction nonces it serializes.
//
// go-ethereum lives here and in evm/devchain only; the engine, the middleware
// and the client do not link it.
package evm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rpc"
)

// Backend is the part of a JSON-RPC client the rail uses. *ethclient.Client
// implements it.
type Backend interface {
	CallContract(ctx context.Context, msg ethereum.CallMsg, block *big.Int) ([]byte, error)
	EstimateGas(ctx context.Context, msg ethereum.CallMsg) (uint64, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	NonceAt(ctx context.Context, account common.Address, block *big.Int) (uint64, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
	TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error)
	TransactionByHash(ctx context.Context, hash common.Hash) (tx *types.Transaction, isPending bool, err error)
	FilterLogs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error)
}

// tokenABI is the slice of an EIP-3009 token's interface the rail calls.
var tokenABI = mustABI(`[
 {"type":"function","name":"transferWithAuthorization","stateMutability":"nonpayable","inputs":[
  {"name":"from","type":"address"},{"name":"to","type":"address"},{"name":"value","type":"uint256"},
  {"name":"validAfter","type":"uint256"},{"name":"validBefore","type":"uint256"},{"name":"nonce","type":"bytes32"},
  {"name":"v","type":"uint8"},{"name":"r","type":"bytes32"},{"name":"s","type":"bytes32"}],"outputs":[]},
 {"type":"function","name":"balanceOf","stateMutability":"view","inputs":[{"name":"account","type":"address"}],"outputs":[{"name":"","type":"uint256"}]},
 {"type":"function","name":"authorizationState","stateMutability":"view","inputs":[{"name":"authorizer","type":"address"},{"name":"nonce","type":"bytes32"}],"outputs":[{"name":"","type":"bool"}]},
 {"type":"event","name":"Transfer","anonymous":false,"inputs":[{"name":"from","type":"address","indexed":true},{"name":"to","type":"address","indexed":true},{"name":"value","type":"uint256","indexed":false}]}
]`)

func mustABI(s string) abi.ABI {
	a, err := abi.JSON(strings.NewReader(s))
	if err != nil {
		panic(err)
	}
	return a
}

// transferTopic is the ERC-20 Transfer event's topic.
var transferTopic = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))

// ChainConfig describes one EVM network.
type ChainConfig struct {
	// Network is the CAIP-2 id, "eip155:<chain id>".
	Network string
	// ChainID is the numeric chain id of Network.
	ChainID uint64
	// Backend reaches the chain; required.
	Backend Backend
	// SettlementKey signs settlement transactions. If nil, the chain can
	// verify but not settle.
	SettlementKey *ecdsa.PrivateKey
	// ReceiptTimeout bounds the wait for a settlement's receipt; after it the
	// settlement is reported pending. If zero, 30 seconds.
	ReceiptTimeout time.Duration
	// PollInterval is how often a receipt is polled. If zero, 25 ms.
	PollInterval time.Duration
	// BroadcastAttempts bounds how many times one signed settlement
	// transaction is sent to the node while the node cannot be reached or
	// answers a transient error (429, 5xx, a dropped connection, a
	// timeout). If zero, 5.
	BroadcastAttempts int
	// BroadcastTimeout bounds one attempt. If zero, 5 seconds. The
	// settlement key's nonce lock is held through every attempt.
	BroadcastTimeout time.Duration
	// BroadcastBackoff is the wait before the second attempt; it doubles
	// for each later one, up to 2 seconds. If zero, 200 ms.
	BroadcastBackoff time.Duration
	// InclusionMargin is how long a settlement is expected to take from
	// sending to inclusion. A settlement is sent only if its
	// authorization stays valid that long past the earliest time the
	// transaction can be mined; otherwise it would revert, burning gas, and
	// the payment is refused instead (authorization_expiring). If zero,
	// DefaultInclusionMargin.
	InclusionMargin time.Duration
	// Now is the clock for expiry checks. If nil, time.Now.
	Now func() time.Time
}

// Chain is one EVM network: reads, simulations and serialized settlement.
// It is safe for concurrent use.
type Chain struct {
	cfg     ChainConfig
	chainID *big.Int
	signer  types.Signer
	from    common.Address

	mu         sync.Mutex // serializes the settlement key's nonces
	nonce      uint64
	nonceKnown bool

	clock inclusionClock // see minedAt
}

// NewChain checks cfg and returns a Chain. It performs no I/O.
func NewChain(cfg ChainConfig) (*Chain, error) {
	if cfg.Backend == nil {
		return nil, errors.New("evm: ChainConfig.Backend is required")
	}
	if cfg.ChainID == 0 {
		return nil, errors.New("evm: ChainConfig.ChainID is required")
	}
	if cfg.Network == "" {
		cfg.Network = fmt.Sprintf("eip155:%d", cfg.ChainID)
	}
	if cfg.ReceiptTimeout == 0 {
		cfg.ReceiptTimeout = 30 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 25 * time.Millisecond
	}
	if cfg.InclusionMargin == 0 {
		cfg.InclusionMargin = DefaultInclusionMargin
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BroadcastAttempts == 0 {
		cfg.BroadcastAttempts = 5
	}
	if cfg.BroadcastTimeout == 0 {
		cfg.BroadcastTimeout = 5 * time.Second
	}
	if cfg.BroadcastBackoff == 0 {
		cfg.BroadcastBackoff = 200 * time.Millisecond
	}
	c := &Chain{cfg: cfg, chainID: new(big.Int).SetUint64(cfg.ChainID)}
	c.signer = types.LatestSignerForChainID(c.chainID)
	if cfg.SettlementKey != nil {
		c.from = crypto.PubkeyToAddress(cfg.SettlementKey.PublicKey)
	}
	return c, nil
}

// Network is the chain's CAIP-2 id.
func (c *Chain) Network() string { return c.cfg.Network }

// SettlementAddress is the account that pays gas for settlements (zero if none).
func (c *Chain) SettlementAddress() common.Address { return c.from }

// BalanceOf reads an ERC-20 balance.
func (c *Chain) BalanceOf(ctx context.Context, token, account common.Address) (*big.Int, error) {
	out, err := c.call(ctx, token, "balanceOf", account)
	if err != nil {
		return nil, err
	}
	return out[0].(*big.Int), nil
}

// AuthorizationUsed reads EIP-3009 authorizationState(authorizer, nonce).
func (c *Chain) AuthorizationUsed(ctx context.Context, token, authorizer common.Address, nonce [32]byte) (bool, error) {
	out, err := c.call(ctx, token, "authorizationState", authorizer, nonce)
	if err != nil {
		return false, err
	}
	return out[0].(bool), nil
}

func (c *Chain) call(ctx context.Context, to common.Address, method string, args ...any) ([]any, error) {
	data, err := tokenABI.Pack(method, args...)
	if err != nil {
		return nil, err
	}
	res, err := c.cfg.Backend.CallContract(ctx, ethereum.CallMsg{To: &to, Data: data}, nil)
	if err != nil {
		return nil, err
	}
	return tokenABI.Unpack(method, res)
}

// send signs a transaction from the settlement key, journals it through
// record, and broadcasts it (see broadcast). Nonces are assigned under a lock
// and tracked locally, so concurrent settlements never collide; the lock is
// held until the node accepted the transaction or send gave up, so that no
// later transaction takes a nonce behind one that is not in the node's pool.
// After a failed broadcast the next send re-reads the nonce from the chain.
//
// record, if non-nil, is called with the signed transaction's hash and
// bytes before the first broadcast; if it fails, nothing is sent.
//
// ready, if non-nil, is called under the lock, right before signing; if it
// fails, nothing is signed or sent and its error is returned as is. Checks
// that time can defeat (an authorization about to expire) belong there:
// under load a settlement may wait for the lock behind many others, long
// enough for a check made before the wait to be out of date, and a
// transaction mined after its authorization expired reverts, its gas burnt.
//
// The hash is non-zero whenever a transaction was signed and journaled. The
// error is then nil (a node holds the transaction), a *broadcastError (no
// node accepted it: it was rejected, or never got through), or the journal's.
func (c *Chain) send(ctx context.Context, to common.Address, data []byte, ready func() error, record func(common.Hash, []byte) error) (common.Hash, error) {
	if c.cfg.SettlementKey == nil {
		return common.Hash{}, errors.New("no settlement key configured for " + c.cfg.Network)
	}
	msg := ethereum.CallMsg{From: c.from, To: &to, Data: data}
	gas, err := c.cfg.Backend.EstimateGas(ctx, msg)
	if err != nil {
		return common.Hash{}, fmt.Errorf("estimate gas: %w", err)
	}
	tip, err := c.cfg.Backend.SuggestGasTipCap(ctx)
	if err != nil {
		return common.Hash{}, fmt.Errorf("gas tip: %w", err)
	}
	head, err := c.cfg.Backend.HeaderByNumber(ctx, nil)
	if err != nil {
		return common.Hash{}, fmt.Errorf("latest header: %w", err)
	}
	feeCap := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))

	c.mu.Lock()
	defer c.mu.Unlock()
	if ready != nil {
		if err := ready(); err != nil {
			return common.Hash{}, err
		}
	}
	if !c.nonceKnown {
		n, err := c.cfg.Backend.PendingNonceAt(ctx, c.from)
		if err != nil {
			return common.Hash{}, fmt.Errorf("settlement nonce: %w", err)
		}
		c.nonce, c.nonceKnown = n, true
	}
	tx, err := types.SignNewTx(c.cfg.SettlementKey, c.signer, &types.DynamicFeeTx{
		ChainID: c.chainID, Nonce: c.nonce, GasTipCap: tip, GasFeeCap: feeCap,
		Gas: gas + gas/4, To: &to, Data: data,
	})
	if err != nil {
		return common.Hash{}, err
	}
	if record != nil {
		raw, err := tx.MarshalBinary()
		if err != nil {
			return common.Hash{}, err
		}
		if err := record(tx.Hash(), raw); err != nil {
			return common.Hash{}, fmt.Errorf("journal the transaction before sending: %w", err)
		}
	}
	if err := c.broadcast(ctx, tx); err != nil {
		c.nonceKnown = false
		return tx.Hash(), err
	}
	c.nonce++
	return tx.Hash(), nil
}

// broadcastError means that no node is known to hold a signed transaction:
// the node rejected it (Rejected), or every attempt failed to get an answer.
// In the second case the transaction may still have reached a node and may
// land: its fate is learned by hash and by the authorization's state, and
// the same bytes may be broadcast again; a new transaction must not be
// signed in its place while its nonce is unused.
type broadcastError struct {
	Rejected bool
	Err      error
}

func (e *broadcastError) Error() string {
	if e.Rejected {
		return "the node rejected the transaction: " + e.Err.Error()
	}
	return "no node accepted the transaction: " + e.Err.Error()
}

func (e *broadcastError) Unwrap() error { return e.Err }

// broadcast sends tx until a node accepts it, at most BroadcastAttempts
// times, with backoff, while the node cannot be reached or answers a
// transient error, always the same signed bytes. A node that answers it
// already knows the transaction, or refuses it for a nonce that the
// transaction itself used (it was mined), has accepted it. Any other answer
// is a rejection, final.
func (c *Chain) broadcast(ctx context.Context, tx *types.Transaction) error {
	backoff := c.cfg.BroadcastBackoff
	var last error
	for attempt := 0; attempt < c.cfg.BroadcastAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return &broadcastError{Err: errors.Join(last, ctx.Err())}
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.BroadcastTimeout)
		err := c.cfg.Backend.SendTransaction(actx, tx)
		cancel()
		switch {
		case err == nil || alreadyKnown(err):
			return nil
		case transient(err):
			last = err
			continue
		case nonceTooLow(err) && c.known(ctx, tx.Hash()):
			return nil
		}
		return &broadcastError{Rejected: true, Err: err}
	}
	// A dropped connection may have delivered the transaction every time
	// without an answer coming back: ask for it by hash before giving up.
	if c.known(ctx, tx.Hash()) {
		return nil
	}
	return &broadcastError{Err: fmt.Errorf("%d attempts: %w", c.cfg.BroadcastAttempts, last)}
}

// Rebroadcast sends a journaled signed transaction (0x-prefixed hex) again,
// as broadcast does, and returns its hash. Recovery uses it for a
// transaction the node does not know whose nonce is still unused.
func (c *Chain) Rebroadcast(ctx context.Context, raw string) (common.Hash, error) {
	tx, err := decodeRaw(raw)
	if err != nil {
		return common.Hash{}, err
	}
	return tx.Hash(), c.broadcast(ctx, tx)
}

func decodeRaw(raw string) (*types.Transaction, error) {
	b, err := hexutil.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("journaled transaction: %w", err)
	}
	tx := new(types.Transaction)
	if err := tx.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("journaled transaction: %w", err)
	}
	return tx, nil
}

// known reports whether the node holds transaction h (pending or mined).
func (c *Chain) known(ctx context.Context, h common.Hash) bool {
	if ctx.Err() != nil {
		return false
	}
	tx, _, err := c.transactionByHash(ctx, h)
	return err == nil && tx != nil
}

// alreadyKnown reports a node's answer that it holds the transaction already
// (geth: "already known"; others: "known transaction", "already imported").
func alreadyKnown(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "already known") || strings.Contains(m, "known transaction") || strings.Contains(m, "already imported")
}

func nonceTooLow(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "nonce too low")
}

// transient reports whether a failed broadcast may succeed if repeated: the
// node was not reached or did not answer, answered an HTTP error (429, 5xx),
// or answered a JSON-RPC rate limit or timeout; or it holds another
// transaction of the settlement key with the same nonce ("replacement
// transaction underpriced": one signed while this one had reached no node),
// which either lands, taking the nonce for good, or is dropped.
func transient(err error) bool {
	if isTransport(err) {
		return true
	}
	var re rpc.Error
	if errors.As(err, &re) && re.ErrorCode() == -32005 { // limit exceeded (EIP-1474)
		return true
	}
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "rate limit") || strings.Contains(m, "too many requests") || strings.Contains(m, "timeout") ||
		strings.Contains(m, "replacement transaction underpriced")
}

// errReceiptTimeout means the receipt did not arrive within ReceiptTimeout.
var errReceiptTimeout = errors.New("receipt did not arrive in time")

// wait polls for a transaction's receipt until it arrives or ReceiptTimeout
// passes (errReceiptTimeout: the outcome is unknown).
func (c *Chain) wait(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReceiptTimeout)
	defer cancel()
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	for {
		// Every error is retried until the deadline: "not found", "indexing
		// in progress" and a node that is briefly unreachable all mean the
		// outcome is not known yet, never that the transaction failed.
		if rc, err := c.cfg.Backend.TransactionReceipt(ctx, hash); err == nil {
			return rc, nil
		}
		select {
		case <-ctx.Done():
			return nil, errReceiptTimeout
		case <-t.C:
		}
	}
}

// isTransport reports whether err is a failure to reach the node (as
// opposed to an answer from it, such as a revert).
func isTransport(err error) bool {
	var re rpc.Error
	if errors.As(err, &re) {
		return false
	}
	var de rpc.DataError
	return !errors.As(err, &de)
}

// revertReason extracts the revert string from an eth_call or estimate error.
func revertReason(err error) string {
	var de rpc.DataError
	if errors.As(err, &de) {
		if s, ok := de.ErrorData().(string); ok {
			if b := common.FromHex(s); len(b) > 4 {
				if r, uerr := abi.UnpackRevert(b); uerr == nil {
					return r
				}
			}
		}
	}
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, "execution reverted: "); ok {
		return after
	}
	return msg
}

func callMsg(from, to common.Address, data []byte) ethereum.CallMsg {
	return ethereum.CallMsg{From: from, To: &to, Data: data}
}
