package evm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/contracts"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// batchABI is CoinopBatchSettler's interface, from the committed artifact.
var batchABI = mustABI(contracts.BatchSettlerABI)

var (
	itemSettledEvent = batchABI.Events["ItemSettled"]
	itemFailedEvent  = batchABI.Events["ItemFailed"]
)

// BatchItem is one EIP-3009 transferWithAuthorization to settle in a batch.
// Build it with NewBatchItem or Exact.BatchItem, which check it.
type BatchItem struct {
	// Token is the EIP-3009 contract the authorization is signed for. All
	// items of a batch name the same token.
	Token common.Address
	// Auth is the signed authorization.
	Auth eip3009.Authorization
	// Sig is the payer's r‖s‖v signature with v 27 or 28.
	Sig [65]byte
}

// NewBatchItem returns auth for token with its 65-byte r‖s‖v signature (v
// 0, 1, 27 or 28, low s). It checks the form only: whether the token accepts
// the signature is learned on chain, per item.
func NewBatchItem(token common.Address, auth eip3009.Authorization, sig []byte) (BatchItem, error) {
	if err := auth.Valid(); err != nil {
		return BatchItem{}, fmt.Errorf("evm: batch item: %w", err)
	}
	v, err := eip3009.CheckSignature(sig)
	if err != nil {
		return BatchItem{}, fmt.Errorf("evm: batch item: %w", err)
	}
	it := BatchItem{Token: token, Auth: auth}
	copy(it.Sig[:], sig)
	it.Sig[64] = 27 + v
	return it, nil
}

// BatchItem returns the authorization of a credential this scheme checked
// (Check, then Verify to know it would settle) as an item for
// Chain.SettleBatch, instead of settling it alone with Settle.
func (e *Exact) BatchItem(c *x402.Credential) (BatchItem, error) {
	s, err := state(c)
	if err != nil {
		return BatchItem{}, err
	}
	if !strings.EqualFold(c.Requirements.Asset, e.assetHex) {
		return BatchItem{}, fmt.Errorf("evm: credential is for asset %s, this scheme settles %s", c.Requirements.Asset, e.assetHex)
	}
	return NewBatchItem(e.cfg.Asset, s.auth, s.sig)
}

// BatchResult is what became of one item of a batch.
type BatchResult struct {
	// Settled means the money moved in the batch transaction: the settler
	// reported the item settled and the receipt holds the token's
	// AuthorizationUsed(from, nonce) and Transfer(from, to, value) for it.
	Settled bool
	// Reason, for an item that did not settle, is the token's revert
	// message ("FiatTokenV2: authorization is expired"), or its revert data
	// in hex if it is not a message.
	Reason string
}

// batchItem is the settler's Item tuple; go-ethereum matches the fields to
// the ABI's component names.
type batchItem struct {
	From, To                       common.Address
	Value, ValidAfter, ValidBefore *big.Int
	Nonce                          [32]byte
	V                              uint8
	R, S                           [32]byte
}

// SettleBatch settles items in one transaction from the settlement key
// through batcher, a CoinopBatchSettler, and waits for the receipt. An item
// the token rejects (used, expired, bad signature, short balance) fails
// alone; results[i] says what became of items[i].
//
// record, if non-nil, is called with the transaction hash and its signed
// bytes (0x-prefixed hex) before it is broadcast, for journaling; if it
// fails, nothing is sent.
//
// The error is a *coinop.Error, and tx is set whenever a transaction may
// have been broadcast. KindUnavailable with reason settlement_pending: tx
// was sent but its outcome is not known yet; each authorization either gets
// used by tx or stays unused (AuthorizationUsed tells). KindUnavailable with
// reason settlement_not_sent: tx was signed and journaled but no node
// accepted it; it may still land. KindSettleFailed with reason
// settlement_rejected: the node refused tx. KindSettleFailed
// with a tx: the transaction reverted and no item moved money, or its
// receipt does not account for the items (then ask the chain per item). Any
// error without a tx: nothing was sent.
//
// An item that failed may still have been paid by another transaction (a
// front-runner can submit a signed authorization too; the money goes where
// the payer said either way): AuthorizationUsed tells.
func (c *Chain) SettleBatch(ctx context.Context, batcher common.Address, items []BatchItem, record func(tx, raw string) error) (tx string, results []BatchResult, err error) {
	data, err := packBatch(items)
	if err != nil {
		return "", nil, coinop.Wrap(coinop.KindInternal, x402.ReasonUnexpectedSettle, err, "could not encode the batch")
	}
	var rec func(common.Hash, []byte) error
	var recErr error
	if record != nil {
		rec = func(h common.Hash, raw []byte) error { recErr = record(h.Hex(), hexutil.Encode(raw)); return recErr }
	}
	hash, err := c.send(ctx, batcher, data, nil, rec)
	if recErr != nil {
		return "", nil, coinop.Wrap(coinop.KindUnavailable, x402.ReasonUnexpectedSettle, err, "the batch could not be journaled, so it was not sent")
	}
	if err != nil && hash != (common.Hash{}) {
		return hash.Hex(), nil, broadcastFailure(err, "batch")
	}
	if err != nil {
		if isTransport(err) {
			return "", nil, coinop.Wrap(coinop.KindUnavailable, x402.ReasonChainUnavailable, err, "the chain cannot be reached to settle the batch")
		}
		// Refused by the node (a revert in the estimate, a gas limit over the
		// chain's cap): not sent.
		return "", nil, coinop.Wrap(coinop.KindSettleFailed, x402.ReasonTransactionFailed, err, "the batch was refused before it was sent")
	}
	tx = hash.Hex()
	rc, err := c.wait(ctx, hash)
	if err != nil {
		return tx, nil, coinop.Wrap(coinop.KindUnavailable, x402.ReasonSettlementPending, err, "the batch was sent; its receipt has not arrived yet")
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		return tx, nil, coinop.Errorf(coinop.KindSettleFailed, x402.ReasonTransactionFailed, "batch transaction %s reverted; no item was settled by it", tx)
	}
	results, err = batchResults(rc, batcher, items)
	if err != nil {
		return tx, nil, coinop.Wrap(coinop.KindSettleFailed, x402.ReasonTransactionFailed, err, "batch transaction "+tx+" has a receipt that does not account for every item")
	}
	return tx, results, nil
}

func packBatch(items []BatchItem) ([]byte, error) {
	if len(items) == 0 {
		return nil, errors.New("empty batch")
	}
	token := items[0].Token
	tuples := make([]batchItem, len(items))
	for i, it := range items {
		if it.Token != token {
			return nil, fmt.Errorf("item %d is for token %s, item 0 for %s: a batch settles one token", i, it.Token.Hex(), token.Hex())
		}
		if err := it.Auth.Valid(); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		a := &it.Auth
		tuples[i] = batchItem{
			From: common.Address(a.From), To: common.Address(a.To),
			Value: a.Value, ValidAfter: a.ValidAfter, ValidBefore: a.ValidBefore, Nonce: a.Nonce,
			V: it.Sig[64], R: [32]byte(it.Sig[:32]), S: [32]byte(it.Sig[32:64]),
		}
	}
	return batchABI.Pack("settle", token, tuples)
}

// batchResults reads the per-item outcome from a successful receipt and
// checks it against the token's own logs. The settler emits one event per
// item, in item order, right after the token's logs for that item; so the
// token logs between two settler events belong to the later one. A settled
// item must have its AuthorizationUsed and Transfer there, and an event that
// is missing, out of order, or names another payer or nonce is an error: the
// receipt is not one of ours (wrong address) or not to be believed.
func batchResults(rc *types.Receipt, batcher common.Address, items []BatchItem) ([]BatchResult, error) {
	token := items[0].Token
	results := make([]BatchResult, len(items))
	next := 0
	var tokenLogs []*types.Log // the token's logs since the previous settler event
	for _, l := range rc.Logs {
		if l.Address == token {
			tokenLogs = append(tokenLogs, l)
			continue
		}
		if l.Address != batcher || len(l.Topics) == 0 || (l.Topics[0] != itemSettledEvent.ID && l.Topics[0] != itemFailedEvent.ID) {
			continue
		}
		settled := l.Topics[0] == itemSettledEvent.ID
		ev := itemFailedEvent
		if settled {
			ev = itemSettledEvent
		}
		v, err := ev.Inputs.Unpack(l.Data)
		if err != nil {
			return nil, fmt.Errorf("log %d: %s: %w", l.Index, ev.Name, err)
		}
		index, from, nonce := v[0].(*big.Int), v[1].(common.Address), v[2].([32]byte)
		if !index.IsInt64() || index.Int64() != int64(next) || next >= len(items) {
			return nil, fmt.Errorf("log %d: %s for item %s, expected item %d of %d", l.Index, ev.Name, index, next, len(items))
		}
		it := &items[next]
		if from != common.Address(it.Auth.From) || nonce != it.Auth.Nonce {
			return nil, fmt.Errorf("log %d: %s for item %d names payer %s nonce %x, the item is %s nonce %x",
				l.Index, ev.Name, next, from.Hex(), nonce, it.Auth.From.Hex(), it.Auth.Nonce)
		}
		if settled {
			own := &types.Receipt{Logs: tokenLogs}
			if !hasAuthorizationUsed(tokenLogs, from, nonce) ||
				!hasTransfer(own, token, from, common.Address(it.Auth.To), it.Auth.Value) {
				return nil, fmt.Errorf("item %d is reported settled, but the token logged no AuthorizationUsed and Transfer of %s from %s to %s for it",
					next, it.Auth.Value, from.Hex(), it.Auth.To.Hex())
			}
			results[next].Settled = true
		} else {
			results[next].Reason = revertMessage(v[3].([]byte))
		}
		tokenLogs = tokenLogs[:0]
		next++
	}
	if next != len(items) {
		return nil, fmt.Errorf("the receipt reports %d of %d items (is %s a CoinopBatchSettler?)", next, len(items), batcher.Hex())
	}
	return results, nil
}

// hasAuthorizationUsed looks for the token's AuthorizationUsed(from, nonce)
// among logs, which all come from the token.
func hasAuthorizationUsed(logs []*types.Log, from common.Address, nonce [32]byte) bool {
	for _, l := range logs {
		if len(l.Topics) == 3 && l.Topics[0] == authorizationUsedTopic &&
			common.BytesToAddress(l.Topics[1].Bytes()) == from && l.Topics[2] == common.Hash(nonce) {
			return true
		}
	}
	return false
}

// revertMessage decodes revert data: an Error(string) message or a
// Panic(uint256) description, else hex.
func revertMessage(data []byte) string {
	if msg, err := abi.UnpackRevert(data); err == nil {
		return msg
	}
	if len(data) == 0 {
		return "reverted without a reason"
	}
	return "0x" + hex.EncodeToString(data)
}
