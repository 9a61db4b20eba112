package gateway

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/evmcharge"
	"github.com/coinop/coinop/mpp/tempocharge"
)

// mppModule provisions rails of the Payment scheme (MPP), one method each.
type mppModule struct{}

// minMPPSecret is the shortest challenge secret accepted from the
// environment: an HMAC-SHA256 key of less than 32 bytes is weaker than the
// hash.
const minMPPSecret = 32

func (mppModule) provision(_ context.Context, env *railEnv, r *config.Rail, at string) (*provisioned, error) {
	s, ok := r.Settings.(*config.MPPRail)
	if !ok {
		return nil, env.cfg.Errorf(at, "rail %s: settings of kind %s are %T", r.Name, r.Kind, r.Settings)
	}
	secret, err := mppSecret(env, s)
	if err != nil {
		return nil, env.cfg.Errorf(at+".secret_env", "%v", err)
	}
	rail := &mpp.Rail{ID: r.Name, Secret: secret, Realm: s.Realm, Expires: s.MaxTimeout, Now: env.opts.Now}
	res := s.Resolved
	switch s.Method {
	case config.MPPMethodEVM:
		scheme, err := exactScheme(env, res, s.MaxTimeout)
		if err != nil {
			return nil, env.cfg.Errorf(at, "%v", err)
		}
		rail.Method = &evmcharge.Method{Scheme: scheme, Decimals: res.Asset.Decimals, Symbol: res.Asset.Symbol}
	case config.MPPMethodTempo:
		rail.Method = &tempocharge.Method{
			Receipts: chainReceipts{env.chains[res.Network]}, ChainID: res.Network.ChainID(),
			Currency: eip3009.Address(common.HexToAddress(res.Asset.Address)), Recipient: eip3009.Address(common.HexToAddress(res.PayTo)),
			Decimals: res.Asset.Decimals, Symbol: res.Asset.Symbol,
		}
	default:
		return nil, env.cfg.Errorf(at+".method", "rail %s: method %q has no provisioner in this gateway", r.Name, s.Method)
	}
	return &provisioned{rail: rail}, nil
}

// mppSecret reads the rail's challenge secret from the environment, or
// draws a random one.
func mppSecret(env *railEnv, s *config.MPPRail) ([]byte, error) {
	if s.SecretEnv == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return b, nil
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
