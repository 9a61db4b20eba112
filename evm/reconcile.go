package evm

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
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
//   - settling, not used, no transaction in flight: failed, nothing moved;
//     except in async mode, where the response was already served and the
//     settlement is still owed: Resettle.
func (c *Chain) Reconcile(ctx context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	if p.State == coinop.StateVerified {
		return coinop.Outcome{State: coinop.StateReleased, Reason: "recovered_before_settlement"}, nil
	}
	if p.State != coinop.StateSettling {
		return coinop.Outcome{State: p.State, Tx: p.Tx}, nil
	}
	asset, payer := common.HexToAddress(p.Asset), common.HexToAddress(p.Payer)
	nonce, err := eip3009.ParseBytes32(p.Nonce)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("payment %s: nonce: %w", p.ID, err)
	}
	used, err := c.AuthorizationUsed(ctx, asset, payer, nonce)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("authorizationState: %w", err)
	}
	if used {
		if p.Tx != "" {
			rc, err := c.cfg.Backend.TransactionReceipt(ctx, common.HexToHash(p.Tx))
			if err == nil && rc.Status == types.ReceiptStatusSuccessful {
				return coinop.Outcome{State: coinop.StateSettled, Tx: p.Tx}, nil
			}
		}
		tx, err := c.usedBy(ctx, asset, payer, nonce)
		if err != nil {
			return coinop.Outcome{}, err
		}
		return coinop.Outcome{State: coinop.StateSettled, Tx: tx, Reason: "settled_by_other_transaction"}, nil
	}
	if p.Tx != "" {
		_, pending, err := c.transactionByHash(ctx, common.HexToHash(p.Tx))
		switch {
		case err == nil && pending:
			return coinop.Outcome{}, nil // still in the pool: wait
		case err == nil && p.Mode != coinop.ModeAsync:
			// Mined without using the authorization: it reverted.
			return coinop.Outcome{State: coinop.StateFailed, Tx: p.Tx, Reason: "settlement_reverted"}, nil
		case err != nil && !errors.Is(err, ethereum.NotFound):
			return coinop.Outcome{}, fmt.Errorf("transaction %s: %w", p.Tx, err)
		}
	}
	if p.Mode == coinop.ModeAsync {
		// The response was served; the settlement is still owed.
		return coinop.Outcome{Resettle: true}, nil
	}
	return coinop.Outcome{State: coinop.StateFailed, Reason: "settlement_not_sent"}, nil
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
