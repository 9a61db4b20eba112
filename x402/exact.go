package x402

import (
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
)

// ExactEVMPaymentID derives the journal ID of an exact EVM payment from its
// replay key: lower-case asset and payer addresses and the 0x-hex EIP-3009
// nonce on a CAIP-2 network. Whoever verifies the payment (package evm
// locally, or a remote facilitator) gets the same ID for the same
// authorization, so a journal holds it once.
func ExactEVMPaymentID(network, asset, payer, nonce string) string {
	h := sha256.Sum256([]byte(network + "|" + asset + "|" + payer + "|" + nonce))
	return "x402-" + hex.EncodeToString(h[:16])
}

// ValidBeforeBuffer is the least validity an exact EVM authorization must
// have left: it must still be valid when its settlement lands in a block.
const ValidBeforeBuffer = 6 * time.Second

// ValidBeforeSkew is how far past now + maxTimeoutSeconds an authorization's
// validBefore may lie: the payer's clock may run ahead of ours by this much.
// Clients sign validBefore = their now + maxTimeoutSeconds; beyond the skew,
// the payment is refused, because a signed authorization is spendable by
// whoever holds it until validBefore, and the offer promised the payer a
// window of maxTimeoutSeconds, not ten years.
const ValidBeforeSkew = 30 * time.Second

// CheckExactEVM makes the exact scheme's checks on EVM that need neither
// cryptography nor I/O, in the order of the official verifiers, cheapest
// first: scheme, network, payload shape, recipient, asset, exact amount,
// validity window at now (at least ValidBeforeBuffer left, at most the
// offer's maxTimeoutSeconds plus ValidBeforeSkew; unbounded when the offer
// states no window), signature form (65 bytes, low s). c.Requirements is our offer, whose PayTo and Asset it compares
// with the payment. It returns the journal entry (rail names it), the
// authorization and the signature.
func CheckExactEVM(c *Credential, rail string, now time.Time) (*coinop.Payment, *eip3009.Authorization, []byte, error) {
	req := &c.Requirements
	reject := func(reason, format string, args ...any) error {
		return coinop.Errorf(coinop.KindRejected, reason, format, args...)
	}
	if c.Payload.Accepted.Scheme != "exact" {
		return nil, nil, nil, reject(ReasonUnsupportedScheme, "scheme %q is not exact", c.Payload.Accepted.Scheme)
	}
	if c.Payload.Accepted.Network != req.Network {
		return nil, nil, nil, reject(ReasonNetworkMismatch, "payment is for network %s, this offer is on %s", c.Payload.Accepted.Network, req.Network)
	}
	payTo, err := eip3009.ParseAddress(req.PayTo)
	if err != nil {
		return nil, nil, nil, coinop.Wrap(coinop.KindInternal, ReasonUnexpectedVerify, err, "internal error")
	}
	pl, err := DecodeExactEVM(c.Payload.Payload)
	if err != nil {
		return nil, nil, nil, coinop.Wrap(coinop.KindMalformed, ReasonEVMPayload, err, "the exact EVM payload is not valid JSON of the expected shape")
	}
	if pl.Signature == "" {
		return nil, nil, nil, coinop.Errorf(coinop.KindMalformed, ReasonMissingSignature, "the payload has no signature")
	}
	a := &pl.Authorization
	auth, err := eip3009.ParseAuthorization(a.From, a.To, a.Value, a.ValidAfter, a.ValidBefore, a.Nonce)
	if err != nil {
		return nil, nil, nil, coinop.Wrap(coinop.KindMalformed, ReasonEVMPayload, err, err.Error())
	}
	if auth.To != payTo {
		return nil, nil, nil, reject(ReasonRecipientMismatch, "authorization pays %s, this offer pays %s", auth.To.Hex(), payTo.Hex())
	}
	if c.Version == 2 && !strings.EqualFold(c.Payload.Accepted.Asset, req.Asset) {
		return nil, nil, nil, reject(ReasonAssetMismatch, "payment is in asset %s, this offer is in %s", c.Payload.Accepted.Asset, req.Asset)
	}
	if auth.Value.String() != req.Amount {
		return nil, nil, nil, reject(ReasonValueMismatch, "authorization value is %s, the price is exactly %s", auth.Value, req.Amount)
	}
	if auth.ValidBefore.Cmp(big.NewInt(now.Add(ValidBeforeBuffer).Unix())) < 0 {
		return nil, nil, nil, reject(ReasonValidBefore, "authorization expires at %s, too soon to settle (needs %s of validity left)", auth.ValidBefore, ValidBeforeBuffer)
	}
	if limit := now.Add(time.Duration(req.MaxTimeoutSeconds)*time.Second + ValidBeforeSkew); req.MaxTimeoutSeconds > 0 && auth.ValidBefore.Cmp(big.NewInt(limit.Unix())) > 0 {
		return nil, nil, nil, reject(ReasonValidBefore, "authorization is valid until %s, beyond this offer's window of %d s (+%s for clock skew)", auth.ValidBefore, req.MaxTimeoutSeconds, ValidBeforeSkew)
	}
	if auth.ValidAfter.Cmp(big.NewInt(now.Unix())) > 0 {
		return nil, nil, nil, reject(ReasonValidAfter, "authorization is not valid before %s", auth.ValidAfter)
	}
	sig, err := eip3009.ParseSignature(pl.Signature)
	if err != nil {
		return nil, nil, nil, reject(ReasonSignatureFormat, "%v", err)
	}
	payer, asset := auth.From.Lower(), strings.ToLower(req.Asset)
	nonce := "0x" + hex.EncodeToString(auth.Nonce[:])
	return &coinop.Payment{
		ID:      ExactEVMPaymentID(req.Network, asset, payer, nonce),
		Rail:    rail,
		Network: req.Network, Asset: asset, Payer: payer,
		PayTo: payTo.Lower(), ReplayKey: nonce, Amount: auth.Value,
	}, auth, sig, nil
}

// exactEVM decodes an exact EVM payload's authorization and signature.
func exactEVM(raw []byte) (*eip3009.Authorization, []byte, error) {
	pl, err := DecodeExactEVM(raw)
	if err != nil {
		return nil, nil, err
	}
	a := &pl.Authorization
	auth, err := eip3009.ParseAuthorization(a.From, a.To, a.Value, a.ValidAfter, a.ValidBefore, a.Nonce)
	if err != nil {
		return nil, nil, err
	}
	sig, err := eip3009.ParseSignature(pl.Signature)
	if err != nil {
		return nil, nil, err
	}
	return auth, sig, nil
}

// AuthenticateExactEVM recovers the signer of an exact EVM credential under
// the EIP-712 domain of our offer (c.Requirements: network, asset, and the
// token's name and version in extra) and checks that it is the
// authorization's from. It needs no I/O: it is the proof of origin that
// still holds when the authorization was already used on chain, where the
// chain's simulation can no longer pass.
func AuthenticateExactEVM(c *Credential) error {
	auth, sig, err := exactEVM(c.Payload.Payload)
	if err != nil {
		return coinop.Wrap(coinop.KindMalformed, ReasonEVMPayload, err, "the exact EVM payload is not valid")
	}
	req := &c.Requirements
	chainID, err := ChainID(req.Network)
	if err != nil {
		return coinop.Wrap(coinop.KindInternal, ReasonUnexpectedVerify, err, "internal error")
	}
	asset, err := eip3009.ParseAddress(req.Asset)
	if err != nil {
		return coinop.Wrap(coinop.KindInternal, ReasonUnexpectedVerify, err, "internal error")
	}
	name, _ := req.Extra["name"].(string)
	version, _ := req.Extra["version"].(string)
	if name == "" || version == "" {
		return coinop.Errorf(coinop.KindRejected, ReasonMissingDomain, "the offer lacks the token's EIP-712 domain")
	}
	d := eip3009.Domain{Name: name, Version: version, ChainID: chainID, VerifyingContract: asset}
	signer, err := eip3009.Recover(auth.Digest(d.Separator()), sig)
	if err != nil || signer != auth.From {
		return coinop.Errorf(coinop.KindRejected, ReasonInvalidSignature, "the signature is not from %s", auth.From.Hex())
	}
	return nil
}

// SameExactEVM reports whether two exact EVM payloads carry the same
// authorization (from, to, value, validity window, nonce) and the same
// signature (r, s and the recovery id, 0/1 and 27/28 alike). It compares
// decoded values, not bytes: a client resending a payment may re-encode it
// (another JSON member order, address case, the v1 envelope instead of v2,
// an extension added), and none of that changes what the payer signed.
func SameExactEVM(a, b []byte) bool {
	aa, as, err := exactEVM(a)
	if err != nil {
		return false
	}
	ba, bs, err := exactEVM(b)
	if err != nil {
		return false
	}
	av, _ := eip3009.CheckSignature(as)
	bv, _ := eip3009.CheckSignature(bs)
	return aa.From == ba.From && aa.To == ba.To && aa.Value.Cmp(ba.Value) == 0 &&
		aa.ValidAfter.Cmp(ba.ValidAfter) == 0 && aa.ValidBefore.Cmp(ba.ValidBefore) == 0 &&
		aa.Nonce == ba.Nonce && string(as[:64]) == string(bs[:64]) && av == bv
}
