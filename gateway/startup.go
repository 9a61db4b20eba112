package gateway

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/lightning/lnd"
	"github.com/coinop/coinop/metrics"
)

// ProbeTimeout bounds the probes of one network at start-up, so that a
// node that accepts connections but never answers delays the start, at
// most, by this much.
const ProbeTimeout = 15 * time.Second

// SettlementKey loads the key that pays gas for settlements from a file or
// an environment variable (exactly one of the two may be set; neither: no
// key, nil). A key file that its group or others may access is refused
// (see eip3009.LoadKey). Errors never contain key material.
func SettlementKey(file, envName string, getenv func(string) string) (*ecdsa.PrivateKey, error) {
	var k *eip3009.Key
	var err error
	switch {
	case file != "" && envName != "":
		return nil, errors.New("set a settlement key file or an environment variable, not both")
	case file != "":
		k, err = eip3009.LoadKey(file)
	case envName != "":
		s := getenv(envName)
		if s == "" {
			return nil, fmt.Errorf("environment variable %s is empty", envName)
		}
		if k, err = eip3009.ParseKey(s); err != nil {
			err = fmt.Errorf("environment variable %s: %w", envName, err)
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return crypto.ToECDSA(k.Bytes())
}

// dialNetwork loads network i's settlement key and connects to its node.
// The client is returned for closing even with an error.
func dialNetwork(ctx context.Context, cfg *config.Config, i int, opts Options, m *metrics.Metrics) (*evm.Chain, *ethclient.Client, error) {
	n := cfg.Networks[i]
	p := fmt.Sprintf("networks[%d]", i)
	keyPath := p + ".settlement_key_file"
	if n.SettlementKeyFile == "" {
		keyPath = p + ".settlement_key_env"
	}
	var key *ecdsa.PrivateKey
	if n.Facilitator == "" { // beside a facilitator, the node only reconciles
		var err error
		if key, err = SettlementKey(n.SettlementKeyFile, n.SettlementKeyEnv, opts.Getenv); err != nil {
			return nil, nil, cfg.Errorf(keyPath, "settlement key: %v", err)
		}
	}
	rc, err := rpc.DialOptions(ctx, n.RPC, rpc.WithHTTPClient(rpcHTTPClient(m, n.ID)))
	if err != nil {
		return nil, nil, cfg.Errorf(p+".rpc", "%v", err)
	}
	cl := ethclient.NewClient(rc)
	ch, err := evm.NewChain(evm.ChainConfig{
		Network: n.ID, ChainID: n.ChainID(), Backend: cl, SettlementKey: key,
		ReceiptTimeout: n.ReceiptTimeout, Now: opts.Now,
	})
	if err != nil {
		return nil, cl, cfg.Errorf(p, "%v", err)
	}
	return ch, cl, nil
}

// Finding is one start-up probe's outcome, with the setting it is about.
type Finding struct {
	evm.Finding
	// Path is the configuration setting the finding is about, e.g.
	// "networks[0].assets[1].eip712_name"; "" when it is about no setting.
	Path string
}

// probeNetwork probes network i's node through ch.
func probeNetwork(ctx context.Context, cfg *config.Config, i int, ch *evm.Chain) []Finding {
	n := cfg.Networks[i]
	p := fmt.Sprintf("networks[%d]", i)
	assets := make([]evm.ProbeAsset, len(n.Assets))
	for j, a := range n.Assets {
		assets[j] = evm.ProbeAsset{Label: a.Symbol, Address: common.HexToAddress(a.Address), Name: a.EIP712Name, Version: a.EIP712Version}
	}
	var batcher common.Address
	if n.BatchSettler != "" {
		batcher = common.HexToAddress(n.BatchSettler)
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	var out []Finding
	for _, f := range ch.Probe(ctx, assets, batcher) {
		path := p
		switch {
		case f.Unreachable:
			path = p + ".rpc"
		case f.Check == evm.CheckChainID:
			path = p + ".id"
		case f.Check == evm.CheckCode:
			path = fmt.Sprintf("%s.assets[%d].address", p, f.Asset)
		case f.Check == evm.CheckDomain:
			path = fmt.Sprintf("%s.assets[%d].eip712_name", p, f.Asset)
		case f.Check == evm.CheckBatchSettler:
			path = p + ".batch_settler"
		case f.Check == evm.CheckGas && n.SettlementKeyFile != "":
			path = p + ".settlement_key_file"
		case f.Check == evm.CheckGas:
			path = p + ".settlement_key_env"
		}
		out = append(out, Finding{Finding: f, Path: path})
	}
	return out
}

// probe runs network i's probes for New: the first fatal finding stops the
// start, the others are logged.
func (g *Gateway) probe(ctx context.Context, cfg *config.Config, i int, ch *evm.Chain) error {
	for _, f := range probeNetwork(ctx, cfg, i, ch) {
		switch {
		case f.Fatal():
			return cfg.Errorf(f.Path, "%s: %v", f.Subject, f.Err)
		case f.Unreachable:
			g.log.Warn("node unreachable at start; priced requests fail closed until it answers", "network", ch.Network(), "err", f.Err)
		case f.Err != nil:
			g.log.Warn(f.Subject+": "+f.Err.Error(), "network", ch.Network())
		}
	}
	return nil
}

// Check runs every start-up probe of cfg without serving: the journal
// opens, each network's settlement key loads, and each network's node is
// the configured chain with the configured assets (evm.Chain.Probe). It
// returns one finding per probe, passed or not; networks settled by a
// facilitator are not probed.
func Check(ctx context.Context, cfg *config.Config, opts Options) []Finding {
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	var out []Finding
	store := Finding{Path: "store", Finding: evm.Finding{Subject: "store " + storeLabel(cfg.Store), Asset: -1}}
	if j, err := OpenJournal(ctx, cfg.Store); err != nil {
		store.Err = err
	} else {
		store.Detail = "opens, schema up to date"
		if err := j.Close(); err != nil {
			store.Err = err
		}
	}
	out = append(out, store)
	for i, n := range cfg.Networks {
		if n.Facilitator != "" {
			out = append(out, Finding{Path: fmt.Sprintf("networks[%d].facilitator", i), Finding: evm.Finding{
				Subject: n.ID, Asset: -1, Detail: "settled by the facilitator " + n.Facilitator + "; not probed"}})
			continue
		}
		ch, cl, err := dialNetwork(ctx, cfg, i, opts, nil)
		if err != nil {
			var ce *config.Error
			path := ""
			if errors.As(err, &ce) && len(ce.Problems) == 1 {
				path, err = ce.Problems[0].Path, errors.New(ce.Problems[0].Message)
			}
			out = append(out, Finding{Path: path, Finding: evm.Finding{Subject: n.ID, Asset: -1, Err: err}})
		}
		if cl != nil {
			defer cl.Close()
		}
		if err == nil {
			if key := ch.SettlementAddress(); key != (common.Address{}) {
				out = append(out, Finding{Path: fmt.Sprintf("networks[%d]", i), Finding: evm.Finding{
					Subject: n.ID + " settlement key", Asset: -1, Detail: "loads: account " + key.Hex()}})
			}
			out = append(out, probeNetwork(ctx, cfg, i, ch)...)
		}
	}
	for i, r := range cfg.Rails {
		switch s := r.Settings.(type) {
		case *config.L402Rail:
			out = append(out, probeLND(ctx, fmt.Sprintf("rails[%d]", i), r.Name, s))
		case *config.MPPRail:
			if s.Method == config.MPPMethodLightning {
				out = append(out, probeLND(ctx, fmt.Sprintf("rails[%d]", i), r.Name, s.Node()))
			}
		}
	}
	return out
}

// probeLND checks that an l402 (or mpp lightning) rail's lnd answers with its macaroon and
// certificate, on the configured network.
func probeLND(ctx context.Context, path, name string, s *config.L402Rail) Finding {
	f := Finding{Path: path, Finding: evm.Finding{Subject: "rail " + name + " lnd " + s.LND, Asset: -1}}
	if s.Dev {
		f.Subject, f.Detail = "rail "+name, "development node (in process); not probed"
		return f
	}
	c, err := lnd.New(lnd.Config{URL: s.LND, MacaroonFile: s.MacaroonFile, TLSCertFile: s.TLSCertFile})
	if err != nil {
		f.Err = err
		return f
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := c.Probe(pctx)
	switch {
	case err != nil:
		f.Err = err
	case info == nil:
		f.Detail = "answers (the macaroon may not read node info, so its network is checked on each invoice)"
	case len(info.Chains) > 0 && info.Chains[0].Network != s.Network:
		f.Err = fmt.Errorf("the node is on %s, not %s", info.Chains[0].Network, s.Network)
	default:
		f.Detail = fmt.Sprintf("answers: node %s on %s, synced to chain %v", info.IdentityPubkey, s.Network, info.SyncedToChain)
	}
	return f
}

// storeLabel names a store without a PostgreSQL URL's user, password or
// parameters, any of which may hold a secret.
func storeLabel(store string) string {
	if !strings.Contains(store, "://") {
		return store
	}
	scheme, rest, _ := strings.Cut(store, "://")
	rest, _, _ = strings.Cut(rest, "?")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	return scheme + "://" + rest
}
