package l402_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"gopkg.in/macaroon.v2"

	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
)

func sampleToken(f *testing.F) []byte {
	m, err := macaroon.New([]byte("root"), l402.Identifier{PaymentHash: lightning.Hash{1}, TokenID: [32]byte{2}}.MarshalBinary(), l402.Location, macaroon.V2)
	if err != nil {
		f.Fatal(err)
	}
	m.AddFirstPartyCaveat([]byte("services=sats:0"))
	b, _ := m.MarshalBinary()
	return b
}

// FuzzParseAuthorization: parsing never panics; a credential it reads,
// written back by FormatAuthorization and read again, is the same
// credential; and the scheme word's case never changes the result.
func FuzzParseAuthorization(f *testing.F) {
	tok := base64.StdEncoding.EncodeToString(sampleToken(f))
	pre := strings.Repeat("ab", 32)
	for _, s := range []string{
		"L402 " + tok + ":" + pre, "LSAT " + tok + "," + tok + ":" + strings.ToUpper(pre),
		"l402   " + tok + ":" + pre, "Bearer x", "L402 :", "L402 " + tok, "L402 a,b,:" + pre,
	} {
		f.Add(s, "")
	}
	f.Add("L402 "+tok+":"+pre, "LSAT "+tok+":"+pre)
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{}
		h.Add("Authorization", a)
		if b != "" {
			h.Add("Authorization", b)
		}
		c, err := l402.ParseAuthorization(h)
		if err != nil || c == nil {
			return
		}
		if len(c.Macaroons) == 0 {
			t.Fatal("a credential without macaroons")
		}
		again, err := l402.ParseAuthorization(http.Header{"Authorization": {l402.FormatAuthorization(c.Macaroons, c.Preimage)}})
		if err != nil || again == nil || again.Preimage != c.Preimage || len(again.Macaroons) != len(c.Macaroons) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, c)
		}
		for i := range c.Macaroons {
			if !bytes.Equal(again.Macaroons[i], c.Macaroons[i]) {
				t.Fatalf("macaroon %d changed in the round trip", i)
			}
		}
		flip := http.Header{}
		for _, v := range h.Values("Authorization") {
			if len(v) >= 4 {
				v = strings.ToUpper(v[:4]) + v[4:]
			}
			flip.Add("Authorization", v)
		}
		if c2, err := l402.ParseAuthorization(flip); strings.EqualFold(strings.TrimSpace(a)[:min(4, len(strings.TrimSpace(a)))], "l402") && (err != nil || c2 == nil || c2.Preimage != c.Preimage) {
			t.Fatalf("the scheme's case changed the result: %+v, %v", c2, err)
		}
	})
}

// FuzzDecodeIdentifier: an identifier that decodes is version 0 of 66
// bytes and writes back to the same bytes.
func FuzzDecodeIdentifier(f *testing.F) {
	f.Add(l402.Identifier{PaymentHash: lightning.Hash{1}}.MarshalBinary())
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := l402.DecodeIdentifier(b)
		if err != nil {
			return
		}
		if id.Version != 0 || !bytes.Equal(id.MarshalBinary(), b) {
			t.Fatalf("DecodeIdentifier(%x) = %+v, which writes %x", b, id, id.MarshalBinary())
		}
	})
}

// FuzzMacaroon: a macaroon the rail's decoder (go-macaroon) reads
// re-encodes to bytes that decode to the same macaroon, so what the
// signature covers is what the rail reads.
func FuzzMacaroon(f *testing.F) {
	f.Add(sampleToken(f))
	f.Add([]byte{2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m macaroon.Macaroon
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			return
		}
		var m2 macaroon.Macaroon
		if err := m2.UnmarshalBinary(out); err != nil || !m.Equal(&m2) {
			t.Fatalf("re-encoded macaroon reads otherwise: %v", err)
		}
	})
}

// FuzzParseChallenges: a challenge header written by ChallengeHeaders is
// read back whatever else shares the header value, and no input panics.
func FuzzParseChallenges(f *testing.F) {
	tok := sampleToken(f)
	f.Add("Bearer realm=\"x\"", "lnbcrt1")
	f.Add(`Payment id="a", method="lightning"`, "lnbcrt10u1x")
	f.Fuzz(func(t *testing.T, other, invoice string) {
		l402.ParseChallenges([]string{other})
		if strings.ContainsAny(invoice, "\"\\, ") || invoice == "" || strings.ContainsAny(other, "\"\\") {
			return
		}
		hs := l402.ChallengeHeaders(tok, invoice)
		chs := l402.ParseChallenges([]string{other + ", " + strings.Join(hs, ", ")})
		found := 0
		for _, c := range chs {
			if bytes.Equal(c.Token, tok) && c.Invoice == invoice {
				found++
			}
		}
		if found < 2 {
			t.Fatalf("read %d of our 2 challenges back from %q: %+v", found, other+", "+strings.Join(hs, ", "), chs)
		}
	})
}
