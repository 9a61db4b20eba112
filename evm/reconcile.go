package evm

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
)

// authorizationUsedTopic is the EIP-3009 AuthorizationUsed event's topic.
var authorizationUsedTopic = crypto.Keccak256Hash([]byte("AuthorizationUsed(address,bytes32)"))

var _ coinop.Reconciler = (*Chain)(nil)

// Reconcile finds out from the chain what became of a journaled payment that
// is not final, for crash recovery. The chain is the authority: an EIP-3009
// authorization either has been used (the money moved, exactly once, to the
// recipient it names) or has not.
//
//   - verified: settlement never started, so the paid response never left
//     (responses are released only after settlement): released.
//   - settling, authorization used: settled, with the transaction that used
//     it (ours if its receipt says so, else found from the token's
//     AuthorizationUsed event).
//   - settling, not used, our transaction still pending: unknown yet.
//   - settling, not used, our journaled transaction unknown to the node
//     (its broadcast failed, or a crash came first): the same signed bytes
//     are broadcast again, unless nothing can land any more: the
//     authorization expired (failed), or another transaction of the
//     settlement key took its nonce (failed; async: Resettle). A new
//     transaction is never signed while the journaled one may still land.
//   - settling, not used, no transaction in flight: failed, nothing moved;
//     except in async mode, where the response was already served and the
//     settlement is still owed: Resettle.
func (c *Chain) Reconcile(ctx context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	if p.State == coinop.StateVerified {
		return coinop.Outcome{State: coinop.StateReleased, Reason: "recovered_before_settlement"}, nil
	}
	if p.State != coinop.StateSettling {
		return coinop.Outcome{State: p.State, Reference: p.Reference}, nil
	}
	asset, payer := common.HexToAddress(p.Asset), common.HexToAddress(p.Payer)
	nonce, err := eip3009.ParseBytes32(p.ReplayKey)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("payment %s: nonce: %w", p.ID, err)
	}
	used, err := c.AuthorizationUsed(ctx, asset, payer, nonce)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("authorizationState: %w", err)
	}
	if used {
		if p.Reference != "" {
			rc, err := c.cfg.Backend.TransactionReceipt(ctx, common.HexToHash(p.Reference))
			if err == nil && rc.Status == types.ReceiptStatusSuccessful {
				return coinop.Outcome{State: coinop.StateSettled, Reference: p.Reference}, nil
			}
		}
		tx, err := c.usedBy(ctx, asset, payer, nonce)
		if err != nil {
			return coinop.Outcome{}, err
		}
		return coinop.Outcome{State: coinop.StateSettled, Reference: tx, Reason: "settled_by_other_transaction"}, nil
	}
	if p.Reference != "" {
		_, pending, err := c.transactionByHash(ctx, common.HexToHash(p.Reference))
		switch {
		case err == nil && pending:
			return coinop.Outcome{}, nil // still in the pool: wait
		case err == nil:
			// Mined, though the authorization looked unused: it reverted,
			// or it was mined after authorizationState was read.
			rc, err := c.cfg.Backend.TransactionReceipt(ctx, common.HexToHash(p.Reference))
			if err != nil {
				return coinop.Outcome{}, fmt.Errorf("receipt of %s: %w", p.Reference, err)
			}
			if rc.Status == types.ReceiptStatusSuccessful {
				// The receipt is the evidence (the latest state may not
				// include its block yet): the token logged this
				// authorization's use in it, or, in a batch that succeeded
				// without this item, did not.
				var own []*types.Log
				for _, l := range rc.Logs {
					if l.Address == asset {
						own = append(own, l)
					}
				}
				if hasAuthorizationUsed(own, payer, nonce) {
					return coinop.Outcome{State: coinop.StateSettled, Reference: p.Reference}, nil
				}
			}
			if p.Mode != coinop.ModeAsync {
				return coinop.Outcome{State: coinop.StateFailed, Reference: p.Reference, Reason: "settlement_reverted"}, nil
			}
		case err != nil && !errors.Is(err, ethereum.NotFound):
			return coinop.Outcome{}, fmt.Errorf("transaction %s: %w", p.Reference, err)
		case p.Prepared != "":
			return c.resend(ctx, p, payer, nonce)
		}
	}
	if p.Mode == coinop.ModeAsync {
		// The response was served; the settlement is still owed.
		return coinop.Outcome{Resettle: true}, nil
	}
	return coinop.Outcome{State: coinop.StateFailed, Reason: "settlement_not_sent"}, nil
}

// resend finishes a settling payment whose journaled transaction the node
// does not know and whose authorization is unused: it broadcasts the same
// bytes again while they can still land, and otherwise says why nothing
// will.
func (c *Chain) resend(ctx context.Context, p *coinop.Payment, payer common.Address, nonce [32]byte) (coinop.Outcome, error) {
	tx, err := decodeRaw(p.Prepared)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("payment %s: %w", p.ID, err)
	}
	if !strings.EqualFold(tx.Hash().Hex(), p.Reference) {
		return coinop.Outcome{}, fmt.Errorf("payment %s: journaled transaction hashes to %s, not %s", p.ID, tx.Hash().Hex(), p.Reference)
	}
	head, err := c.cfg.Backend.HeaderByNumber(ctx, nil)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("latest header: %w", err)
	}
	if vb, ok := validBefore(tx, payer, nonce); ok && vb.Cmp(new(big.Int).SetUint64(head.Time)) <= 0 {
		// Mined now or later, it would revert: nothing can move this money.
		return coinop.Outcome{State: coinop.StateFailed, Reference: p.Reference, Reason: "authorization_expired_unsent"}, nil
	}
	from, err := types.Sender(c.signer, tx)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("payment %s: journaled transaction: %w", p.ID, err)
	}
	mined, err := c.cfg.Backend.NonceAt(ctx, from, nil)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("nonce of %s: %w", from.Hex(), err)
	}
	if mined > tx.Nonce() {
		// The nonce is used: by another transaction of the settlement key
		// (the journaled one can never be mined), or by the journaled one
		// itself, mined since the authorization was read as unused or
		// seen by a node ahead of the one that did not know it (RPC
		// endpoints behind a load balancer disagree by a block or two).
		// Failing a payment whose money moved would make its retry a
		// replay, and a buyer who pays again on it pays twice: ask again.
		used, err := c.AuthorizationUsed(ctx, common.HexToAddress(p.Asset), payer, nonce)
		if err != nil {
			return coinop.Outcome{}, fmt.Errorf("authorizationState: %w", err)
		}
		if used {
			by, err := c.usedBy(ctx, common.HexToAddress(p.Asset), payer, nonce)
			if err != nil {
				return coinop.Outcome{}, err
			}
			return coinop.Outcome{State: coinop.StateSettled, Reference: by}, nil
		}
		if p.Mode == coinop.ModeAsync {
			return coinop.Outcome{Resettle: true}, nil
		}
		return coinop.Outcome{State: coinop.StateFailed, Reference: p.Reference, Reason: coinop.ReasonSettlementNonceTaken}, nil
	}
	if _, err := c.Rebroadcast(ctx, p.Prepared); err != nil {
		return coinop.Outcome{}, fmt.Errorf("rebroadcast %s: %w", p.Reference, err)
	}
	return coinop.Outcome{}, nil // in the pool again: the next pass learns its fate
}

// validBefore reads, from a settlement transaction's calldata (a token's
// transferWithAuthorization or a batch settler's settle), the validBefore of
// payer's authorization nonce.
func validBefore(tx *types.Transaction, payer common.Address, nonce [32]byte) (*big.Int, bool) {
	data := tx.Data()
	if len(data) < 4 {
		return nil, false
	}
	if m, err := tokenABI.MethodById(data[:4]); err == nil && m.Name == "transferWithAuthorization" {
		args, err := m.Inputs.Unpack(data[4:])
		if err != nil || len(args) < 6 {
			return nil, false
		}
		from, _ := args[0].(common.Address)
		n, _ := args[5].([32]byte)
		vb, ok := args[4].(*big.Int)
		return vb, ok && from == payer && n == nonce
	}
	m, err := batchABI.MethodById(data[:4])
	if err != nil || m.Name != "settle" {
		return nil, false
	}
	args, err := m.Inputs.Unpack(data[4:])
	if err != nil || len(args) < 2 {
		return nil, false
	}
	items, ok := abi.ConvertType(args[1], new([]batchItem)).(*[]batchItem)
	if !ok {
		return nil, false
	}
	for _, it := range *items {
		if it.From == payer && it.Nonce == nonce {
			return it.ValidBefore, true
		}
	}
	return nil, false
}

// usedBy finds the transaction whose AuthorizationUsed event consumed
// (payer, nonce).
func (c *Chain) usedBy(ctx context.Context, asset, payer common.Address, nonce [32]byte) (string, error) {
	logs, err := c.cfg.Backend.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: big.NewInt(0),
		Addresses: []common.Address{asset},
		Topics:    [][]common.Hash{{authorizationUsedTopic}, {common.BytesToHash(payer.Bytes())}, {common.Hash(nonce)}},
	})
	if err != nil {
		return "", fmt.Errorf("AuthorizationUsed logs: %w", err)
	}
	if len(logs) == 0 {
		return "", errors.New("authorization is used but no AuthorizationUsed event was found")
	}
	return logs[0].TxHash.Hex(), nil
}

// TransferCheck reports whether transaction tx succeeded and carries the
// token's Transfer(from, to, value). Audits use it.
func (c *Chain) TransferCheck(ctx context.Context, tx string, asset, from, to common.Address, value *big.Int) error {
	rc, err := c.cfg.Backend.TransactionReceipt(ctx, common.HexToHash(tx))
	if err != nil {
		return fmt.Errorf("receipt of %s: %w", tx, err)
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("transaction %s reverted", tx)
	}
	if !hasTransfer(rc, asset, from, to, value) {
		return fmt.Errorf("transaction %s has no Transfer of %s from %s to %s", tx, value, from.Hex(), to.Hex())
	}
	return nil
}

// Transfer is one ERC-20 Transfer event.
type Transfer struct {
	Tx       common.Hash
	Block    uint64
	From, To common.Address
	Value    *big.Int
}

// TransfersTo lists the token's Transfer events to one recipient from a block on.
func (c *Chain) TransfersTo(ctx context.Context, asset, to common.Address, fromBlock uint64) ([]Transfer, error) {
	logs, err := c.cfg.Backend.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(fromBlock),
		Addresses: []common.Address{asset},
		Topics:    [][]common.Hash{{transferTopic}, nil, {common.BytesToHash(to.Bytes())}},
	})
	if err != nil {
		return nil, err
	}
	out := make([]Transfer, 0, len(logs))
	for _, l := range logs {
		if len(l.Topics) != 3 || l.Removed {
			continue
		}
		out = append(out, Transfer{
			Tx: l.TxHash, Block: l.BlockNumber, Value: new(big.Int).SetBytes(l.Data),
			From: common.BytesToAddress(l.Topics[1].Bytes()), To: common.BytesToAddress(l.Topics[2].Bytes()),
		})
	}
	return out, nil
}

// transactionByHash asks for a transaction, waiting briefly while the node
// answers neither "found" nor "not found" (geth says "transaction indexing
// is in progress" for a moment after each block).
func (c *Chain) transactionByHash(ctx context.Context, h common.Hash) (*types.Transaction, bool, error) {
	for i := 0; ; i++ {
		tx, pending, err := c.cfg.Backend.TransactionByHash(ctx, h)
		if err == nil || errors.Is(err, ethereum.NotFound) || isTransport(err) || i == 40 {
			return tx, pending, err
		}
		select {
		case <-ctx.Done():
			return nil, false, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
