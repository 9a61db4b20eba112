package x402_test

import (
	"encoding/json"
	"testing"

	"github.com/coinop/coinop/x402"
)

// benchRequirements is an offer as coinop makes it.
var benchRequirements = x402.PaymentRequirements{
	Scheme: "exact", Network: "eip155:84532", Amount: "1000",
	Asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", PayTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
	MaxTimeoutSeconds: 60, Extra: map[string]any{"name": "USDC", "version": "2"},
}

// benchSignature is a PAYMENT-SIGNATURE header of the size real clients send.
func benchSignature(b *testing.B) string {
	b.Helper()
	payload, err := json.Marshal(x402.ExactEVMPayload{
		Signature: "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c",
		Authorization: x402.ExactAuthorization{
			From: "0x857b06519E91e3A54538791bDbb0E22373e36b66", To: benchRequirements.PayTo, Value: "1000",
			ValidAfter: "0", ValidBefore: "1740672154", Nonce: "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480",
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	h, err := x402.EncodeHeader(x402.PaymentPayload{
		X402Version: 2, Resource: &x402.ResourceInfo{URL: "https://api.example.com/weather", Description: "Current weather", MimeType: "application/json"},
		Accepted: benchRequirements, Payload: payload,
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkDecodeHeader decodes a PAYMENT-SIGNATURE header (base64, JSON).
func BenchmarkDecodeHeader(b *testing.B) {
	h := benchSignature(b)
	b.SetBytes(int64(len(h)))
	b.ReportAllocs()
	for b.Loop() {
		var p x402.PaymentPayload
		if err := x402.DecodeHeader(h, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeExactEVM decodes the exact EVM payload inside it.
func BenchmarkDecodeExactEVM(b *testing.B) {
	var p x402.PaymentPayload
	if err := x402.DecodeHeader(benchSignature(b), &p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x402.DecodeExactEVM(p.Payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodePaymentRequired encodes the PAYMENT-REQUIRED header of a 402.
func BenchmarkEncodePaymentRequired(b *testing.B) {
	pr := x402.PaymentRequired{
		X402Version: 2, Error: "PAYMENT-SIGNATURE header is required",
		Resource: &x402.ResourceInfo{URL: "https://api.example.com/weather", Description: "Current weather", MimeType: "application/json"},
		Accepts:  []x402.PaymentRequirements{benchRequirements},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x402.EncodeHeader(pr); err != nil {
			b.Fatal(err)
		}
	}
}
