package evm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// ProbeBackend is what Probe reads beyond Backend. *ethclient.Client
// implements it.
type ProbeBackend interface {
	ChainID(ctx context.Context) (*big.Int, error)
	CodeAt(ctx context.Context, account common.Address, block *big.Int) ([]byte, error)
	BalanceAt(ctx context.Context, account common.Address, block *big.Int) (*big.Int, error)
}

// ProbeAsset is an asset as configured: the token contract and the
// EIP-712 domain payers will be told to sign over.
type ProbeAsset struct {
	// Label names the asset in findings ("USDC").
	Label         string
	Address       common.Address
	Name, Version string
}

// ProbeCheck names what a probe checked.
type ProbeCheck string

// The probes Chain.Probe runs.
const (
	CheckNode         ProbeCheck = "node"          // the node answers at all
	CheckChainID      ProbeCheck = "chain_id"      // eth_chainId is the configured chain
	CheckCode         ProbeCheck = "code"          // the asset has code
	CheckDomain       ProbeCheck = "domain"        // the asset's DOMAIN_SEPARATOR is the configured domain's
	CheckBatchSettler ProbeCheck = "batch_settler" // the batch settler has code
	CheckGas          ProbeCheck = "gas"           // the settlement key holds gas
)

// Finding is the outcome of one probe.
type Finding struct {
	Check ProbeCheck
	// Subject says what was probed, e.g. "eip155:8453 chain id".
	Subject string
	// Detail is what the node answered, for a probe that passed.
	Detail string
	// Err is what is wrong; nil when the probe passed.
	Err error
	// Warning marks an Err that does not stop the gateway from serving
	// correctly (a settlement key short of gas: settlements fail until it
	// is funded, and every such failure withholds the response).
	Warning bool
	// Unreachable marks an Err that says the node could not be asked. A
	// gateway may still start: priced requests fail closed until the node
	// answers.
	Unreachable bool
	// Asset is the index, in the assets given to Probe, of the asset the
	// finding is about; -1 for the chain, the settlement key and the batch
	// settler.
	Asset int
}

// Fatal reports whether f means that serving would take authorizations
// that can never settle: a node on another chain, a token that is not
// there, a domain payers would sign that the token does not recognize.
func (f Finding) Fatal() bool { return f.Err != nil && !f.Warning && !f.Unreachable }

// domainSeparatorSelector calls EIP-3009 tokens' DOMAIN_SEPARATOR().
var domainSeparatorSelector = crypto.Keccak256([]byte("DOMAIN_SEPARATOR()"))[:4]

// settlementGas is about what one transferWithAuthorization costs; the
// settlement key should hold at least that much gas at today's fees.
const settlementGas = 100_000

// Probe asks the node whether it is the chain c is configured for and holds
// the assets as configured: eth_chainId equals ChainConfig.ChainID; each
// asset has code and its DOMAIN_SEPARATOR() is the hash of the configured
// EIP-712 domain (name, version, chain id, address); the settlement key,
// if any, holds gas for a settlement (a warning only); batchSettler, if
// non-zero, has code.
//
// A signature over another domain recovers to another address, so a
// mismatch would make every payment fail as "invalid signature" while the
// payer believes they paid correctly; a token with no code accepts any
// eth_call and settles nothing. Those are fatal. When the node cannot be
// reached the first finding says so (Unreachable) and no other probe runs.
func (c *Chain) Probe(ctx context.Context, assets []ProbeAsset, batchSettler common.Address) []Finding {
	pb, ok := c.cfg.Backend.(ProbeBackend)
	network := c.cfg.Network
	if !ok {
		return []Finding{{Check: CheckNode, Subject: network + " node", Asset: -1, Unreachable: true, Err: errors.New("this backend cannot be probed")}}
	}
	id, err := pb.ChainID(ctx)
	if err != nil {
		return []Finding{{Check: CheckNode, Subject: network + " node", Asset: -1, Unreachable: true, Err: fmt.Errorf("eth_chainId: %w", err)}}
	}
	if id.Cmp(c.chainID) != 0 {
		return []Finding{{Check: CheckChainID, Subject: network + " chain id", Asset: -1,
			Err: fmt.Errorf("the node serves chain %s, not %d: payments signed for %s could never settle through it", id, c.cfg.ChainID, network)}}
	}
	out := []Finding{{Check: CheckChainID, Subject: network + " chain id", Asset: -1, Detail: fmt.Sprintf("the node serves chain %s", id)}}
	for i, a := range assets {
		out = append(out, c.probeAsset(ctx, pb, i, a))
	}
	if batchSettler != (common.Address{}) {
		f := Finding{Check: CheckBatchSettler, Subject: network + " batch settler " + batchSettler.Hex(), Asset: -1}
		switch code, err := pb.CodeAt(ctx, batchSettler, nil); {
		case err != nil:
			f.Err, f.Unreachable = fmt.Errorf("eth_getCode: %w", err), isTransport(err)
		case len(code) == 0:
			f.Err = errors.New("no contract at this address: batched settlements would move no money")
		default:
			f.Detail = fmt.Sprintf("contract of %d bytes", len(code))
		}
		out = append(out, f)
	}
	if c.cfg.SettlementKey != nil {
		out = append(out, c.probeGas(ctx, pb))
	}
	return out
}

func (c *Chain) probeAsset(ctx context.Context, pb ProbeBackend, i int, a ProbeAsset) Finding {
	f := Finding{Check: CheckCode, Subject: fmt.Sprintf("%s %s %s", c.cfg.Network, a.Label, a.Address.Hex()), Asset: i}
	code, err := pb.CodeAt(ctx, a.Address, nil)
	if err != nil {
		f.Err, f.Unreachable = fmt.Errorf("eth_getCode: %w", err), isTransport(err)
		return f
	}
	if len(code) == 0 {
		f.Err = fmt.Errorf("no contract at this address on %s: payments would be simulated against nothing and never settle", c.cfg.Network)
		return f
	}
	f.Check = CheckDomain
	want := eip3009.Domain{Name: a.Name, Version: a.Version, ChainID: c.cfg.ChainID, VerifyingContract: eip3009.Address(a.Address)}.Separator()
	res, err := c.cfg.Backend.CallContract(ctx, callMsg(common.Address{}, a.Address, domainSeparatorSelector), nil)
	switch {
	case err != nil && isTransport(err):
		f.Err, f.Unreachable = fmt.Errorf("DOMAIN_SEPARATOR(): %w", err), true
	case err != nil || len(res) != 32:
		f.Err, f.Warning = errors.New("the token has no DOMAIN_SEPARATOR(), so its EIP-712 domain cannot be checked"), true
	case !bytes.Equal(res, want[:]):
		f.Err = fmt.Errorf("the token's DOMAIN_SEPARATOR() is %#x, not the hash of the configured EIP-712 domain (name %q, version %q, chain %d): payers' signatures would never verify",
			res, a.Name, a.Version, c.cfg.ChainID)
	default:
		f.Detail = fmt.Sprintf("EIP-712 domain %q version %q matches DOMAIN_SEPARATOR()", a.Name, a.Version)
	}
	return f
}

// probeGas warns when the settlement key could not pay for one settlement
// at the current fees.
func (c *Chain) probeGas(ctx context.Context, pb ProbeBackend) Finding {
	f := Finding{Check: CheckGas, Subject: fmt.Sprintf("%s settlement key %s", c.cfg.Network, c.from.Hex()), Asset: -1, Warning: true}
	bal, err := pb.BalanceAt(ctx, c.from, nil)
	if err != nil {
		f.Err, f.Warning, f.Unreachable = fmt.Errorf("eth_getBalance: %w", err), false, true
		return f
	}
	need := big.NewInt(0)
	if head, err := c.cfg.Backend.HeaderByNumber(ctx, nil); err == nil && head.BaseFee != nil {
		tip, err := c.cfg.Backend.SuggestGasTipCap(ctx)
		if err != nil {
			tip = new(big.Int)
		}
		need.Mul(new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip), big.NewInt(settlementGas))
	}
	switch {
	case bal.Sign() == 0:
		f.Err = errors.New("holds no gas: every settlement will fail until it is funded")
	case bal.Cmp(need) < 0:
		f.Err = fmt.Errorf("holds %s wei, less than one settlement costs at current fees (about %s wei)", bal, need)
	default:
		f.Err, f.Warning = nil, false
		f.Detail = fmt.Sprintf("holds %s wei of gas", bal)
	}
	return f
}

// Ready reports whether the node answers with this chain's id: a readiness
// probe, cheap enough to run on every scrape of /readyz. A node that cannot
// be asked is KindUnavailable; one on another chain KindInternal.
func (c *Chain) Ready(ctx context.Context) error {
	pb, ok := c.cfg.Backend.(ProbeBackend)
	if !ok {
		return nil // a backend without eth_chainId is ready when it answers calls
	}
	id, err := pb.ChainID(ctx)
	if err != nil {
		return coinop.Wrap(coinop.KindUnavailable, x402.ReasonChainUnavailable, err, "the node does not answer eth_chainId")
	}
	if id.Cmp(c.chainID) != 0 {
		return coinop.Errorf(coinop.KindInternal, "chain_id_mismatch", "the node serves chain %s, not %s", id, c.chainID)
	}
	return nil
}
