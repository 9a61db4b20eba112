package x402

import (
	"fmt"
	"strconv"
	"strings"
)

// v1Networks maps x402 v1 network names of EVM chains to chain ids.
var v1Networks = map[string]uint64{
	"ethereum":         1,
	"sepolia":          11155111,
	"base":             8453,
	"base-sepolia":     84532,
	"avalanche":        43114,
	"avalanche-fuji":   43113,
	"polygon":          137,
	"polygon-amoy":     80002,
	"iotex":            4689,
	"sei":              1329,
	"sei-testnet":      1328,
	"abstract":         2741,
	"abstract-testnet": 11124,
}

// NetworkForV1 turns a v1 network name ("base-sepolia") or a CAIP-2 id into a
// CAIP-2 id ("eip155:84532"). The boolean is false for unknown names.
func NetworkForV1(name string) (string, bool) {
	if strings.HasPrefix(name, "eip155:") {
		return name, true
	}
	id, ok := v1Networks[name]
	if !ok {
		return "", false
	}
	return "eip155:" + strconv.FormatUint(id, 10), true
}

// V1Name returns the v1 name of a CAIP-2 EVM network, or the CAIP-2 id
// itself when the chain has no v1 name.
func V1Name(network string) string {
	id, err := ChainID(network)
	if err == nil {
		for name, n := range v1Networks {
			if n == id {
				return name
			}
		}
	}
	return network
}

// ChainID parses the chain id of an "eip155:<id>" network.
func ChainID(network string) (uint64, error) {
	ref, ok := strings.CutPrefix(network, "eip155:")
	if !ok {
		return 0, fmt.Errorf("network %q is not an eip155 network", network)
	}
	id, err := strconv.ParseUint(ref, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("network %q has no valid chain id", network)
	}
	return id, nil
}
