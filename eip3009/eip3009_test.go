package eip3009_test

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/coinop/coinop/eip3009"
)

func TestChecksum(t *testing.T) {
	// Vectors from EIP-55.
	for _, s := range []string{
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
		"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
	} {
		a, err := eip3009.ParseAddress(s)
		if err != nil || a.Hex() != s {
			t.Errorf("%s → %s %v", s, a.Hex(), err)
		}
	}
}

// The digest of a known authorization, computed independently with
// go-ethereum's apitypes (the evm package cross-checks random inputs).
func TestSignRecover(t *testing.T) {
	k, err := eip3009.ParseKey("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Address().Hex(); got != "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" {
		t.Fatalf("address %s", got)
	}
	var d [32]byte
	copy(d[:], bytes.Repeat([]byte{7}, 32))
	sig := k.Sign(d)
	if sig[64] != 27 && sig[64] != 28 {
		t.Fatalf("v = %d", sig[64])
	}
	a, err := eip3009.Recover(d, sig[:])
	if err != nil || a != k.Address() {
		t.Fatalf("recovered %s %v", a.Hex(), err)
	}
	// The same signature with s replaced by n−s (and v flipped) recovers the
	// same key in plain ECDSA, and must be refused.
	n, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	high := sig
	new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:64])).FillBytes(high[32:64])
	high[64] = 55 - high[64] // 27 <-> 28
	if _, err := eip3009.Recover(d, high[:]); err != eip3009.ErrHighS {
		t.Fatalf("high-S: %v", err)
	}
}

func TestParseAuthorization(t *testing.T) {
	addr := "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
	nonce := "0x" + strings.Repeat("ab", 32)
	good := []string{addr, addr, "10000", "0", "1740672154", nonce}
	if _, err := eip3009.ParseAuthorization(good[0], good[1], good[2], good[3], good[4], good[5]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		i     int
		v     string
	}{
		{"from", 0, "0x1234"}, {"to", 1, addr[2:]}, {"value", 2, "-1"}, {"value", 2, "1e6"},
		{"validAfter", 3, ""}, {"validBefore", 4, "0x10"}, {"value", 2, strings.Repeat("9", 79)},
		{"value", 2, "115792089237316195423570985008687907853269984665640564039457584007913129639936"}, // 2^256
		{"nonce", 5, "0x1234"},
	} {
		in := append([]string{}, good...)
		in[c.i] = c.v
		_, err := eip3009.ParseAuthorization(in[0], in[1], in[2], in[3], in[4], in[5])
		fe, ok := err.(*eip3009.FieldError)
		if !ok || fe.Field != c.field {
			t.Errorf("%s=%q: %v", c.field, c.v, err)
		}
	}
}

// FuzzParse feeds untrusted wire strings to the authorization and signature
// parsers and the recovery: errors are fine, panics are not.
func FuzzParse(f *testing.F) {
	f.Add("0x857b06519E91e3A54538791bDbb0E22373e36b66", "10000", "1740672154",
		"0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480",
		"0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c")
	f.Fuzz(func(t *testing.T, addr, value, before, nonce, sig string) {
		a, err := eip3009.ParseAuthorization(addr, addr, value, "0", before, nonce)
		if err != nil {
			return
		}
		d := a.Digest(eip3009.Domain{Name: "USDC", Version: "2", ChainID: 1}.Separator())
		if s, err := eip3009.ParseSignature(sig); err == nil {
			eip3009.Recover(d, s)
		}
		if h, _ := hex.DecodeString(strings.TrimPrefix(sig, "0x")); len(h) > 0 {
			eip3009.Recover(d, h)
		}
	})
}

func TestLowerIsHexLowerCased(t *testing.T) {
	for _, s := range []string{"0x0000000000000000000000000000000000000000", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xffffffffffffffffffffffffffffffffffffffff"} {
		a, err := eip3009.ParseAddress(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := a.Lower(), strings.ToLower(a.Hex()); got != want {
			t.Errorf("Lower() = %s, want %s", got, want)
		}
	}
}
