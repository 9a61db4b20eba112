package config

import (
	"fmt"
	"net/netip"
	"time"
)

// FreeTier is a route's free tier: Requests per Per and identity (a
// verified payer, or the client's address) are served free.
type FreeTier struct {
	Requests int64         `yaml:"requests"`
	Per      time.Duration `yaml:"per"`
	// TrustedProxies are the proxies (addresses or CIDR prefixes) whose
	// X-Forwarded-For names the client; empty trusts none.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
}

// Proxies are TrustedProxies parsed; Validate has checked them.
func (f *FreeTier) Proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range f.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseProxy(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

func (v *checker) checkFreeTier(p string, f *FreeTier) {
	if f == nil {
		return
	}
	if f.Requests <= 0 {
		v.addf(p+".requests", "required: how many requests an identity gets free per window, at least 1")
	}
	switch {
	case f.Per <= 0:
		v.addf(p+".per", "required: the window, such as 1m or 24h")
	case f.Per < time.Second || f.Per%time.Second != 0:
		v.addf(p+".per", "%s: a whole number of seconds, at least 1s", formatDuration(f.Per))
	}
	for i, s := range f.TrustedProxies {
		if _, err := parseProxy(s); err != nil {
			v.addf(fmt.Sprintf("%s.trusted_proxies[%d]", p, i), "%q: want an IP address or a CIDR prefix such as 10.0.0.0/8", s)
		}
	}
}
