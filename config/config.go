// Package config reads coinop.yaml, the file that tells the gateway where to
// listen, which upstream to protect, which chains and tokens exist, which
// ways to pay it takes (named rail blocks, each read and checked by its
// module: railModules) and what each route costs on which rail.
//
// Config is the one canonical form of that file. Parse decodes strictly (an
// unknown field is an error with its line number), fills defaults and calls
// Validate, which reports every problem at once. Canonical writes the
// configuration back with every default and inherited value spelled out.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"go.yaml.in/yaml/v3"
)

// Defaults Parse applies to keys the file leaves out (or sets to null).
const (
	DefaultListen         = "127.0.0.1:8402"
	DefaultDataDir        = "./.coinop"
	DefaultUnmatched      = UnmatchedDeny
	DefaultReceiptTimeout = 30 * time.Second
	DefaultDecimals       = 6
	DefaultMaxTimeout     = 60 * time.Second
)

// Defaults of the limits block: generous for an API or a download, tight
// enough that a slow or greedy client cannot hold the gateway's resources.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultUpstreamTimeout   = 30 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = 10 << 20
	DefaultMaxConnections    = 1024
	// DefaultUpstreamConnections is per upstream connection pool: enough
	// for 2,500 requests a second to an upstream that takes 100 ms.
	DefaultUpstreamConnections = 256
	// DefaultMaxPaymentsInFlight is enough to fill the journal's group
	// commits (up to 128 writes each).
	DefaultMaxPaymentsInFlight = 128
)

// What the gateway does with a request that no route matches.
const (
	UnmatchedDeny = "deny" // answer 404
	UnmatchedFree = "free" // proxy to the top-level upstream without payment
)

// Bounds of Route.MaxTimeout: a payer needs time to sign and send, and a long
// window keeps a signed authorization spendable long after the request.
const (
	MinMaxTimeout = 10 * time.Second
	// Settlement modes of a route.
	SettlementSync  = "sync"
	SettlementAsync = "async"
	MaxMaxTimeout   = time.Hour
)

// Config is the whole gateway configuration.
type Config struct {
	// Embedded says the configuration is for a Go program that serves its
	// own handlers behind the paywall (gateway.Open): upstream is optional,
	// and routes without one are served by the program. Set by
	// LoadEmbedded and ParseEmbedded; never read from the file.
	Embedded bool `yaml:"-"`
	// Listen is the host:port the gateway serves on.
	Listen string `yaml:"listen"`
	// Upstream is the absolute http(s) URL of the service behind the
	// gateway, used by routes without their own upstream and by unmatched
	// requests when Unmatched is "free".
	Upstream string `yaml:"upstream,omitempty"`
	// Store is the payment journal: an SQLite file path, or a postgres:// URL.
	// Parse defaults it to DataDir + "/coinop.db".
	Store string `yaml:"store"`
	// DataDir holds the gateway's local state.
	DataDir string `yaml:"data_dir"`
	// Unmatched is UnmatchedDeny or UnmatchedFree.
	Unmatched string `yaml:"unmatched"`
	// PayTo is the recipient address for routes without their own.
	PayTo    string     `yaml:"pay_to,omitempty"`
	Networks []*Network `yaml:"networks,omitempty"`
	// Rails are the ways to pay that routes accept by name. Parse adds
	// the implicit rails that routes of the older form stand for.
	Rails  []*Rail  `yaml:"rails,omitempty"`
	Routes []*Route `yaml:"routes"`
	// Limits bound what one client may take of the gateway.
	Limits Limits `yaml:"limits"`
	// Admin is the operator listener: metrics, health and readiness.
	Admin Admin `yaml:"admin,omitempty"`
	// Auth is the forward-auth listener: nginx, Caddy or Traefik in front
	// asks it whether each request is paid.
	Auth Auth `yaml:"auth,omitempty"`
	// Log says how the gateway logs.
	Log Log `yaml:"log,omitempty"`

	src      *source  // where the configuration was read from; nil if built in code
	upstream *url.URL // Upstream, parsed by Validate
}

// Admin is the operator listener (/metrics, /healthz, /readyz), on an
// address of its own; off when Listen is empty. Beyond loopback it needs a
// bearer token, named by an environment variable and never written here.
type Admin struct {
	Listen   string `yaml:"listen,omitempty"`
	TokenEnv string `yaml:"token_env,omitempty"`
}

// Auth is the forward-auth listener (package fwdauth), on an address of its
// own; off when Listen is empty (`coinop auth` serves it alone). It
// believes the headers that name the original request, so it must be
// reachable by the proxy only: beyond loopback it needs AllowRemote, the
// operator's word that the address is on a network clients cannot reach.
type Auth struct {
	Listen      string `yaml:"listen,omitempty"`
	AllowRemote bool   `yaml:"allow_remote,omitempty"`
}

// DefaultAuthListen is where `coinop auth` listens when neither the config
// nor its --listen flag says.
const DefaultAuthListen = "127.0.0.1:8403"

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// Log says how the gateway logs.
type Log struct {
	// Format is LogText (the default) or LogJSON.
	Format string `yaml:"format,omitempty"`
	// Access, unless false, logs one line per request: route, status,
	// rail, price, payer, outcome and latency. Nothing secret is logged.
	Access *bool `yaml:"access,omitempty"`
}

// AccessLog reports whether one line per request is logged.
func (l Log) AccessLog() bool { return l.Access == nil || *l.Access }

// Limits are the gateway's bounds on clients and upstreams. Every one has a
// default (the Default constants); all must be positive.
type Limits struct {
	// ReadHeaderTimeout bounds the time to read a request's headers: a
	// client trickling them (slowloris) is disconnected.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// BodyTimeout bounds the time to read a request's body, from the end of
	// its headers. Requests that switch protocols (WebSocket) have none.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// IdleTimeout closes a kept-alive connection idle for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// UpstreamTimeout is the default of routes' upstream_timeout.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds a request's body; beyond it the answer is 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxConnections bounds the client connections open at once (WebSocket
	// sessions included); one more is answered 503 and closed.
	MaxConnections int `yaml:"max_connections"`
	// UpstreamConnections is the default of routes' upstream_connections.
	UpstreamConnections int `yaml:"upstream_connections"`
	// MaxPaymentsInFlight bounds the requests carrying a payment that the
	// gateway works on at once, from decoding the payment to the journal's
	// record of the outcome; one more waits for a turn before any of that.
	MaxPaymentsInFlight int `yaml:"max_payments_in_flight"`
}

// OrDefaults is l with every zero bound replaced by its default.
func (l Limits) OrDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.BodyTimeout, DefaultBodyTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	def(&l.UpstreamTimeout, DefaultUpstreamTimeout)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.UpstreamConnections == 0 {
		l.UpstreamConnections = DefaultUpstreamConnections
	}
	if l.MaxPaymentsInFlight == 0 {
		l.MaxPaymentsInFlight = DefaultMaxPaymentsInFlight
	}
	return l
}

// HeaderSetting is one request header: its value written in the file, or
// read from an environment variable at start-up, exactly one of the two.
type HeaderSetting struct {
	Name     string `yaml:"name"`
	Value    string `yaml:"value,omitempty"`
	ValueEnv string `yaml:"value_env,omitempty"`
}

// Network is one EVM chain the gateway accepts payments on.
type Network struct {
	// ID is the CAIP-2 chain identifier, "eip155:<chain id>".
	ID string `yaml:"id"`
	// Name is another name rails may give the network by ("base"):
	// optional, one word, unique among the networks' names and IDs.
	Name string `yaml:"name,omitempty"`
	// RPC is the node URL: http, https, ws or wss. The gateway verifies
	// and settles payments itself through it; beside a Facilitator it is
	// only read, to reconcile the facilitator's settlements (recovery,
	// `coinop audit`). Without it, a facilitator network's payments whose
	// settlement went unanswered cannot be reconciled: recovery marks them
	// unreconcilable_no_rpc and leaves them for an operator.
	RPC string `yaml:"rpc,omitempty"`
	// Facilitator is the base URL of an x402 facilitator (`coinop
	// facilitator`, or anyone's) that verifies and settles this network's
	// payments with its own key: POST /verify, POST /settle.
	Facilitator string `yaml:"facilitator,omitempty"`
	// FacilitatorHeaders are sent with every request to the facilitator
	// (an API key, an account id). A secret is named by an environment
	// variable (value_env), never written here.
	FacilitatorHeaders []*HeaderSetting `yaml:"facilitator_headers,omitempty"`
	// The settlement key pays gas to submit payers' authorizations. It is
	// named by a file or an environment variable, exactly one of the two,
	// and never written in this file: configurations get committed and
	// pasted into bug reports. A facilitator network has none.
	SettlementKeyFile string `yaml:"settlement_key_file,omitempty"`
	SettlementKeyEnv  string `yaml:"settlement_key_env,omitempty"`
	// ReceiptTimeout bounds the wait for a settlement transaction's receipt
	// (with a facilitator: for its answer to /settle).
	// Explorer is where people look at the network's transactions: a URL
	// with {tx} in place of a transaction hash
	// ("https://basescan.org/tx/{tx}"). The admin dashboard links
	// settlements to it; without it, it shows their hashes as text.
	Explorer string `yaml:"explorer,omitempty"`
	// BatchSettler is a deployed CoinopBatchSettler contract
	// (contracts/CoinopBatchSettler.sol). When set, async settlements that
	// queue up together share one transaction.
	BatchSettler   string        `yaml:"batch_settler,omitempty"`
	ReceiptTimeout time.Duration `yaml:"receipt_timeout"`
	// Assets are the tokens accepted on this network.
	Assets []*Asset `yaml:"assets"`

	chainID uint64
}

// ChainID is the numeric chain id of n.ID. It is set by Validate.
func (n *Network) ChainID() uint64 { return n.chainID }

// Asset is an ERC-20 token that supports EIP-3009 transfers with authorization.
type Asset struct {
	// Symbol names the asset in prices ("0.001 USDC"); unique per network,
	// compared case-insensitively.
	Symbol string `yaml:"symbol"`
	// Address is the token contract. Canonical form is EIP-55 checksummed.
	Address string `yaml:"address"`
	// Decimals separates atomic units from whole ones; 0 to 36.
	Decimals int `yaml:"decimals"`
	// The token's EIP-712 domain name and version, which payers sign over.
	EIP712Name    string `yaml:"eip712_name"`
	EIP712Version string `yaml:"eip712_version"`
	// AsyncExposure caps, per payer, what async routes may serve in this
	// asset before the payments settle: "0.50 USDC" or atomic units.
	// Required for an async route's asset.
	AsyncExposure string `yaml:"async_exposure,omitempty"`

	asyncExposure coinop.Price
}

// Exposure is AsyncExposure, parsed; a nil Amount when unset. Validate sets it.
func (a *Asset) Exposure() coinop.Price { return a.asyncExposure }

// Route prices the requests matching one net/http ServeMux pattern.
type Route struct {
	// Match is a ServeMux pattern: "[METHOD ][HOST]/[PATH]", with {wildcards}
	// and trailing-slash subtrees.
	Match string `yaml:"match"`
	// Free routes are proxied without payment and take no price.
	Free bool `yaml:"free,omitempty"`
	// Accept lists the rails a priced route accepts, each with its price,
	// offered in this order.
	Accept []*Accept `yaml:"accept,omitempty"`

	// Price, Asset, Network, PayTo and MaxTimeout are the older form of a
	// route's price, on one implicit x402 rail (LegacyX402Name). A route
	// sets them or Accept, not both; Parse rewrites them as Accept.

	// Price is "<amount> <symbol>" ("0.001 USDC") or atomic units ("1000").
	Price string `yaml:"price,omitempty"`
	// Asset is the symbol of the asset the price is in; needed only for an
	// atomic price on a network with several assets.
	Asset string `yaml:"asset,omitempty"`
	// Network is the ID of the network to be paid on; optional when exactly
	// one network is configured.
	Network string `yaml:"network,omitempty"`
	// PayTo is the recipient; Config.PayTo if empty.
	PayTo string `yaml:"pay_to,omitempty"`
	// Upstream overrides Config.Upstream for this route.
	Upstream string `yaml:"upstream,omitempty"`
	// Description and MimeType describe the resource in the 402 answer.
	Description string `yaml:"description,omitempty"`
	MimeType    string `yaml:"mime_type,omitempty"`
	// MaxTimeout is how long a payer's signed payment may stay valid.
	MaxTimeout time.Duration `yaml:"max_timeout,omitempty"`
	// Settlement is "sync" (the default: the response is released once the
	// payment settled on chain) or "async" (released once verified and
	// reserved, settled in the background within the asset's
	// async_exposure per payer).
	Settlement string `yaml:"settlement,omitempty"`
	// Upgrade lets requests that switch protocols (WebSocket) through on a
	// priced route; each is settled before the switch. Refused (403) when
	// false. Free routes let them through anyway.
	Upgrade bool `yaml:"upgrade,omitempty"`
	// UpstreamTimeout bounds the wait for the upstream's response headers:
	// beyond it the client gets 504 and nothing is charged.
	// Limits.UpstreamTimeout if zero.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout,omitempty"`
	// UpstreamConnections bounds the connections open at once to the
	// route's upstream, kept alive and shared by every client connection;
	// a request beyond it waits for one to come free. Routes with the same
	// upstream, upstream_timeout and upstream_connections share one pool.
	// WebSocket sessions do not count. Limits.UpstreamConnections if zero.
	UpstreamConnections int `yaml:"upstream_connections,omitempty"`
	// FreeTier serves some requests of a priced route free, per identity
	// and window, before it turns to 402.
	FreeTier *FreeTier `yaml:"free_tier,omitempty"`

	// Resolved holds what the route's fields and their inherited defaults
	// amount to. Validate sets it when it returns nil and clears it otherwise.
	Resolved Resolved `yaml:"-"`
}

// Resolved is a route's effective settings.
type Resolved struct {
	// Method is the pattern's method, "" when it matches every method.
	Method string
	// Upstream is where matching requests are proxied.
	Upstream *url.URL
	// The rest is for priced routes only: zero when the route is free.
	// Accept is the route's accept list, resolved, in order.
	Accept []Accepted
}

// UpstreamURL is Upstream, parsed; nil when Upstream is empty. It is set by
// Validate.
func (c *Config) UpstreamURL() *url.URL { return c.upstream }

// Load reads and parses the configuration file at path. Relative paths in
// it are relative to the file's directory (see resolvePaths).
func Load(path string) (*Config, error) { return load(path, false) }

// LoadEmbedded is Load for a Go program that serves its own handlers (see
// Config.Embedded).
func LoadEmbedded(path string) (*Config, error) { return load(path, true) }

func load(path string, embedded bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parse(path, data, embedded)
	if err != nil {
		return nil, err
	}
	c.resolvePaths(filepath.Dir(path))
	return c, nil
}

// Parse decodes a configuration file, fills in defaults and validates it.
// filename only labels problems ("coinop.yaml:7: ...").
//
// The Config returned is in canonical form: each route's inherited network,
// asset, pay_to and upstream are written into its own fields, prices read
// "<amount> <symbol>" and addresses are checksummed, so that
// Parse(c.Canonical()) equals c.
//
// Any error is an *Error listing every problem found.
func Parse(filename string, data []byte) (*Config, error) { return parse(filename, data, false) }

// ParseEmbedded is Parse for a Go program that serves its own handlers
// (see Config.Embedded).
func ParseEmbedded(filename string, data []byte) (*Config, error) { return parse(filename, data, true) }

func parse(filename string, data []byte, embedded bool) (*Config, error) {
	fail := func(line int, format string, args ...any) (*Config, error) {
		return nil, &Error{Problems: []Problem{{File: filename, Line: line, Message: fmt.Sprintf(format, args...)}}}
	}

	// The node tree gives problems their line numbers; the strict decode
	// below fills the struct.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return fail(0, "no configuration: the file has no settings")
	case err != nil:
		line, msg := yamlErrorLine(err)
		return fail(line, "%s", msg)
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, msg := yamlErrorLine(err)
			return fail(line, "%s", msg)
		}
		if len(next.Content) > 0 && next.Content[0].ShortTag() != "!!null" {
			return fail(next.Content[0].Line, "a second YAML document; a configuration is one document")
		}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return fail(0, "no configuration: the file has no settings")
	}
	src := &source{file: filename, root: root}

	c := &Config{Embedded: embedded}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	var decoded []Problem
	var undecoded []string // paths whose values failed to decode
	if err := strict.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line, msg := yamlErrorLine(err)
			return fail(line, "%s", msg)
		}
		for _, e := range te.Errors {
			p, path := src.decodeProblem(e)
			decoded = append(decoded, p)
			if path != nil {
				undecoded = append(undecoded, *path)
			}
		}
	}
	c.src = src
	railProblems, railUndecoded := decodeRails(c, src)
	decoded = append(decoded, railProblems...)
	undecoded = append(undecoded, railUndecoded...)
	applyDefaults(c, src)

	if len(decoded) > 0 && !src.sameShape(c) {
		// A list element failed to decode and was dropped, so indices in
		// the struct no longer match the file: semantic checks would point
		// at the wrong lines.
		return nil, newError(decoded)
	}
	problems := decoded
	if err := c.validate(undecoded); err != nil {
		problems = append(problems, err.Problems...)
	}
	if len(problems) > 0 {
		return nil, newError(problems)
	}
	c.normalize()
	return c, nil
}

// applyDefaults fills the keys the file leaves out or sets to null. Explicit
// values, even empty or zero ones, are left for Validate to judge: the
// default of 6 decimals must not replace an explicit 0.
func applyDefaults(c *Config, src *source) {
	set := func(path string) bool { return src.has(path) }
	if !set("listen") {
		c.Listen = DefaultListen
	}
	if !set("data_dir") {
		c.DataDir = DefaultDataDir
	}
	if !set("store") {
		c.Store = strings.TrimRight(c.DataDir, "/") + "/coinop.db"
	}
	if !set("unmatched") {
		c.Unmatched = DefaultUnmatched
	}
	for i, n := range c.Networks {
		if n == nil {
			continue
		}
		p := fmt.Sprintf("networks[%d]", i)
		if !set(p + ".receipt_timeout") {
			n.ReceiptTimeout = DefaultReceiptTimeout
		}
		for j, a := range n.Assets {
			if a != nil && !set(fmt.Sprintf("%s.assets[%d].decimals", p, j)) {
				a.Decimals = DefaultDecimals
			}
		}
	}
	for i, r := range c.Routes {
		// Free routes have no payment window; Validate rejects one if set.
		// Routes that accept rails take it from each rail.
		if r != nil && !r.Free && r.Accept == nil && !set(fmt.Sprintf("routes[%d].max_timeout", i)) {
			r.MaxTimeout = DefaultMaxTimeout
		}
		if r != nil && !r.Free && !set(fmt.Sprintf("routes[%d].settlement", i)) {
			r.Settlement = SettlementSync
		}
	}
}

// normalize writes the resolved values of a validated configuration into its
// fields.
func (c *Config) normalize() {
	c.Limits = c.Limits.OrDefaults()
	if c.PayTo != "" {
		c.PayTo = checksumAddress(c.PayTo)
	}
	for _, n := range c.Networks {
		if n.BatchSettler != "" {
			n.BatchSettler = checksumAddress(n.BatchSettler)
		}
		for _, a := range n.Assets {
			a.Address = checksumAddress(a.Address)
			if a.asyncExposure.Amount != nil {
				a.AsyncExposure = a.asyncExposure.String()
			}
		}
	}
	for _, r := range c.Rails {
		r.Settings.Normalize()
	}
	for _, r := range c.Routes {
		res := r.Resolved
		if r.Upstream == "" {
			r.Upstream = c.Upstream
		}
		if r.UpstreamTimeout == 0 {
			r.UpstreamTimeout = c.Limits.UpstreamTimeout
		}
		if r.UpstreamConnections == 0 {
			r.UpstreamConnections = c.Limits.UpstreamConnections
		}
		if r.Free {
			continue
		}
		if r.Settlement == "" {
			r.Settlement = SettlementSync
		}
		// A route of the older form is written as the accept list of its
		// implicit rail, which joins the rail blocks.
		r.Price, r.Asset, r.Network, r.PayTo, r.MaxTimeout = "", "", "", "", 0
		r.Accept = make([]*Accept, len(res.Accept))
		for i, a := range res.Accept {
			r.Accept[i] = &Accept{Rail: a.Rail.Name, Price: a.Price.String()}
			if !slices.Contains(c.Rails, a.Rail) {
				a.Rail.Settings.Normalize()
				c.Rails = append(c.Rails, a.Rail)
			}
		}
	}
}

// clone copies the configuration's fields, not its resolved values.
func (c *Config) clone() *Config {
	d := *c
	d.src, d.upstream = nil, nil
	d.Networks = make([]*Network, len(c.Networks))
	for i, n := range c.Networks {
		if n == nil {
			continue
		}
		m := *n
		m.chainID = 0
		m.Assets = make([]*Asset, len(n.Assets))
		for j, a := range n.Assets {
			if a != nil {
				b := *a
				m.Assets[j] = &b
			}
		}
		d.Networks[i] = &m
	}
	d.Rails = make([]*Rail, len(c.Rails))
	for i, r := range c.Rails {
		if r != nil {
			s := *r
			if r.Settings != nil {
				// A shallow copy: settings are plain values.
				v := reflect.New(reflect.TypeOf(r.Settings).Elem())
				v.Elem().Set(reflect.ValueOf(r.Settings).Elem())
				s.Settings = v.Interface().(RailSettings)
			}
			d.Rails[i] = &s
		}
	}
	d.Routes = make([]*Route, len(c.Routes))
	for i, r := range c.Routes {
		if r != nil {
			s := *r
			s.Resolved = Resolved{}
			s.Accept = make([]*Accept, len(r.Accept))
			for j, a := range r.Accept {
				if a != nil {
					b := *a
					s.Accept[j] = &b
				}
			}
			if r.Accept == nil {
				s.Accept = nil
			}
			d.Routes[i] = &s
		}
	}
	return &d
}

func (c *Config) clearResolved() {
	c.upstream = nil
	for _, n := range c.Networks {
		if n != nil {
			n.chainID = 0
		}
	}
	for _, r := range c.Routes {
		if r != nil {
			r.Resolved = Resolved{}
		}
	}
}
