package x402_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/coinop/coinop/x402"
)

// roundTrip decodes a spec example, re-encodes it through a header, and
// checks that no field was lost or renamed.
func roundTrip[T any](t *testing.T, file string) T {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := x402.DecodeHeader(base64.StdEncoding.EncodeToString(raw), &v); err != nil {
		t.Fatal(err)
	}
	h, err := x402.EncodeHeader(v)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := base64.StdEncoding.DecodeString(h)
	var want, got any
	json.Unmarshal(raw, &want)
	json.Unmarshal(b, &got)
	// Empty extensions are omitted on encode; that is the only allowed loss.
	if m, ok := want.(map[string]any); ok {
		if e, ok := m["extensions"].(map[string]any); ok && len(e) == 0 {
			delete(m, "extensions")
		}
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s changed in a round trip:\nwant %v\ngot  %v", file, want, got)
	}
	return v
}

func TestSpecExamplesRoundTrip(t *testing.T) {
	pr := roundTrip[x402.PaymentRequired](t, "payment_required_v2.json")
	if pr.X402Version != 2 || pr.Accepts[0].Amount != "10000" || pr.Accepts[0].Extra["name"] != "USDC" {
		t.Fatalf("%+v", pr)
	}
	pp := roundTrip[x402.PaymentPayload](t, "payment_payload_v2.json")
	evm, err := x402.DecodeExactEVM(pp.Payload)
	if err != nil || evm.Authorization.ValidBefore != "1740672154" || !strings.HasPrefix(evm.Signature, "0x2d6a") {
		t.Fatalf("%+v %v", evm, err)
	}
	v1 := roundTrip[x402.PaymentPayloadV1](t, "payment_payload_v1.json")
	if v1.Network != "base-sepolia" || v1.X402Version != 1 {
		t.Fatalf("%+v", v1)
	}
}

func TestDecodeHeader(t *testing.T) {
	for _, c := range []struct {
		name, in string
		ok       bool
	}{
		{"padded", base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2}`)), true},
		{"unpadded", base64.RawStdEncoding.EncodeToString([]byte(`{"x402Version":2}`)), true},
		{"version as string", base64.StdEncoding.EncodeToString([]byte(`{"x402Version":"2"}`)), true},
		{"url-safe alphabet", "eyJ4NDAyVmVyc2lvbiI6Mn0_-_", false},
		{"not json", base64.StdEncoding.EncodeToString([]byte(`x402`)), false},
		{"wrong type", base64.StdEncoding.EncodeToString([]byte(`{"x402Version":true}`)), false},
		{"too long", strings.Repeat("A", x402.MaxHeaderLen+4), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p x402.PaymentPayload
			err := x402.DecodeHeader(c.in, &p)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && p.X402Version != 2 {
				t.Fatalf("version %d", p.X402Version)
			}
		})
	}
}

func TestNetworks(t *testing.T) {
	if n, ok := x402.NetworkForV1("base-sepolia"); !ok || n != "eip155:84532" {
		t.Fatal(n, ok)
	}
	if n := x402.V1Name("eip155:8453"); n != "base" {
		t.Fatal(n)
	}
	if n := x402.V1Name("eip155:1337"); n != "eip155:1337" {
		t.Fatal(n)
	}
	for _, bad := range []string{"eip155:", "eip155:0", "eip155:x", "solana:abc", ""} {
		if _, err := x402.ChainID(bad); err == nil {
			t.Errorf("ChainID(%q) accepted", bad)
		}
	}
}

// FuzzDecodeHeader feeds arbitrary header values to the decoders of
// untrusted input: they must return an error or a value, never panic.
func FuzzDecodeHeader(f *testing.F) {
	for _, file := range []string{"payment_required_v2.json", "payment_payload_v2.json", "payment_payload_v1.json"} {
		b, _ := os.ReadFile("testdata/" + file)
		f.Add(base64.StdEncoding.EncodeToString(b))
	}
	f.Add("")
	f.Add("e30=")
	f.Fuzz(func(t *testing.T, s string) {
		var p x402.PaymentPayload
		if x402.DecodeHeader(s, &p) == nil {
			x402.DecodeExactEVM(p.Payload)
		}
		var v1 x402.PaymentPayloadV1
		x402.DecodeHeader(s, &v1)
		var pr x402.PaymentRequired
		x402.DecodeHeader(s, &pr)
		var sr x402.SettleResponse
		x402.DecodeHeader(s, &sr)
	})
}
