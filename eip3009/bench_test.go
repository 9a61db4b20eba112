package eip3009_test

import (
	"math/big"
	"testing"

	"github.com/coinop/coinop/eip3009"
)

// benchFixture is one signed authorization on a USDC-like domain.
func benchFixture(b *testing.B) (eip3009.Domain, *eip3009.Authorization, [65]byte) {
	b.Helper()
	key, err := eip3009.ParseKey("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		b.Fatal(err)
	}
	token, _ := eip3009.ParseAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
	payTo, _ := eip3009.ParseAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")
	d := eip3009.Domain{Name: "USD Coin", Version: "2", ChainID: 84532, VerifyingContract: token}
	a := &eip3009.Authorization{
		From: key.Address(), To: payTo, Value: big.NewInt(1000),
		ValidAfter: new(big.Int), ValidBefore: big.NewInt(1_900_000_000),
	}
	a.Nonce[0], a.Nonce[31] = 0xab, 0xcd
	return d, a, key.Sign(a.Digest(d.Separator()))
}

// BenchmarkSeparator is the domain separator a verifier computes once per
// token (three Keccak-256 hashes).
func BenchmarkSeparator(b *testing.B) {
	d, _, _ := benchFixture(b)
	for b.Loop() {
		d.Separator()
	}
}

// BenchmarkDigest is the per-payment EIP-712 digest with the separator
// cached, as the verifier computes it.
func BenchmarkDigest(b *testing.B) {
	d, a, _ := benchFixture(b)
	sep := d.Separator()
	b.ReportAllocs()
	for b.Loop() {
		a.Digest(sep)
	}
}

// BenchmarkParseAuthorization reads the wire strings of an authorization.
func BenchmarkParseAuthorization(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, err := eip3009.ParseAuthorization("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
			"1000", "0", "1900000000", "0xab000000000000000000000000000000000000000000000000000000000000cd")
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign is a payer's signature (pure Go secp256k1).
func BenchmarkSign(b *testing.B) {
	key, _ := eip3009.ParseKey("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	d, a, _ := benchFixture(b)
	digest := a.Digest(d.Separator())
	for b.Loop() {
		key.Sign(digest)
	}
}

// BenchmarkRecover is signature recovery in pure Go, the client side's and
// the CGO_ENABLED=0 build's path; the gateway recovers with cgo in package
// evm (see evm's BenchmarkRecover).
func BenchmarkRecover(b *testing.B) {
	d, a, sig := benchFixture(b)
	digest := a.Digest(d.Separator())
	b.ReportAllocs()
	for b.Loop() {
		if got, err := eip3009.Recover(digest, sig[:]); err != nil || got != a.From {
			b.Fatal(got, err)
		}
	}
}
