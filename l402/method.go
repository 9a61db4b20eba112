package l402

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"gopkg.in/macaroon.v2"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/bolt11"
)

// Method is the buyer's side of L402, a client.Method: it reads a 402's
// L402 (or LSAT) challenge, offers its invoice at the invoice's amount
// (the Transport's Policy limits it, in client.UnitMsat), pays it through
// a Lightning node and sends `Authorization: L402 <token>:<preimage>`.
// With Tokens it keeps every token it paid for, per origin, and presents
// it again to the same method and path before paying anew.
type Method struct {
	// Payer is the node that pays (the buyer's lnd, or the development
	// node); called once, when a payment needs it.
	Payer func() (lightning.Payer, error)
	// MaxFeeMsat is the most a payment may spend on routing. If zero,
	// 1% of the amount, at least 10 sat.
	MaxFeeMsat int64
	// Tokens keeps paid tokens for reuse; nil keeps none.
	Tokens *Tokens
	// Now is the clock for invoice expiry. If nil, time.Now.
	Now func() time.Time
}

var _ client.Reuser = (*Method)(nil)

// Name implements client.Method.
func (m *Method) Name() string { return "l402" }

func (m *Method) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Options implements client.Method: one option per L402 challenge whose
// invoice asks an amount, has not expired and whose payment hash the
// token commits to (an invoice that would not unlock the token is never
// offered). The current form (L402) is preferred over LSAT.
func (m *Method) Options(ctx context.Context, ch *client.Challenge) ([]client.Option, error) {
	chs := ParseChallenges(ch.Response.Header.Values("WWW-Authenticate"))
	var opts []client.Option
	seen := map[string]bool{}
	for _, c := range chs {
		if seen[c.Invoice] {
			continue // the LSAT twin of an L402 challenge
		}
		seen[c.Invoice] = true
		inv, err := bolt11.Decode(c.Invoice)
		if err != nil || inv.AmountMsat <= 0 || inv.Expired(m.now()) {
			continue
		}
		var mac macaroon.Macaroon
		if err := mac.UnmarshalBinary(c.Token); err != nil {
			continue
		}
		id, err := DecodeIdentifier(mac.Id())
		if err != nil || id.PaymentHash != lightning.Hash(inv.Hash) {
			continue
		}
		opts = append(opts, m.option(ch.Request, c, inv))
	}
	return opts, nil
}

func (m *Method) option(req *http.Request, c Challenge, inv *bolt11.Invoice) client.Option {
	price := client.Price{Amount: big.NewInt(inv.AmountMsat), Unit: client.UnitMsat, Decimals: 3, Symbol: "sat"}
	network := map[string]string{bolt11.Mainnet: "mainnet", bolt11.Testnet: "testnet", bolt11.Signet: "signet", bolt11.Regtest: "regtest"}[inv.Network]
	token := c.Token
	return client.Option{
		Method: m.Name(), Price: price, Network: "lightning:" + network, PayTo: fmt.Sprintf("%x", inv.Payee[:]),
		Header: "Authorization",
		About:  fmt.Sprintf("%s (L402) to node %x… on %s", price, inv.Payee[:4], network),
		Pay: func(ctx context.Context) (*client.Credential, error) {
			payer, err := m.Payer()
			if err != nil {
				return nil, err
			}
			fee := m.MaxFeeMsat
			if fee == 0 {
				fee = max(inv.AmountMsat/100, 10_000)
			}
			p, err := payer.PayInvoice(ctx, c.Invoice, fee)
			switch {
			case errors.Is(err, lightning.ErrPaymentFailed):
				return nil, fmt.Errorf("l402: %w", err)
			case err != nil:
				return nil, fmt.Errorf("l402: %w: %w", client.ErrMaybeSpent, err)
			}
			auth := FormatAuthorization([][]byte{token}, p.Preimage)
			if m.Tokens != nil {
				m.Tokens.put(req, auth)
			}
			return &client.Credential{Header: http.Header{"Authorization": {auth}}}, nil
		},
	}
}

// Reuse implements client.Reuser: the token paid for req's method and
// path at its origin, if one is kept.
func (m *Method) Reuse(req *http.Request) bool {
	if m.Tokens == nil {
		return false
	}
	auth := m.Tokens.get(req)
	if auth == "" {
		return false
	}
	req.Header.Set("Authorization", auth)
	return true
}

// Forget implements client.Reuser: the server refused the token (spent,
// expired), so it is dropped.
func (m *Method) Forget(req *http.Request, _ *http.Response) {
	if m.Tokens != nil {
		m.Tokens.drop(req, req.Header.Get("Authorization"))
	}
}
