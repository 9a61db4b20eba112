package mppclient_test

import (
	"context"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/mppclient"
	"github.com/coinop/coinop/x402"
)

type noPush struct{}

func (noPush) PushTransfer(context.Context, uint64, eip3009.Address, eip3009.Address, *big.Int, [32]byte) ([32]byte, bool, error) {
	return [32]byte{}, false, nil
}

func challengeHeader(t *testing.T, method string, request map[string]any) string {
	t.Helper()
	enc, _ := mpp.EncodeRequest(request)
	c := mpp.Challenge{Realm: "r", Method: method, Intent: "charge", Request: enc, Expires: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}
	c.ID = mpp.ID([]byte("s"), &c)
	return c.String()
}

// TestOptions: evm challenges are offered when the 402 states the token's
// EIP-712 domain, tempo challenges when a pusher is set and push mode is
// accepted; prices are in the token's unit with the buyer's decimals; a
// malformed Payment challenge is an error; a 402 of another dialect offers
// nothing.
func TestOptions(t *testing.T) {
	token, payTo := "0x20c0000000000000000000000000000000000000", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
	evmReq := map[string]any{"amount": "1000", "currency": token, "recipient": payTo, "methodDetails": map[string]any{"chainId": 1337, "credentialTypes": []any{"authorization"}, "decimals": 18}}
	tempoReq := map[string]any{"amount": "7", "currency": token, "recipient": payTo, "methodDetails": map[string]any{"chainId": 1337, "supportedModes": []any{"push"}}}
	pullOnly := map[string]any{"amount": "7", "currency": token, "recipient": payTo, "methodDetails": map[string]any{"chainId": 1337, "supportedModes": []any{"pull"}}}
	pr, _ := x402.EncodeHeader(x402.PaymentRequired{X402Version: 2, Accepts: []x402.PaymentRequirements{{Scheme: "exact", Network: "eip155:1337", Asset: token, PayTo: payTo, Amount: "1000", Extra: map[string]any{"name": "USD Coin", "version": "2"}}}})
	key, _ := eip3009.NewKey([]byte(strings.Repeat("\x01", 32)))
	m := &mppclient.Method{Key: key, Pusher: noPush{}, Decimals: 6}
	opts := func(h http.Header, body string) ([]client.Option, error) {
		return m.Options(context.Background(), &client.Challenge{Response: &http.Response{StatusCode: 402, Header: h}, Body: []byte(body)})
	}

	h := http.Header{}
	h.Add("WWW-Authenticate", challengeHeader(t, "evm", evmReq))
	h.Add("WWW-Authenticate", challengeHeader(t, "tempo", tempoReq))
	h.Add("WWW-Authenticate", challengeHeader(t, "tempo", pullOnly))
	h.Add("WWW-Authenticate", challengeHeader(t, "stripe", map[string]any{"amount": "1"}))
	h.Set(x402.HeaderPaymentRequired, pr)
	got, err := opts(h, `{"price":"0.001 USDC"}`)
	if err != nil || len(got) != 2 {
		t.Fatalf("options %+v (%v), want evm and tempo push", got, err)
	}
	evm, tempo := got[0], got[1]
	if evm.Price.Unit != client.TokenUnit("eip155:1337", token) || evm.Price.Amount.Int64() != 1000 || evm.Price.Decimals != 6 ||
		evm.Price.String() != "0.001 USDC" || evm.Header != "Authorization" || evm.PayTo != payTo {
		t.Errorf("evm option %+v (%s)", evm, evm.Price)
	}
	if tempo.Price.Amount.Int64() != 7 || !strings.Contains(tempo.About, "tempo") {
		t.Errorf("tempo option %+v", tempo)
	}
	cred, err := evm.Pay(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := mpp.ParseCredential(cred.Header.Get("Authorization")); err != nil || c.Challenge.Method != "evm" {
		t.Errorf("credential %+v (%v)", c, err)
	}

	// Without the token's domain anywhere in the 402, evm is not offered.
	h.Del(x402.HeaderPaymentRequired)
	if got, _ := opts(h, `{}`); len(got) != 1 || got[0].Price.Amount.Int64() != 7 {
		t.Errorf("without a domain: %+v", got)
	}
	// Without a pusher, tempo is not offered.
	m.Pusher = nil
	if got, _ := opts(h, `{}`); len(got) != 0 {
		t.Errorf("without a pusher: %+v", got)
	}
	bad := http.Header{"Www-Authenticate": {`Payment id="a", id="b", realm="r", method="evm", intent="charge", request="e30"`}}
	if _, err := opts(bad, ""); err == nil {
		t.Error("a malformed challenge was not an error")
	}
	if got, err := opts(http.Header{"Www-Authenticate": {`L402 macaroon="m", invoice="i"`}}, ""); err != nil || len(got) != 0 {
		t.Errorf("an L402 402: %+v (%v)", got, err)
	}
}
