package paywall

import (
	"context"
	"net/http"
)

// Note is what the engine tells its caller about one request, for access
// logs and metrics: filled in as the request goes, read once the handler
// returned. It holds nothing secret: no credential, only the payer's
// public identity.
type Note struct {
	// Route is the pattern of the route the request matched; "" for none.
	Route string
	// Rail, Payment, Payer and Price describe the payment, once presented.
	Rail, Payment, Payer, Price string
	// Outcome is what became of the request: "free", "unmatched",
	// "refused" (a problem answer, a 402 challenge included; see Reason),
	// "settled" (paid and answered), "owed" (async: answered, settled in the
	// background), "pending" (answered, its settlement's receipt late),
	// "released" (the upstream failed; nothing charged), "served-again"
	// (a paid response served once more without a new charge).
	Outcome string
	// Reason is the problem's reason code for a refused request.
	Reason string
}

type noteKey struct{}

// Noting returns r carrying a fresh Note, which the engine fills in while
// it serves r. Call it before the engine sees the request, read the note
// once the engine returned.
func Noting(r *http.Request) (*http.Request, *Note) {
	n := &Note{}
	return r.WithContext(context.WithValue(r.Context(), noteKey{}, n)), n
}

// note returns the note of r's request, or nil when nobody reads notes.
func note(r *http.Request) *Note {
	n, _ := r.Context().Value(noteKey{}).(*Note)
	return n
}

// setOutcome records what became of r's request, if anyone reads notes.
func setOutcome(r *http.Request, outcome string) {
	if n := note(r); n != nil {
		n.Outcome = outcome
	}
}
