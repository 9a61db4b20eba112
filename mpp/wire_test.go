package mpp_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/mpp"
)

// TestCanonicalize checks RFC 8785's own example and the orders and forms
// JCS prescribes.
func TestCanonicalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{`{"b":1,"a":{"d":[],"c":{}}}`, `{"a":{"c":{},"d":[]},"b":1}`},
		// Names sort by UTF-16 code units: U+1F600 (a surrogate pair)
		// before U+FB33.
		{`{"\ufb33":1,"\ud83d\ude00":2,"\u0080":3,"1":4}`, `{"1":4,"` + "\u0080" + `":3,"` + "\U0001F600" + `":2,"` + "\ufb33" + `":1}`},
		{`[1e21,1e-7,-0,100,0.1,123456789012]`, `[1e+21,1e-7,0,100,0.1,123456789012]`},
		{`"<html>&"`, `"<html>&"`},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		got, err := mpp.Canonicalize(v)
		if err != nil || string(got) != tc.want {
			t.Errorf("Canonicalize(%s) = %s (%v), want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := mpp.Canonicalize(json.RawMessage(`{"a":1,"a":2}`)); err == nil {
		t.Error("duplicate member accepted")
	}
}

func testChallenge(secret []byte) mpp.Challenge {
	req, _ := mpp.EncodeRequest(map[string]any{"amount": "1000", "currency": "0xabc", "methodDetails": map[string]any{"chainId": 1337}})
	c := mpp.Challenge{Realm: "api.example.com", Method: "evm", Intent: "charge", Request: req,
		Expires: "2026-12-02T01:00:00Z", Opaque: "eyJuIjoiMSJ9", Description: `a "quoted" — déjà vu 😀`}
	c.ID = mpp.ID(secret, &c)
	return c
}

// TestChallengeRoundTrip: what String writes, ParseChallenges reads back,
// among other schemes in one value or several.
func TestChallengeRoundTrip(t *testing.T) {
	secret := []byte("secret")
	c := testChallenge(secret)
	for _, values := range [][]string{
		{c.String()},
		{`L402 macaroon="abc", invoice="lnbc1"`, c.String()},
		{`Bearer realm="x", ` + c.String() + `, L402 macaroon="m=", invoice="i"`},
		{`Basic dG9rZW4=, ` + c.String()},
	} {
		got, err := mpp.ParseChallenges(values)
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c) {
			t.Errorf("ParseChallenges(%q) = %+v (%v), want %+v", values, got, err, c)
			continue
		}
		if !mpp.Bound(secret, &got[0]) {
			t.Error("parsed challenge is not bound")
		}
	}
	for _, bad := range []string{
		`Payment id="a", id="b", realm="r", method="evm", intent="charge", request="e30"`,
		`Payment id="a", realm="r", method="EVM", intent="charge", request="e30"`,
		`Payment id="a", realm="r", method="evm", intent="charge"`,
		`Payment id="a", realm="r", method="evm", intent="charge", request="e30`,
		`Payment id="a", realm="r", method="evm", intent="charge", request="e30", expires="tomorrow"`,
	} {
		if got, err := mpp.ParseChallenges([]string{bad}); err == nil {
			t.Errorf("ParseChallenges(%q) = %+v, want an error", bad, got)
		}
	}
}

// TestBound: changing any bound parameter, or shifting the slot boundary
// with "|", breaks the id.
func TestBound(t *testing.T) {
	secret := []byte("secret")
	c := testChallenge(secret)
	for name, f := range map[string]func(*mpp.Challenge){
		"realm": func(c *mpp.Challenge) { c.Realm += "x" }, "method": func(c *mpp.Challenge) { c.Method = "tempo" },
		"intent": func(c *mpp.Challenge) { c.Intent = "session" }, "request": func(c *mpp.Challenge) { c.Request += "x" },
		"expires": func(c *mpp.Challenge) { c.Expires = "2099-01-01T00:00:00Z" }, "digest": func(c *mpp.Challenge) { c.Digest = "sha-256=:x:" },
		"opaque": func(c *mpp.Challenge) { c.Opaque = "" },
		"shifted slot": func(c *mpp.Challenge) {
			c.Realm, c.Method = c.Realm+"|"+c.Method, ""
		},
	} {
		d := c
		f(&d)
		if mpp.Bound(secret, &d) {
			t.Errorf("%s changed and the id still binds", name)
		}
	}
	if !mpp.Bound(secret, &c) || mpp.Bound([]byte("other"), &c) {
		t.Error("Bound is wrong about the untouched challenge")
	}
}

// TestParseCredential refuses every form but the strict one.
func TestParseCredential(t *testing.T) {
	c := testChallenge([]byte("s"))
	good := mpp.Credential{Challenge: c, Source: "did:pkh:eip155:1:0x1", Payload: json.RawMessage(`{"type":"hash","hash":"0x1"}`)}
	h, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := mpp.ParseCredential(h)
	if err != nil || !reflect.DeepEqual(*got, good) {
		t.Fatalf("ParseCredential = %+v (%v)", got, err)
	}
	if _, err := mpp.ParseCredential("payment " + strings.TrimPrefix(h, "Payment ")); err != nil {
		t.Errorf("the scheme word is case-insensitive: %v", err)
	}
	b64 := func(s string) string {
		return "Payment " + strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(stdB64(s)), "=")
	}
	for name, bad := range map[string]string{
		"other scheme":   "Bearer " + strings.TrimPrefix(h, "Payment "),
		"two spaces":     "Payment  " + strings.TrimPrefix(h, "Payment "),
		"padding":        h + "=",
		"two tokens":     h + " x",
		"not JSON":       b64("nope"),
		"unknown member": b64(`{"challenge":{},"payload":{},"extra":1}`),
		"no payload":     b64(`{"challenge":` + mustJSON(c) + `}`),
		"null payload":   b64(`{"challenge":` + mustJSON(c) + `,"payload":null}`),
		"duplicate":      b64(`{"challenge":` + mustJSON(c) + `,"payload":{},"payload":{}}`),
		"no id":          b64(`{"challenge":{"realm":"r","method":"evm","intent":"charge","request":"e30"},"payload":{}}`),
		"too long":       "Payment " + strings.Repeat("A", mpp.MaxCredential),
	} {
		if _, err := mpp.ParseCredential(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAcceptPayment(t *testing.T) {
	prefs, err := mpp.ParseAcceptPayment([]string{"tempo/charge;q=0.5, evm/*", "*/*;q=0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, intent string
		want           float64
	}{{"evm", "charge", 1}, {"tempo", "charge", 0.5}, {"tempo", "session", 0.1}, {"lightning", "charge", 0.1}} {
		if got := mpp.Weight(prefs, tc.method, tc.intent); got != tc.want {
			t.Errorf("Weight(%s/%s) = %v, want %v", tc.method, tc.intent, got, tc.want)
		}
	}
	for _, bad := range []string{"evm", "evm/charge;q=2", "evm/charge;q=x", "/charge"} {
		if _, err := mpp.ParseAcceptPayment([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDigestAndReceipt(t *testing.T) {
	d := mpp.BodyDigest([]byte(`{"q":1}`))
	if !strings.HasPrefix(d, "sha-256=:") || !mpp.DigestMatches(d, []byte(`{"q":1}`)) || mpp.DigestMatches(d, []byte(`{"q":2}`)) {
		t.Errorf("digest %s", d)
	}
	if !mpp.DigestMatches(strings.Trim(strings.TrimPrefix(d, "sha-256="), ":"), nil) == mpp.DigestMatches("x", nil) {
		t.Log("unframed form checked below")
	}
	if !mpp.DigestMatches("sha-256="+strings.Trim(strings.TrimPrefix(d, "sha-256="), ":"), []byte(`{"q":1}`)) {
		t.Error("the unframed form mppx writes is not accepted")
	}
	r := mpp.Receipt{Status: "success", Method: "evm", Timestamp: time.Now().UTC().Format(time.RFC3339), Reference: "0xabc"}
	got, err := mpp.ParseReceipt(r.Encode())
	if err != nil || *got != r {
		t.Errorf("receipt %+v (%v)", got, err)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
