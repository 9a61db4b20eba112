package evm_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/x402"
)

// simulationOK is a chain whose eth_call simulations all succeed at once:
// the benchmarks measure the gateway's own work, not the node's (the bench
// in bench/ measures both). Other methods are not used by verification.
type simulationOK struct{ evm.Backend }

func (simulationOK) CallContract(context.Context, ethereum.CallMsg, *big.Int) ([]byte, error) {
	return nil, nil
}

// benchRail is the x402 rail with the exact scheme for one token on a chain
// that answers every simulation with success, and a signed payment for it.
func benchRail(b *testing.B) (*x402.Rail, coinop.Charge, *http.Request) {
	b.Helper()
	payerKey, _ := crypto.HexToECDSA("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	token := common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
	payTo := common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: 84532, Backend: simulationOK{}})
	if err != nil {
		b.Fatal(err)
	}
	exact, err := evm.NewExact(ch, evm.ExactConfig{Asset: token, Name: "USDC", Version: "2", PayTo: payTo, MaxTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	charge := coinop.Charge{Price: coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6},
		Resource: coinop.Resource{URL: "http://127.0.0.1/weather", Method: http.MethodGet}}
	rail := &x402.Rail{Schemes: []x402.Scheme{exact}}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/weather", nil)
	req.Header.Set(x402.HeaderPaymentSignature, signedHeader(b, payerKey, exact.Requirements(charge), 84532, 1))
	return rail, charge, req
}

// signedHeader is a PAYMENT-SIGNATURE for reqs with nonce n.
func signedHeader(b *testing.B, payer *ecdsa.PrivateKey, reqs x402.PaymentRequirements, chainID uint64, n uint64) string {
	key, err := eip3009.NewKey(crypto.FromECDSA(payer))
	if err != nil {
		b.Fatal(err)
	}
	asset, _ := eip3009.ParseAddress(reqs.Asset)
	payTo, _ := eip3009.ParseAddress(reqs.PayTo)
	a := eip3009.Authorization{From: key.Address(), To: payTo, Value: big.NewInt(1000),
		ValidAfter: new(big.Int), ValidBefore: big.NewInt(time.Now().Unix() + 3600)}
	new(big.Int).SetUint64(n).FillBytes(a.Nonce[:])
	d := eip3009.Domain{Name: reqs.Extra["name"].(string), Version: reqs.Extra["version"].(string), ChainID: chainID, VerifyingContract: asset}
	sig := key.Sign(a.Digest(d.Separator()))
	pl, _ := json.Marshal(x402.ExactEVMPayload{
		Signature: "0x" + hex.EncodeToString(sig[:]),
		Authorization: x402.ExactAuthorization{
			From: a.From.Hex(), To: a.To.Hex(), Value: "1000", ValidAfter: "0",
			ValidBefore: a.ValidBefore.String(), Nonce: "0x" + hex.EncodeToString(a.Nonce[:]),
		},
	})
	h, err := x402.EncodeHeader(x402.PaymentPayload{X402Version: 2, Accepted: reqs, Payload: pl})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkRecover is the signature recovery the exact scheme runs:
// go-ethereum's secp256k1 (libsecp256k1 through cgo; pure Go when built
// with CGO_ENABLED=0), then the address.
func BenchmarkRecover(b *testing.B) {
	key, _ := eip3009.ParseKey("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	var digest [32]byte
	digest[0] = 1
	sig := key.Sign(digest)
	sig[64] -= 27
	b.ReportAllocs()
	for b.Loop() {
		pub, err := crypto.Ecrecover(digest[:], sig[:])
		if err != nil {
			b.Fatal(err)
		}
		if common.BytesToAddress(crypto.Keccak256(pub[1:])[12:]) != common.Address(key.Address()) {
			b.Fatal("wrong signer")
		}
	}
}

// BenchmarkVerify is the whole x402 verification of one payment as the
// engine runs it, without the journal: decode the header, the cheap checks,
// the EIP-712 digest, signature recovery, and an eth_call simulation whose
// node answers at once.
func BenchmarkVerify(b *testing.B) {
	rail, charge, req := benchRail(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		p, err := rail.Inspect(req, charge)
		if err != nil {
			b.Fatal(err)
		}
		if err := rail.Verify(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspect is the part of verification before any cryptography:
// header decoding and the cheap checks.
func BenchmarkInspect(b *testing.B) {
	rail, charge, req := benchRail(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rail.Inspect(req, charge); err != nil {
			b.Fatal(err)
		}
	}
}
