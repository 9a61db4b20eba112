package admin

import (
	"net/http"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
)

// Network is what the dashboard shows of a configured network: its
// name, the assets it accepts (to write atomic amounts for people) and
// where its transactions can be looked at. It carries nothing secret: a
// node's URL may hold an API key, so it is not here.
type Network struct {
	// ID is the CAIP-2 identifier payments name ("eip155:8453").
	ID string `json:"id"`
	// Name is the configuration's other name for it, if any ("base").
	Name string `json:"name,omitempty"`
	// Title is its name for people ("Base Sepolia"), if coinop knows it.
	Title string `json:"title,omitempty"`
	// Explorer is a transaction's URL with {tx} in place of its hash
	// ("https://basescan.org/tx/{tx}"); "" when none is configured, and
	// the dashboard then shows the hash as text.
	Explorer string  `json:"explorer,omitempty"`
	Assets   []Asset `json:"assets"`
}

// Asset is a token a network accepts.
type Asset struct {
	Symbol string `json:"symbol"`
	// Address is the token contract, as payments name it.
	Address string `json:"address"`
	// Decimals separate atomic units from whole ones (6 for USDC).
	Decimals int `json:"decimals"`
}

// networks answers GET /networks: the configured networks and assets.
func networks(ns []Network) http.HandlerFunc {
	out := struct {
		Networks []Network `json:"networks"`
	}{Networks: []Network{}}
	for _, n := range ns {
		if n.Assets == nil {
			n.Assets = []Asset{}
		}
		out.Networks = append(out.Networks, n)
	}
	return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, out) }
}

// summary answers GET /summary: how many payments are in each state, and
// their amounts, per network and asset, for the listing's filter. Pending
// settlements (settling: owed, or sent and not yet confirmed) and failed
// ones are what an operator watches; verified payments are being served.
func (a *api) summary(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	totals, truncated, err := a.sum(r.Context(), f, func(p *coinop.Payment) string { return string(p.State) })
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	counts := map[coinop.State]int{coinop.StateVerified: 0, coinop.StateSettling: 0, coinop.StateSettled: 0, coinop.StateFailed: 0, coinop.StateReleased: 0}
	for _, t := range totals {
		counts[coinop.State(t.Key)] += t.Payments
	}
	out := struct {
		States    map[coinop.State]int `json:"states"`
		Totals    []*total             `json:"totals"`
		Truncated bool                 `json:"truncated,omitempty"`
	}{States: counts, Totals: totals, Truncated: truncated}
	writeJSON(w, http.StatusOK, out)
}
