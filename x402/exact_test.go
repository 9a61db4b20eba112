package x402_test

import (
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

var (
	testAsset  = eip3009.Address{0xaa, 1}
	testDomain = eip3009.Domain{Name: "USD Coin", Version: "2", ChainID: 84532, VerifyingContract: testAsset}
)

func testKey(t testing.TB, seed byte) *eip3009.Key {
	t.Helper()
	b := make([]byte, 32)
	b[31] = seed
	k, err := eip3009.NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signedPayload is an exact EVM payload from the payer (seed 1), signed by
// signer under d.
func signedPayload(t testing.TB, signer *eip3009.Key, d eip3009.Domain) x402.ExactEVMPayload {
	t.Helper()
	payer := testKey(t, 1)
	a := eip3009.Authorization{From: payer.Address(), To: eip3009.Address{0xbb}, Value: big.NewInt(1000),
		ValidAfter: big.NewInt(0), ValidBefore: big.NewInt(2_000_000_000), Nonce: [32]byte{7, 7}}
	sig := signer.Sign(a.Digest(d.Separator()))
	return x402.ExactEVMPayload{
		Signature: "0x" + hex.EncodeToString(sig[:]),
		Authorization: x402.ExactAuthorization{From: a.From.Hex(), To: a.To.Hex(), Value: "1000", ValidAfter: "0",
			ValidBefore: "2000000000", Nonce: "0x" + hex.EncodeToString(a.Nonce[:])},
	}
}

func credential(t testing.TB, pl x402.ExactEVMPayload) *x402.Credential {
	t.Helper()
	raw, err := json.Marshal(pl)
	if err != nil {
		t.Fatal(err)
	}
	return &x402.Credential{Version: 2, Payload: x402.PaymentPayload{X402Version: 2, Payload: raw},
		Requirements: x402.PaymentRequirements{Scheme: "exact", Network: "eip155:84532", Asset: testAsset.Hex(),
			Extra: map[string]any{"name": testDomain.Name, "version": testDomain.Version}}}
}

// AuthenticateExactEVM accepts the payer's own signature under our offer's
// domain and nothing else, without any I/O.
func TestAuthenticateExactEVM(t *testing.T) {
	other := testDomain
	other.Name = "Other"
	for _, c := range []struct {
		name   string
		pl     x402.ExactEVMPayload
		reason string
	}{
		{"the payer's signature", signedPayload(t, testKey(t, 1), testDomain), ""},
		{"someone else's signature", signedPayload(t, testKey(t, 2), testDomain), x402.ReasonInvalidSignature},
		{"signed for another domain", signedPayload(t, testKey(t, 1), other), x402.ReasonInvalidSignature},
		{"a changed value", func() x402.ExactEVMPayload {
			pl := signedPayload(t, testKey(t, 1), testDomain)
			pl.Authorization.Value = "1001"
			return pl
		}(), x402.ReasonInvalidSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := x402.AuthenticateExactEVM(credential(t, c.pl))
			if got := reasonOf(err); got != c.reason {
				t.Fatalf("got %q (%v), want %q", got, err, c.reason)
			}
		})
	}
}

func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	return coinop.AsError(err).Reason
}

// SameExactEVM compares what the payer signed, not bytes: re-encodings of
// one payload are the same payment, a change of any signed field or of the
// signature is not.
func TestSameExactEVM(t *testing.T) {
	orig := signedPayload(t, testKey(t, 1), testDomain)
	raw, _ := json.Marshal(orig)
	change := func(f func(p *x402.ExactEVMPayload)) []byte {
		p := orig
		f(&p)
		b, _ := json.Marshal(p)
		return b
	}
	sig, _ := hex.DecodeString(strings.TrimPrefix(orig.Signature, "0x"))
	for _, c := range []struct {
		name string
		b    []byte
		same bool
	}{
		{"the same bytes", raw, true},
		{"members reordered and spaced", []byte(`{ "authorization": {"nonce": "` + orig.Authorization.Nonce + `", "validBefore": "2000000000",
			"validAfter": "0", "value": "1000", "to": "` + orig.Authorization.To + `", "from": "` + orig.Authorization.From + `"},
			"signature": "` + orig.Signature + `" }`), true},
		{"addresses in lower case", change(func(p *x402.ExactEVMPayload) {
			p.Authorization.From, p.Authorization.To = strings.ToLower(p.Authorization.From), strings.ToLower(p.Authorization.To)
		}), true},
		{"recovery id 0/1 instead of 27/28", change(func(p *x402.ExactEVMPayload) {
			s := append([]byte(nil), sig...)
			s[64] -= 27
			p.Signature = "0x" + hex.EncodeToString(s)
		}), true},
		{"another validBefore", change(func(p *x402.ExactEVMPayload) { p.Authorization.ValidBefore = "2000000001" }), false},
		{"another nonce", change(func(p *x402.ExactEVMPayload) { p.Authorization.Nonce = "0x" + strings.Repeat("01", 32) }), false},
		{"another signature", []byte(strings.Replace(string(raw), orig.Signature[2:10], "00000000", 1)), false},
		{"not a payload", []byte(`{}`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := x402.SameExactEVM(raw, c.b); got != c.same {
				t.Fatalf("SameExactEVM = %v, want %v\n%s", got, c.same, c.b)
			}
		})
	}
}

// FuzzSameExactEVM states the property: a payload that decodes is the same
// payment as itself and as its re-encoding.
func FuzzSameExactEVM(f *testing.F) {
	raw, _ := json.Marshal(signedPayload(f, testKey(f, 1), testDomain))
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		pl, err := x402.DecodeExactEVM(b)
		if err != nil || !x402.SameExactEVM(b, b) {
			return // not an exact EVM payload: nothing to compare
		}
		again, _ := json.Marshal(pl)
		if !x402.SameExactEVM(b, again) {
			t.Fatalf("re-encoding changed the payment:\n%s\n%s", b, again)
		}
	})
}
