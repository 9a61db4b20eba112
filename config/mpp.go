package config

import (
	"fmt"
	"math/big"
	"time"

	"github.com/coinop/coinop"
)

// KindMPP is the kind of rail block for the IETF "Payment" HTTP
// authentication scheme (MPP): one payment method, on one EVM network and
// asset to one recipient (evm, tempo), or on one Lightning node
// (lightning).
const KindMPP = "mpp"

// Payment methods of an mpp rail block.
const (
	// MPPMethodEVM: an EIP-3009 authorization the gateway settles, on
	// its node or through the network's facilitator.
	MPPMethodEVM = "evm"
	// MPPMethodTempo: push mode of Tempo's charge: the payer sends the
	// transfer and presents its transaction hash, which the gateway
	// checks on its node.
	MPPMethodTempo = "tempo"
	// MPPMethodLightning: a BOLT11 invoice per challenge from the rail's
	// node (the settings of an l402 rail: lnd, macaroon_file,
	// tls_cert_file, or dev: true), paid and answered with its preimage.
	MPPMethodLightning = "lightning"
)

// mppMethods lists the methods for messages.
const mppMethods = MPPMethodEVM + ", " + MPPMethodTempo + " or " + MPPMethodLightning

// MPPRail are the settings of a rail block of kind mpp.
type MPPRail struct {
	// Method is the payment method: evm, tempo or lightning.
	Method string `yaml:"method"`
	// Network, Asset and PayTo are as for an x402 rail. For method
	// lightning, Network is the Lightning network (mainnet, signet or
	// regtest; mainnet when left out, regtest for the development node)
	// and Asset and PayTo are not set: the node is paid.
	Network string `yaml:"network,omitempty"`
	Asset   string `yaml:"asset,omitempty"`
	PayTo   string `yaml:"pay_to,omitempty"`
	// MaxTimeout is how long a challenge stays payable (and, for evm, how
	// long the payer's authorization may stay valid); MinMaxTimeout to
	// MaxMaxTimeout, DefaultMaxTimeout when left out.
	MaxTimeout time.Duration `yaml:"max_timeout"`
	// Realm is the challenges' realm; the request's host when empty.
	Realm string `yaml:"realm,omitempty"`
	// SecretEnv names the environment variable that holds the secret
	// keying the challenge ids (32 bytes or more). When empty, each start
	// draws a random one: challenges issued before a restart, or by
	// another instance, are then refused and answered afresh.
	SecretEnv string `yaml:"secret_env,omitempty"`

	// LND, MacaroonFile, TLSCertFile, Dev and DevListen are the Lightning
	// node of method lightning, as for an l402 rail.
	LND          string `yaml:"lnd,omitempty"`
	MacaroonFile string `yaml:"macaroon_file,omitempty"`
	TLSCertFile  string `yaml:"tls_cert_file,omitempty"`
	Dev          bool   `yaml:"dev,omitempty"`
	DevListen    string `yaml:"dev_listen,omitempty"`

	// Resolved is what the settings refer to. Check sets it.
	Resolved X402Resolved `yaml:"-"`
}

func newMPPRail() RailSettings { return &MPPRail{MaxTimeout: DefaultMaxTimeout} }

// Check implements RailSettings.
func (m *MPPRail) Check(c *Config, at *Reporter) {
	switch m.Method {
	case MPPMethodEVM, MPPMethodTempo:
	case MPPMethodLightning:
		m.checkLightning(at)
		return
	case "":
		at.Addf("method", "required: the payment method (%s)", mppMethods)
	default:
		at.Addf("method", "%q is not a payment method of this gateway (%s)", m.Method, mppMethods)
	}
	if m.LND != "" || m.MacaroonFile != "" || m.TLSCertFile != "" || m.Dev || m.DevListen != "" {
		at.Addf("method", "lnd, macaroon_file, tls_cert_file, dev and dev_listen are for method lightning")
	}
	x := X402Rail{Network: m.Network, Asset: m.Asset, PayTo: m.PayTo, MaxTimeout: m.MaxTimeout}
	x.check(at.v, at.prefix, c, "")
	m.Resolved = x.Resolved
	if n := m.Resolved.Network; m.Method == MPPMethodTempo && n != nil && (n.RPC == "" || n.Facilitator != "") {
		at.Addf("network", "method tempo checks transactions on the network's node: %s needs rpc and no facilitator", n.ID)
	}
}

// checkLightning checks a lightning rail: its node as an l402 rail's, a
// network the method names, no EVM settings.
func (m *MPPRail) checkLightning(at *Reporter) {
	at.v.checkMaxTimeout(at.prefix, m.MaxTimeout)
	if m.Asset != "" || m.PayTo != "" {
		at.Addf("method", "method lightning is paid to its node: asset and pay_to are not set")
	}
	l := m.Node()
	l.Check(nil, at)
	if m.Network == "testnet" {
		at.Addf("network", "the lightning method names mainnet, signet or regtest, not testnet")
	}
}

// Node is the Lightning node of method lightning as an l402 rail's
// settings (their expiries are the defaults and unused).
func (m *MPPRail) Node() *L402Rail {
	return &L402Rail{LND: m.LND, MacaroonFile: m.MacaroonFile, TLSCertFile: m.TLSCertFile, Dev: m.Dev, DevListen: m.DevListen,
		Network: m.Network, InvoiceExpiry: DefaultInvoiceExpiry, TokenTTL: DefaultTokenTTL}
}

// Paths implements PathSettings: the node's macaroon and certificate.
func (m *MPPRail) Paths() []*string { return []*string{&m.MacaroonFile, &m.TLSCertFile} }

// ParsePrice implements RailSettings: prices are in the rail's asset; for
// method lightning, in whole sats ("100 sat", "2000 msat"), since its
// request states sats.
func (m *MPPRail) ParsePrice(s string) (coinop.Price, error) {
	if m.Method == MPPMethodLightning {
		p, err := m.Node().ParsePrice(s)
		if err != nil {
			return p, err
		}
		if new(big.Int).Mod(p.Amount, big.NewInt(1000)).Sign() != 0 {
			return coinop.Price{}, fmt.Errorf("price %q: the lightning method asks whole sats", s)
		}
		return p, nil
	}
	a := m.Resolved.Asset
	if a == nil {
		return coinop.Price{}, fmt.Errorf("the rail's asset is not resolved")
	}
	return coinop.ParsePrice(s, a.Symbol, a.Decimals)
}

// AsyncExposure implements AsyncCapped: an evm rail may serve async routes
// within its asset's cap, as an x402 rail does; a tempo payment has moved
// before it is served, so async buys nothing there.
func (m *MPPRail) AsyncExposure() (coinop.Price, error) {
	if m.Method != MPPMethodEVM {
		return coinop.Price{}, fmt.Errorf("async settlement is for method evm; method %s is paid before it is served", m.Method)
	}
	x := X402Rail{Resolved: m.Resolved}
	return x.AsyncExposure()
}

// Normalize implements RailSettings.
func (m *MPPRail) Normalize() {
	if m.Method == MPPMethodLightning {
		l := m.Node()
		l.Normalize()
		m.Network = l.Network
		return
	}
	res := m.Resolved
	m.Network, m.Asset, m.PayTo = res.Network.ID, res.Asset.Symbol, res.PayTo
}
