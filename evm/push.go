package evm

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/eip3009"
)

// transferWithMemoSelector is TIP-20's transferWithMemo(address,uint256,bytes32).
var transferWithMemoSelector = crypto.Keccak256([]byte("transferWithMemo(address,uint256,bytes32)"))[:4]

// Pusher sends a buyer's own token transfers (the Payment scheme's tempo
// method in push mode) from Key, one chain per chain id. It serializes its
// sends: one account, one nonce sequence.
type Pusher struct {
	// Key signs the transfers; its account pays the tokens and the fees.
	Key *ecdsa.PrivateKey
	// Backends reach the chains, by chain id.
	Backends map[uint64]Backend
	// Timeout bounds the wait for a transfer's receipt. If zero, 60 s.
	Timeout time.Duration

	mu sync.Mutex
}

// PushTransfer sends transferWithMemo(to, amount, memo) on token, waits for
// its receipt and returns its hash once it succeeded. sent reports whether
// the transaction was handed to the node: after that, an error does not
// mean the money stayed.
func (p *Pusher) PushTransfer(ctx context.Context, chainID uint64, token, to eip3009.Address, amount *big.Int, memo [32]byte) (hash [32]byte, sent bool, err error) {
	b, ok := p.Backends[chainID]
	if !ok {
		return [32]byte{}, false, fmt.Errorf("no node for chain %d: pass one with --rpc eip155:%d=URL", chainID, chainID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	from := crypto.PubkeyToAddress(p.Key.PublicKey)
	data := append([]byte{}, transferWithMemoSelector...)
	data = append(data, common.LeftPadBytes(to[:], 32)...)
	data = append(data, common.LeftPadBytes(amount.Bytes(), 32)...)
	data = append(data, memo[:]...)
	tokenAddr := common.Address(token)
	nonce, err := b.PendingNonceAt(ctx, from)
	if err != nil {
		return [32]byte{}, false, err
	}
	tip, err := b.SuggestGasTipCap(ctx)
	if err != nil {
		return [32]byte{}, false, err
	}
	head, err := b.HeaderByNumber(ctx, nil)
	if err != nil {
		return [32]byte{}, false, err
	}
	gas, err := b.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &tokenAddr, Data: data})
	if err != nil {
		return [32]byte{}, false, fmt.Errorf("the transfer would fail: %w", err)
	}
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	id := new(big.Int).SetUint64(chainID)
	tx, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap,
		Gas: gas + gas/5, To: &tokenAddr, Data: data}), types.LatestSignerForChainID(id), p.Key)
	if err != nil {
		return [32]byte{}, false, err
	}
	if err := b.SendTransaction(ctx, tx); err != nil {
		return [32]byte{}, true, err
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		rc, err := b.TransactionReceipt(wctx, tx.Hash())
		if err == nil {
			if rc.Status != types.ReceiptStatusSuccessful {
				return tx.Hash(), true, fmt.Errorf("transfer %s failed on chain", tx.Hash().Hex())
			}
			return tx.Hash(), true, nil
		}
		select {
		case <-wctx.Done():
			return tx.Hash(), true, fmt.Errorf("transfer %s: no receipt: %w", tx.Hash().Hex(), wctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
