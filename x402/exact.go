package x402

import (
	"crypto/sha256"
	"encoding/hex"
)

// ExactEVMPaymentID derives the journal ID of an exact EVM payment from its
// replay key: lower-case asset and payer addresses and the 0x-hex EIP-3009
// nonce on a CAIP-2 network. Whoever verifies the payment (package evm
// locally, or a remote facilitator) gets the same ID for the same
// authorization, so a journal holds it once.
func ExactEVMPaymentID(network, asset, payer, nonce string) string {
	h := sha256.Sum256([]byte(network + "|" + asset + "|" + payer + "|" + nonce))
	return "x402-" + hex.EncodeToString(h[:16])
}
