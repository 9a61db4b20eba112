package cli

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/coinop/coinop/config"
)

// writeBanner writes what a starting gateway serves, one line each: where
// it listens, where it forwards, where it journals, then every route with
// its price and the ways to pay it, or "free". It is taken from the
// validated config, so it says what the operator configured in the words a
// person reads (whole tokens with their symbol). No secret is written: a
// PostgreSQL store loses its user, password and parameters.
func writeBanner(w io.Writer, cfg *config.Config, listenURL string) {
	var b strings.Builder
	fmt.Fprintf(&b, "  listen     %s\n", listenURL)
	if cfg.Upstream != "" {
		fmt.Fprintf(&b, "  upstream   %s\n", cfg.Upstream)
	}
	fmt.Fprintf(&b, "  journal    %s\n", journalLabel(cfg.Store))
	width := 0
	for _, r := range cfg.Routes {
		width = max(width, len(r.Match))
	}
	for _, r := range cfg.Routes {
		fmt.Fprintf(&b, "  route      %-*s  %s\n", width, r.Match, routeTerms(cfg, r))
	}
	fmt.Fprintf(&b, "  unmatched  %s\n", map[string]string{config.UnmatchedDeny: "deny (404)", config.UnmatchedFree: "free, to " + cfg.Upstream}[cfg.Unmatched])
	io.WriteString(w, b.String())
}

// routeTerms is a route's prices and the ways to pay them, one per
// accepted rail: "0.001 USDC: x402 exact on eip155:84532, token 0x…, to
// 0x…; or …, settled sync".
func routeTerms(cfg *config.Config, r *config.Route) string {
	var b strings.Builder
	if r.Free {
		b.WriteString("free")
	} else {
		for i, a := range r.Resolved.Accept {
			if i > 0 {
				b.WriteString("; or ")
			}
			fmt.Fprintf(&b, "%s: %s", a.Price, railTerms(a.Rail))
		}
		fmt.Fprintf(&b, ", settled %s", r.Settlement)
	}
	if r.Upstream != "" && r.Upstream != cfg.Upstream {
		fmt.Fprintf(&b, " → %s", r.Upstream)
	}
	return b.String()
}

// railTerms says how a rail is paid. A rail block's name is given; the
// implicit rail of a route in the older form is named by its terms alone.
func railTerms(r *config.Rail) string {
	name := ""
	if !strings.HasPrefix(r.Name, "x402/") {
		name = "rail " + r.Name + ", "
	}
	x, ok := r.Settings.(*config.X402Rail)
	if !ok {
		return name + "kind " + r.Kind
	}
	res := x.Resolved
	s := fmt.Sprintf("%sx402 exact on %s, token %s, to %s", name, res.Network.ID, res.Asset.Address, res.PayTo)
	if res.Network.Facilitator != "" {
		s += ", through the facilitator " + res.Network.Facilitator
	}
	return s
}

// journalLabel names the store without credentials.
func journalLabel(store string) string {
	if !strings.Contains(store, "://") {
		return "sqlite " + store
	}
	u, err := url.Parse(store)
	if err != nil {
		return "postgres (unreadable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
