// Package contracts holds the compiled Solidity contracts coinop deploys on
// development chains. The sources sit next to this file; build.sh recompiles
// them with a pinned solc into build/, and the artifacts are committed so Go
// builds need no Solidity toolchain.
package contracts

import (
	_ "embed"
	"encoding/hex"
	"strings"
)

// TokenABI is the JSON ABI of CoinopUSD (CoinopUSD.sol): a USDC-like ERC-20
// with 6 decimals, an owner-only mint(address,uint256) and EIP-3009
// transfer/receive/cancel authorizations that revert with FiatToken v2's
// messages. Its constructor is (string name, string symbol, string version);
// name and version form the EIP-712 domain. It must not be modified.
//
//go:embed build/CoinopUSD.abi
var TokenABI string

//go:embed build/CoinopUSD.bin
var tokenBin string

// TokenBytecode returns CoinopUSD's creation code, without constructor
// arguments: append the ABI-encoded (name, symbol, version) to deploy it.
// Each call returns a fresh slice the caller may modify.
func TokenBytecode() []byte { return decode("CoinopUSD", tokenBin) }

// BatchSettlerABI is the JSON ABI of CoinopBatchSettler
// (CoinopBatchSettler.sol): settle(token, items) submits each item to the
// token's transferWithAuthorization(from, to, value, validAfter, validBefore,
// nonce, v, r, s), emitting ItemSettled(index, from, nonce) or
// ItemFailed(index, from, nonce, reason) for each, and reverts as a whole only
// if the token has no code or the gas runs out (OutOfGas(index)). It holds
// nothing and has no owner; anyone may call it.
//
//go:embed build/CoinopBatchSettler.abi
var BatchSettlerABI string

//go:embed build/CoinopBatchSettler.bin
var batchSettlerBin string

// BatchSettlerBytecode returns CoinopBatchSettler's creation code; its
// constructor takes no arguments. Each call returns a fresh slice the caller
// may modify.
func BatchSettlerBytecode() []byte { return decode("CoinopBatchSettler", batchSettlerBin) }

func decode(contract, bin string) []byte {
	code, err := hex.DecodeString(strings.TrimSpace(bin))
	if err != nil {
		// The file is written by build.sh and covered by the package test.
		panic("contracts: build/" + contract + ".bin is not hex: " + err.Error())
	}
	return code
}
