package evm_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/coinop/coinop/x402"
)

// upstreamHeaders are what an upstream may say about a response the
// paywall then withholds: none of it may reach the client.
var upstreamHeaders = http.Header{
	"Set-Cookie":     {"session=paid-content; Path=/"},
	"Location":       {"/files/secret.txt"},
	"Content-Type":   {"text/plain; charset=upstream"},
	"Content-Length": {"18"}, // "upstream says 200\n"
	"Trailer":        {"X-Checksum"},
	"X-Upstream":     {"secret"},
	"Cache-Control":  {"public, max-age=3600"},
}

// A response the paywall withholds (the settlement failed, the journal went
// away) carries only the paywall's own headers; a released one carries the
// upstream's and the receipt.
func TestWithheldResponseSendsNoUpstreamHeader(t *testing.T) {
	cases := []struct {
		name     string
		upstream func(r *rig, p *payment) func(*http.Request)
		status   int
		withheld bool
	}{
		{"settlement fails", func(r *rig, p *payment) func(*http.Request) {
			return func(*http.Request) { r.sendAuthorization(t, p) }
		}, 402, true},
		{"journal unavailable", func(r *rig, p *payment) func(*http.Request) {
			return func(*http.Request) { r.store.Close() }
		}, 503, true},
		{"settled", func(r *rig, p *payment) func(*http.Request) { return nil }, 200, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			p := r.newPayment(t)
			h := p.header(t)
			r.upHeader = upstreamHeaders
			r.onUpstream = c.upstream(r, p)
			a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, h)
			if a.status != c.status {
				t.Fatalf("got %d, want %d\n%s", a.status, c.status, a.body)
			}
			for k, v := range upstreamHeaders {
				if k == "Content-Length" || k == "Trailer" {
					continue // the transport consumes them; checked below
				}
				got := a.header.Values(k)
				leaked := strings.Join(got, ",") == strings.Join(v, ",")
				if leaked == c.withheld {
					t.Errorf("%s: %q (upstream's: %q)", k, got, v)
				}
			}
			if c.withheld {
				if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type %q, want the problem's", ct)
				}
				if strings.Contains(a.body, "upstream says") {
					t.Error("the upstream's body leaked")
				}
				return
			}
			if a.header.Get(x402.HeaderPaymentResponse) == "" || !a.settled.Success {
				t.Errorf("the receipt is missing from a released response: %v", a.header)
			}
		})
	}
}
