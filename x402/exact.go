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
	payer, asset := strings.ToLower(auth.From.Hex()), strings.ToLower(req.Asset)
	nonce := "0x" + hex.EncodeToString(auth.Nonce[:])
	return &coinop.Payment{
		ID:      ExactEVMPaymentID(req.Network, asset, payer, nonce),
		Rail:    rail,
		Network: req.Network, Asset: asset, Payer: payer,
		PayTo: strings.ToLower(payTo.Hex()), Nonce: nonce, Amount: auth.Value,
	}, auth, sig, nil
}
