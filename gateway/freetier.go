package gateway

import (
	"context"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/freetier"
	"github.com/coinop/coinop/paywall"
)

// freeTier is the allowance of a route with a free tier, counted in the
// journal's database; nil for a route without one.
func (g *Gateway) freeTier(ctx context.Context, rt *config.Route) (paywall.Allowance, error) {
	f := rt.FreeTier
	if f == nil {
		return nil, nil
	}
	st, ok := g.store.(freetier.Store)
	if !ok {
		return nil, g.cfg.Errorf("store", "the journal cannot hold free-tier counters")
	}
	c, err := freetier.Open(ctx, st, g.now)
	if err != nil {
		return nil, g.cfg.Errorf("store", "%v", err)
	}
	return &freetier.Tier{Name: rt.Match, Requests: f.Requests, Window: f.Per, Trusted: f.Proxies(), C: c}, nil
}
