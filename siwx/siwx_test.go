package siwx_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/coinop/coinop/siwx"
)

const sample = `{"domain":"127.0.0.1:8402","address":"0x5694fc749c4df301db44f3729316719c38bd792d","uri":"http://127.0.0.1:8402/api/x","version":"1","chainId":"eip155:1337","type":"eip191","nonce":"0123456789abcdef","issuedAt":"2026-12-02T01:00:00.000Z","resources":["http://127.0.0.1:8402/api/x"],"signature":"0x00"}`

// The message is EIP-4361's, line for line, with the address checksummed.
func TestMessage(t *testing.T) {
	p, err := siwx.Parse(base64.StdEncoding.EncodeToString([]byte(sample)))
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:8402 wants you to sign in with your Ethereum account:\n0x5694Fc749C4DF301DB44F3729316719C38bD792d\n\n\n" +
		"URI: http://127.0.0.1:8402/api/x\nVersion: 1\nChain ID: 1337\nNonce: 0123456789abcdef\nIssued At: 2026-12-02T01:00:00.000Z\n" +
		"Resources:\n- http://127.0.0.1:8402/api/x"
	if got := p.Message(); got != want {
		t.Errorf("message:\n%s\nwant:\n%s", got, want)
	}
	if _, err := p.Signer(); err == nil {
		t.Error("a malformed signature verified")
	}
}

// FuzzParse: a proof the parser takes makes a message whose structure its
// fields cannot change: one line per field, in order.
func FuzzParse(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString([]byte(sample)))
	f.Add(base64.StdEncoding.EncodeToString([]byte(strings.Replace(sample, `"uri"`, `"statement":"hi\nthere","uri"`, 1))))
	f.Add("not base64")
	f.Fuzz(func(t *testing.T, h string) {
		p, err := siwx.Parse(h)
		if err != nil {
			return
		}
		msg := p.Message()
		for _, k := range []string{"\nURI: ", "\nVersion: ", "\nChain ID: ", "\nNonce: ", "\nIssued At: "} {
			if strings.Count(msg, k) != 1 {
				t.Fatalf("%q appears %d times in\n%s", k, strings.Count(msg, k), msg)
			}
		}
		if !strings.HasPrefix(msg, p.Domain+" wants you to sign in with your Ethereum account:\n0x") {
			t.Fatalf("message head: %q", msg)
		}
	})
}
