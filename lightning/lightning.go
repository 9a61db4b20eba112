// Package lightning is what coinop needs of a Lightning node, in its own
// words: invoices a seller issues and looks up, payments a buyer makes,
// and a balance. It declares the interfaces and holds no implementation:
// package lightning/lnd speaks to lnd over REST, package lightning/devnode
// is an in-process node for development and tests. It imports nothing but
// the standard library, so every rail and client can use it.
package lightning

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Hash is a payment hash: the SHA-256 of the payment's preimage.
type Hash [32]byte

// Preimage is the secret whose SHA-256 is a payment hash. The payee
// reveals it to the payer when the payment settles, so holding it proves
// the payment was made.
type Preimage [32]byte

func (h Hash) String() string     { return hex.EncodeToString(h[:]) }
func (p Preimage) String() string { return hex.EncodeToString(p[:]) }

// ParseHash reads a payment hash written as 64 hex digits, either case.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("payment hash %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("payment hash %q: not hex", s)
	}
	return h, nil
}

// InvoiceState is where an invoice stands on the node that issued it.
type InvoiceState string

// The invoice states, as lnd names them.
const (
	InvoiceOpen     InvoiceState = "OPEN"
	InvoiceSettled  InvoiceState = "SETTLED"
	InvoiceCanceled InvoiceState = "CANCELED"
	InvoiceAccepted InvoiceState = "ACCEPTED" // held: paid to the node, not settled yet
)

// InvoiceRequest asks a node for a new invoice.
type InvoiceRequest struct {
	// AmountMsat is what the invoice asks, in millisatoshis; positive.
	AmountMsat int64
	// Memo is the invoice's description, shown to the payer.
	Memo string
	// Expiry is how long the invoice may be paid; the node's default
	// (an hour for lnd) when zero.
	Expiry time.Duration
}

// Invoice is an invoice as its issuing node knows it.
type Invoice struct {
	Hash Hash
	// PaymentRequest is the BOLT11 invoice: what the payer pays.
	PaymentRequest string
	AmountMsat     int64
	// PaidMsat is what the node received for it: zero until it settled.
	PaidMsat int64
	State    InvoiceState
	Created  time.Time
	Expiry   time.Duration
}

// Payment is a payment a buyer's node made.
type Payment struct {
	Hash       Hash
	Preimage   Preimage
	AmountMsat int64 // what the payee received
	FeeMsat    int64 // what routing cost on top
}

// Balance is what a node can spend and receive over its channels.
type Balance struct {
	LocalMsat  int64 // spendable
	RemoteMsat int64 // receivable
}

// Invoicer is what a seller needs of a node: invoices to offer, and their
// state before anything paid-for is served.
type Invoicer interface {
	// AddInvoice creates an invoice. An unreachable node is ErrUnavailable.
	AddInvoice(ctx context.Context, req InvoiceRequest) (*Invoice, error)
	// LookupInvoice returns the invoice of payment hash h: ErrNotFound
	// when the node never issued it, ErrUnavailable when it cannot say.
	LookupInvoice(ctx context.Context, h Hash) (*Invoice, error)
}

// Payer is what a buyer needs of a node.
type Payer interface {
	// PayInvoice pays a BOLT11 invoice, spending at most maxFeeMsat on
	// routing, and returns once the payment succeeded (with the preimage)
	// or failed. ErrPaymentFailed: no money moved.
	PayInvoice(ctx context.Context, invoice string, maxFeeMsat int64) (*Payment, error)
	// Balance is the node's channel balance.
	Balance(ctx context.Context) (Balance, error)
}

// Errors a node's implementation wraps, for callers to test with errors.Is.
var (
	// ErrUnavailable: the node could not be asked or could not answer
	// (down, unreachable, not synced, a 5xx). The caller fails closed.
	ErrUnavailable = errors.New("lightning node unavailable")
	// ErrNotFound: the node does not know the invoice.
	ErrNotFound = errors.New("invoice not found")
	// ErrPaymentFailed: the node gave up on a payment; nothing was spent.
	ErrPaymentFailed = errors.New("lightning payment failed")
)
