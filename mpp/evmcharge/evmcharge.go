// Package evmcharge is the Payment scheme's "evm" method, intent "charge":
// an EIP-3009 transferWithAuthorization signed by the payer, as mppx
// writes it (credential payload type "authorization", the nonce bound to
// the challenge). It verifies and settles through an x402 exact EVM scheme
// (package evm on the gateway's own node, or a facilitator), so one
// authorization is one journal entry whichever protocol carried it.
package evmcharge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/x402"
)

// Name is the method's name on the wire.
const Name = "evm"

// Method pays an x402 exact EVM scheme's offer through the Payment scheme.
type Method struct {
	// Scheme is the exact scheme of one asset and recipient on one EVM
	// network; it makes the checks, the signature recovery, the
	// simulation and the settlement.
	Scheme x402.Scheme
	// Decimals are the asset's, stated in the request.
	Decimals int
	// Symbol names the asset for people.
	Symbol string
}

var (
	_ mpp.Method     = (*Method)(nil)
	_ mpp.Reverifier = (*Method)(nil)
)

// Name implements mpp.Method.
func (m *Method) Name() string { return Name }

// Intent implements mpp.Method.
func (m *Method) Intent() string { return mpp.IntentCharge }

// Request is mppx's evm charge request: amount in atomic units, the token
// (currency) and recipient checksummed, and methodDetails with the chain
// id, the accepted credential types and the decimals.
func (m *Method) Request(ch coinop.Charge) (map[string]any, error) {
	q := m.Scheme.Requirements(ch)
	chainID, err := x402.ChainID(q.Network)
	if err != nil {
		return nil, err
	}
	asset, err := eip3009.ParseAddress(q.Asset)
	if err != nil {
		return nil, err
	}
	payTo, err := eip3009.ParseAddress(q.PayTo)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"amount":    q.Amount,
		"currency":  asset.Hex(),
		"recipient": payTo.Hex(),
		"methodDetails": map[string]any{
			"chainId":         chainID,
			"credentialTypes": []any{"authorization"},
			"decimals":        m.Decimals,
		},
	}, nil
}

// Offer implements mpp.Method.
func (m *Method) Offer(ch coinop.Charge) coinop.Offer {
	q := m.Scheme.Requirements(ch)
	return coinop.Offer{
		Scheme: "evm/charge", Network: q.Network, Asset: q.Asset, PayTo: q.PayTo,
		Amount: q.Amount, Price: ch.Price.String(),
		HowTo: "Sign an EIP-3009 transferWithAuthorization of " + q.Amount + " atomic units to payTo on " + q.Network +
			" with nonce keccak256(id || realm) of the challenge and validBefore at its expires, and send it as an Authorization: Payment credential (payload type \"authorization\"). mppx's evm method and `coinop curl --prefer mpp URL` do this.",
		Terms: map[string]any{"eip712": q.Extra},
	}
}

// Payload is the credential payload of the evm charge, type
// "authorization".
type Payload struct {
	Type        string `json:"type"`
	From        string `json:"from"`
	To          string `json:"to"`
	Value       string `json:"value"`
	ValidAfter  string `json:"validAfter"`
	ValidBefore string `json:"validBefore"`
	Nonce       string `json:"nonce"`
	Signature   string `json:"signature"`
}

// ChallengeNonce is the EIP-3009 nonce an evm credential must carry for
// challenge c: keccak256 of its id and realm, as mppx derives it. It ties
// the authorization to the challenge, so a credential answers one
// challenge and one only.
func ChallengeNonce(c *mpp.Challenge) string {
	h := eip3009.Keccak256([]byte(c.ID + c.Realm))
	return "0x" + fmt.Sprintf("%x", h[:])
}

// Source is the did:pkh a credential names its payer by.
func Source(chainID uint64, from eip3009.Address) string {
	return "did:pkh:eip155:" + strconv.FormatUint(chainID, 10) + ":" + from.Hex()
}

type state struct {
	x *x402.Credential
}

func reject(reason, format string, args ...any) error {
	return &coinop.Error{Kind: coinop.KindRejected, Type: mpp.ProblemVerificationFailed, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Reason codes of the evm method's own checks (the x402 exact checks keep
// theirs).
const (
	ReasonPayloadType  = "mpp_evm_payload_type"
	ReasonNonceBinding = "mpp_evm_nonce_not_bound"
	ReasonSource       = "mpp_evm_source_mismatch"
)

// Check decodes the authorization, checks that its nonce is the
// challenge's and its source the signer's, and runs the x402 exact
// checks (recipient, exact amount, validity window, signature form) of the
// scheme's offer for the charge.
func (m *Method) Check(c *mpp.Checked) (*coinop.Payment, error) {
	dec := json.NewDecoder(bytes.NewReader(c.Credential.Payload))
	dec.DisallowUnknownFields()
	var pl Payload
	if err := dec.Decode(&pl); err != nil {
		return nil, &coinop.Error{Kind: coinop.KindMalformed, Type: mpp.ProblemInvalidPayload, Reason: mpp.ReasonInvalidPayload, Message: "the evm payload is not an authorization object: " + err.Error()}
	}
	if pl.Type != "authorization" {
		return nil, reject(ReasonPayloadType, "payload type %q is not accepted; this challenge takes \"authorization\"", pl.Type)
	}
	if want := ChallengeNonce(&c.Credential.Challenge); !strings.EqualFold(pl.Nonce, want) {
		return nil, reject(ReasonNonceBinding, "the authorization's nonce must be keccak256(id || realm) of the challenge, %s", want)
	}
	q := m.Scheme.Requirements(c.Charge)
	if src := c.Credential.Source; src != "" {
		chainID, err := x402.ChainID(q.Network)
		from, aerr := eip3009.ParseAddress(pl.From)
		if err != nil || aerr != nil || !strings.EqualFold(src, Source(chainID, from)) {
			return nil, reject(ReasonSource, "source %q is not the authorization's signer", src)
		}
	}
	raw, err := json.Marshal(x402.ExactEVMPayload{Signature: pl.Signature, Authorization: x402.ExactAuthorization{
		From: pl.From, To: pl.To, Value: pl.Value, ValidAfter: pl.ValidAfter, ValidBefore: pl.ValidBefore, Nonce: pl.Nonce,
	}})
	if err != nil {
		return nil, coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
	}
	x := &x402.Credential{Version: 2, Requirements: q, Payload: x402.PaymentPayload{X402Version: 2, Accepted: q, Payload: raw}}
	p, err := x402.Bind(x, m.Scheme, c.Charge.Resource.URL, "")
	if err != nil {
		return nil, err
	}
	c.State = &state{x: x}
	return p, nil
}

func stateOf(c *mpp.Checked) (*state, error) {
	s, ok := c.State.(*state)
	if !ok {
		return nil, coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "credential was not checked")
	}
	return s, nil
}

// Verify recovers the signer and simulates the transfer (the scheme's
// Verify).
func (m *Method) Verify(ctx context.Context, p *coinop.Payment, c *mpp.Checked) error {
	s, err := stateOf(c)
	if err != nil {
		return err
	}
	return m.Scheme.Verify(ctx, p, s.x)
}

// Settle sends the authorization through the scheme.
func (m *Method) Settle(ctx context.Context, p *coinop.Payment, c *mpp.Checked, rec coinop.Recorder) (*coinop.Receipt, error) {
	s, err := stateOf(c)
	if err != nil {
		return nil, err
	}
	resp, err := m.Scheme.Settle(ctx, p, s.x, rec)
	if resp == nil {
		return nil, err
	}
	return &coinop.Receipt{Success: resp.Success, Reference: resp.Transaction, Network: resp.Network, Payer: resp.Payer, Pending: resp.Pending}, err
}

// Reverify proves, without the network, that p's authorization is signed
// by its from and is the one journaled in prev (the same authorization and
// signature, whatever envelope carried it).
func (m *Method) Reverify(p *coinop.Payment, c *mpp.Checked, prev *coinop.Payment, old *mpp.Credential) error {
	s, err := stateOf(c)
	if err != nil {
		return err
	}
	if err := x402.AuthenticateExactEVM(s.x); err != nil {
		return err
	}
	var pl Payload
	if json.Unmarshal(old.Payload, &pl) != nil {
		return coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this payment was already used")
	}
	oldRaw, _ := json.Marshal(x402.ExactEVMPayload{Signature: pl.Signature, Authorization: x402.ExactAuthorization{
		From: pl.From, To: pl.To, Value: pl.Value, ValidAfter: pl.ValidAfter, ValidBefore: pl.ValidBefore, Nonce: pl.Nonce,
	}})
	if !x402.SameExactEVM(s.x.Payload.Payload, oldRaw) {
		return coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this payment was already used")
	}
	return nil
}
