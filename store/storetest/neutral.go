package storetest

import (
	"fmt"
	"testing"

	"github.com/coinop/coinop"
)

// bearerCharge is charge n of one bearer credential: no replay key, no
// payer identity, an ID the engine assigned.
func bearerCharge(n int) *coinop.Payment {
	p := Payment(n)
	p.ID = fmt.Sprintf("charge-%06d", n)
	p.Rail = "credits"
	p.Network, p.Asset, p.Payer, p.ReplayKey, p.Bearer = "credits", "credit", "", "", true
	return p
}

// testNeutralFields: the v3 record's protocol-neutral fields (route, bearer
// charges without a replay key, rail details) round-trip, and the journal
// refuses a record that mixes a single-use key with a bearer charge.
func testNeutralFields(t *testing.T, s Store) {
	tests := []struct {
		name string
		p    *coinop.Payment
	}{
		{"single-use with details", func() *coinop.Payment {
			p := Payment(1)
			p.Route = "GET /v1/things/{id}"
			p.Details = map[string]string{"rail.network": "eip155:8453", "quote": `"x" & 'y' \u2603 ☃`}
			return p
		}()},
		{"bearer charge", func() *coinop.Payment {
			p := bearerCharge(2)
			p.Route = "POST /v1/jobs"
			p.Details = map[string]string{"token": "tok-1"}
			return p
		}()},
		{"second charge of the same bearer credential", func() *coinop.Payment {
			p := bearerCharge(3)
			p.Details = map[string]string{"token": "tok-1"}
			return p
		}()},
		{"bearer charge without details", bearerCharge(4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reserve(t, s, tt.p)
			samePayment(t, get(t, s, tt.p.ID), tt.p)
			transition(t, s, tt.p.ID, coinop.StateVerified, coinop.StateSettling, "", "")
			transition(t, s, tt.p.ID, coinop.StateSettling, coinop.StateSettled, "ledger-entry-1", "")
			got := get(t, s, tt.p.ID)
			if got.Details == nil != (tt.p.Details == nil) || got.Route != tt.p.Route || got.Bearer != tt.p.Bearer {
				t.Errorf("after settling: route %q bearer %v details %v; want %q %v %v",
					got.Route, got.Bearer, got.Details, tt.p.Route, tt.p.Bearer, tt.p.Details)
			}
		})
	}

	refused := []struct {
		name string
		p    *coinop.Payment
	}{
		{"single-use without replay key", func() *coinop.Payment { p := Payment(5); p.ReplayKey = ""; return p }()},
		{"bearer with replay key", func() *coinop.Payment { p := bearerCharge(6); p.ReplayKey = "0x06"; return p }()},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, s.Reserve(t.Context(), tt.p), coinop.KindInternal, "")
			if _, err := s.Get(t.Context(), tt.p.ID); err == nil {
				t.Errorf("refused payment %s was journaled", tt.p.ID)
			}
		})
	}
}
