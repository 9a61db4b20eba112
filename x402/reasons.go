package x402

import "github.com/coinop/coinop"

// Reason codes. Where the official SDKs agree, we use their spelling; where
// they differ, the Go SDK's, or the specification's (v2 §9). Clients should
// treat them as opaque strings.
const (
	ReasonPaymentRequired     = "payment_required"
	ReasonInvalidPayload      = "invalid_payload"
	ReasonInvalidVersion      = "invalid_x402_version"
	ReasonUnsupportedScheme   = "unsupported_scheme"
	ReasonNetworkMismatch     = "invalid_exact_evm_network_mismatch"
	ReasonAssetMismatch       = "invalid_exact_evm_asset_mismatch"
	ReasonEVMPayload          = "invalid_exact_evm_payload"
	ReasonMissingSignature    = "invalid_exact_evm_payload_missing_signature"
	ReasonRecipientMismatch   = "invalid_exact_evm_recipient_mismatch"
	ReasonValueMismatch       = "invalid_exact_evm_payload_authorization_value_mismatch"
	ReasonValidBefore         = "invalid_exact_evm_payload_authorization_valid_before"
	ReasonValidAfter          = "invalid_exact_evm_payload_authorization_valid_after"
	ReasonMissingDomain       = "invalid_exact_evm_missing_eip712_domain"
	ReasonSignatureFormat     = "invalid_exact_evm_signature_format"
	ReasonInvalidSignature    = "invalid_exact_evm_payload_signature"
	ReasonInsufficientFunds   = "insufficient_funds"
	ReasonNonceUsed           = "invalid_exact_evm_nonce_already_used"
	ReasonSimulationFailed    = "invalid_exact_evm_transaction_simulation_failed"
	ReasonTransactionFailed   = "invalid_exact_evm_transaction_failed"
	ReasonUnexpectedVerify    = "unexpected_verify_error"
	ReasonUnexpectedSettle    = "unexpected_settle_error"
	ReasonSettlementPending   = "settlement_pending"
	ReasonNoMatchingOffer     = "no_matching_payment_requirements"
	ReasonChainUnavailable    = "chain_unavailable"
	ReasonEIP3009NotSupported = "invalid_exact_evm_eip3009_not_supported"
	// ReasonAuthorizationExpiring: the authorization would expire before
	// its settlement could be mined, so none was sent (ours; no SDK has
	// one).
	ReasonAuthorizationExpiring = "authorization_expiring"
)

// Reasons of a settlement whose transaction no node accepted.
const (
	// ReasonSettlementNotSent: the settlement transaction was signed and
	// journaled, but no node accepted it; it may still land (it is
	// broadcast again), so nothing is served until it does.
	ReasonSettlementNotSent = coinop.ReasonSettlementNotSent
	// ReasonSettlementRejected: the node refused the settlement transaction
	// outright (gas funds, an invalid transaction, a nonce already used).
	ReasonSettlementRejected = "settlement_rejected"
)
