// Package mppclient is the buyer's side of the Payment scheme: a payment
// method of coinop's client ("mpp") that answers WWW-Authenticate: Payment
// challenges with the evm method (an EIP-3009 authorization), the tempo
// method in push mode (a transfer it sends, then its hash) or the
// lightning method (an invoice it pays, then its preimage).
package mppclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/evmcharge"
	"github.com/coinop/coinop/mpp/lightningcharge"
	"github.com/coinop/coinop/mpp/tempocharge"
	"github.com/coinop/coinop/x402"
)

// Pusher sends tempo push-mode transfers.
type Pusher interface {
	// PushTransfer sends transferWithMemo(to, amount, memo) of token on
	// chain chainID from the payer's account, waits until it is mined
	// successfully, and returns the transaction's hash. sent reports
	// whether a transaction left (with an error: it may still move the
	// money).
	PushTransfer(ctx context.Context, chainID uint64, token, to eip3009.Address, amount *big.Int, memo [32]byte) (hash [32]byte, sent bool, err error)
}

// Method is the "mpp" payment method of coinop's client. It is safe for
// concurrent use.
type Method struct {
	// Key signs evm authorizations. If nil, LoadKey supplies it.
	Key *eip3009.Key
	// LoadKey, if set and Key is nil, is called on the first evm payment
	// (never before: a free or refused request needs no wallet) and its key
	// kept. With neither, evm challenges are not offered.
	LoadKey func() (*eip3009.Key, error)
	// Pusher sends tempo transfers; without it tempo challenges are not
	// offered.
	Pusher Pusher
	// Lightning is the node that pays lightning invoices (the buyer's lnd,
	// or the development node); called once, when a payment needs it.
	// Without it lightning challenges are not offered.
	Lightning func() (lightning.Payer, error)
	// MaxFeeMsat is the most a lightning payment may spend on routing. If
	// zero, 1% of the amount, at least 10 sat.
	MaxFeeMsat int64
	// Decimals writes amounts for people: the buyer's, never the server's
	// (the challenge's methodDetails.decimals could make a large amount
	// read small). Zero writes atomic units.
	Decimals int
	// Now is the clock. If nil, time.Now.
	Now func() time.Time

	mu sync.Mutex
}

var _ client.Method = (*Method)(nil)

func (m *Method) key() (*eip3009.Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Key == nil && m.LoadKey != nil {
		k, err := m.LoadKey()
		if err != nil {
			return nil, err
		}
		m.Key = k
	}
	if m.Key == nil {
		return nil, errors.New("no wallet key to sign with")
	}
	return m.Key, nil
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
func (m *Method) Options(ctx context.Context, ch *client.Challenge) ([]client.Option, error) {
	cs, err := mpp.ParseChallenges(ch.Response.Header.Values(mpp.HeaderWWWAuthenticate))
	if err != nil {
		return nil, fmt.Errorf("WWW-Authenticate: %w", err)
	}
	var out []client.Option
	for _, c := range cs {
		switch {
		case c.Method == evmcharge.Name && c.Intent == mpp.IntentCharge && (m.Key != nil || m.LoadKey != nil):
			if o, err := m.evmOption(c, ch); err == nil {
				out = append(out, o)
			}
		case c.Method == tempocharge.Name && c.Intent == mpp.IntentCharge && m.Pusher != nil:
			if o, err := m.tempoOption(c, ch); err == nil {
				out = append(out, o)
			}
		case c.Method == lightningcharge.Name && c.Intent == mpp.IntentCharge && m.Lightning != nil:
			if o, err := m.lightningOption(c); err == nil {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

// price is amount of token on network, written with the buyer's decimals
// and the token's name (or the body's symbol when it states this amount).
func (m *Method) price(ch *client.Challenge, network, token, name string, amount *big.Int) client.Price {
	p := client.Price{Amount: amount, Unit: client.TokenUnit(network, token), Decimals: m.Decimals, Symbol: name}
	var body struct {
		Price string `json:"price"`
	}
	if json.Unmarshal(ch.Body, &body) == nil {
		if a, sym, ok := strings.Cut(body.Price, " "); ok && a == coinop.FormatUnits(amount, m.Decimals) {
			p.Symbol = sym
		}
	}
	if p.Symbol == "" {
		p.Symbol = "of token " + token
	}
	return p
}

func (m *Method) evmOption(c mpp.Challenge, ch *client.Challenge) (client.Option, error) {
	r, err := evmcharge.DecodeRequest(&c)
	if err != nil {
		return client.Option{}, err
	}
	name, version := domain(ch, r.Network(), r.Currency)
	if name == "" {
		return client.Option{}, errors.New("the token's EIP-712 domain is not stated in the 402")
	}
	amount, _ := new(big.Int).SetString(r.Amount, 10)
	price := m.price(ch, r.Network(), r.Currency, name, amount)
	return client.Option{
		Method: "mpp", Price: price, Network: r.Network(), Asset: r.Currency, PayTo: r.Recipient, Header: mpp.HeaderAuthorization,
		About: fmt.Sprintf("%s (token %s) to %s on %s through the Payment scheme (evm)", price, r.Currency, r.Recipient, r.Network()),
		Pay: func(ctx context.Context) (*client.Credential, error) {
			key, err := m.key()
			if err != nil {
				return nil, err
			}
			cred, err := evmcharge.Authorize(key, &c, r, name, version, m.now())
			if err != nil {
				return nil, err
			}
			return encode(cred)
		},
	}, nil
}

func encode(cred *mpp.Credential) (*client.Credential, error) {
	h, err := cred.Encode()
	if err != nil {
		return nil, err
	}
	return &client.Credential{Header: http.Header{mpp.HeaderAuthorization: {h}}}, nil
}

// domain finds the EIP-712 domain (name, version) of token asset on
// network in what the 402 says beside the challenge: x402's
// PAYMENT-REQUIRED offers (extra.name, extra.version), or the JSON body's
// offers (terms.eip712). The Payment scheme's evm request does not carry
// it.
func domain(ch *client.Challenge, network, asset string) (name, version string) {
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

func (m *Method) tempoOption(c mpp.Challenge, ch *client.Challenge) (client.Option, error) {
	var r tempoRequest
	if err := mpp.DecodeRequest(c.Request, &r); err != nil {
		return client.Option{}, err
	}
	if sm := r.MethodDetails.SupportedModes; len(sm) > 0 && !contains(sm, "push") {
		return client.Option{}, errors.New("the challenge takes no push-mode payment")
	}
	if len(r.MethodDetails.Splits) > 0 || r.MethodDetails.ChainID == 0 {
		return client.Option{}, errors.New("splits or no chain id")
	}
	amount, ok := new(big.Int).SetString(r.Amount, 10)
	token, err1 := eip3009.ParseAddress(r.Currency)
	to, err2 := eip3009.ParseAddress(r.Recipient)
	if !ok || amount.Sign() < 0 || err1 != nil || err2 != nil {
		return client.Option{}, errors.New("the tempo request is not readable")
	}
	network := fmt.Sprintf("eip155:%d", r.MethodDetails.ChainID)
	price := m.price(ch, network, r.Currency, "", amount)
	return client.Option{
		Method: "mpp", Price: price, Network: network, Asset: r.Currency, PayTo: r.Recipient, Header: mpp.HeaderAuthorization,
		About: fmt.Sprintf("%s (token %s) to %s on %s through the Payment scheme (tempo, push: a transfer is sent now)", price, r.Currency, r.Recipient, network),
		Pay: func(ctx context.Context) (*client.Credential, error) {
			hash, sent, err := m.Pusher.PushTransfer(ctx, r.MethodDetails.ChainID, token, to, amount, tempocharge.Memo(&c))
			if err != nil && sent {
				// Sent but not seen mined: the money may have moved.
				return nil, fmt.Errorf("%w: %w", client.ErrMaybeSpent, err)
			}
			if err != nil {
				return nil, err
			}
			payload, _ := json.Marshal(tempocharge.Payload{Type: "hash", Hash: "0x" + hex.EncodeToString(hash[:])})
			return encode(&mpp.Credential{Challenge: c, Payload: payload})
		},
	}, nil
}

// lightningOption is a lightning challenge whose request and invoice
// agree (lightningcharge.DecodeRequest) and which has not expired, by the
// challenge's expires or the invoice's: priced in msat, the invoice's
// amount, so the Policy's sat limits apply.
func (m *Method) lightningOption(c mpp.Challenge) (client.Option, error) {
	o, err := lightningcharge.DecodeRequest(c.Request)
	if err != nil {
		return client.Option{}, err
	}
	now := m.now()
	if exp, ok, err := c.ExpiresAt(); err != nil || (ok && !now.Before(exp)) || o.Invoice.Expired(now) {
		return client.Option{}, errors.New("the challenge or its invoice has expired")
	}
	inv := o.Invoice
	price := client.Price{Amount: big.NewInt(inv.AmountMsat), Unit: client.UnitMsat, Decimals: 3, Symbol: "sat"}
	return client.Option{
		Method: "mpp", Price: price, Network: "lightning:" + o.Network, PayTo: hex.EncodeToString(inv.Payee[:]), Header: mpp.HeaderAuthorization,
		About: fmt.Sprintf("%s to node %x… on %s through the Payment scheme (lightning)", price, inv.Payee[:4], o.Network),
		Pay: func(ctx context.Context) (*client.Credential, error) {
			payer, err := m.Lightning()
			if err != nil {
				return nil, err
			}
			fee := m.MaxFeeMsat
			if fee == 0 {
				fee = max(inv.AmountMsat/100, 10_000)
			}
			p, err := payer.PayInvoice(ctx, o.MethodDetails.Invoice, fee)
			switch {
			case errors.Is(err, lightning.ErrPaymentFailed):
				return nil, fmt.Errorf("lightning: %w", err)
			case err != nil:
				return nil, fmt.Errorf("lightning: %w: %w", client.ErrMaybeSpent, err)
			case sha256.Sum256(p.Preimage[:]) != inv.Hash:
				return nil, fmt.Errorf("lightning: %w: the node returned a preimage that is not the invoice's", client.ErrMaybeSpent)
			}
			return encode(&mpp.Credential{Challenge: c, Payload: lightningcharge.EncodePayload(p.Preimage)})
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
