package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/x402"
	"github.com/coinop/coinop/x402/facilitated"
)

// A railModule provisions the rails of one kind of rail block at start-up:
// config decodes and validates the block (config.RailSettings), the module
// builds the running rail from it.
type railModule interface {
	// provision builds the rail the block r describes. at is r's setting,
	// to locate errors in the file.
	provision(ctx context.Context, env *railEnv, r *config.Rail, at string) (*provisioned, error)
}

// provisioned is a rail built by its module, with what it holds open.
type provisioned struct {
	rail coinop.Rail
	// close releases what the rail holds open; nil when it holds nothing.
	close func() error
	// link, when set, is called once every rail is built, with all of
	// them: it returns routes the rail adds to the engine (a credits
	// rail's purchase routes, priced on other rails) and their handler.
	link func(rails map[*config.Rail]coinop.Rail) ([]paywall.Route, http.Handler)
}

// railModules are the gateway's rail modules, by kind: one line per module.
func railModules() map[string]railModule {
	return map[string]railModule{
		config.KindX402:    x402Module{},
		config.KindCredits: creditsModule{},
		config.KindL402:    l402Module{},
	}
}

// railEnv is what rails are provisioned with: the networks, dialed and
// probed once for every rail on them.
type railEnv struct {
	cfg    *config.Config
	opts   Options
	chains map[*config.Network]*evm.Chain // the networks the gateway settles on itself
	// journal is the gateway's payments journal, for rails that keep
	// tables beside it (credits).
	journal Journal
	// dev are the gateway's development Lightning nodes.
	dev *devNodes
}

// x402Module provisions x402 `exact` EVM rails: settled by the gateway
// through the network's node, or by the network's facilitator.
type x402Module struct{}

func (x402Module) provision(_ context.Context, env *railEnv, r *config.Rail, at string) (*provisioned, error) {
	s, ok := r.Settings.(*config.X402Rail)
	if !ok {
		return nil, env.cfg.Errorf(at, "rail %s: settings of kind %s are %T", r.Name, r.Kind, r.Settings)
	}
	res := s.Resolved
	var scheme x402.Scheme
	var err error
	if res.Network.Facilitator != "" {
		header, herr := facilitatorHeader(env, res.Network)
		if herr != nil {
			return nil, herr
		}
		scheme, err = facilitated.New(facilitated.Config{
			URL: res.Network.Facilitator, Network: res.Network.ID, Header: header,
			Asset: res.Asset.Address, PayTo: res.PayTo, Name: res.Asset.EIP712Name,
			Version: res.Asset.EIP712Version, MaxTimeout: s.MaxTimeout,
			SettleTimeout: res.Network.ReceiptTimeout + 15*time.Second, Now: env.opts.Now,
		})
	} else {
		scheme, err = evm.NewExact(env.chains[res.Network], evm.ExactConfig{
			Asset: common.HexToAddress(res.Asset.Address), Name: res.Asset.EIP712Name,
			Version: res.Asset.EIP712Version, PayTo: common.HexToAddress(res.PayTo), MaxTimeout: s.MaxTimeout,
			BatchSettler: common.HexToAddress(res.Network.BatchSettler),
		})
	}
	if err != nil {
		return nil, env.cfg.Errorf(at, "%v", err)
	}
	return &provisioned{rail: &x402.Rail{ID: r.Name, Schemes: []x402.Scheme{scheme}}}, nil
}

// facilitatorHeader is what n's facilitator_headers say to send, with the
// values of the environment variables they name. An empty variable stops
// the start: a facilitator that wants a key would refuse every payment.
func facilitatorHeader(env *railEnv, n *config.Network) (http.Header, error) {
	if len(n.FacilitatorHeaders) == 0 {
		return nil, nil
	}
	at := "networks"
	for i, m := range env.cfg.Networks {
		if m == n {
			at = fmt.Sprintf("networks[%d]", i)
		}
	}
	h := http.Header{}
	for j, s := range n.FacilitatorHeaders {
		v := s.Value
		if s.ValueEnv != "" {
			if v = env.opts.Getenv(s.ValueEnv); v == "" {
				return nil, env.cfg.Errorf(fmt.Sprintf("%s.facilitator_headers[%d].value_env", at, j), "environment variable %s is empty or not set", s.ValueEnv)
			}
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, env.cfg.Errorf(fmt.Sprintf("%s.facilitator_headers[%d].value_env", at, j), "environment variable %s holds a line break or NUL", s.ValueEnv)
			}
		}
		h.Add(s.Name, v)
	}
	return h, nil
}

// provisionRails builds every configured rail through its module: the
// rail blocks and the implicit rails of routes of the older form.
func (g *Gateway) provisionRails(ctx context.Context, gen *generation, env *railEnv) (map[*config.Rail]coinop.Rail, error) {
	modules := railModules()
	out := map[*config.Rail]coinop.Rail{}
	var links []func(map[*config.Rail]coinop.Rail) ([]paywall.Route, http.Handler)
	for _, r := range env.cfg.AllRails() {
		at := env.cfg.RailPath(r)
		m, ok := modules[r.Kind]
		if !ok {
			return nil, env.cfg.Errorf(at, "rail %s: no module for kind %q in this gateway", r.Name, r.Kind)
		}
		p, err := m.provision(ctx, env, r, at)
		if err != nil {
			return nil, err
		}
		if p.close != nil {
			gen.closers = append(gen.closers, p.close)
		}
		out[r] = p.rail
		if p.link != nil {
			links = append(links, p.link)
		}
		if rc, ok := p.rail.(coinop.Reconciler); ok {
			gen.reconcilers[r.Name] = rc
		}
	}
	for _, link := range links {
		routes, h := link(out)
		gen.extra = append(gen.extra, routes...)
		for _, rt := range routes {
			gen.local[rt.Pattern] = h
		}
	}
	return out, nil
}
