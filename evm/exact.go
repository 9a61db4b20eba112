package evm

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// RailName names the x402 exact EVM rail in the journal.
const RailName = "x402-exact-evm"

// ExactConfig is one asset and recipient on a chain.
type ExactConfig struct {
	// Asset is the EIP-3009 token contract.
	Asset common.Address
	// Name and Version are the token's EIP-712 domain (USDC on Base: "USD
	// Coin", "2"); they are offered in extra and must match the contract.
	Name, Version string
	// PayTo receives the payments.
	PayTo common.Address
	// MaxTimeout is the validity window offered to payers. If zero, 60 s.
	MaxTimeout time.Duration
	// BatchSettler is a deployed CoinopBatchSettler contract. When set,
	// payments settled together (async mode) share one transaction; when
	// zero, each is settled alone.
	BatchSettler common.Address
}

// Exact is the x402 exact scheme for one asset and recipient on one chain.
// It is safe for concurrent use.
type Exact struct {
	chain     *Chain
	cfg       ExactConfig
	separator [32]byte
	assetHex  string // checksummed, as offered
	payToHex  string
	assetKey  string // lower-case, as journaled
	extra     map[string]any
}

var _ x402.Scheme = (*Exact)(nil)

// NewExact returns the exact scheme for cfg on chain.
func NewExact(chain *Chain, cfg ExactConfig) (*Exact, error) {
	if cfg.Name == "" || cfg.Version == "" {
		return nil, errors.New("evm: the token's EIP-712 name and version are required")
	}
	if cfg.MaxTimeout == 0 {
		cfg.MaxTimeout = 60 * time.Second
	}
	d := eip3009.Domain{Name: cfg.Name, Version: cfg.Version, ChainID: chain.cfg.ChainID, VerifyingContract: eip3009.Address(cfg.Asset)}
	return &Exact{
		chain: chain, cfg: cfg, separator: d.Separator(),
		assetHex: cfg.Asset.Hex(), payToHex: cfg.PayTo.Hex(),
		assetKey: strings.ToLower(cfg.Asset.Hex()),
		extra:    map[string]any{"name": cfg.Name, "version": cfg.Version},
	}, nil
}

// Requirements offers ch's price in this asset to PayTo.
func (e *Exact) Requirements(ch coinop.Charge) x402.PaymentRequirements {
	return x402.PaymentRequirements{
		Scheme: "exact", Network: e.chain.cfg.Network, Amount: ch.Price.Amount.String(),
		Asset: e.assetHex, PayTo: e.payToHex,
		MaxTimeoutSeconds: int(e.cfg.MaxTimeout / time.Second), Extra: e.extra,
	}
}

// checked is the decoded authorization a Check leaves for Verify and Settle.
type checked struct {
	auth eip3009.Authorization
	sig  []byte
}

func reject(reason, format string, args ...any) error {
	return coinop.Errorf(coinop.KindRejected, reason, format, args...)
}

// Check makes the stateless checks (x402.CheckExactEVM) and keeps the
// decoded authorization for Verify and Settle.
func (e *Exact) Check(c *x402.Credential) (*coinop.Payment, error) {
	if e.cfg.Name == "" || e.cfg.Version == "" {
		return nil, coinop.Errorf(coinop.KindRejected, x402.ReasonMissingDomain, "the offer lacks the token's EIP-712 domain")
	}
	p, auth, sig, err := x402.CheckExactEVM(c, RailName, e.chain.cfg.Now())
	if err != nil {
		return nil, err
	}
	c.State = &checked{auth: *auth, sig: sig}
	return p, nil
}

func state(c *x402.Credential) (*checked, error) {
	s, ok := c.State.(*checked)
	if !ok {
		return nil, coinop.Errorf(coinop.KindInternal, x402.ReasonUnexpectedVerify, "credential was not checked")
	}
	return s, nil
}

// Verify recovers the signer and simulates the transfer on chain.
func (e *Exact) Verify(ctx context.Context, p *coinop.Payment, c *x402.Credential) error {
	s, err := state(c)
	if err != nil {
		return err
	}
	if err := e.recover(s); err != nil {
		return err
	}
	return e.simulate(ctx, s)
}

func (e *Exact) recover(s *checked) error {
	digest := s.auth.Digest(e.separator)
	sig := make([]byte, 65)
	copy(sig, s.sig)
	if sig[64] >= 27 {
		sig[64] -= 27
	}
	pub, err := crypto.Ecrecover(digest[:], sig)
	if err != nil {
		return reject(x402.ReasonInvalidSignature, "signature does not recover: %v", err)
	}
	var signer eip3009.Address
	copy(signer[:], crypto.Keccak256(pub[1:])[12:])
	if signer != s.auth.From {
		return reject(x402.ReasonInvalidSignature, "signature is not from %s (token %s, domain %q version %q, chain %d)", s.auth.From.Hex(), e.assetHex, e.cfg.Name, e.cfg.Version, e.chain.cfg.ChainID)
	}
	return nil
}

func (e *Exact) calldata(s *checked) ([]byte, error) {
	var r, sv [32]byte
	copy(r[:], s.sig[:32])
	copy(sv[:], s.sig[32:64])
	v := s.sig[64]
	if v < 27 {
		v += 27
	}
	return tokenABI.Pack("transferWithAuthorization", common.Address(s.auth.From), common.Address(s.auth.To),
		s.auth.Value, s.auth.ValidAfter, s.auth.ValidBefore, s.auth.Nonce, v, r, sv)
}

// simulate runs transferWithAuthorization as an eth_call at the time it
// would be mined (see Chain.callAtInclusion). A revert is diagnosed into
// the payer's problem; an unreachable node fails closed.
func (e *Exact) simulate(ctx context.Context, s *checked) error {
	data, err := e.calldata(s)
	if err != nil {
		return coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedVerify, err, "could not encode the transfer")
	}
	_, err = e.chain.callAtInclusion(ctx, callMsg(e.chain.from, e.cfg.Asset, data))
	if err == nil {
		return nil
	}
	return e.diagnose(ctx, s, err)
}

// diagnose turns a failed simulation or settlement into a reason code.
func (e *Exact) diagnose(ctx context.Context, s *checked, err error) error {
	if isTransport(err) {
		return coinop.Wrap(coinop.KindUnavailable, x402.ReasonChainUnavailable, err, "the chain cannot be reached to verify the payment; try again shortly")
	}
	reason := revertReason(err)
	if bal, berr := e.chain.BalanceOf(ctx, e.cfg.Asset, common.Address(s.auth.From)); berr == nil && bal.Cmp(s.auth.Value) < 0 {
		return coinop.Errorf(coinop.KindInsufficientFunds, x402.ReasonInsufficientFunds, "payer %s holds %s, the price is %s", s.auth.From.Hex(), bal, s.auth.Value)
	}
	if used, uerr := e.chain.AuthorizationUsed(ctx, e.cfg.Asset, common.Address(s.auth.From), s.auth.Nonce); uerr == nil && used {
		return coinop.Errorf(coinop.KindReplayed, x402.ReasonNonceUsed, "this authorization was already used on chain")
	}
	switch {
	case strings.Contains(reason, "invalid signature"):
		return reject(x402.ReasonInvalidSignature, "the token rejects the signature: %s", reason)
	case strings.Contains(reason, "expired"):
		return reject(x402.ReasonValidBefore, "the token says: %s", reason)
	case strings.Contains(reason, "not yet valid"):
		return reject(x402.ReasonValidAfter, "the token says: %s", reason)
	}
	return reject(x402.ReasonSimulationFailed, "the transfer would fail on chain: %s", reason)
}

// Settle sends transferWithAuthorization and waits for its receipt. An
// authorization that would expire before the transaction is mined is not
// sent (authorization_expiring; see ChainConfig.InclusionMargin).
func (e *Exact) Settle(ctx context.Context, p *coinop.Payment, c *x402.Credential, rec coinop.Recorder) (*x402.SettleResponse, error) {
	resp := &x402.SettleResponse{Network: e.chain.cfg.Network, Payer: payerHex(p)}
	s, err := state(c)
	if err != nil {
		return resp, err
	}
	if err := e.chain.outlives(ctx, &s.auth); err != nil {
		resp.ErrorReason = coinop.AsError(err).Reason
		return resp, err
	}
	data, err := e.calldata(s)
	if err != nil {
		return resp, coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedSettle, err, "could not encode the transfer")
	}
	var record func(common.Hash, []byte) error
	if rec != nil {
		record = func(h common.Hash, raw []byte) error { return rec.Record(ctx, h.Hex(), hexutil.Encode(raw)) }
	}
	// Checked again once this settlement's turn to be signed has come:
	// the wait behind other settlements of the same key counts.
	var late error
	ready := func() error { late = e.chain.outlives(ctx, &s.auth); return late }
	hash, err := e.chain.send(ctx, e.cfg.Asset, data, ready, record)
	if late != nil {
		resp.ErrorReason = coinop.AsError(late).Reason
		return resp, late
	}
	if err != nil && hash != (common.Hash{}) {
		resp.Transaction = hash.Hex()
		serr := broadcastFailure(err, "settlement")
		resp.ErrorReason = serr.Reason
		return resp, serr
	}
	if err != nil {
		derr := e.diagnose(ctx, s, err)
		resp.ErrorReason = coinop.AsError(derr).Reason
		return resp, derr
	}
	return e.confirm(ctx, p, s, resp, hash, rec)
}

var _ x402.ResendScheme = (*Exact)(nil)

// Resend broadcasts p's journaled settlement transaction (p.Prepared) again,
// the same signed bytes, and finishes as Settle does. A transaction signed
// anew could land beside the journaled one; the same bytes land at most
// once.
func (e *Exact) Resend(ctx context.Context, p *coinop.Payment, c *x402.Credential, rec coinop.Recorder) (*x402.SettleResponse, error) {
	resp := &x402.SettleResponse{Network: e.chain.cfg.Network, Payer: payerHex(p)}
	s, err := state(c)
	if err != nil {
		return resp, err
	}
	hash, err := e.chain.Rebroadcast(ctx, p.Prepared)
	if hash == (common.Hash{}) {
		return resp, coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedSettle, err, "the journaled settlement transaction cannot be read")
	}
	resp.Transaction = hash.Hex()
	var be *broadcastError
	if errors.As(err, &be) && be.Rejected && nonceTooLow(err) {
		// broadcast found no transaction by this hash: another one took
		// the nonce, and this one can never be mined.
		resp.ErrorReason = coinop.ReasonSettlementNonceTaken
		return resp, coinop.Wrap(coinop.KindSettleFailed, coinop.ReasonSettlementNonceTaken, err, "the settlement transaction was superseded; nothing moved through it")
	}
	if err != nil {
		serr := broadcastFailure(err, "settlement")
		resp.ErrorReason = serr.Reason
		return resp, serr
	}
	return e.confirm(ctx, p, s, resp, hash, rec)
}

// confirm waits for the receipt of settlement transaction hash, which a node
// accepted, and checks that it moved s's money.
func (e *Exact) confirm(ctx context.Context, p *coinop.Payment, s *checked, resp *x402.SettleResponse, hash common.Hash, rec coinop.Recorder) (*x402.SettleResponse, error) {
	resp.Transaction = hash.Hex()
	if rec != nil {
		rec.Step("tx_sent")
	}
	rc, err := e.chain.wait(ctx, hash)
	if err != nil {
		resp.Pending, resp.ErrorReason = true, x402.ReasonSettlementPending
		return resp, coinop.Wrap(coinop.KindUnavailable, x402.ReasonSettlementPending, err, "the settlement was sent; its receipt has not arrived yet")
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		resp.ErrorReason = x402.ReasonTransactionFailed
		return resp, coinop.Errorf(coinop.KindSettleFailed, x402.ReasonTransactionFailed, "settlement transaction %s reverted", hash.Hex())
	}
	if !hasTransfer(rc, e.cfg.Asset, common.Address(s.auth.From), common.Address(s.auth.To), s.auth.Value) {
		resp.ErrorReason = x402.ReasonTransactionFailed
		return resp, coinop.Errorf(coinop.KindSettleFailed, x402.ReasonTransactionFailed, "settlement transaction %s has no matching Transfer event", hash.Hex())
	}
	resp.Success = true
	return resp, nil
}

// broadcastFailure is the error for a signed, journaled transaction that no
// node accepted (send's *broadcastError, or the journal's error): rejected
// outright, it failed; never answered, it is not sent, and, since it may
// still have reached a node, not failed either. what names the transaction
// for people.
func broadcastFailure(err error, what string) *coinop.Error {
	var be *broadcastError
	if errors.As(err, &be) && be.Rejected {
		return coinop.Wrap(coinop.KindSettleFailed, x402.ReasonSettlementRejected, err, "the network refused the "+what+" transaction")
	}
	return coinop.Wrap(coinop.KindUnavailable, x402.ReasonSettlementNotSent, err, "the "+what+" transaction has not reached the network yet; try again shortly")
}

// hasTransfer checks a receipt for the token's Transfer(from, to, value).
func hasTransfer(rc *types.Receipt, asset, from, to common.Address, value *big.Int) bool {
	for _, l := range rc.Logs {
		if l.Address != asset || len(l.Topics) != 3 || l.Topics[0] != transferTopic {
			continue
		}
		if common.BytesToAddress(l.Topics[1].Bytes()) == from && common.BytesToAddress(l.Topics[2].Bytes()) == to &&
			new(big.Int).SetBytes(l.Data).Cmp(value) == 0 {
			return true
		}
	}
	return false
}

func payerHex(p *coinop.Payment) string {
	if p == nil {
		return ""
	}
	return common.HexToAddress(p.Payer).Hex()
}
