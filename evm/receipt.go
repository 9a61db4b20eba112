package evm

import (
	"context"
	"errors"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Receipt returns the receipt of the mined transaction hash. found is false
// when the node knows no mined transaction by that hash (unknown, or still
// pending); an error means the node could not answer, and nothing is
// known.
func (c *Chain) Receipt(ctx context.Context, hash common.Hash) (rc *types.Receipt, found bool, err error) {
	rc, err = c.cfg.Backend.TransactionReceipt(ctx, hash)
	switch {
	case err == nil:
		return rc, true, nil
	case errors.Is(err, ethereum.NotFound):
		return nil, false, nil
	}
	return nil, false, err
}
