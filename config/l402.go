package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/coinop/coinop"
)

// KindL402 is the kind of rail block for L402: requests paid with
// Lightning invoices, each answered with a macaroon token, through an lnd
// node (lnd, macaroon_file, tls_cert_file) or the in-process development
// node (dev: true).
const KindL402 = "l402"

// L402Rail are the settings of a rail block of kind l402. Prices are in
// sats ("100 sat", "0.5 sat") or msat ("1500 msat"); bare digits are msat.
type L402Rail struct {
	// LND is the lnd node's REST URL: "https://127.0.0.1:8080".
	LND string `yaml:"lnd,omitempty"`
	// MacaroonFile is an lnd macaroon that may add and read invoices
	// (invoice.macaroon).
	MacaroonFile string `yaml:"macaroon_file,omitempty"`
	// TLSCertFile is the node's tls.cert; the connection is pinned to it.
	TLSCertFile string `yaml:"tls_cert_file,omitempty"`
	// Dev runs the in-process development node instead of lnd: real
	// invoices that only its own buyer can pay. Not for production.
	Dev bool `yaml:"dev,omitempty"`
	// DevListen is the loopback address where the development node serves
	// lnd's REST API to buyers; "127.0.0.1:0" (any port) when left out.
	DevListen string `yaml:"dev_listen,omitempty"`
	// Network is the Lightning network: mainnet, testnet, signet or
	// regtest. Mainnet when left out; regtest for the development node.
	Network string `yaml:"network,omitempty"`
	// Service names the service in the tokens' caveats; the rail's name
	// when left out.
	Service string `yaml:"service,omitempty"`
	// InvoiceExpiry is how long an invoice may be paid: 1m to 24h,
	// DefaultInvoiceExpiry when left out.
	InvoiceExpiry time.Duration `yaml:"invoice_expiry"`
	// TokenTTL is how long a token priced per request may be redeemed
	// after it was issued: 1m to 720h, DefaultTokenTTL when left out.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// Pass, when set, makes each token a pass: good for every request to
	// its route for this long after it was issued (1m to 8760h), for the
	// one price. Left out, a token pays for one request.
	Pass time.Duration `yaml:"pass,omitempty"`
}

// Defaults of an l402 rail block.
const (
	DefaultInvoiceExpiry = 10 * time.Minute
	DefaultTokenTTL      = time.Hour
)

func newL402Rail() RailSettings {
	return &L402Rail{InvoiceExpiry: DefaultInvoiceExpiry, TokenTTL: DefaultTokenTTL}
}

// Check implements RailSettings.
func (l *L402Rail) Check(_ *Config, at *Reporter) {
	switch {
	case l.Dev && l.LND != "":
		at.Addf("dev", "dev: true runs the development node; it cannot be set with lnd")
	case !l.Dev && l.LND == "":
		at.Addf("lnd", "required: the lnd node's REST URL (https://host:8080), or dev: true for the development node")
	case l.Dev:
		if l.MacaroonFile != "" || l.TLSCertFile != "" {
			at.Addf("dev", "the development node needs no macaroon_file or tls_cert_file")
		}
		if l.DevListen != "" {
			host, _, err := net.SplitHostPort(l.DevListen)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				at.Addf("dev_listen", "%q: want a loopback host:port such as 127.0.0.1:8403", l.DevListen)
			}
		}
		if l.Network != "" && l.Network != "regtest" && validNetwork(l.Network) {
			at.Addf("network", "the development node's invoices are regtest ones, not %s", l.Network)
		}
	default:
		u, err := url.Parse(l.LND)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			at.Addf("lnd", "%q: want the node's REST URL, https://host:port", l.LND)
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			at.Addf("lnd", "%q: plain http reaches only a node on loopback; use https and tls_cert_file", l.LND)
		case u.Scheme == "https" && l.TLSCertFile == "":
			at.Addf("tls_cert_file", "required: the node's tls.cert, which the connection is pinned to")
		}
		if l.MacaroonFile == "" {
			at.Addf("macaroon_file", "required: an lnd macaroon that may add and read invoices (invoice.macaroon)")
		}
		if l.DevListen != "" {
			at.Addf("dev_listen", "only for dev: true")
		}
	}
	if l.Network != "" && !validNetwork(l.Network) {
		at.Addf("network", "%q: want mainnet, testnet, signet or regtest", l.Network)
	}
	if strings.ContainsAny(l.Service, "=,: \t") {
		at.Addf("service", "%q: a word without '=', ',', ':' or spaces", l.Service)
	}
	checkRange := func(key string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			at.Addf(key, "%s: want %s to %s", formatDuration(d), formatDuration(lo), formatDuration(hi))
		}
	}
	checkRange("invoice_expiry", l.InvoiceExpiry, time.Minute, 24*time.Hour)
	checkRange("token_ttl", l.TokenTTL, time.Minute, 720*time.Hour)
	if l.Pass != 0 {
		checkRange("pass", l.Pass, time.Minute, 8760*time.Hour)
	}
}

func validNetwork(n string) bool {
	switch n {
	case "mainnet", "testnet", "signet", "regtest":
		return true
	}
	return false
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ParsePrice implements RailSettings: "100 sat", "0.5 sat", "1500 msat",
// or bare digits (msat). Amounts are millisatoshis at 3 decimals, shown
// in sat.
func (l *L402Rail) ParsePrice(s string) (coinop.Price, error) {
	f := strings.Fields(s)
	if len(f) == 2 && strings.EqualFold(f[1], "msat") {
		return coinop.ParsePrice(f[0], "sat", 3)
	}
	if len(f) == 2 && strings.EqualFold(f[1], "sats") {
		s = f[0] + " sat"
	}
	p, err := coinop.ParsePrice(s, "sat", 3)
	if err != nil {
		return coinop.Price{}, fmt.Errorf("price %q: want sats (\"100 sat\", \"0.5 sat\") or msat (\"1500 msat\")", s)
	}
	return p, nil
}

// Normalize implements RailSettings.
func (l *L402Rail) Normalize() {
	if l.Network == "" {
		l.Network = "mainnet"
		if l.Dev {
			l.Network = "regtest"
		}
	}
}

// Paths implements PathSettings.
func (l *L402Rail) Paths() []*string { return []*string{&l.MacaroonFile, &l.TLSCertFile} }

// Overlaps implements Overlapping: a token names its service, and two
// rails of one service would each take the other's tokens.
func (l *L402Rail) Overlaps(o RailSettings) string {
	m, ok := o.(*L402Rail)
	if !ok || l.Service == "" || l.Service != m.Service {
		return ""
	}
	return fmt.Sprintf("both mint tokens for service %q, and L402 tokens are told apart by service", l.Service)
}
