package evm_test

import (
	"bytes"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/coinop/coinop/eip3009"
)

// TestDigestMatchesAPITypes cross-checks our hand-written EIP-712 digest
// against go-ethereum's generic typed-data implementation.
func TestDigestMatchesAPITypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(bits int) *big.Int {
		b := make([]byte, bits/8)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return new(big.Int).SetBytes(b)
	}
	for i := 0; i < 200; i++ {
		var a eip3009.Authorization
		for j := range a.From {
			a.From[j], a.To[j] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		for j := range a.Nonce {
			a.Nonce[j] = byte(rng.Uint32())
		}
		a.Value, a.ValidAfter, a.ValidBefore = word(256), word(64), word(256)
		d := eip3009.Domain{Name: []string{"USD Coin", "USDC", "Ünïcode"}[i%3], Version: []string{"2", "1"}[i%2], ChainID: rng.Uint64() >> 1}
		copy(d.VerifyingContract[:], word(160).FillBytes(make([]byte, 20)))

		td := apitypes.TypedData{
			Types: apitypes.Types{
				"EIP712Domain": {{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}, {Name: "verifyingContract", Type: "address"}},
				"TransferWithAuthorization": {{Name: "from", Type: "address"}, {Name: "to", Type: "address"}, {Name: "value", Type: "uint256"},
					{Name: "validAfter", Type: "uint256"}, {Name: "validBefore", Type: "uint256"}, {Name: "nonce", Type: "bytes32"}},
			},
			PrimaryType: "TransferWithAuthorization",
			Domain: apitypes.TypedDataDomain{Name: d.Name, Version: d.Version, ChainId: math.NewHexOrDecimal256(int64(d.ChainID)),
				VerifyingContract: common.Address(d.VerifyingContract).Hex()},
			Message: apitypes.TypedDataMessage{
				"from": common.Address(a.From).Hex(), "to": common.Address(a.To).Hex(),
				"value": (*math.HexOrDecimal256)(a.Value), "validAfter": (*math.HexOrDecimal256)(a.ValidAfter),
				"validBefore": (*math.HexOrDecimal256)(a.ValidBefore), "nonce": hexutil.Encode(a.Nonce[:]),
			},
		}
		want, _, err := apitypes.TypedDataAndHash(td)
		if err != nil {
			t.Fatal(err)
		}
		got := a.Digest(d.Separator())
		if !bytes.Equal(got[:], want) {
			t.Fatalf("case %d: digest %x, apitypes %x", i, got, want)
		}
		// Our pure-Go signature recovers under go-ethereum's recovery too.
		key, _ := crypto.GenerateKey()
		k, _ := eip3009.NewKey(crypto.FromECDSA(key))
		sig := k.Sign(got)
		raw := append([]byte{}, sig[:]...)
		raw[64] -= 27
		pub, err := crypto.SigToPub(got[:], raw)
		if err != nil || crypto.PubkeyToAddress(*pub) != common.Address(k.Address()) {
			t.Fatalf("case %d: recovery mismatch: %v", i, err)
		}
		if addr, err := eip3009.Recover(got, sig[:]); err != nil || addr != k.Address() {
			t.Fatalf("case %d: pure-Go recovery: %v", i, err)
		}
	}
}
