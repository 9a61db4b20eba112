package config

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop"
)

// checker collects problems, locating each in the source when there is one.
type checker struct {
	src *source
	// undecoded lists the paths of values that failed to decode. The struct
	// holds zeros there, so problems in and derived from them are not
	// reported again.
	undecoded []string
	problems  []Problem
	// payToAtTop says a missing pay_to is reported once at the top level,
	// as every priced route and x402 rail lacks one.
	payToAtTop bool
	// implicit are the rails routes of the older form stand for, by name.
	implicit map[string]*Rail
}

func (v *checker) addf(path, format string, args ...any) {
	if coveredBy(path, v.undecoded) {
		return
	}
	p := Problem{Path: path, Message: fmt.Sprintf(format, args...)}
	if v.src != nil {
		p.File, p.Line = v.src.file, v.src.line(path)
	}
	if slices.Contains(v.problems, p) {
		return // found again through another route inheriting the setting
	}
	v.problems = append(v.problems, p)
}

// tainted reports whether something at, inside or around path failed to
// decode.
func (v *checker) tainted(path string) bool {
	for _, u := range v.undecoded {
		if coveredBy(u, []string{path}) || coveredBy(path, []string{u}) {
			return true
		}
	}
	return false
}

// coveredBy reports whether path is, or is inside, one of the paths.
func coveredBy(path string, paths []string) bool {
	for _, p := range paths {
		if p == "" || path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// Validate checks the whole configuration and reports every problem it
// finds, as an *Error. When it returns nil, each route's Resolved, each
// network's ChainID and the config's UpstreamURL are set.
//
// Validate does not fill defaults: a Config built in code must set what
// Parse would otherwise default (see the Default constants). Problems carry
// file and line only for a Config returned by Parse; the lines refer to the
// file Parse read.
func (c *Config) Validate() error {
	if err := c.validate(nil); err != nil {
		return err
	}
	return nil
}

func (c *Config) validate(undecoded []string) *Error {
	if c == nil {
		return &Error{Problems: []Problem{{Message: "no configuration"}}}
	}
	v := &checker{src: c.src, undecoded: undecoded}
	upstream := v.checkTop(c)
	chainIDs := v.checkNetworks(c.Networks)
	v.checkPayees(c)
	v.checkRails(c)
	resolved := v.checkRoutes(c, upstream)
	if len(v.problems) > 0 {
		c.clearResolved()
		return newError(v.problems)
	}
	c.upstream = upstream
	for i, n := range c.Networks {
		n.chainID = chainIDs[i]
	}
	for i, r := range c.Routes {
		r.Resolved = resolved[i]
	}
	return nil
}

func (v *checker) checkTop(c *Config) (upstream *url.URL) {
	if c.Listen == "" {
		v.addf("listen", "required: host:port, e.g. %q", DefaultListen)
	} else if err := checkListen(c.Listen); err != nil {
		v.addf("listen", "%v", err)
	}
	if c.Upstream != "" {
		u, err := parseURL(c.Upstream, "http", "https")
		if err != nil {
			v.addf("upstream", "%v", err)
		}
		upstream = u
	}
	switch {
	case c.Store == "":
		v.addf("store", "required: an SQLite file path or a postgres:// URL")
	case strings.Contains(c.Store, "://"):
		u, err := url.Parse(c.Store)
		if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
			v.addf("store", "%q: want an SQLite file path or a postgres:// URL", c.Store)
		}
	}
	if c.DataDir == "" {
		v.addf("data_dir", "required: a directory for the gateway's state")
	}
	switch c.Unmatched {
	case UnmatchedDeny:
	case UnmatchedFree:
		if c.Upstream == "" && !c.Embedded {
			v.addf("unmatched", "%q proxies unmatched requests to the top-level upstream, which is not set", c.Unmatched)
		}
	default:
		v.addf("unmatched", "%q: want %q or %q", c.Unmatched, UnmatchedDeny, UnmatchedFree)
	}
	if c.PayTo != "" {
		if err := checkAddress(c.PayTo); err != nil {
			v.addf("pay_to", "%v", err)
		}
	}
	v.checkLimits(&c.Limits)
	v.checkAdmin(&c.Admin)
	v.checkAuth(&c.Auth)
	switch c.Log.Format {
	case "", LogText, LogJSON:
	default:
		v.addf("log.format", "%q: want %q or %q", c.Log.Format, LogText, LogJSON)
	}
	return upstream
}

// checkAdmin reports an admin listener that is not host:port, or that
// listens beyond loopback without a token: it shows revenue and payers'
// activity, which is the seller's business only.
func (v *checker) checkAdmin(a *Admin) {
	if a.Listen == "" {
		if a.TokenEnv != "" {
			v.addf("admin.token_env", "set, but admin.listen is not: the admin listener is off")
		}
		return
	}
	if err := checkListen(a.Listen); err != nil {
		v.addf("admin.listen", "%v", err)
		return
	}
	if a.TokenEnv == "" && !LoopbackListen(a.Listen) {
		v.addf("admin.listen", "%q listens beyond loopback: set admin.token_env to the environment variable holding a bearer token", a.Listen)
	}
}

// checkAuth reports a forward-auth listener that is not host:port, or that
// listens beyond loopback without allow_remote.
func (v *checker) checkAuth(a *Auth) {
	if a.Listen == "" {
		if a.AllowRemote {
			v.addf("auth.allow_remote", "set, but auth.listen is not: the forward-auth listener is off")
		}
		return
	}
	if err := checkListen(a.Listen); err != nil {
		v.addf("auth.listen", "%v", err)
		return
	}
	if !a.AllowRemote && !LoopbackListen(a.Listen) {
		v.addf("auth.listen", "%q listens beyond loopback: the check believes the X-Original-*/X-Forwarded-* headers, so clients must not reach it; set auth.allow_remote: true if only the proxy can reach this address", a.Listen)
	}
}

// LoopbackListen reports whether host:port listens on loopback only:
// 127.0.0.0/8, ::1 or "localhost". An empty host (":9402") listens
// everywhere and is not.
func LoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkLimits reports limits that are negative or written as zero. A zero
// the file does not write (or a Config built in code leaves) means the
// default (Limits.OrDefaults), which the canonical form spells out.
func (v *checker) checkLimits(l *Limits) {
	bad := func(key string, n int64) bool {
		return n < 0 || n == 0 && v.src != nil && v.src.has("limits."+key)
	}
	for _, d := range []struct {
		key      string
		val, def time.Duration
	}{
		{"read_header_timeout", l.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"body_timeout", l.BodyTimeout, DefaultBodyTimeout},
		{"idle_timeout", l.IdleTimeout, DefaultIdleTimeout},
		{"upstream_timeout", l.UpstreamTimeout, DefaultUpstreamTimeout},
	} {
		if bad(d.key, int64(d.val)) {
			v.addf("limits."+d.key, "%s: must be positive, e.g. %s", formatDuration(d.val), formatDuration(d.def))
		}
	}
	for _, n := range []struct {
		key      string
		val, def int64
	}{
		{"max_header_bytes", int64(l.MaxHeaderBytes), DefaultMaxHeaderBytes},
		{"max_body_bytes", l.MaxBodyBytes, DefaultMaxBodyBytes},
		{"max_connections", int64(l.MaxConnections), DefaultMaxConnections},
		{"upstream_connections", int64(l.UpstreamConnections), DefaultUpstreamConnections},
		{"max_payments_in_flight", int64(l.MaxPaymentsInFlight), DefaultMaxPaymentsInFlight},
	} {
		if bad(n.key, n.val) {
			v.addf("limits."+n.key, "%d: must be positive, e.g. %d", n.val, n.def)
		}
	}
}

func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. %q", s, DefaultListen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	return nil
}

// parseURL accepts an absolute URL with a host and one of the schemes.
func parseURL(s string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%q: want an absolute %s URL with a host", s, orList(schemes))
	}
	return u, nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkNetworks checks the networks and returns their chain ids.
func (v *checker) checkNetworks(networks []*Network) []uint64 {
	ids := make([]uint64, len(networks))
	seen := map[string]int{}
	for i, n := range networks {
		p := fmt.Sprintf("networks[%d]", i)
		if n == nil {
			v.addf(p, "empty network")
			continue
		}
		if id, err := parseChainID(n.ID); err != nil {
			v.addf(p+".id", "%v", err)
		} else if j, dup := seen[n.ID]; dup {
			v.addf(p+".id", "%q is also networks[%d]", n.ID, j)
		} else {
			seen[n.ID], ids[i] = i, id
		}
		if n.Name != "" {
			v.checkName(p+".name", n.Name, "networks", i, seen)
		}
		if n.Facilitator != "" {
			if _, err := parseURL(n.Facilitator, "http", "https"); err != nil {
				v.addf(p+".facilitator", "%v", err)
			}
		}
		if n.Explorer != "" {
			if _, err := parseURL(strings.ReplaceAll(n.Explorer, "{tx}", "0"), "http", "https"); err != nil {
				v.addf(p+".explorer", "%q: want an absolute http or https URL with a host, and {tx} where the transaction hash goes", n.Explorer)
			} else if !strings.Contains(n.Explorer, "{tx}") {
				v.addf(p+".explorer", "%q: want {tx} where the transaction hash goes, as in https://basescan.org/tx/{tx}", n.Explorer)
			}
		}
		v.checkFacilitatorHeaders(p, n)
		switch {
		case n.RPC == "" && n.Facilitator == "":
			v.addf(p+".rpc", "required: the node's http(s) or ws(s) URL")
		case n.RPC != "":
			// Beside a facilitator, the node is read only: recovery and the
			// audit ask it what became of the facilitator's settlements.
			if _, err := parseURL(n.RPC, "http", "https", "ws", "wss"); err != nil {
				v.addf(p+".rpc", "%v", err)
			}
		}
		remote := n.Facilitator != ""
		switch {
		case remote && n.SettlementKeyFile != "":
			v.addf(p+".settlement_key_file", "set with a facilitator, which settles with its own key")
		case remote && n.SettlementKeyEnv != "":
			v.addf(p+".settlement_key_env", "set with a facilitator, which settles with its own key")
		case remote:
		case n.SettlementKeyFile != "" && n.SettlementKeyEnv != "":
			v.addf(p+".settlement_key_env", "set settlement_key_file or settlement_key_env, not both")
		case n.SettlementKeyFile == "" && n.SettlementKeyEnv == "":
			v.addf(p, "no settlement key: set settlement_key_file or settlement_key_env")
		case n.SettlementKeyEnv != "" && !envNameRE.MatchString(n.SettlementKeyEnv):
			v.addf(p+".settlement_key_env", "%q is not an environment variable name", n.SettlementKeyEnv)
		}
		switch {
		case n.BatchSettler == "":
		case remote:
			v.addf(p+".batch_settler", "set with a facilitator, which settles on its own")
		case checkAddress(n.BatchSettler) != nil:
			v.addf(p+".batch_settler", "%v", checkAddress(n.BatchSettler))
		}
		if n.ReceiptTimeout <= 0 {
			v.addf(p+".receipt_timeout", "%s: must be positive, e.g. %s", formatDuration(n.ReceiptTimeout), formatDuration(DefaultReceiptTimeout))
		}
		v.checkAssets(p, n.Assets)
	}
	return ids
}

func parseChainID(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf(`required: CAIP-2 "eip155:<chain id>", e.g. "eip155:8453"`)
	}
	ns, ref, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return 0, fmt.Errorf(`%q: want CAIP-2 "eip155:<chain id>", e.g. "eip155:8453"`, s)
	case ns != "eip155":
		return 0, fmt.Errorf("%q: only EVM (eip155) networks are supported", s)
	case ref == "" || strings.Trim(ref, "0123456789") != "" || ref[0] == '0':
		return 0, fmt.Errorf("%q: the chain id must be a positive decimal number without leading zeros", s)
	}
	id, err := strconv.ParseUint(ref, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: the chain id is too large", s)
	}
	return id, nil
}

func (v *checker) checkAssets(network string, assets []*Asset) {
	if len(assets) == 0 {
		v.addf(network+".assets", "none: list the tokens accepted on this network")
		return
	}
	symbols, addresses := map[string]int{}, map[string]int{}
	for j, a := range assets {
		p := fmt.Sprintf("%s.assets[%d]", network, j)
		if a == nil {
			v.addf(p, "empty asset")
			continue
		}
		sym := strings.ToUpper(a.Symbol)
		switch k, dup := symbols[sym]; {
		case a.Symbol == "":
			v.addf(p+".symbol", "required, e.g. USDC")
		case strings.ContainsFunc(a.Symbol, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			v.addf(p+".symbol", "%q: must be one word", a.Symbol)
		case dup:
			v.addf(p+".symbol", "%q is also %s.assets[%d]", a.Symbol, network, k)
		default:
			symbols[sym] = j
		}
		addr := strings.ToLower(a.Address)
		switch k, dup := addresses[addr]; {
		case a.Address == "":
			v.addf(p+".address", "required: the token contract's address")
		case checkAddress(a.Address) != nil:
			v.addf(p+".address", "%v", checkAddress(a.Address))
		case dup:
			v.addf(p+".address", "%q is also %s.assets[%d]", a.Address, network, k)
		default:
			addresses[addr] = j
		}
		if a.Decimals < 0 || a.Decimals > 36 {
			v.addf(p+".decimals", "%d: want 0 to 36", a.Decimals)
		}
		if a.EIP712Name == "" {
			v.addf(p+".eip712_name", "required: the token contract's EIP-712 domain name")
		}
		if a.EIP712Version == "" {
			v.addf(p+".eip712_version", "required: the token contract's EIP-712 domain version")
		}
		a.asyncExposure = coinop.Price{}
		if a.AsyncExposure != "" && a.Symbol != "" && a.Decimals >= 0 && a.Decimals <= 36 {
			if e, err := coinop.ParsePrice(a.AsyncExposure, a.Symbol, a.Decimals); err != nil {
				v.addf(p+".async_exposure", "%s", strings.TrimPrefix(err.Error(), "price "))
			} else {
				a.asyncExposure = e
			}
		}
	}
}

// headerNameRE is an HTTP field name (RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// reservedHeaders are set by the facilitator client itself or by the HTTP
// transport, never by a setting.
var reservedHeaders = map[string]bool{"Accept": true, "Connection": true, "Content-Length": true,
	"Content-Type": true, "Host": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true}

func (v *checker) checkFacilitatorHeaders(p string, n *Network) {
	if len(n.FacilitatorHeaders) > 0 && n.Facilitator == "" {
		v.addf(p+".facilitator_headers", "set without a facilitator")
	}
	seen := map[string]int{}
	for j, h := range n.FacilitatorHeaders {
		hp := fmt.Sprintf("%s.facilitator_headers[%d]", p, j)
		if h == nil {
			v.addf(hp, "empty header")
			continue
		}
		canon := http.CanonicalHeaderKey(h.Name)
		switch {
		case h.Name == "":
			v.addf(hp+".name", "required")
		case !headerNameRE.MatchString(h.Name):
			v.addf(hp+".name", "%q is not a header name", h.Name)
		case reservedHeaders[canon]:
			v.addf(hp+".name", "%s is set by the client itself", canon)
		default:
			if k, dup := seen[canon]; dup {
				v.addf(hp+".name", "%s is also facilitator_headers[%d]", canon, k)
			}
			seen[canon] = j
		}
		switch {
		case h.Value != "" && h.ValueEnv != "":
			v.addf(hp+".value_env", "set value or value_env, not both")
		case h.Value == "" && h.ValueEnv == "":
			v.addf(hp, "no value: set value, or value_env for a secret")
		case h.ValueEnv != "" && !envNameRE.MatchString(h.ValueEnv):
			v.addf(hp+".value_env", "%q is not an environment variable name", h.ValueEnv)
		case strings.ContainsAny(h.Value, "\r\n\x00"):
			v.addf(hp+".value", "a header value cannot hold a line break or NUL")
		}
	}
}

// checkRoutes checks the routes and resolves their effective settings.
func (v *checker) checkRoutes(c *Config, upstream *url.URL) []Resolved {
	resolved := make([]Resolved, len(c.Routes))
	if len(c.Routes) == 0 {
		v.addf("routes", "none: at least one route is required")
		return resolved
	}
	var noUpstream int
	for _, r := range c.Routes {
		if r != nil && r.Upstream == "" {
			noUpstream++
		}
	}
	if c.Upstream == "" && noUpstream == len(c.Routes) && !c.Embedded && c.Auth.Listen == "" {
		v.addf("upstream", "required: the absolute http(s) URL of the service behind the gateway (a configuration for forward-auth only sets auth.listen instead)")
	}

	mux := http.NewServeMux()
	var inMux []int // routes registered in mux, to name the one a pattern conflicts with
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r == nil {
			v.addf(p, "empty route")
			continue
		}
		res := &resolved[i]
		if v.checkMatch(p, r.Match, mux, c.Routes, inMux) {
			inMux = append(inMux, i)
			// A valid pattern with a blank starts with a method.
			if i := strings.IndexAny(r.Match, " \t"); i >= 0 {
				res.Method = r.Match[:i]
			}
		}

		switch {
		case r.Upstream != "":
			u, err := parseURL(r.Upstream, "http", "https")
			if err != nil {
				v.addf(p+".upstream", "%v", err)
			}
			res.Upstream = u
		case upstream != nil:
			u := *upstream
			res.Upstream = &u
		case c.Upstream == "" && noUpstream < len(c.Routes) && !c.Embedded:
			v.addf(p+".upstream", "none: set upstream here or at the top level")
		}

		if r.UpstreamTimeout < 0 {
			v.addf(p+".upstream_timeout", "%s: must be positive, e.g. %s", formatDuration(r.UpstreamTimeout), formatDuration(DefaultUpstreamTimeout))
		}
		if r.UpstreamConnections < 0 || r.UpstreamConnections == 0 && v.src != nil && v.src.has(p+".upstream_connections") {
			v.addf(p+".upstream_connections", "%d: must be positive, e.g. %d", r.UpstreamConnections, DefaultUpstreamConnections)
		}
		if v.tainted(p + ".free") {
			continue
		}
		if r.Free {
			if r.Price != "" {
				v.addf(p+".price", "set on a free route: a route is either free or priced")
			}
			for _, f := range []struct {
				name string
				set  bool
			}{{"asset", r.Asset != ""}, {"network", r.Network != ""}, {"pay_to", r.PayTo != ""}, {"max_timeout", r.MaxTimeout != 0}, {"settlement", r.Settlement != ""}, {"upgrade", r.Upgrade}, {"accept", r.Accept != nil}, {"free_tier", r.FreeTier != nil}} {
				if f.set {
					v.addf(p+"."+f.name, "set on a free route, which takes no payment")
				}
			}
			continue
		}
		v.checkPriced(p, c, r, res)
		v.checkFreeTier(p+".free_tier", r.FreeTier)
	}
	v.checkShadows(c.Routes, inMux, resolved)
	return resolved
}

// checkName checks the name of element i of list, one word unique among
// seen (names by element), and adds it there.
func (v *checker) checkName(at, name, list string, i int, seen map[string]int) {
	switch j, dup := seen[name]; {
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		v.addf(at, "%q: must be one word", name)
	case dup:
		v.addf(at, "%q is also %s[%d]", name, list, j)
	default:
		seen[name] = i
	}
}

// checkPayees reports, once at the top level, the settings every priced
// route of the older form and every x402 rail lacks: a network, a pay_to.
func (v *checker) checkPayees(c *Config) {
	var payees, noPayTo int
	for _, r := range c.Routes {
		if r != nil && !r.Free && r.Accept == nil {
			payees++
			if r.PayTo == "" {
				noPayTo++
			}
		}
	}
	for _, r := range c.Rails {
		if x, ok := railSettings[*X402Rail](r); ok {
			payees++
			if x.PayTo == "" {
				noPayTo++
			}
		}
	}
	if len(c.Networks) == 0 && payees > 0 {
		v.addf("networks", "none: priced routes need a network to be paid on")
	}
	if c.PayTo == "" && payees > 0 && noPayTo == payees {
		v.addf("pay_to", "required: the address that receives payments")
		v.payToAtTop = true
	}
}

// railSettings are r's settings if r is a rail of that module.
func railSettings[T RailSettings](r *Rail) (T, bool) {
	var zero T
	if r == nil || r.Settings == nil {
		return zero, false
	}
	t, ok := r.Settings.(T)
	return t, ok
}

// checkMatch checks a route's pattern and registers it in mux. It reports
// whether the pattern was registered.
func (v *checker) checkMatch(p, match string, mux *http.ServeMux, routes []*Route, inMux []int) bool {
	if match == "" {
		v.addf(p+".match", `required: a ServeMux pattern, e.g. "GET /weather"`)
		return false
	}
	if err := handle(http.NewServeMux(), match); err != nil {
		reason := err.Error()
		if _, after, ok := strings.Cut(reason, fmt.Sprintf("parsing %q: ", match)); ok {
			reason = after
		}
		v.addf(p+".match", "%q is not a ServeMux pattern: %s", match, reason)
		return false
	}
	if err := handle(mux, match); err == nil {
		return true
	}
	// Find the earlier route it conflicts with by pairing it with each.
	for _, j := range inMux {
		pair := http.NewServeMux()
		_ = handle(pair, routes[j].Match)
		if err := handle(pair, match); err != nil {
			why := err.Error()
			if _, after, ok := strings.Cut(why, ":\n"); ok {
				why = strings.ReplaceAll(after, "\n", " ")
			}
			v.addf(p+".match", "%q conflicts with routes[%d] (%q): %s", match, j, routes[j].Match, why)
			return false
		}
	}
	v.addf(p+".match", "%q conflicts with an earlier route", match)
	return false
}

// handle registers pattern in mux, returning ServeMux's panic as an error.
func handle(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

// checkPriced resolves a priced route: its own terms, then its prices in
// either form, then what settling later needs.
func (v *checker) checkPriced(p string, c *Config, r *Route, res *Resolved) {
	v.checkTerms(p, r)
	if legacy := legacyKeys(r); len(r.Accept) > 0 && len(legacy) > 0 {
		for _, k := range legacy {
			v.addf(p+"."+k, "set beside accept: a route lists its prices in accept, or (the older form) sets price, network, asset, pay_to and max_timeout; `coinop config upgrade` rewrites a file in the accept form")
		}
		return
	}
	if r.Accept != nil {
		v.checkAccept(p, c, r, res)
	} else {
		v.checkLegacyPrice(p, c, r, res)
	}
	v.checkAsync(p, r, res)
}

// legacyKeys lists the keys of the older form a route sets.
func legacyKeys(r *Route) []string {
	var keys []string
	for _, f := range []struct {
		key string
		set bool
	}{{"price", r.Price != ""}, {"asset", r.Asset != ""}, {"network", r.Network != ""}, {"pay_to", r.PayTo != ""}, {"max_timeout", r.MaxTimeout != 0}} {
		if f.set {
			keys = append(keys, f.key)
		}
	}
	return keys
}

// checkTerms checks what a priced route says of its resource and its
// settlement, whatever rails it accepts.
func (v *checker) checkTerms(p string, r *Route) {
	if r.MimeType != "" {
		if _, _, err := mime.ParseMediaType(r.MimeType); err != nil {
			v.addf(p+".mime_type", "%q is not a media type", r.MimeType)
		}
	}
	if r.Settlement != "" && r.Settlement != SettlementSync && r.Settlement != SettlementAsync {
		v.addf(p+".settlement", "%q: want sync or async", r.Settlement)
	}
}

// checkLegacyPrice resolves a route of the older form (network, asset,
// pay_to, max_timeout and price on the route) to its implicit x402 rail and
// price.
func (v *checker) checkLegacyPrice(p string, c *Config, r *Route, res *Resolved) {
	if r.Price == "" {
		v.addf(p, "no price: set price, or free: true")
	}
	x := &X402Rail{Network: r.Network, Asset: r.Asset, PayTo: r.PayTo, MaxTimeout: r.MaxTimeout}
	x.check(v, p, c, r.Price)
	if x.Resolved.Asset == nil || r.Price == "" || v.hasProblemUnder(p+".price") {
		return
	}
	if rail := v.implicitRail(p, c, x); rail != nil {
		v.addPrice(p+".price", r.Price, rail, res)
	}
}

// implicitRail is the rail a route of the older form stands for, one per
// name however many routes share it. A rail block of that name is that
// rail when it has the same settings (a file upgraded in part); with
// others, the name is taken, and implicitRail reports it and returns nil.
func (v *checker) implicitRail(p string, c *Config, x *X402Rail) *Rail {
	name := x.name()
	if r, ok := v.implicit[name]; ok {
		return r
	}
	if r := c.railNamed(name); r != nil {
		if y, ok := r.Settings.(*X402Rail); ok && y.Resolved == x.Resolved && y.MaxTimeout == x.MaxTimeout {
			return r
		}
		v.addf(p, "stands for the rail %s, which rails[%d] names with other settings: write this route's accept list", name, slices.Index(c.Rails, r))
		return nil
	}
	if v.implicit == nil {
		v.implicit = map[string]*Rail{}
	}
	r := &Rail{Name: name, Kind: KindX402, Settings: x}
	v.implicit[name] = r
	return r
}

// checkAsync checks that every rail an async route accepts caps what it
// serves before settling.
func (v *checker) checkAsync(p string, r *Route, res *Resolved) {
	if r.Settlement != SettlementAsync {
		return
	}
	for _, a := range res.Accept {
		capped, ok := a.Rail.Settings.(AsyncCapped)
		if !ok {
			v.addf(p+".settlement", "async: rail %s cannot serve a request before its payment settles", a.Rail.Name)
			continue
		}
		if _, err := capped.AsyncExposure(); err != nil {
			v.addf(p+".settlement", "%v", err)
		}
	}
}

// checkMaxTimeout checks the payment window of an x402 rail (or route).
func (v *checker) checkMaxTimeout(p string, d time.Duration) {
	if d < MinMaxTimeout || d > MaxMaxTimeout {
		v.addf(p+".max_timeout", "%s: want %s to %s", formatDuration(d), formatDuration(MinMaxTimeout), formatDuration(MaxMaxTimeout))
	}
}

// resolvePayTo is the checksummed recipient of the rail (or route) at p:
// its own pay_to, else the top-level one; "" when neither is valid.
func (v *checker) resolvePayTo(p string, c *Config, payTo string) string {
	switch {
	case payTo != "":
		if err := checkAddress(payTo); err != nil {
			v.addf(p+".pay_to", "%v", err)
			return ""
		}
	case c.PayTo == "":
		if !v.payToAtTop {
			v.addf(p+".pay_to", "none: set pay_to here or at the top level")
		}
		return ""
	case checkAddress(c.PayTo) == nil: // else reported at the top level
		payTo = c.PayTo
	default:
		return ""
	}
	return checksumAddress(payTo)
}

// resolveNetwork finds the network named id, or the only one when id is
// empty; nil when there is none or it failed to decode.
func (v *checker) resolveNetwork(p string, c *Config, id string) *Network {
	var names []string
	for _, n := range c.Networks {
		if n != nil && n.ID != "" {
			names = append(names, n.ID)
		}
	}
	var network *Network
	switch {
	case id != "":
		for _, n := range c.Networks {
			if n != nil && (n.ID == id || n.Name != "" && n.Name == id) {
				network = n
				break
			}
		}
		if network == nil && !v.tainted("networks") {
			v.addf(p+".network", "%q is not a configured network (%s)", id, listOr(names, "none are configured"))
		}
	case len(c.Networks) == 1:
		network = c.Networks[0]
	case len(c.Networks) > 1:
		v.addf(p+".network", "required: %d networks are configured%s", len(c.Networks), parenthesized(names))
	}
	if network == nil || v.tainted(fmt.Sprintf("networks[%d]", slices.Index(c.Networks, network))) {
		return nil
	}
	return network
}

// resolveAsset finds the asset of network named by symbol, or by the
// symbol in price ("0.001 USDC"), or the network's only one. It returns nil
// when there is none or its decimals or symbol are unusable (reported with
// the network).
func (v *checker) resolveAsset(p string, network *Network, symbol, price string) *Asset {
	var symbols []string
	for _, a := range network.Assets {
		if a != nil {
			symbols = append(symbols, a.Symbol)
		}
	}
	findAsset := func(sym string) *Asset {
		for _, a := range network.Assets {
			if a != nil && strings.EqualFold(a.Symbol, sym) {
				return a
			}
		}
		return nil
	}
	var inPrice string
	if f := strings.Fields(price); len(f) == 2 {
		inPrice = f[1]
	}
	var asset *Asset
	switch {
	case symbol != "":
		if asset = findAsset(symbol); asset == nil {
			v.addf(p+".asset", "%q is not an asset of %s (%s)", symbol, network.ID, listOr(symbols, "it has none"))
		} else if inPrice != "" && !strings.EqualFold(inPrice, asset.Symbol) {
			v.addf(p+".price", "%q is in %s, but asset is %s", price, inPrice, asset.Symbol)
			return nil
		}
	case inPrice != "":
		if asset = findAsset(inPrice); asset == nil && len(network.Assets) == 1 {
			asset = network.Assets[0] // ParsePrice explains the mismatch
		} else if asset == nil {
			v.addf(p+".price", "%q: %s has no asset %s (%s)", price, network.ID, inPrice, strings.Join(symbols, ", "))
		}
	case len(network.Assets) == 1:
		asset = network.Assets[0]
	case len(network.Assets) > 1 && price != "":
		v.addf(p+".asset", "required with an atomic price: %s has several assets (%s)", network.ID, strings.Join(symbols, ", "))
	case len(network.Assets) > 1 && !strings.HasPrefix(p, "routes["):
		v.addf(p+".asset", "required: %s has several assets (%s)", network.ID, strings.Join(symbols, ", "))
	}
	if asset == nil || asset.Decimals < 0 || asset.Decimals > 36 || asset.Symbol == "" {
		return nil
	}
	return asset
}

// checkNotToken reports a recipient that is the token contract itself
// (inherited says it came from the top-level pay_to).
func (v *checker) checkNotToken(p string, inherited bool, res X402Resolved) {
	if res.PayTo == "" || res.Asset.Address == "" || !strings.EqualFold(res.PayTo, res.Asset.Address) {
		return
	}
	// The token would pay itself: its balance is nobody's income, and no
	// one could ever spend it.
	at := p + ".pay_to"
	if inherited {
		at = "pay_to"
	}
	v.addf(at, "%s is the token contract of %s on %s, not a recipient", res.PayTo, res.Asset.Symbol, res.Network.ID)
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// parenthesized writes " (a, b)", or nothing for no names.
func parenthesized(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// listOr joins names, or returns none when there are no names.
func listOr(names []string, none string) string {
	if len(names) == 0 {
		return none
	}
	return strings.Join(names, ", ")
}

// formatDuration writes d in Go syntax without zero units: "1m", not "1m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
