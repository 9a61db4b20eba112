package coinop

import "strconv"

// Reason codes the engine and every rail share. A client reads them in the
// problem document's "reason" member; they are part of the API and never
// change meaning. Protocol-specific codes live with their protocol (package
// x402's Reason… constants).
const (
	ReasonInternal          = "internal_error"
	ReasonPaymentRequired   = "payment_required"
	ReasonReplayed          = "payment_replayed"
	ReasonInFlight          = "payment_in_flight"
	ReasonReused            = "payment_reused"
	ReasonIdempotencyUsed   = "idempotency_key_used"
	ReasonIdempotencyReused = "idempotency_key_reused"
	ReasonStateConflict     = "payment_state_conflict"
	ReasonStoreUnavailable  = "store_unavailable"
	ReasonUpgradeNotAllowed = "upgrade_not_allowed"
	ReasonNoRoute           = "no_route"
	ReasonNoOffer           = "no_offer_available"
	ReasonUnexpectedSettle  = "unexpected_settle_error"
	ReasonUpstreamTimeout   = "upstream_timeout"
	ReasonUpstreamFailed    = "upstream_unreachable"
	ReasonBodyTooLarge      = "body_too_large"
	ReasonBodyTimeout       = "body_timeout"
	ReasonHandlerPanic      = "handler_panic"
	ReasonJournalFailed     = "journal_unavailable"
)

// ReasonSettlementNotSent is the reason of a settlement that was prepared
// and journaled but that no node is known to have accepted. It may still
// land, so the engine neither serves it (sync routes: 503) nor calls it
// failed; recovery learns its fate from the network and sends it again.
// Rails return it with KindUnavailable.
const ReasonSettlementNotSent = "settlement_not_sent"

// ReasonSettlementNonceTaken is the reason of a journaled settlement that
// can never land: another settlement of the same key used its sequence
// number (an EVM nonce), and the network does not hold this one. Nothing
// moved through it; the payment may be settled anew.
const ReasonSettlementNonceTaken = "settlement_nonce_taken"

// ReasonUpstreamStatus is the release reason of a payment whose upstream
// answered status (400 and above): nothing was charged.
func ReasonUpstreamStatus(status int) string { return "upstream_status_" + strconv.Itoa(status) }

// Reasons of a forward-auth check (package fwdauth) that cannot say which
// request it is asked about.
const (
	// ReasonAuthOriginalMissing: the proxy sent no original method or URI.
	ReasonAuthOriginalMissing = "auth_original_missing"
	// ReasonAuthOriginalInvalid: the original method, URI or host is not
	// one a request line or Host header could carry.
	ReasonAuthOriginalInvalid = "auth_original_invalid"
	// ReasonAuthOriginalConflict: two headers name the original method, URI
	// or host differently (a client's header next to the proxy's).
	ReasonAuthOriginalConflict = "auth_original_conflict"
	// ReasonAuthRefusalGone: a kept refusal was fetched already, expired or
	// never existed.
	ReasonAuthRefusalGone = "auth_refusal_gone"
	// ReasonAuthReportInvalid: a report names no payment or no status.
	ReasonAuthReportInvalid = "auth_report_invalid"
)

// Reasons of a refund (paywall.Paywall.Refund) that cannot be made.
const (
	// ReasonRefundUnknown: the journal holds no payment under that ID.
	ReasonRefundUnknown = "refund_unknown_payment"
	// ReasonRefundNotBearer: a single-use payment settled on a network;
	// what moved there is never given back by the engine.
	ReasonRefundNotBearer = "refund_not_bearer"
	// ReasonRefundUnsupported: the charge's rail cannot give charges back.
	ReasonRefundUnsupported = "refund_unsupported"
	// ReasonRefundNotSettled: the charge is still being collected.
	ReasonRefundNotSettled = "refund_not_settled"
)
