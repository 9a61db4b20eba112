package paywall

import (
	"strconv"
	"strings"
)

// network is what the 402 page tells people and wallets about an EVM chain.
type network struct {
	// Name is the chain's name for people: "Base Sepolia".
	Name string `json:"name"`
	// Currency is the symbol of the chain's native currency (gas), for
	// wallet_addEthereumChain.
	Currency string `json:"currency,omitempty"`
	// RPC is the chain's public JSON-RPC endpoint, offered to a wallet that
	// does not know the chain yet (wallet_addEthereumChain). Only the
	// chains' own public endpoints are listed: a seller's configured RPC URL
	// may carry an API key, so it never reaches the page.
	RPC string `json:"rpc,omitempty"`
	// Explorer is the block explorer's base URL; a transaction is at
	// Explorer + "/tx/" + hash.
	Explorer string `json:"explorer,omitempty"`
}

// networks are the EVM chains coinop knows by name (x402's v1 network
// names, and the local development chains), keyed by chain id. A chain that
// is not here is shown by its CAIP-2 id, and a wallet that lacks it is asked
// to add it by hand.
var networks = map[uint64]network{
	1:        {Name: "Ethereum", Currency: "ETH", Explorer: "https://etherscan.io"},
	11155111: {Name: "Sepolia", Currency: "ETH", Explorer: "https://sepolia.etherscan.io"},
	8453:     {Name: "Base", Currency: "ETH", RPC: "https://mainnet.base.org", Explorer: "https://basescan.org"},
	84532:    {Name: "Base Sepolia", Currency: "ETH", RPC: "https://sepolia.base.org", Explorer: "https://sepolia.basescan.org"},
	43114:    {Name: "Avalanche C-Chain", Currency: "AVAX", RPC: "https://api.avax.network/ext/bc/C/rpc", Explorer: "https://snowtrace.io"},
	43113:    {Name: "Avalanche Fuji", Currency: "AVAX", RPC: "https://api.avax-test.network/ext/bc/C/rpc", Explorer: "https://testnet.snowtrace.io"},
	137:      {Name: "Polygon", Currency: "POL", RPC: "https://polygon-rpc.com", Explorer: "https://polygonscan.com"},
	80002:    {Name: "Polygon Amoy", Currency: "POL", RPC: "https://rpc-amoy.polygon.technology", Explorer: "https://amoy.polygonscan.com"},
	4689:     {Name: "IoTeX", Currency: "IOTX"},
	1329:     {Name: "Sei", Currency: "SEI"},
	1328:     {Name: "Sei testnet", Currency: "SEI"},
	2741:     {Name: "Abstract", Currency: "ETH"},
	11124:    {Name: "Abstract testnet", Currency: "ETH"},
	1337:     {Name: "Local dev chain", Currency: "ETH"},
	31337:    {Name: "Anvil local chain", Currency: "ETH"},
}

// evmChainID is the chain id of an "eip155:<id>" CAIP-2 network, or 0.
func evmChainID(caip2 string) uint64 {
	ref, ok := strings.CutPrefix(caip2, "eip155:")
	if !ok {
		return 0
	}
	id, err := strconv.ParseUint(ref, 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// networkName is a CAIP-2 network's name for people, or the id itself
// when coinop does not know the chain.
func networkName(caip2 string) string {
	if n, ok := networks[evmChainID(caip2)]; ok {
		return n.Name
	}
	return caip2
}

// NetworkName is a CAIP-2 network's name for people ("Base Sepolia"), or
// the id itself when coinop does not know the chain.
func NetworkName(caip2 string) string { return networkName(caip2) }
