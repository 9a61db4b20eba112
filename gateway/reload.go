package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coinop/coinop/config"
)

// retireWait bounds how long a replaced generation waits for the requests
// it serves before its engine and rails are closed. Requests still running
// then (a WebSocket, a long download) keep running; only background
// settlements not yet begun are left to recovery, which finishes them from
// the journal.
const retireWait = 2 * time.Minute

// Reload replaces the routes, their prices and the rails with cfg's, which
// must have passed Validate, without dropping a connection: requests that
// arrive after Reload returns are served by the new configuration,
// requests in progress finish on the old one, and so do payments signed
// for the old configuration's offers while they are valid (a client that
// got a 402 just before the reload pays the price it was offered). The journal, the chain
// connections, the listener and the limits stay as they are; a cfg that
// changes any of them (store, networks, listen, limits, admin, log) is
// refused and nothing changes. So is a cfg whose rails cannot be built.
// Journaled payments find their rails again by name, so an owed payment of
// a rail the new configuration keeps is finished by it.
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config) error {
	if what := g.fixedChanged(cfg); what != "" {
		return fmt.Errorf("reload refused: %s changed, which takes a restart; the running configuration is kept", what)
	}
	gen, err := g.assemble(ctx, cfg)
	if err != nil {
		return fmt.Errorf("reload refused, the running configuration is kept: %w", err)
	}
	old := g.cur.Load()
	if old != nil {
		// Payments signed for the old offers keep arriving for as long as
		// they are valid: the old generation takes those.
		gen.prev.Store(old)
		gen.prevUntil = g.now().Add(offerWindow(old.cfg))
		old.prev.Store(nil) // its own predecessor's offers are older still: no longer taken
	}
	g.cur.Store(gen)
	g.log.Info("configuration reloaded", "routes", len(cfg.Routes), "rails", len(cfg.AllRails()))
	if old != nil {
		g.retired.Add(1)
		go g.retire(gen, old)
	}
	return nil
}

// offerWindow is how long a payment for one of cfg's offers stays valid:
// the longest payment window of its x402 rails.
func offerWindow(cfg *config.Config) time.Duration {
	var w time.Duration
	for _, r := range cfg.AllRails() {
		if s, ok := r.Settings.(*config.X402Rail); ok && s.MaxTimeout > w {
			w = s.MaxTimeout
		}
	}
	return w
}

// retire closes a replaced generation once no payment for its offers can
// arrive any more and the requests it serves are done, or retireWait after
// that.
// Close ends every wait at once.
func (g *Gateway) retire(gen, old *generation) {
	defer g.retired.Done()
	window := time.NewTimer(offerWindow(old.cfg))
	defer window.Stop()
	select {
	case <-window.C:
		gen.prev.CompareAndSwap(old, nil)
	case <-g.closing:
	}
	done := make(chan struct{})
	go func() { old.serving.Wait(); close(done) }()
	t := time.NewTimer(retireWait)
	defer t.Stop()
	select {
	case <-done:
	case <-g.closing:
	case <-t.C:
		g.log.Warn("a replaced configuration still serves requests; closing its background settlements (recovery finishes what they owe)")
	}
	if err := old.close(g.log); err != nil {
		g.log.Warn("closing a replaced configuration's rails", "err", err)
	}
}

// fixedChanged names the first setting of cfg that differs from the
// running one and cannot change without a restart, or "".
func (g *Gateway) fixedChanged(cfg *config.Config) string {
	same := func(a, b any) bool {
		ja, erra := json.Marshal(a)
		jb, errb := json.Marshal(b)
		return erra == nil && errb == nil && string(ja) == string(jb)
	}
	switch {
	case cfg.Store != g.cfg.Store:
		return "store"
	case !same(cfg.Networks, g.cfg.Networks):
		return "networks"
	case cfg.Listen != g.cfg.Listen:
		return "listen"
	case !same(cfg.Limits, g.cfg.Limits):
		return "limits"
	case cfg.Admin != g.cfg.Admin:
		return "admin"
	case cfg.Auth != g.cfg.Auth:
		return "auth"
	case !same(cfg.Log, g.cfg.Log):
		return "log"
	}
	return ""
}
