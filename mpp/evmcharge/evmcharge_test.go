package evmcharge_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/evmcharge"
)

func challenge(t *testing.T, request map[string]any) mpp.Challenge {
	t.Helper()
	enc, err := mpp.EncodeRequest(request)
	if err != nil {
		t.Fatal(err)
	}
	c := mpp.Challenge{Realm: "r", Method: "evm", Intent: "charge", Request: enc, Expires: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}
	c.ID = mpp.ID([]byte("s"), &c)
	return c
}

func good() map[string]any {
	return map[string]any{"amount": "1000", "currency": "0x20c0000000000000000000000000000000000000", "recipient": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
		"methodDetails": map[string]any{"chainId": 1337, "credentialTypes": []any{"authorization"}, "decimals": 6}}
}

// TestDecodeRequest refuses what one authorization cannot pay.
func TestDecodeRequest(t *testing.T) {
	c := challenge(t, good())
	if r, err := evmcharge.DecodeRequest(&c); err != nil || r.Network() != "eip155:1337" || r.Amount != "1000" {
		t.Fatalf("%+v %v", r, err)
	}
	for name, edit := range map[string]func(map[string]any){
		"negative amount": func(m map[string]any) { m["amount"] = "-1" },
		"decimal amount":  func(m map[string]any) { m["amount"] = "1.5" },
		"bad currency":    func(m map[string]any) { m["currency"] = "0x12" },
		"bad recipient":   func(m map[string]any) { m["recipient"] = "nobody" },
		"no chain":        func(m map[string]any) { delete(m["methodDetails"].(map[string]any), "chainId") },
		"splits": func(m map[string]any) {
			m["methodDetails"].(map[string]any)["splits"] = []any{map[string]any{"amount": "1"}}
		},
		"permit2 only":     func(m map[string]any) { m["methodDetails"].(map[string]any)["credentialTypes"] = []any{"permit2"} },
		"amount as number": func(m map[string]any) { m["amount"] = 1000 },
	} {
		m := good()
		edit(m)
		c := challenge(t, m)
		if r, err := evmcharge.DecodeRequest(&c); err == nil {
			t.Errorf("%s: accepted %+v", name, r)
		}
	}
	other := challenge(t, good())
	other.Method = "tempo"
	if _, err := evmcharge.DecodeRequest(&other); err == nil {
		t.Error("a tempo challenge decoded as evm")
	}
}

// TestAuthorize signs what the challenge asks: nonce keccak256(id||realm),
// validBefore at its expiry, the signer's did:pkh, a signature that
// recovers to the payer under the token's domain.
func TestAuthorize(t *testing.T) {
	key, err := eip3009.NewKey([]byte(strings.Repeat("\x01", 32)))
	if err != nil {
		t.Fatal(err)
	}
	c := challenge(t, good())
	r, _ := evmcharge.DecodeRequest(&c)
	cred, err := evmcharge.Authorize(key, &c, r, "USD Coin", "2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var pl evmcharge.Payload
	if err := json.Unmarshal(cred.Payload, &pl); err != nil {
		t.Fatal(err)
	}
	exp, _, _ := c.ExpiresAt()
	if pl.Type != "authorization" || pl.Nonce != evmcharge.ChallengeNonce(&c) || pl.ValidBefore != itoa(exp.Unix()) || pl.Value != "1000" ||
		cred.Source != evmcharge.Source(1337, key.Address()) || cred.Challenge != c {
		t.Fatalf("credential %+v payload %+v", cred, pl)
	}
	auth, err := eip3009.ParseAuthorization(pl.From, pl.To, pl.Value, pl.ValidAfter, pl.ValidBefore, pl.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := eip3009.ParseSignature(pl.Signature)
	asset, _ := eip3009.ParseAddress(r.Currency)
	d := eip3009.Domain{Name: "USD Coin", Version: "2", ChainID: 1337, VerifyingContract: asset}
	if signer, err := eip3009.Recover(auth.Digest(d.Separator()), sig); err != nil || signer != key.Address() {
		t.Fatalf("signature recovers to %s (%v)", signer.Hex(), err)
	}
	if _, err := evmcharge.Authorize(key, &c, r, "USD Coin", "2", exp.Add(time.Second)); err == nil {
		t.Error("signed for an expired challenge")
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// FuzzDecodeRequest: a request DecodeRequest accepts has an atomic amount
// (digits only, no sign), valid addresses, a chain id, no splits, and
// accepts authorization credentials.
func FuzzDecodeRequest(f *testing.F) {
	b, _ := json.Marshal(good())
	f.Add(b)
	f.Add([]byte(`{"amount":"-0","currency":"0x0","recipient":"0x0","methodDetails":{"chainId":1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := mpp.Challenge{Method: "evm", Intent: "charge", Request: base64URL(raw)}
		r, err := evmcharge.DecodeRequest(&c)
		if err != nil {
			return
		}
		if r.Amount == "" || strings.Trim(r.Amount, "0123456789") != "" || r.MethodDetails.ChainID == 0 || len(r.MethodDetails.Splits) > 0 {
			t.Fatalf("accepted %s as %+v", raw, r)
		}
		if _, err := eip3009.ParseAddress(r.Currency); err != nil {
			t.Fatalf("currency %q: %v", r.Currency, err)
		}
		if _, err := eip3009.ParseAddress(r.Recipient); err != nil {
			t.Fatalf("recipient %q: %v", r.Recipient, err)
		}
	})
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
