package coinop

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error by what the client should do about it.
// The list is append-only: never reorder or remove a kind.
type Kind uint8

const (
	// KindInternal is a fault of ours; details go to logs only.
	KindInternal Kind = iota
	// KindMalformed is a credential that cannot be decoded (bad base64, bad
	// JSON, missing fields). The client must fix its software.
	KindMalformed
	// KindPaymentRequired means no credential was presented.
	KindPaymentRequired
	// KindRejected is a well-formed payment that fails a check (amount,
	// recipient, asset, network, expiry, signature).
	KindRejected
	// KindInsufficientFunds is a payment the payer cannot cover.
	KindInsufficientFunds
	// KindReplayed is a payment that was already used.
	KindReplayed
	// KindInFlight is a payment that is being processed by another request.
	KindInFlight
	// KindUnavailable means verification or settlement cannot complete now
	// (RPC or store down). Nothing paid-for is served; the client may retry.
	KindUnavailable
	// KindSettleFailed means the payment verified but could not be collected.
	KindSettleFailed
	// KindPolicy is a client-side refusal: the spending policy forbids the payment.
	KindPolicy
	// KindNotFound means no route serves the request.
	KindNotFound
	// KindMethodNotAllowed means routes serve the request's path, but none
	// its method.
	KindMethodNotAllowed
	// KindConflict is a credential or idempotency key presented for a
	// purchase other than the one it belongs to (another resource or price).
	// It is never served; the client must use a fresh key or payment.
	KindConflict
	// KindForbidden is a request the route does not serve in the form asked,
	// such as a protocol upgrade (WebSocket) on a route that allows none.
	KindForbidden
	// KindTooLarge is a request body beyond the configured bound.
	KindTooLarge
	// KindUpstreamTimeout means the upstream did not answer in time; nothing
	// was charged.
	KindUpstreamTimeout
	// KindBadGateway means the upstream could not be reached or broke off;
	// nothing was charged.
	KindBadGateway
	// KindRequestTimeout means the client sent its request too slowly.
	KindRequestTimeout
)

var kindNames = [...]string{
	KindInternal:          "internal",
	KindMalformed:         "malformed",
	KindPaymentRequired:   "payment_required",
	KindRejected:          "rejected",
	KindInsufficientFunds: "insufficient_funds",
	KindReplayed:          "replayed",
	KindInFlight:          "in_flight",
	KindUnavailable:       "unavailable",
	KindSettleFailed:      "settle_failed",
	KindPolicy:            "policy",
	KindNotFound:          "not_found",
	KindMethodNotAllowed:  "method_not_allowed",
	KindConflict:          "conflict",
	KindForbidden:         "forbidden",
	KindTooLarge:          "too_large",
	KindUpstreamTimeout:   "upstream_timeout",
	KindBadGateway:        "bad_gateway",
	KindRequestTimeout:    "request_timeout",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Status is the HTTP status a server answers for an error of kind k. It is the
// only place where kinds meet status codes.
func (k Kind) Status() int {
	switch k {
	case KindMalformed:
		return http.StatusBadRequest
	case KindPaymentRequired, KindRejected, KindInsufficientFunds, KindReplayed, KindSettleFailed:
		return http.StatusPaymentRequired
	case KindInFlight, KindConflict:
		return http.StatusConflict
	case KindForbidden:
		return http.StatusForbidden
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindUpstreamTimeout:
		return http.StatusGatewayTimeout
	case KindBadGateway:
		return http.StatusBadGateway
	case KindRequestTimeout:
		return http.StatusRequestTimeout
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindPolicy:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	default:
		return http.StatusInternalServerError
	}
}

// Error is the one error type rails, stores and the engine return for
// anything a client can cause or must know about.
type Error struct {
	Kind Kind
	// Reason is the protocol's machine-readable code, e.g.
	// "invalid_exact_evm_payload_authorization_value_mismatch". Clients may
	// show it; it never contains secrets or internal detail.
	Reason string
	// Message is a sentence for people, safe to show to the client.
	Message string
	// Err is the underlying cause, for logs only.
	Err error
	// Type is the problem type URI of the answer (RFC 9457 "type"), for
	// protocols that define their own (the Payment scheme's
	// https://paymentauth.org/problems/…); "about:blank" when empty.
	Type string
	// OtherOffer marks a credential that answers an offer this rail did not
	// make (another network, asset or scheme): the engine asks the route's
	// other rails before refusing with it.
	OtherOffer bool
}

func (e *Error) Error() string {
	s := e.Reason
	if s == "" {
		s = e.Kind.String()
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k with the protocol reason code and a
// client-safe message.
func Errorf(k Kind, reason, format string, args ...any) *Error {
	return &Error{Kind: k, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of kind k that keeps err as its (log-only) cause.
func Wrap(k Kind, reason string, err error, message string) *Error {
	return &Error{Kind: k, Reason: reason, Message: message, Err: err}
}

// AsError returns err as an *Error; anything else becomes KindInternal with
// a generic message, so internal detail never reaches a client.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Reason: ReasonInternal, Message: "internal error", Err: err}
}

// KindOf returns the kind of err (KindInternal for foreign errors).
func KindOf(err error) Kind { return AsError(err).Kind }
