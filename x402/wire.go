// Package x402 implements the x402 payment protocol's HTTP wire format
// (versions 2 and 1) and a coinop.Rail that speaks it. Payment schemes
// (exact on EVM, and later others) plug in through the Scheme interface;
// this package itself does no cryptography and performs no I/O.
//
// Wire format: specs/x402-specification-v2.md and specs/transports-v2/http.md
// of the x402 project. Headers carry standard, padded base64 of UTF-8 JSON.
package x402

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Header names. Go canonicalizes them on the wire; peers compare them
// case-insensitively.
const (
	HeaderPaymentRequired  = "PAYMENT-REQUIRED"   // v2, server → client, on 402
	HeaderPaymentSignature = "PAYMENT-SIGNATURE"  // v2, client → server
	HeaderPaymentResponse  = "PAYMENT-RESPONSE"   // v2, server → client, settlement result
	HeaderXPayment         = "X-PAYMENT"          // v1, client → server
	HeaderXPaymentResponse = "X-PAYMENT-RESPONSE" // v1, server → client
)

// Version is an x402Version field. It decodes from a number or, as some spec
// examples write it, a string holding a number.
type Version int

// UnmarshalJSON accepts 2 and "2".
func (v *Version) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return fmt.Errorf("x402Version %s is not a number", b)
	}
	*v = Version(n)
	return nil
}

// ResourceInfo describes the paid resource (v2).
type ResourceInfo struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	MimeType    string `json:"mimeType,omitempty"`
}

// PaymentRequirements is one entry of a 402's accepts list (v2).
type PaymentRequirements struct {
	Scheme            string         `json:"scheme"`
	Network           string         `json:"network"`
	Amount            string         `json:"amount"`
	Asset             string         `json:"asset"`
	PayTo             string         `json:"payTo"`
	MaxTimeoutSeconds int            `json:"maxTimeoutSeconds"`
	Extra             map[string]any `json:"extra,omitempty"`
}

// PaymentRequired is the decoded PAYMENT-REQUIRED header (v2).
type PaymentRequired struct {
	X402Version Version               `json:"x402Version"`
	Error       string                `json:"error,omitempty"`
	Resource    *ResourceInfo         `json:"resource,omitempty"`
	Accepts     []PaymentRequirements `json:"accepts"`
	Extensions  map[string]any        `json:"extensions,omitempty"`
}

// PaymentPayload is the decoded PAYMENT-SIGNATURE header (v2). Payload holds
// the scheme-specific part, decoded by the scheme.
type PaymentPayload struct {
	X402Version Version             `json:"x402Version"`
	Resource    *ResourceInfo       `json:"resource,omitempty"`
	Accepted    PaymentRequirements `json:"accepted"`
	Payload     json.RawMessage     `json:"payload"`
	Extensions  map[string]any      `json:"extensions,omitempty"`
}

// ExactEVMPayload is the payload of the exact scheme on EVM with EIP-3009.
type ExactEVMPayload struct {
	Signature     string             `json:"signature"`
	Authorization ExactAuthorization `json:"authorization"`
}

// ExactAuthorization is an EIP-3009 TransferWithAuthorization message with
// every number written as a decimal string and addresses and the nonce as
// 0x-prefixed hex.
type ExactAuthorization struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Value       string `json:"value"`
	ValidAfter  string `json:"validAfter"`
	ValidBefore string `json:"validBefore"`
	Nonce       string `json:"nonce"`
}

// SettleResponse is the decoded PAYMENT-RESPONSE header and the facilitator's
// /settle answer.
type SettleResponse struct {
	Success     bool   `json:"success"`
	ErrorReason string `json:"errorReason,omitempty"`
	Payer       string `json:"payer,omitempty"`
	Transaction string `json:"transaction"`
	Network     string `json:"network"`
	// Pending is set when the transaction was sent but its receipt has not
	// arrived; Transaction holds its hash. An extension of the spec.
	Pending bool `json:"pending,omitempty"`
	// ErrorMessage explains ErrorReason to people. Not in the
	// specification; both official SDKs send it.
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// VerifyResponse is the facilitator's /verify answer.
type VerifyResponse struct {
	IsValid       bool   `json:"isValid"`
	InvalidReason string `json:"invalidReason,omitempty"`
	Payer         string `json:"payer,omitempty"`
	// InvalidMessage explains InvalidReason to people. Not in the
	// specification; both official SDKs send it.
	InvalidMessage string `json:"invalidMessage,omitempty"`
}

// PaymentRequirementsV1 is one entry of a v1 402 body's accepts list.
type PaymentRequirementsV1 struct {
	Scheme            string         `json:"scheme"`
	Network           string         `json:"network"`
	MaxAmountRequired string         `json:"maxAmountRequired"`
	Asset             string         `json:"asset"`
	PayTo             string         `json:"payTo"`
	Resource          string         `json:"resource"`
	Description       string         `json:"description"`
	MimeType          string         `json:"mimeType"`
	OutputSchema      any            `json:"outputSchema,omitempty"` // legacy x402-fetch refuses null
	MaxTimeoutSeconds int            `json:"maxTimeoutSeconds"`
	Extra             map[string]any `json:"extra,omitempty"`
}

// PaymentPayloadV1 is the decoded X-PAYMENT header (v1).
type PaymentPayloadV1 struct {
	X402Version Version         `json:"x402Version"`
	Scheme      string          `json:"scheme"`
	Network     string          `json:"network"`
	Payload     json.RawMessage `json:"payload"`
}
