package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/lightning/lnd"
)

// l402Module provisions L402 rails: invoices from an lnd node, or from a
// development node the gateway runs in process.
type l402Module struct{}

// DevNode is where a development node serves lnd's REST API, written as
// JSON to <data_dir>/lightning/<rail>/node.json for buyers on this machine
// (coinop curl) to pay through.
type DevNode struct {
	URL          string `json:"url"`
	MacaroonFile string `json:"macaroon_file"`
	TLSCertFile  string `json:"tls_cert_file"`
}

// DevNodeFile is the file a dev: true rail's node is described in.
func DevNodeFile(dataDir, rail string) string {
	return filepath.Join(dataDir, "lightning", rail, "node.json")
}

// devNodes is the development node of a gateway, shared by all its dev:
// true rails (l402 and the Payment scheme's lightning), so that one buyer
// node pays every one of them: it starts with the first such rail, listens
// where that rail says, and is described in that rail's DevNodeFile. It is
// kept across reloads, so that invoices issued before one can still be
// paid and checked after it.
type devNodes struct {
	mu   sync.Mutex
	node *devnode.Node
	srvs []*devnode.Server
}

func (d *devNodes) get(dataDir, rail, listen string) (*devnode.Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.node != nil {
		return d.node, nil
	}
	n, err := devnode.New(devnode.Config{})
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(DevNodeFile(dataDir, rail))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	srv, err := n.Listen(listen, dir)
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(DevNode{URL: srv.URL, MacaroonFile: srv.MacaroonFile, TLSCertFile: srv.TLSCertFile}, "", "  ")
	if err := os.WriteFile(DevNodeFile(dataDir, rail), b, 0o600); err != nil {
		srv.Close()
		return nil, err
	}
	d.node = n
	d.srvs = append(d.srvs, srv)
	return n, nil
}

func (d *devNodes) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, s := range d.srvs {
		errs = append(errs, s.Close())
	}
	d.srvs, d.node = nil, nil
	return errors.Join(errs...)
}

// lightningNode is the node of a rail named rail with the node settings
// s (an l402 block's, or an mpp lightning block's, which reads as one): the
// development node kept for the rail's name, or an lnd client probed once.
// Its errors are located at at, the rail block.
func lightningNode(ctx context.Context, env *railEnv, rail string, s *config.L402Rail, at string) (lightning.Invoicer, error) {
	if s.Dev {
		n, err := env.dev.get(env.cfg.DataDir, rail, s.DevListen)
		if err != nil {
			return nil, env.cfg.Errorf(at, "rail %s: development node: %v", rail, err)
		}
		return n, nil
	}
	c, err := lnd.New(lnd.Config{URL: s.LND, MacaroonFile: s.MacaroonFile, TLSCertFile: s.TLSCertFile})
	if err != nil {
		return nil, env.cfg.Errorf(at, "rail %s: %v", rail, err)
	}
	// A node on another network would sell invoices nobody here can
	// pay; one that does not answer is logged, and priced requests
	// fail closed until it does.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := c.Probe(pctx)
	cancel()
	switch {
	case err != nil:
		env.opts.Logger.Warn("lnd does not answer; its priced requests fail closed until it does", "rail", rail, "lnd", s.LND, "err", err)
	case info == nil: // the macaroon may not read node info: each invoice's network is checked
	case len(info.Chains) > 0 && info.Chains[0].Network != s.Network:
		return nil, env.cfg.Errorf(at, "rail %s: lnd at %s is on %s, not %s", rail, s.LND, info.Chains[0].Network, s.Network)
	}
	return c, nil
}

func (l402Module) provision(ctx context.Context, env *railEnv, r *config.Rail, at string) (*provisioned, error) {
	s, ok := r.Settings.(*config.L402Rail)
	if !ok {
		return nil, env.cfg.Errorf(at, "rail %s: settings of kind %s are %T", r.Name, r.Kind, r.Settings)
	}
	st, ok := env.journal.(l402.Store)
	if !ok {
		return nil, env.cfg.Errorf("store", "rail %s: the journal cannot hold L402 root keys", r.Name)
	}
	node, err := lightningNode(ctx, env, r.Name, s, at)
	if err != nil {
		return nil, err
	}
	rail, err := l402.New(ctx, l402.Config{
		Name: r.Name, Service: s.Service, Node: node, Store: st, Network: s.Network,
		InvoiceExpiry: s.InvoiceExpiry, TokenTTL: s.TokenTTL, Pass: s.Pass, Now: env.opts.Now,
	})
	if err != nil {
		return nil, env.cfg.Errorf(at, "rail %s: %v", r.Name, err)
	}
	return &provisioned{rail: rail}, nil
}
