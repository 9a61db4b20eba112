// Package coinop holds the protocol-neutral domain of a paid HTTP endpoint:
// prices, payments, receipts, the error kinds every rail reports, and the
// Rail interface through which the engine (package paywall) challenges,
// verifies and settles payments.
//
// The package imports nothing outside the standard library, so any layer may
// depend on it.
package coinop
