package x402

import "encoding/json"

// The facilitator HTTP API (specification v2 §7): POST /verify and POST
// /settle take a FacilitatorRequest and answer a VerifyResponse or a
// SettleResponse; GET /supported answers a SupportedResponse.

// FacilitatorRequest is the body of POST /verify and POST /settle. The
// payment and the requirements stay raw because their shape depends on the
// version: PaymentPayload and PaymentRequirements for 2, PaymentPayloadV1
// and PaymentRequirementsV1 for 1.
type FacilitatorRequest struct {
	X402Version         Version         `json:"x402Version"`
	PaymentPayload      json.RawMessage `json:"paymentPayload"`
	PaymentRequirements json.RawMessage `json:"paymentRequirements"`
}

// SupportedKind is one payment kind a facilitator verifies and settles.
type SupportedKind struct {
	X402Version int            `json:"x402Version"`
	Scheme      string         `json:"scheme"`
	Network     string         `json:"network"` // CAIP-2 for version 2, the v1 name for version 1
	Extra       map[string]any `json:"extra,omitempty"`
}

// SupportedResponse is the answer of GET /supported. Signers maps a CAIP-2
// family ("eip155:*") to the addresses that submit settlements.
type SupportedResponse struct {
	Kinds      []SupportedKind     `json:"kinds"`
	Extensions []string            `json:"extensions"`
	Signers    map[string][]string `json:"signers"`
}
