package devchain

import (
	"context"
	"crypto/ecdsa"
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
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop/contracts"
)

// DeployToken deploys CoinopUSD on any chain client reaches (this package's
// chain, anvil, a testnet) from owner, which pays the gas and becomes the only
// account allowed to mint. The token's EIP-712 domain is TokenName and
// TokenVersion. It waits for the receipt; each transaction is bounded by ten
// seconds on top of ctx.
func DeployToken(ctx context.Context, client *ethclient.Client, owner *ecdsa.PrivateKey) (common.Address, error) {
	token, err := abi.JSON(strings.NewReader(contracts.TokenABI))
	if err != nil {
		return common.Address{}, fmt.Errorf("devchain: token ABI: %w", err)
	}
	args, err := token.Pack("", TokenName, TokenSymbol, TokenVersion)
	if err != nil {
		return common.Address{}, fmt.Errorf("devchain: pack constructor: %w", err)
	}
	rc, err := transact(ctx, client, owner, nil, append(contracts.TokenBytecode(), args...))
	if err != nil {
		return common.Address{}, fmt.Errorf("devchain: deploy token: %w", err)
	}
	return rc.ContractAddress, nil
}

// DeployBatchSettler deploys CoinopBatchSettler on any chain client reaches,
// from deployer, which pays the gas and gains nothing else: the contract has
// no owner and no state, so one deployment per chain serves every settlement
// key. It waits for the receipt, bounded like DeployToken.
func DeployBatchSettler(ctx context.Context, client *ethclient.Client, deployer *ecdsa.PrivateKey) (common.Address, error) {
	rc, err := transact(ctx, client, deployer, nil, contracts.BatchSettlerBytecode())
	if err != nil {
		return common.Address{}, fmt.Errorf("devchain: deploy batch settler: %w", err)
	}
	return rc.ContractAddress, nil
}

// Mint mints amount atomic units of a token DeployToken deployed to to,
// from the token's owner, and waits for the receipt.
func Mint(ctx context.Context, client *ethclient.Client, owner *ecdsa.PrivateKey, token, to common.Address, amount *big.Int) error {
	a, err := abi.JSON(strings.NewReader(contracts.TokenABI))
	if err != nil {
		return fmt.Errorf("devchain: token ABI: %w", err)
	}
	data, err := a.Pack("mint", to, amount)
	if err != nil {
		return fmt.Errorf("devchain: pack mint: %w", err)
	}
	if _, err := transact(ctx, client, owner, &token, data); err != nil {
		return fmt.Errorf("devchain: mint: %w", err)
	}
	return nil
}

// transact sends a dynamic-fee transaction from key and waits for a
// successful receipt.
func transact(ctx context.Context, client *ethclient.Client, key *ecdsa.PrivateKey, to *common.Address, data []byte) (*types.Receipt, error) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	chainID, err := client.ChainID(ctx)
	if err != nil {
		return nil, fmt.Errorf("chain id: %w", err)
	}
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := client.PendingNonceAt(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	head, err := client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	tip, err := client.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, fmt.Errorf("tip: %w", err)
	}
	gas, err := client.EstimateGas(ctx, ethereum.CallMsg{From: from, To: to, Data: data})
	if err != nil {
		return nil, fmt.Errorf("estimate gas: %w", err)
	}
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(chainID), &types.DynamicFeeTx{
		ChainID:   chainID,
		Nonce:     nonce,
		GasTipCap: tip,
		GasFeeCap: feeCap,
		Gas:       gas,
		To:        to,
		Data:      data,
	})
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if err := client.SendTransaction(ctx, tx); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	for {
		rc, err := client.TransactionReceipt(ctx, tx.Hash())
		switch {
		case err == nil && rc.Status != types.ReceiptStatusSuccessful:
			return nil, fmt.Errorf("transaction %s failed", tx.Hash())
		case err == nil:
			return rc, nil
		case !errors.Is(err, ethereum.NotFound) && !indexing(err):
			return nil, fmt.Errorf("receipt %s: %w", tx.Hash(), err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("receipt %s: %w", tx.Hash(), ctx.Err())
		case <-time.After(receiptPoll):
		}
	}
}
