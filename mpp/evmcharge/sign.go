package evmcharge

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/mpp"
)

// Request is the evm charge's request object, decoded.
type Request struct {
	Amount        string        `json:"amount"`
	Currency      string        `json:"currency"`
	Recipient     string        `json:"recipient"`
	Description   string        `json:"description,omitempty"`
	ExternalID    string        `json:"externalId,omitempty"`
	MethodDetails MethodDetails `json:"methodDetails"`
}

// MethodDetails are the evm charge request's methodDetails.
type MethodDetails struct {
	ChainID         uint64   `json:"chainId"`
	CredentialTypes []string `json:"credentialTypes,omitempty"`
	Decimals        *int     `json:"decimals,omitempty"`
	Permit2Address  string   `json:"permit2Address,omitempty"`
	Splits          []any    `json:"splits,omitempty"`
}

// DecodeRequest decodes and checks the request of an evm charge challenge:
// an atomic amount, addresses, a chain id, and "authorization" among the
// credential types; splits are refused (one authorization pays one
// recipient).
func DecodeRequest(c *mpp.Challenge) (*Request, error) {
	if c.Method != Name || c.Intent != mpp.IntentCharge {
		return nil, fmt.Errorf("challenge is %s/%s, not %s/%s", c.Method, c.Intent, Name, mpp.IntentCharge)
	}
	var r Request
	if err := mpp.DecodeRequest(c.Request, &r); err != nil {
		return nil, err
	}
	if v, ok := new(big.Int).SetString(r.Amount, 10); !ok || v.Sign() < 0 {
		return nil, fmt.Errorf("request amount %q is not an atomic amount", r.Amount)
	}
	if _, err := eip3009.ParseAddress(r.Currency); err != nil {
		return nil, fmt.Errorf("request currency: %w", err)
	}
	if _, err := eip3009.ParseAddress(r.Recipient); err != nil {
		return nil, fmt.Errorf("request recipient: %w", err)
	}
	if r.MethodDetails.ChainID == 0 {
		return nil, errors.New("request has no methodDetails.chainId")
	}
	if len(r.MethodDetails.Splits) > 0 {
		return nil, errors.New("request splits the payment; one authorization cannot")
	}
	ok := len(r.MethodDetails.CredentialTypes) == 0
	for _, t := range r.MethodDetails.CredentialTypes {
		ok = ok || t == "authorization"
	}
	if !ok {
		return nil, errors.New("request does not accept authorization credentials")
	}
	return &r, nil
}

// Network is the request's CAIP-2 network.
func (r *Request) Network() string { return fmt.Sprintf("eip155:%d", r.MethodDetails.ChainID) }

// Authorize signs with key the EIP-3009 authorization that challenge c
// asks for, under the token's EIP-712 domain (name, version), as mppx's
// client does: nonce keccak256(id || realm), validAfter 0, validBefore at
// the challenge's expiry (now + 5 minutes when it has none). It returns
// the credential to send.
func Authorize(key *eip3009.Key, c *mpp.Challenge, r *Request, name, version string, now time.Time) (*mpp.Credential, error) {
	if name == "" || version == "" {
		return nil, errors.New("the token's EIP-712 name and version are needed to sign")
	}
	value, _ := new(big.Int).SetString(r.Amount, 10)
	asset, _ := eip3009.ParseAddress(r.Currency)
	to, _ := eip3009.ParseAddress(r.Recipient)
	validBefore := now.Add(5 * time.Minute).Unix()
	if exp, ok, err := c.ExpiresAt(); err != nil {
		return nil, err
	} else if ok {
		if !now.Before(exp) {
			return nil, fmt.Errorf("the challenge expired at %s", c.Expires)
		}
		validBefore = exp.Unix()
	}
	nonce, err := eip3009.ParseBytes32(ChallengeNonce(c))
	if err != nil {
		return nil, err
	}
	auth := eip3009.Authorization{From: key.Address(), To: to, Value: value, ValidAfter: new(big.Int), ValidBefore: big.NewInt(validBefore), Nonce: nonce}
	sep := eip3009.Domain{Name: name, Version: version, ChainID: r.MethodDetails.ChainID, VerifyingContract: asset}.Separator()
	sig := key.Sign(auth.Digest(sep))
	payload, err := json.Marshal(Payload{
		Type: "authorization", From: key.Address().Hex(), To: to.Hex(), Value: value.String(),
		ValidAfter: "0", ValidBefore: auth.ValidBefore.String(),
		Nonce: "0x" + hex.EncodeToString(nonce[:]), Signature: "0x" + hex.EncodeToString(sig[:]),
	})
	if err != nil {
		return nil, err
	}
	return &mpp.Credential{Challenge: *c, Source: Source(r.MethodDetails.ChainID, key.Address()), Payload: payload}, nil
}
