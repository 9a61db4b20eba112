// Package store holds what every payments journal shares, whatever its
// backend: the not-found sentinel and the shape of a journaled event.
// Backends live in sub-packages (store/sqlite); store/storetest is the
// conformance suite they all pass.
package store

import (
	"errors"
	"time"

	"github.com/coinop/coinop"
)

// ErrNotFound is wrapped by every journal error about a payment ID the
// journal has never recorded. Test for it with errors.Is.
var ErrNotFound = errors.New("store: payment not found")

// ReasonServed is the Reason of the event a journal writes when a payment's
// response is served (MarkServed). Serving changes no state: the event's From
// and To are both the state the payment was in, and the payment's own Reason
// is left as it was.
const ReasonServed = "served"

// Event is one transition in a payment's history, or the serving of its
// response (see ReasonServed). A journal writes an event in the same
// transaction as the change it describes and never alters or deletes one, so
// the events of a payment replay its life exactly.
type Event struct {
	PaymentID string
	// From is the state before the transition; "" for the first reservation.
	From coinop.State
	To   coinop.State
	// Tx and Reason are the values the transition set, "" when it set none.
	Tx     string
	Reason string
	At     time.Time
}
