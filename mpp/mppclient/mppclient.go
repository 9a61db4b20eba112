// Package mppclient is the buyer's side of the Payment scheme: a payment
// method of coinop's client ("mpp") that answers WWW-Authenticate: Payment
// challenges with the evm method (an EIP-3009 authorization) or the tempo
// method in push mode (a transfer it sends, then its hash).
package mppclient

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/evmcharge"
	"github.com/coinop/coinop/mpp/tempocharge"
	"github.com/coinop/coinop/x402"
)

// Challenge is a 402 answer to pay: the request that got it, the
// response, and its body (read, at most 1 MiB).
type Challenge struct {
	Request  *http.Request
	Response *http.Response
	Body     []byte
}

// Price is what paying one option costs: Amount in atomic units of Unit,
// "<CAIP-2 network>/<token address, lower case>" for an EVM token.
// Decimals and Symbol are the server's words, for display only.
type Price struct {
	Amount   *big.Int
	Unit     string
	Decimals int
	Symbol   string
}

// Option is one way to pay a 402 through the Payment scheme.
type Option struct {
	Method string // "mpp"
	Price  Price
	About  string
	// Pay pays and returns the headers to set on the retried request. It
	// is called at most once.
	Pay func(ctx context.Context) (*Credential, error)
	// Challenge is the challenge the option answers.
	Challenge mpp.Challenge
}

// Credential is what the retried request carries.
type Credential struct {
	Header http.Header
}

// Pusher sends tempo push-mode transfers.
type Pusher interface {
	// PushTransfer sends transferWithMemo(to, amount, memo) of token on
	// chain chainID from the payer's account, waits until it is mined
	// successfully, and returns the transaction's hash.
	PushTransfer(ctx context.Context, chainID uint64, token, to eip3009.Address, amount *big.Int, memo [32]byte) ([32]byte, error)
}

// Method is the "mpp" payment method.
type Method struct {
	// Key signs evm authorizations; without it evm challenges are not
	// offered.
	Key *eip3009.Key
	// Pusher sends tempo transfers; without it tempo challenges are not
	// offered.
	Pusher Pusher
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// Name is what --prefer names.
func (m *Method) Name() string { return "mpp" }

func (m *Method) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Options lists the Payment challenges of ch this method can pay, in the
// server's order; none when the 402 carries no Payment challenge. A
// malformed Payment challenge is an error.
func (m *Method) Options(ctx context.Context, ch *Challenge) ([]Option, error) {
	cs, err := mpp.ParseChallenges(ch.Response.Header.Values(mpp.HeaderWWWAuthenticate))
	if err != nil {
		return nil, fmt.Errorf("WWW-Authenticate: %w", err)
	}
	var out []Option
	for _, c := range cs {
		switch {
		case c.Method == evmcharge.Name && c.Intent == mpp.IntentCharge && m.Key != nil:
			if o, err := m.evmOption(c, ch); err == nil {
				out = append(out, o)
			}
		case c.Method == tempocharge.Name && c.Intent == mpp.IntentCharge && m.Pusher != nil:
			if o, err := m.tempoOption(c); err == nil {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

func unit(network, asset string) string { return network + "/" + strings.ToLower(asset) }

func decimalsOf(d *int) int {
	if d == nil {
		return 0
	}
	return *d
}

func (m *Method) evmOption(c mpp.Challenge, ch *Challenge) (Option, error) {
	r, err := evmcharge.DecodeRequest(&c)
	if err != nil {
		return Option{}, err
	}
	name, version := domain(ch, r.Network(), r.Currency)
	if name == "" {
		return Option{}, errors.New("the token's EIP-712 domain is not stated in the 402")
	}
	amount, _ := new(big.Int).SetString(r.Amount, 10)
	price := Price{Amount: amount, Unit: unit(r.Network(), r.Currency), Decimals: decimalsOf(r.MethodDetails.Decimals), Symbol: name}
	return Option{
		Method: "mpp", Price: price, Challenge: c,
		About: fmt.Sprintf("%s atomic units of %s on %s to %s (Payment evm/charge)", r.Amount, r.Currency, r.Network(), r.Recipient),
		Pay: func(ctx context.Context) (*Credential, error) {
			cred, err := evmcharge.Authorize(m.Key, &c, r, name, version, m.now())
			if err != nil {
				return nil, err
			}
			return encode(cred)
		},
	}, nil
}

func encode(cred *mpp.Credential) (*Credential, error) {
	h, err := cred.Encode()
	if err != nil {
		return nil, err
	}
	return &Credential{Header: http.Header{mpp.HeaderAuthorization: {h}}}, nil
}

// domain finds the EIP-712 domain (name, version) of token asset on
// network in what the 402 says beside the challenge: x402's
// PAYMENT-REQUIRED offers (extra.name, extra.version), or the JSON body's
// offers (terms.eip712). The Payment scheme's evm request does not carry
// it.
func domain(ch *Challenge, network, asset string) (name, version string) {
	if h := ch.Response.Header.Get(x402.HeaderPaymentRequired); h != "" {
		var pr x402.PaymentRequired
		if x402.DecodeHeader(h, &pr) == nil {
			for _, q := range pr.Accepts {
				if q.Network == network && strings.EqualFold(q.Asset, asset) {
					n, _ := q.Extra["name"].(string)
					v, _ := q.Extra["version"].(string)
					if n != "" && v != "" {
						return n, v
					}
				}
			}
		}
	}
	var body struct {
		Offers []coinop.Offer `json:"offers"`
	}
	if json.Unmarshal(ch.Body, &body) == nil {
		for _, o := range body.Offers {
			if o.Network != network || !strings.EqualFold(o.Asset, asset) {
				continue
			}
			d, _ := o.Terms["eip712"].(map[string]any)
			n, _ := d["name"].(string)
			v, _ := d["version"].(string)
			if n != "" && v != "" {
				return n, v
			}
		}
	}
	return "", ""
}

// tempoRequest is the tempo charge request, decoded.
type tempoRequest struct {
	Amount        string `json:"amount"`
	Currency      string `json:"currency"`
	Recipient     string `json:"recipient"`
	MethodDetails struct {
		ChainID        uint64   `json:"chainId"`
		SupportedModes []string `json:"supportedModes"`
		Splits         []any    `json:"splits"`
		FeePayer       any      `json:"feePayer"`
	} `json:"methodDetails"`
}

func (m *Method) tempoOption(c mpp.Challenge) (Option, error) {
	var r tempoRequest
	if err := mpp.DecodeRequest(c.Request, &r); err != nil {
		return Option{}, err
	}
	if sm := r.MethodDetails.SupportedModes; len(sm) > 0 && !contains(sm, "push") {
		return Option{}, errors.New("the challenge takes no push-mode payment")
	}
	if len(r.MethodDetails.Splits) > 0 || r.MethodDetails.ChainID == 0 {
		return Option{}, errors.New("splits or no chain id")
	}
	amount, ok := new(big.Int).SetString(r.Amount, 10)
	token, err1 := eip3009.ParseAddress(r.Currency)
	to, err2 := eip3009.ParseAddress(r.Recipient)
	if !ok || amount.Sign() < 0 || err1 != nil || err2 != nil {
		return Option{}, errors.New("the tempo request is not readable")
	}
	network := fmt.Sprintf("eip155:%d", r.MethodDetails.ChainID)
	return Option{
		Method: "mpp", Price: Price{Amount: amount, Unit: unit(network, r.Currency)}, Challenge: c,
		About: fmt.Sprintf("%s atomic units of %s on %s to %s (Payment tempo/charge, push)", r.Amount, r.Currency, network, r.Recipient),
		Pay: func(ctx context.Context) (*Credential, error) {
			hash, err := m.Pusher.PushTransfer(ctx, r.MethodDetails.ChainID, token, to, amount, tempocharge.Memo(&c))
			if err != nil {
				return nil, err
			}
			payload, _ := json.Marshal(tempocharge.Payload{Type: "hash", Hash: "0x" + hex.EncodeToString(hash[:])})
			return encode(&mpp.Credential{Challenge: c, Payload: payload})
		},
	}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ReceiptOf decodes a paid response's Payment-Receipt; nil when it has
// none or it is unreadable.
func ReceiptOf(resp *http.Response) *mpp.Receipt {
	h := resp.Header.Get(mpp.HeaderReceipt)
	if h == "" {
		return nil
	}
	r, err := mpp.ParseReceipt(h)
	if err != nil {
		return nil
	}
	return r
}

// ReadBody reads up to 1 MiB of resp's body for a Challenge and leaves the
// body readable again.
func ReadBody(resp *http.Response) []byte {
	var buf bytes.Buffer
	buf.ReadFrom(http.MaxBytesReader(nil, resp.Body, 1<<20))
	resp.Body.Close()
	b := buf.Bytes()
	resp.Body = readCloser{bytes.NewReader(b)}
	return b
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
