// Package store holds what every payments journal shares, whatever its
// backend: the not-found sentinel and the shape of a journaled event.
// Backends live in sub-packages (store/sqlite); store/storetest is the
// conformance suite they all pass.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
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
	// Reference and Reason are the values the transition set, "" when it
	// set none.
	Reference string
	Reason    string
	At        time.Time
}

// ModeOf is p's settlement mode as journaled: "" means sync.
func ModeOf(p *coinop.Payment) string {
	if p.Mode == "" {
		return coinop.ModeSync
	}
	return p.Mode
}

// CheckReserve refuses, before any I/O, a payment a journal must not record:
// no ID, a single-use payment without a replay key or a bearer charge with
// one, a missing or negative amount, an unknown mode. backend
// names the caller in the log-only cause.
func CheckReserve(backend string, p *coinop.Payment) error {
	var problem string
	switch {
	case p == nil:
		problem = "nil payment"
	case p.ID == "":
		problem = "payment has no ID"
	case p.ReplayKey == "" && !p.Bearer:
		problem = "single-use payment has no replay key"
	case p.ReplayKey != "" && p.Bearer:
		problem = "bearer charge has a replay key"
	case p.Amount == nil || p.Amount.Sign() < 0:
		problem = "payment amount is missing or negative"
	case p.Mode != "" && p.Mode != coinop.ModeSync && p.Mode != coinop.ModeAsync:
		problem = fmt.Sprintf("payment has unknown settlement mode %q", p.Mode)
	default:
		return nil
	}
	return coinop.Wrap(coinop.KindInternal, "internal_error", errors.New(backend+": reserve: "+problem), "internal error")
}

// Legal reports whether Transition may move a payment from one state to
// another: coinop.Legal, the state machine beside coinop.State.
func Legal(from, to coinop.State) bool { return coinop.Legal(from, to) }

// CheckRecordTx refuses, before any I/O, a settlement transaction a journal
// must not record: no payment ID, no hash, or no signed bytes. backend names
// the caller in the log-only cause.
func CheckRecordTx(backend, id, tx, raw string) error {
	if id != "" && tx != "" && raw != "" {
		return nil
	}
	return coinop.Wrap(coinop.KindInternal, "internal_error",
		fmt.Errorf("%s: record tx %q: payment ID, hash and signed transaction are all required", backend, id), "internal error")
}

// EncodeDetails is how a journal stores Payment.Details: a JSON object,
// "{}" for none, whatever the backend.
func EncodeDetails(d map[string]string) string {
	if len(d) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(d) // a map of strings always encodes
	return string(b)
}

// DecodeDetails reads what EncodeDetails stored: nil for an empty object,
// so that a payment without details reads back as it was reserved.
func DecodeDetails(s string) (map[string]string, error) {
	var d map[string]string
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("details %q: %w", s, err)
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}

// DefaultLease is how long a journal write keeps a payment its writer's
// when the store's options name no lease: longer than any settlement step
// takes between two writes or renewals, short enough that a crashed
// instance's payments are recovered within minutes.
const DefaultLease = 2 * time.Minute

// NotClaimed is the error of a Claim refused because payment id is final
// (state) or leased by another live owner.
func NotClaimed(id string, state coinop.State, owner string) error {
	cause := fmt.Errorf("payment %s is %s, leased by %q", id, state, owner)
	return coinop.Wrap(coinop.KindInFlight, "payment_state_conflict", cause,
		"this payment is being processed by another request")
}
