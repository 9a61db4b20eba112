package config

import (
	"fmt"
	"time"

	"github.com/coinop/coinop"
)

// KindMPP is the kind of rail block for the IETF "Payment" HTTP
// authentication scheme (MPP): one payment method, on one EVM network and
// asset, to one recipient.
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
)

// MPPRail are the settings of a rail block of kind mpp.
type MPPRail struct {
	// Method is the payment method: evm or tempo.
	Method string `yaml:"method"`
	// Network, Asset and PayTo are as for an x402 rail.
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

	// Resolved is what the settings refer to. Check sets it.
	Resolved X402Resolved `yaml:"-"`
}

func newMPPRail() RailSettings { return &MPPRail{MaxTimeout: DefaultMaxTimeout} }

// Check implements RailSettings.
func (m *MPPRail) Check(c *Config, at *Reporter) {
	switch m.Method {
	case MPPMethodEVM, MPPMethodTempo:
	case "":
		at.Addf("method", "required: the payment method (%s or %s)", MPPMethodEVM, MPPMethodTempo)
	default:
		at.Addf("method", "%q is not a payment method of this gateway (%s or %s)", m.Method, MPPMethodEVM, MPPMethodTempo)
	}
	x := X402Rail{Network: m.Network, Asset: m.Asset, PayTo: m.PayTo, MaxTimeout: m.MaxTimeout}
	x.check(at.v, at.prefix, c, "")
	m.Resolved = x.Resolved
	if n := m.Resolved.Network; m.Method == MPPMethodTempo && n != nil && (n.RPC == "" || n.Facilitator != "") {
		at.Addf("network", "method tempo checks transactions on the network's node: %s needs rpc and no facilitator", n.ID)
	}
}

// ParsePrice implements RailSettings: prices are in the rail's asset.
func (m *MPPRail) ParsePrice(s string) (coinop.Price, error) {
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
	res := m.Resolved
	m.Network, m.Asset, m.PayTo = res.Network.ID, res.Asset.Symbol, res.PayTo
}
