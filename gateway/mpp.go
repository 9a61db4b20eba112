package gateway

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/evmcharge"
	"github.com/coinop/coinop/mpp/lightningcharge"
	"github.com/coinop/coinop/mpp/tempocharge"
)

// mppModule provisions rails of the Payment scheme (MPP), one method each.
type mppModule struct{}

// minMPPSecret is the shortest challenge secret accepted from the
// environment: an HMAC-SHA256 key of less than 32 bytes is weaker than the
// hash.
const minMPPSecret = 32

func (mppModule) provision(ctx context.Context, env *railEnv, r *config.Rail, at string) (*provisioned, error) {
	s, ok := r.Settings.(*config.MPPRail)
	if !ok {
		return nil, env.cfg.Errorf(at, "rail %s: settings of kind %s are %T", r.Name, r.Kind, r.Settings)
	}
	secret, err := mppSecret(env, r.Name, s)
	if err != nil {
		return nil, env.cfg.Errorf(at+".secret_env", "%v", err)
	}
	build, ok := mppMethods()[s.Method]
	if !ok {
		return nil, env.cfg.Errorf(at+".method", "rail %s: method %q has no provisioner in this gateway", r.Name, s.Method)
	}
	method, err := build(ctx, env, r.Name, s, at)
	if err != nil {
		return nil, err
	}
	rail := &mpp.Rail{ID: r.Name, Method: method, Secret: secret, Realm: s.Realm, Expires: s.MaxTimeout, Now: env.opts.Now}
	if rec, ok := method.(coinop.Reconciler); ok {
		// The method knows its payments better than the network's
		// reconciler (which reads EIP-3009 authorizations).
		return &provisioned{rail: reconcilingRail{rail, rec}}, nil
	}
	return &provisioned{rail: rail}, nil
}

// reconcilingRail is an mpp rail whose method reconciles its own payments
// (tempo: a mined transfer, not an authorization). Recovery finds it by
// the rail's name (Gateway.Recover).
type reconcilingRail struct {
	*mpp.Rail
	coinop.Reconciler
}

// mppMethodBuilder builds the method of the mpp rail named rail with
// settings s; its errors are located at at, the rail block.
type mppMethodBuilder func(ctx context.Context, env *railEnv, rail string, s *config.MPPRail, at string) (mpp.Method, error)

// mppMethods build the Payment scheme's methods, by name: one line per
// method (config lists the names an mpp block may use).
func mppMethods() map[string]mppMethodBuilder {
	return map[string]mppMethodBuilder{
		config.MPPMethodEVM:       evmMethod,
		config.MPPMethodTempo:     tempoMethod,
		config.MPPMethodLightning: lightningMethod,
	}
}

// lightningMethod is the lightning charge on the rail's node, provisioned
// as an l402 rail's (lnd probed once, or the development node kept for
// the rail's name). Its invoices expire with their challenges, two seconds
// later: a challenge's expires (written in whole seconds, after its invoice
// was made) is never later than its invoice's.
func lightningMethod(ctx context.Context, env *railEnv, rail string, s *config.MPPRail, at string) (mpp.Method, error) {
	n := s.Node()
	node, err := lightningNode(ctx, env, rail, n, at)
	if err != nil {
		return nil, err
	}
	return &lightningcharge.Method{Node: node, Network: n.Network, Expiry: s.MaxTimeout + 2*time.Second}, nil
}

// evmMethod is the evm charge over the x402 exact scheme of the rail's
// network, asset and recipient (settled on the gateway's node or by the
// network's facilitator).
func evmMethod(_ context.Context, env *railEnv, _ string, s *config.MPPRail, at string) (mpp.Method, error) {
	res := s.Resolved
	scheme, err := exactScheme(env, res, s.MaxTimeout, at)
	if err != nil {
		return nil, err
	}
	return &evmcharge.Method{Scheme: scheme, Decimals: res.Asset.Decimals, Symbol: res.Asset.Symbol}, nil
}

// tempoMethod is the tempo charge in push mode, checked on the network's
// node.
func tempoMethod(_ context.Context, env *railEnv, _ string, s *config.MPPRail, at string) (mpp.Method, error) {
	res := s.Resolved
	chain, ok := env.chains[res.Network]
	if !ok {
		return nil, env.cfg.Errorf(at, "method tempo needs the gateway's own node on %s", res.Network.ID)
	}
	return &tempocharge.Method{
		Receipts: chainReceipts{chain}, ChainID: res.Network.ChainID(),
		Currency: eip3009.Address(common.HexToAddress(res.Asset.Address)), Recipient: eip3009.Address(common.HexToAddress(res.PayTo)),
		Decimals: res.Asset.Decimals, Symbol: res.Asset.Symbol,
	}, nil
}

// mppSecrets hold the challenge secrets a gateway drew, by rail name.
type mppSecrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

// get returns name's secret, drawing it on first use.
func (s *mppSecrets) get(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[name]; ok {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = b
	return b, nil
}

// mppSecret reads the rail's challenge secret from the environment, or
// uses the one the gateway drew for the rail's name at its first start.
func mppSecret(env *railEnv, name string, s *config.MPPRail) ([]byte, error) {
	if s.SecretEnv == "" {
		return env.mppSecrets.get(name)
	}
	v := env.opts.Getenv(s.SecretEnv)
	if len(v) < minMPPSecret {
		return nil, fmt.Errorf("$%s must hold at least %d bytes (it holds %d)", s.SecretEnv, minMPPSecret, len(v))
	}
	return []byte(v), nil
}

// chainReceipts reads receipts for the tempo method from a network the
// gateway reads itself.
type chainReceipts struct{ c *evm.Chain }

func (r chainReceipts) Receipt(ctx context.Context, hash [32]byte) (*tempocharge.Receipt, bool, error) {
	rc, found, err := r.c.Receipt(ctx, common.Hash(hash))
	if err != nil || !found {
		return nil, found, err
	}
	out := &tempocharge.Receipt{Success: rc.Status == 1}
	for _, l := range rc.Logs {
		tl := tempocharge.Log{Address: eip3009.Address(l.Address), Data: l.Data}
		for _, t := range l.Topics {
			tl.Topics = append(tl.Topics, [32]byte(t))
		}
		out.Logs = append(out.Logs, tl)
	}
	return out, true, nil
}
