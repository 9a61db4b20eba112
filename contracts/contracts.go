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
func TokenBytecode() []byte {
	code, err := hex.DecodeString(strings.TrimSpace(tokenBin))
	if err != nil {
		// The file is written by build.sh and covered by the package test.
		panic("contracts: build/CoinopUSD.bin is not hex: " + err.Error())
	}
	return code
}
