package mpp_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/coinop/coinop/mpp"
)

func stdB64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// FuzzParseCredential: whatever ParseCredential accepts encodes back to a
// credential it decodes to the same value (decode∘encode = id), and a
// credential whose challenge differs in any bound parameter from one issued
// under the secret never passes Bound.
func FuzzParseCredential(f *testing.F) {
	secret := []byte("fuzz secret")
	issued := testChallenge(secret)
	good := mpp.Credential{Challenge: issued, Payload: json.RawMessage(`{"type":"authorization"}`)}
	h, _ := good.Encode()
	f.Add(h)
	f.Add("Payment eyJjaGFsbGVuZ2UiOnt9fQ")
	f.Add("Payment " + stdB64(`{"challenge":{"id":"a","realm":"r|x","method":"evm","intent":"charge","request":"e30"},"payload":1}`))
	f.Fuzz(func(t *testing.T, h string) {
		c, err := mpp.ParseCredential(h)
		if err != nil {
			return
		}
		again, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode of a parsed credential: %v", err)
		}
		c2, err := mpp.ParseCredential(again)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", again, err)
		}
		var p1, p2 any
		json.Unmarshal(c.Payload, &p1)
		json.Unmarshal(c2.Payload, &p2)
		if c.Challenge != c2.Challenge || c.Source != c2.Source || !reflect.DeepEqual(p1, p2) {
			t.Fatalf("decode∘encode changed %+v into %+v", c, c2)
		}
		ch := c.Challenge
		if mpp.Bound(secret, &ch) && (ch.Realm != issued.Realm || ch.Method != issued.Method || ch.Intent != issued.Intent ||
			ch.Request != issued.Request || ch.Expires != issued.Expires || ch.Digest != issued.Digest || ch.Opaque != issued.Opaque) {
			t.Fatalf("a tampered challenge passes Bound: %+v", ch)
		}
	})
}

// FuzzParseChallenges: a challenge that parses is written by String in a
// form that parses back to it.
func FuzzParseChallenges(f *testing.F) {
	f.Add(testChallenge([]byte("s")).String())
	f.Add(`L402 macaroon="a", invoice="b", Payment id="x", realm="r", method="evm", intent="charge", request="e30"`)
	f.Add(`Payment id="\u00e9\"", realm="r", method="a", intent="b", request="c"`)
	f.Fuzz(func(t *testing.T, v string) {
		cs, err := mpp.ParseChallenges([]string{v})
		if err != nil {
			return
		}
		for _, c := range cs {
			back, err := mpp.ParseChallenges([]string{c.String()})
			if err != nil || len(back) != 1 || back[0] != c {
				t.Fatalf("%+v wrote %q, which parses to %+v (%v)", c, c.String(), back, err)
			}
		}
	})
}

// FuzzCanonicalize: canonical JSON is a fixed point (canonicalizing its
// own decoding gives the same bytes) and means what the input meant.
func FuzzCanonicalize(f *testing.F) {
	f.Add([]byte(`{"b":[1,2.5,"x"],"a":{"\u00e9":null}}`))
	f.Add([]byte(`[1e300,-1e-300,0.1]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var v any
		if json.Unmarshal(in, &v) != nil {
			return
		}
		out, err := mpp.Canonicalize(json.RawMessage(in))
		if err != nil {
			return // duplicate members, invalid UTF-8: refused, fine
		}
		var w any
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatalf("canonical form %s is not JSON: %v", out, err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("canonical form %s means %v, input meant %v", out, w, v)
		}
		again, err := mpp.Canonicalize(json.RawMessage(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %s then %s (%v)", out, again, err)
		}
	})
}

// FuzzAcceptPayment: whatever header parses yields weights between 0 and
// 1, and an entry naming a method exactly outranks the wildcard.
func FuzzAcceptPayment(f *testing.F) {
	f.Add("evm/charge;q=0.5, */*;q=0.1")
	f.Add("tempo/*, lightning/charge;q=0")
	f.Fuzz(func(t *testing.T, h string) {
		prefs, err := mpp.ParseAcceptPayment([]string{h})
		if err != nil {
			return
		}
		for _, p := range prefs {
			for _, m := range []string{p.Method, "evm"} {
				if w := mpp.Weight(prefs, m, "charge"); w < 0 || w > 1 {
					t.Fatalf("weight %v of %s in %q", w, m, h)
				}
			}
		}
		exact := append([]mpp.Preference{{Method: "zz", Intent: "charge", Q: 0.25}}, prefs...)
		if w := mpp.Weight(exact, "zz", "charge"); w != 0.25 && !hasExact(prefs, "zz") {
			t.Fatalf("an exact entry lost to %q: %v", h, w)
		}
	})
}

func hasExact(prefs []mpp.Preference, m string) bool {
	for _, p := range prefs {
		if p.Method == m && p.Intent == "charge" {
			return true
		}
	}
	return false
}
