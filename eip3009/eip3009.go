// Package eip3009 computes, signs and recovers EIP-3009
// TransferWithAuthorization messages (EIP-712 typed data) without
// go-ethereum: pure Go secp256k1 (decred) and Keccak-256 (x/crypto).
// It is the lean core shared by the client (which signs) and tests; the
// server's hot path recovers signatures with go-ethereum's faster cgo code
// in package evm, cross-checked against this package.
package eip3009

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/sha3"
)

// Address is a 20-byte EVM account address.
type Address [20]byte

// Hex returns the EIP-55 checksummed form.
func (a Address) Hex() string {
	lower := hex.EncodeToString(a[:])
	h := Keccak256([]byte(lower))
	out := []byte("0x" + lower)
	for i := 0; i < 40; i++ {
		c := out[i+2]
		if c >= 'a' && c <= 'f' && h[i/2]>>(4*(1-uint(i%2)))&0xf >= 8 {
			out[i+2] = c - 32
		}
	}
	return string(out)
}

// String is Hex.
func (a Address) String() string { return a.Hex() }

// Lower returns the 0x-prefixed lower-case form (no checksum, no hash):
// the form the journal keys payers and assets by.
func (a Address) Lower() string {
	var out [42]byte
	out[0], out[1] = '0', 'x'
	hex.Encode(out[2:], a[:])
	return string(out[:])
}

// ParseAddress reads a 0x-prefixed 40-digit hex address. Case is not
// checked: checksums are for people typing addresses, not for wire data.
func ParseAddress(s string) (Address, error) {
	var a Address
	b, err := parseHex(s, 20)
	if err != nil {
		return a, fmt.Errorf("address %q: %w", s, err)
	}
	copy(a[:], b)
	return a, nil
}

// ParseBytes32 reads a 0x-prefixed 64-digit hex value (a nonce).
func ParseBytes32(s string) ([32]byte, error) {
	var n [32]byte
	b, err := parseHex(s, 32)
	if err != nil {
		return n, err
	}
	copy(n[:], b)
	return n, nil
}

func parseHex(s string, n int) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok {
		h, ok = strings.CutPrefix(s, "0X")
	}
	if !ok {
		return nil, errors.New("missing 0x prefix")
	}
	if len(h) != 2*n {
		return nil, fmt.Errorf("want %d hex digits, have %d", 2*n, len(h))
	}
	return hex.DecodeString(h)
}

// Keccak256 is the legacy (pre-NIST) Keccak-256 used by Ethereum.
func Keccak256(data ...[]byte) [32]byte {
	h := sha3.NewLegacyKeccak256()
	for _, d := range data {
		h.Write(d)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

var (
	domainTypeHash = Keccak256([]byte("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"))
	// TransferTypeHash is keccak256 of the TransferWithAuthorization type.
	TransferTypeHash = Keccak256([]byte("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"))
)

// Domain is the EIP-712 domain of a token contract.
type Domain struct {
	Name              string
	Version           string
	ChainID           uint64
	VerifyingContract Address
}

// Separator is the EIP-712 domain separator. Callers on a hot path compute it
// once per token and keep it.
func (d Domain) Separator() [32]byte {
	var buf [5 * 32]byte
	copy(buf[0:], domainTypeHash[:])
	n := Keccak256([]byte(d.Name))
	copy(buf[32:], n[:])
	v := Keccak256([]byte(d.Version))
	copy(buf[64:], v[:])
	new(big.Int).SetUint64(d.ChainID).FillBytes(buf[96:128])
	copy(buf[140:], d.VerifyingContract[:])
	return Keccak256(buf[:])
}

// Authorization is a TransferWithAuthorization message.
type Authorization struct {
	From        Address
	To          Address
	Value       *big.Int
	ValidAfter  *big.Int
	ValidBefore *big.Int
	Nonce       [32]byte
}

var maxUint256 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// Valid reports whether every number fits a uint256.
func (a *Authorization) Valid() error {
	for _, f := range []struct {
		name string
		v    *big.Int
	}{{"value", a.Value}, {"validAfter", a.ValidAfter}, {"validBefore", a.ValidBefore}} {
		if f.v == nil || f.v.Sign() < 0 || f.v.Cmp(maxUint256) > 0 {
			return fmt.Errorf("%s is not a uint256", f.name)
		}
	}
	return nil
}

// Digest is the EIP-712 hash a payer signs, given the token's domain
// separator. The numbers must be valid uint256 values (see Valid).
func (a *Authorization) Digest(separator [32]byte) [32]byte {
	var s [7 * 32]byte
	copy(s[0:], TransferTypeHash[:])
	copy(s[32+12:], a.From[:])
	copy(s[64+12:], a.To[:])
	a.Value.FillBytes(s[96:128])
	a.ValidAfter.FillBytes(s[128:160])
	a.ValidBefore.FillBytes(s[160:192])
	copy(s[192:], a.Nonce[:])
	structHash := Keccak256(s[:])
	return Keccak256([]byte{0x19, 0x01}, separator[:], structHash[:])
}
