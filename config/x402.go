package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/coinop/coinop"
)

// KindX402 is the kind of rail block for x402 `exact` payments on an EVM
// network: EIP-3009 authorizations of one asset to one recipient, verified
// and settled by the gateway through the network's node or by the
// network's facilitator, as the network says.
const KindX402 = "x402"

// X402Rail are the settings of a rail block of kind x402.
type X402Rail struct {
	// Network is the ID of a configured network; optional when exactly one
	// is configured.
	Network string `yaml:"network,omitempty"`
	// Asset is the symbol of one of the network's assets; optional when it
	// has exactly one.
	Asset string `yaml:"asset,omitempty"`
	// PayTo is the recipient; Config.PayTo if empty.
	PayTo string `yaml:"pay_to,omitempty"`
	// MaxTimeout is how long a payer's signed payment may stay valid,
	// MinMaxTimeout to MaxMaxTimeout; DefaultMaxTimeout when left out.
	MaxTimeout time.Duration `yaml:"max_timeout"`

	// Resolved is what the settings refer to. Check sets it.
	Resolved X402Resolved `yaml:"-"`
}

// X402Resolved is an x402 rail's network, asset and recipient.
type X402Resolved struct {
	Network *Network // an element of Config.Networks
	Asset   *Asset   // an element of Network.Assets
	PayTo   string   // EIP-55 checksummed
}

func newX402Rail() RailSettings { return &X402Rail{MaxTimeout: DefaultMaxTimeout} }

// LegacyX402Name is the name of the rail a route written in the form
// before rail blocks (network, asset, pay_to and price on the route)
// stands for. Payments journaled by gateways of that form carry it, so an
// implicit rail, and the rail block `coinop config upgrade` writes for it,
// keep this name.
func LegacyX402Name(network, asset, payTo string, maxTimeout time.Duration) string {
	return fmt.Sprintf("x402/%s/%s/%s/%s", network, strings.ToLower(asset), strings.ToLower(payTo), maxTimeout)
}

// Check implements RailSettings.
func (x *X402Rail) Check(c *Config, at *Reporter) {
	x.check(at.v, at.prefix, c, "")
}

// check resolves the settings at p, a rail block or a route of the older
// form, whose price (price, "" for a block) may name the asset.
func (x *X402Rail) check(v *checker, p string, c *Config, price string) {
	x.Resolved = X402Resolved{}
	v.checkMaxTimeout(p, x.MaxTimeout)
	x.Resolved.PayTo = v.resolvePayTo(p, c, x.PayTo)
	network := v.resolveNetwork(p, c, x.Network)
	if network == nil {
		return
	}
	x.Resolved.Network = network
	asset := v.resolveAsset(p, network, x.Asset, price)
	if asset == nil {
		return
	}
	x.Resolved.Asset = asset
	v.checkNotToken(p, x.PayTo == "", x.Resolved)
}

// ParsePrice implements RailSettings: prices are in the rail's asset.
func (x *X402Rail) ParsePrice(s string) (coinop.Price, error) {
	a := x.Resolved.Asset
	if a == nil {
		return coinop.Price{}, fmt.Errorf("the rail's asset is not resolved")
	}
	return coinop.ParsePrice(s, a.Symbol, a.Decimals)
}

// AsyncExposure implements AsyncCapped: the cap is the asset's.
func (x *X402Rail) AsyncExposure() (coinop.Price, error) {
	n, a := x.Resolved.Network, x.Resolved.Asset
	if n == nil || a == nil {
		return coinop.Price{}, fmt.Errorf("the rail's asset is not resolved")
	}
	if a.AsyncExposure == "" {
		return coinop.Price{}, fmt.Errorf("async needs a cap: set async_exposure on %s's asset %s", n.ID, a.Symbol)
	}
	return a.Exposure(), nil
}

// Overlaps implements Overlapping. An x402 payment names its network and
// asset, and the engine hands it to the first rail that offers both: that
// rail judges the rest (recipient, amount, window) and refuses a payment
// meant for another rail on the same network and asset.
func (x *X402Rail) Overlaps(o RailSettings) string {
	y, ok := o.(*X402Rail)
	if !ok || x.Resolved.Network != y.Resolved.Network || x.Resolved.Asset != y.Resolved.Asset {
		return ""
	}
	return fmt.Sprintf("both take %s on %s, and x402 payments are told apart by network and asset only", x.Resolved.Asset.Symbol, x.Resolved.Network.ID)
}

// Normalize implements RailSettings.
func (x *X402Rail) Normalize() {
	res := x.Resolved
	x.Network, x.Asset, x.PayTo = res.Network.ID, res.Asset.Symbol, res.PayTo
}

// name is the implicit rail's name (LegacyX402Name).
func (x *X402Rail) name() string {
	res := x.Resolved
	return LegacyX402Name(res.Network.ID, res.Asset.Address, res.PayTo, x.MaxTimeout)
}
