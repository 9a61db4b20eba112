package gateway

import (
	"context"
	"crypto/rand"
	"net/http"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/paywall"
)

// creditsModule provisions credits rails: a ledger beside the journal, the
// rail that charges it, and the purchase routes of its plans, priced on
// the rails the plans accept.
type creditsModule struct{}

func (creditsModule) provision(ctx context.Context, env *railEnv, r *config.Rail, at string) (*provisioned, error) {
	s, ok := r.Settings.(*config.CreditsRail)
	if !ok {
		return nil, env.cfg.Errorf(at, "rail %s: settings of kind %s are %T", r.Name, r.Kind, r.Settings)
	}
	st, ok := env.journal.(credits.Store)
	if !ok {
		return nil, env.cfg.Errorf(at, "rail %s: the journal cannot hold a credits ledger", r.Name)
	}
	led, err := credits.Open(ctx, st, env.opts.Now, rand.Reader)
	if err != nil {
		return nil, env.cfg.Errorf("store", "rail %s: %v", r.Name, err)
	}
	rail := &credits.Rail{ID: r.Name, Ledger: led, Store: st, Low: s.LowBalance, Now: env.opts.Now}
	if s.SignInWithX {
		secret, err := led.Secret(ctx, "sign-in-with-x")
		if err != nil {
			return nil, env.cfg.Errorf("store", "rail %s: %v", r.Name, err)
		}
		rail.SignIn = &credits.SignIn{Secret: secret, Statement: "Sign in to use the credits this wallet bought."}
	}
	link := func(rails map[*config.Rail]coinop.Rail) ([]paywall.Route, http.Handler) {
		shop := &credits.Shop{Ledger: led}
		for _, p := range s.Plans {
			fs := credits.ForSale{Plan: credits.Plan{Name: p.Name, Credits: p.Credits, Duration: p.Pass, Requests: p.Requests}, Paths: p.PlanPaths()}
			for _, a := range p.Resolved {
				fs.Accept = append(fs.Accept, paywall.Accept{Rail: rails[a.Rail], Price: a.Price})
			}
			shop.Sale = append(shop.Sale, fs)
		}
		rail.Seller = shop
		return shop.Routes(), shop.Handler()
	}
	return &provisioned{rail: rail, link: link}, nil
}
