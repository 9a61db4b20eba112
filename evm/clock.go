package evm

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/ethclient/gethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// DefaultInclusionMargin is ChainConfig.InclusionMargin's default: a
// couple of blocks on an L2, and half x402's verification buffer
// (x402.ValidBeforeBuffer), so that a payment verified with the least
// validity allowed is not refused for the time the request itself took.
const DefaultInclusionMargin = 3 * time.Second

// headTTL is how long the newest block's time is reused between
// simulations: blocks come seconds apart, and a stale value only makes the
// estimated inclusion time a little early.
const headTTL = time.Second

// inclusionClock estimates when a transaction sent now would be mined:
// by the clock, but never before one second past the newest block.
type inclusionClock struct {
	mu      sync.Mutex
	head    time.Time // the newest block's timestamp
	fetched time.Time // by the clock, when head was read
	// noOverrides is set once the node refused eth_call's block overrides;
	// simulations then run at the newest block's own time.
	noOverrides atomic.Bool
}

// minedAt is the earliest time a transaction sent now can be mined at:
// max(now, newest block + 1 s). A chain whose newest block is old (the dev
// chain while idle, a quiet L2) still mines the next block at about now.
func (c *Chain) minedAt(ctx context.Context) (time.Time, error) {
	now := c.cfg.Now()
	c.clock.mu.Lock()
	head, fresh := c.clock.head, now.Sub(c.clock.fetched) < headTTL && !c.clock.fetched.IsZero()
	c.clock.mu.Unlock()
	if !fresh {
		h, err := c.cfg.Backend.HeaderByNumber(ctx, nil)
		if err != nil {
			return time.Time{}, err
		}
		head = time.Unix(int64(h.Time), 0)
		c.clock.mu.Lock()
		c.clock.head, c.clock.fetched = head, now
		c.clock.mu.Unlock()
	}
	return maxTime(now, head.Add(time.Second)), nil
}

// outlives checks, before a settlement is sent, that auth is still valid
// InclusionMargin past the earliest time the transaction can be mined. A
// transaction that lands after validBefore reverts: the gas is burnt, and
// a sync response would have been held for nothing. Nothing is sent when it
// fails.
func (c *Chain) outlives(ctx context.Context, auth *eip3009.Authorization) error {
	at, err := c.minedAt(ctx)
	if err != nil {
		return coinop.Wrap(coinop.KindUnavailable, x402.ReasonChainUnavailable, err, "the chain cannot be reached to settle the payment; nothing was sent")
	}
	need := at.Add(c.cfg.InclusionMargin)
	if auth.ValidBefore.Cmp(big.NewInt(need.Unix())) <= 0 {
		return coinop.Errorf(coinop.KindSettleFailed, x402.ReasonAuthorizationExpiring,
			"the authorization expires at unix time %s, and its settlement could not be mined before %d; nothing was sent", auth.ValidBefore, need.Unix())
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// rpcBackend is a Backend that exposes its JSON-RPC client, as
// *ethclient.Client does; it makes block overrides possible.
type rpcBackend interface {
	Client() *rpc.Client
}

// callAtInclusion runs msg as an eth_call on the newest state, with the
// block's timestamp overridden to when a transaction sent now would be
// mined (minedAt). Validity windows (EIP-3009's validAfter and
// validBefore) are then judged against the time the settlement will
// actually meet, not the newest block's, which on an idle chain may be
// minutes old and would refuse an authorization valid from "ten minutes
// ago". A node that does not take block overrides (or a Backend without a
// JSON-RPC client) is simulated at the newest block's time, as before.
func (c *Chain) callAtInclusion(ctx context.Context, msg ethereum.CallMsg) ([]byte, error) {
	rb, ok := c.cfg.Backend.(rpcBackend)
	if !ok || c.clock.noOverrides.Load() {
		return c.cfg.Backend.CallContract(ctx, msg, nil)
	}
	at, err := c.minedAt(ctx)
	if err != nil {
		return nil, err
	}
	out, err := gethclient.New(rb.Client()).CallContractWithBlockOverrides(ctx, msg, nil, nil, gethclient.BlockOverrides{Time: uint64(at.Unix())})
	if refusesOverrides(err) {
		c.clock.noOverrides.Store(true)
		return c.cfg.Backend.CallContract(ctx, msg, nil)
	}
	return out, err
}

// refusesOverrides reports whether a node answered that it does not take
// eth_call's third and fourth parameters: invalid params or no such method
// (-32602, -32601), or a message that says so ("too many arguments", as
// older go-ethereum answers, "invalid argument 3", anything naming
// overrides). A revert (code 3, or -32000 "execution reverted") is not such
// an answer, nor is a transient failure such as a rate limit: both are the
// call's outcome.
func refusesOverrides(err error) bool {
	var re rpc.Error
	if !errors.As(err, &re) {
		return false
	}
	if re.ErrorCode() == -32602 || re.ErrorCode() == -32601 {
		return true
	}
	msg := strings.ToLower(re.Error())
	return !strings.Contains(msg, "revert") && (strings.Contains(msg, "too many arguments") ||
		strings.Contains(msg, "invalid argument") || strings.Contains(msg, "override"))
}
