package credits

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
)

// HeaderToken carries a purchase's token in its answer, beside the JSON
// body's "token": `Bearer cop_…`, ready for Authorization.
const HeaderToken = "Coinop-Credits-Token"

// ForSale is one plan as a Shop sells it: the paths it is sold at and the
// accept entries of its purchase routes (rails and prices).
type ForSale struct {
	Plan   Plan
	Paths  []string
	Accept []paywall.Accept
}

// Shop sells plans: each plan's paths are priced routes of the engine on
// the rails the plan accepts, and its handler answers a paid purchase with
// the account's token. It is the Seller a credits Rail lists in its 402s.
type Shop struct {
	Ledger *Ledger
	Sale   []ForSale
}

// Routes are the purchase routes, one per plan path, for the engine.
func (s *Shop) Routes() []paywall.Route {
	var out []paywall.Route
	for _, p := range s.Sale {
		for _, path := range p.Paths {
			out = append(out, paywall.Route{Pattern: path, Accept: p.Accept, Description: describe(p.Plan), MimeType: "application/json"})
		}
	}
	return out
}

// describe is a plan for people.
func describe(p Plan) string {
	s := "credits plan " + p.Name + ":"
	if p.Credits > 0 {
		s += " " + price(bigInt(p.Credits))
	}
	if p.Duration > 0 {
		s += " a " + p.Duration.String() + " pass"
		if p.Requests > 0 {
			s += " of " + bigInt(p.Requests).String() + " requests"
		}
	}
	return s
}

// Plans implements Seller: each plan with its purchase offers on every
// rail it accepts, for the origin the buyer reached.
func (s *Shop) Plans(ctx context.Context, o Origin) []Offered {
	base := ""
	if u, err := url.Parse(o.URL); err == nil && u.Host != "" {
		base = u.Scheme + "://" + u.Host
	}
	var out []Offered
	for _, p := range s.Sale {
		if len(p.Paths) == 0 {
			continue
		}
		of := Offered{Name: p.Plan.Name, Credits: p.Plan.Credits, Pass: int64(p.Plan.Duration / time.Second),
			Requests: p.Plan.Requests, URL: base + p.Paths[0], Offers: []coinop.Offer{}}
		for _, a := range p.Accept {
			ch := &coinop.Challenge{Header: http.Header{}}
			charge := coinop.Charge{Price: a.Price, Route: p.Paths[0], Resource: coinop.Resource{
				URL: of.URL, Method: http.MethodPost, Description: describe(p.Plan), MimeType: "application/json"}}
			if err := a.Rail.Challenge(ctx, ch, charge); err != nil {
				continue // that rail cannot sell now; the purchase route's own 402 says so
			}
			of.Offers = append(of.Offers, ch.Offers...)
		}
		out = append(out, of)
	}
	return out
}

// Receipt is a purchase's JSON answer. The plan counts once the payment
// settled: on a sync purchase route, before the answer is released.
type Receipt struct {
	Plan    string `json:"plan"`
	Account string `json:"account"`
	// Token is the bearer token; "" for a top-up, which keeps the buyer's.
	Token    string `json:"token,omitempty"`
	Credits  int64  `json:"credits,omitempty"`
	Pass     int64  `json:"passSeconds,omitempty"`
	Requests int64  `json:"requests,omitempty"`
}

// Handler answers the purchase routes. The engine has verified and
// reserved the payment by then and settles it when this handler commits to
// its status; the ledger credits the plan only once the journal says the
// payment settled (Ledger.Buy). A buyer who sends its token
// (Authorization: Bearer) tops that account up.
func (s *Shop) Handler() http.Handler {
	plans := map[string]*ForSale{}
	for i := range s.Sale {
		for _, path := range s.Sale[i].Paths {
			plans[path] = &s.Sale[i]
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := paywall.PaymentFrom(r.Context())
		fs := plans[r.URL.Path]
		if p == nil || fs == nil {
			paywall.WriteError(w, r, coinop.Errorf(coinop.KindNotFound, coinop.ReasonNoRoute, "no plan is sold here"))
			return
		}
		pu := Purchase{Plan: fs.Plan, Payment: p.ID, Wallet: p.Payer}
		if tok, ok := bearer(r.Header); ok {
			hash, err := ParseToken(tok)
			if err != nil {
				paywall.WriteError(w, r, err)
				return
			}
			pu.TokenHash = hash
		}
		b, err := s.Ledger.Buy(r.Context(), pu)
		if err != nil {
			paywall.WriteError(w, r, err) // ≥ 400: the payment is released, nothing charged
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		if b.Token != "" {
			h.Set(HeaderToken, "Bearer "+b.Token)
		}
		json.NewEncoder(w).Encode(Receipt{Plan: fs.Plan.Name, Account: b.Account, Token: b.Token, Credits: fs.Plan.Credits,
			Pass: int64(fs.Plan.Duration / time.Second), Requests: fs.Plan.Requests})
	})
}
