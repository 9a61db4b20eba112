// Package gateway builds coinop's reverse proxy from a validated config: it
// opens the journal, connects to each EVM network, builds the x402 rails,
// puts the paywall engine in front of httputil.ReverseProxy, and serves.
package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/admin"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/fwdauth"
	"github.com/coinop/coinop/metrics"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/recovery"
	"github.com/coinop/coinop/store/postgres"
	"github.com/coinop/coinop/store/sqlite"
)

// Options are a Gateway's dependencies beyond its config.
type Options struct {
	// Logger receives the gateway's logs. If nil, slog.Default().
	Logger *slog.Logger
	// Getenv reads settlement keys named by settlement_key_env. If nil, os.Getenv.
	Getenv func(string) string
	// Now is the clock for payment expiry. If nil, time.Now.
	Now func() time.Time
	// OnStep is passed to the paywall (see paywall.Config.OnStep).
	OnStep func(step string, p *coinop.Payment)
}

// Gateway is a configured coinop gateway. Close releases what New opened.
type Gateway struct {
	cfg         *config.Config
	log         *slog.Logger
	store       Journal
	clients     []*ethclient.Client
	reconcilers map[string]coinop.Reconciler
	handler     http.Handler // serves the current generation
	opts        Options
	chains      map[string]*evm.Chain // the networks settled here, by id
	// cur is what the configuration's routes and rails make: replaced
	// whole by Reload.
	cur     atomic.Pointer[generation]
	closing chan struct{}  // closed by Close: replaced generations close at once
	retired sync.WaitGroup // replaced generations not closed yet
	// stopRecovery ends the recovery loop Open starts, and recovered is
	// closed when it has; nil for a gateway that Serve runs.
	stopRecovery context.CancelFunc
	recovered    chan struct{}
	metrics      *metrics.Metrics
	checks       map[string]admin.Check // readiness probes, by name
	started      time.Time
	now          func() time.Time
	dev          devNodes // development Lightning nodes, kept across reloads
	// mppSecrets are the random challenge secrets of mpp rails without
	// secret_env, by rail name, kept across reloads so that challenges
	// issued before one stay payable.
	mppSecrets mppSecrets
}

// RecoveryInterval is how often a serving gateway reconciles unfinished
// payments (pending settlements, and anything a crashed instance left).
const RecoveryInterval = 30 * time.Second

// recoveryGrace is how old an unfinished payment must be before a periodic
// pass touches it: older than any request still in progress could be.
const recoveryGrace = 3 * time.Minute

// New opens the store and the chain connections described by cfg, which must
// have passed Validate, probes each chain (see Probe) and builds the handler.
//
// A probe that shows the gateway would take payments that can never settle
// (a node on another chain, a token with no code or another EIP-712 domain)
// stops New. An unreachable node does not: it is logged, and priced
// requests fail closed (503) until it answers. Every error New returns is
// one line for the operator, located in the config file when a setting
// caused it.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Gateway{cfg: cfg, log: opts.Logger, now: opts.Now, started: opts.Now(), reconcilers: map[string]coinop.Reconciler{},
		checks: map[string]admin.Check{}}
	g.metrics = metrics.New(opts.Now, func() int {
		if pw := g.paywall(); pw != nil {
			return pw.Owed()
		}
		return 0
	})
	g.opts, g.chains, g.closing = opts, map[string]*evm.Chain{}, make(chan struct{})
	g.handler = g.generations(func(gen *generation) (*paywall.Paywall, http.Handler) { return gen.pw, gen.handler })
	if err := g.build(ctx, opts); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// paywall is the current generation's engine.
func (g *Gateway) paywall() *paywall.Paywall {
	if c := g.cur.Load(); c != nil {
		return c.pw
	}
	return nil
}

// build opens what New promises; on error, Close releases what it opened.
func (g *Gateway) build(ctx context.Context, opts Options) error {
	cfg := g.cfg
	var err error
	if g.store, err = openJournal(ctx, cfg.Store); err != nil {
		return cfg.Errorf("store", "%s: %v", storeLabel(cfg.Store), err)
	}
	g.checks["journal"] = func(ctx context.Context) error {
		err := g.store.Ping(ctx)
		if err != nil {
			g.metrics.JournalError("probe")
		}
		return err
	}

	for i, n := range cfg.Networks {
		if n.Facilitator != "" && n.RPC == "" {
			continue // verified and settled by the facilitator; see below
		}
		ch, cl, err := dialNetwork(ctx, cfg, i, opts, g.metrics)
		if cl != nil {
			g.clients = append(g.clients, cl)
		}
		if err != nil {
			return err
		}
		if err := g.probe(ctx, cfg, i, ch); err != nil {
			return err
		}
		if n.Facilitator == "" {
			g.chains[n.ID] = ch
		}
		g.checks["chain "+n.ID] = ch.Ready
		g.reconcilers[n.ID] = ch
	}

	gen, err := g.assemble(ctx, cfg)
	if err != nil {
		return err
	}
	g.cur.Store(gen)
	return g.countLedger(ctx, cfg)
}

// countLedger shows what the credits ledger holds in the metrics, when the
// configuration has a credits rail.
func (g *Gateway) countLedger(ctx context.Context, cfg *config.Config) error {
	for _, r := range cfg.AllRails() {
		if r.Kind != config.KindCredits {
			continue
		}
		st, ok := g.store.(credits.Store)
		if !ok {
			return nil
		}
		led, err := credits.Open(ctx, st, g.now, rand.Reader)
		if err != nil {
			return cfg.Errorf("store", "credits ledger: %v", err)
		}
		g.metrics.Ledger(led.Outstanding)
		return nil
	}
	return nil
}

// generation is what one configuration's routes and rails make: the
// engine, the handler in front of the upstreams, and what the rails hold
// open. A reload makes a new one and retires the old one once the
// requests it serves are done.
type generation struct {
	cfg     *config.Config
	pw      *paywall.Paywall
	handler http.Handler
	// authPW is the engine of forward-auth checks (Gateway.Auth): the
	// same routes, every one settled synchronously; auth answers them.
	authPW  *paywall.Paywall
	auth    http.Handler
	closers []func() error  // what the rails hold open
	serving sync.WaitGroup  // requests in this generation's handler
	strip   map[string]bool // the request headers that carry payments, folded
	// extra are routes rails add (purchase routes), answered by local's
	// handlers rather than an upstream; reconcilers are the rails that
	// reconcile their own payments (credits), by rail name.
	extra       []paywall.Route
	local       map[string]http.Handler
	reconcilers map[string]coinop.Reconciler

	// prev is the generation this one replaced, which still takes the
	// payments signed for its offers until prevUntil.
	prev      atomic.Pointer[generation]
	prevUntil time.Time
}

// predecessor is the generation this one replaced while payments for its
// offers may still arrive, or nil.
func (gen *generation) predecessor(now time.Time) *generation {
	if !now.Before(gen.prevUntil) {
		return nil
	}
	return gen.prev.Load()
}

// carriesPayment reports whether r has a header some rail reads
// credentials from.
func (gen *generation) carriesPayment(r *http.Request) bool {
	for k := range r.Header {
		if gen.strip[paywall.FoldHeaderName(k)] {
			return true
		}
	}
	return false
}

// close stops the generation's background settlements (owed ones stay
// journaled for recovery) and releases what its rails hold open.
func (gen *generation) close(log *slog.Logger) error {
	var errs []error
	for _, pw := range []*paywall.Paywall{gen.pw, gen.authPW} {
		if pw == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := pw.Close(ctx); err != nil {
			log.Warn("closing", "err", err)
		}
		cancel()
	}
	for _, c := range gen.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// assemble builds cfg's rails, routes, engine and handler on the journal
// and the chains g holds open.
func (g *Gateway) assemble(ctx context.Context, cfg *config.Config) (gen *generation, err error) {
	gen = &generation{cfg: cfg, local: map[string]http.Handler{}, reconcilers: map[string]coinop.Reconciler{}}
	defer func() {
		if err != nil {
			gen.close(g.log)
		}
	}()
	chains := map[*config.Network]*evm.Chain{}
	for _, n := range cfg.Networks {
		if ch, ok := g.chains[n.ID]; ok {
			chains[n] = ch
		}
	}
	rails, err := g.provisionRails(ctx, gen, &railEnv{cfg: cfg, opts: g.opts, chains: chains, journal: g.store, dev: &g.dev, mppSecrets: &g.mppSecrets})
	if err != nil {
		return gen, err
	}
	limits := cfg.Limits.OrDefaults()
	var all []coinop.Rail
	for _, r := range cfg.AllRails() {
		all = append(all, rails[r])
	}
	strip := stripHeaders(all)
	gen.strip = strip
	// One proxy, and so one connection pool, per upstream, response
	// timeout and connection bound, whatever the number of routes to it.
	type upstreamKey struct {
		url     string
		timeout time.Duration
		conns   int
	}
	byUpstream := map[upstreamKey]http.Handler{}
	proxyTo := func(u *url.URL, timeout time.Duration, conns int) http.Handler {
		if timeout == 0 {
			timeout = limits.UpstreamTimeout
		}
		if conns == 0 {
			conns = limits.UpstreamConnections
		}
		k := upstreamKey{u.String(), timeout, conns}
		p, ok := byUpstream[k]
		if !ok {
			p = g.proxy(u, timeout, conns, limits.MaxBodyBytes, strip)
			byUpstream[k] = p
		}
		return p
	}
	proxies := map[string]http.Handler{} // route pattern → its upstream's proxy
	var routes []paywall.Route
	for _, rt := range cfg.Routes {
		res := rt.Resolved
		if res.Upstream != nil { // else served by the handler Wrap protects, or forward-auth only
			proxies[rt.Match] = proxyTo(res.Upstream, rt.UpstreamTimeout, rt.UpstreamConnections)
		}
		route := paywall.Route{Pattern: rt.Match, Free: rt.Free, Description: rt.Description, MimeType: rt.MimeType, Upgrade: rt.Upgrade}
		if !rt.Free {
			for _, a := range res.Accept {
				route.Accept = append(route.Accept, paywall.Accept{Rail: rails[a.Rail], Price: a.Price, AsyncExposure: a.AsyncExposure.Amount})
			}
			route.Settlement = rt.Settlement
			if route.Allowance, err = g.freeTier(ctx, rt); err != nil {
				return gen, err
			}
		}
		routes = append(routes, route)
	}
	routes = append(routes, gen.extra...)
	for pattern, h := range gen.local {
		proxies[pattern] = h
	}
	engine := paywall.Config{
		Routes: routes, Journal: g.store, AllowUnmatched: cfg.Unmatched == "free", Logger: g.log,
		OnStep: func(step string, p *coinop.Payment) {
			g.metrics.Step(step, p)
			if g.opts.OnStep != nil {
				g.opts.OnStep(step, p)
			}
		},
		OnRefuse: g.metrics.Refused,
	}
	pw, err := paywall.New(engine)
	if err != nil {
		return gen, err
	}
	gen.pw = pw
	// A forward-auth check cannot learn what the proxy's upstream
	// answered: its payments settle before the 2xx (x402's upfront flow).
	// The rails' own routes (a credits plan's purchase) are answered by the
	// gateway itself, never allowed through to an upstream that cannot
	// hand out what was bought.
	checked := routes[:len(routes)-len(gen.extra)]
	engine.Routes = make([]paywall.Route, len(checked))
	for i, rt := range checked {
		if !rt.Free {
			rt.Settlement = coinop.ModeSync
		}
		engine.Routes[i] = rt
	}
	if gen.authPW, err = paywall.New(engine); err != nil {
		return gen, err
	}
	var fallback http.Handler = http.NotFoundHandler()
	if u := cfg.UpstreamURL(); u != nil {
		fallback = proxyTo(u, 0, 0)
	}
	var accessLog *slog.Logger
	if cfg.Log.AccessLog() {
		accessLog = g.log
	}
	// The bound on payments worked on at once is the generation's: both
	// listeners share it.
	slots := make(chan struct{}, limits.MaxPaymentsInFlight)
	gen.handler = access(accessLog, g.metrics, g.now, bound(limits, admit(slots, gen.carriesPayment, pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := pw.Match(r); rt != nil {
			if p, ok := proxies[rt.Pattern]; ok {
				p.ServeHTTP(w, r)
				return
			}
		}
		if next, ok := r.Context().Value(nextKey{}).(http.Handler); ok {
			next.ServeHTTP(w, withoutHeaders(r, strip))
			return
		}
		fallback.ServeHTTP(w, r)
	})))))
	gen.auth = access(accessLog, g.metrics, g.now, admit(slots, gen.carriesPayment, gen.authPW.Wrap(fwdauth.Allow)))
	return gen, nil
}

// Auth is the forward-auth endpoint (package fwdauth) of the current
// configuration: a proxy in front of the seller's service asks it whether
// each request is paid, and it answers from the gateway's routes, each
// settled before the answer. It believes the headers that name the original
// request, so it must be served where only the proxy reaches it.
//
// The rails' own routes (a credits plan's purchase, at
// /.well-known/coinop/plans/NAME and the plan's path) are never allowed
// through a check: nothing behind the proxy could hand out what was bought.
// The endpoint sells them itself instead, as the gateway's listener does,
// to a request for exactly such a path (not a check: the proxy passes the
// purchase to it, auth_request off). A check must not be sent to a plan's
// path.
func (g *Gateway) Auth() http.Handler {
	refund := func(ctx context.Context, id, reason string) (*coinop.Payment, error) {
		gen := g.cur.Load()
		if gen == nil {
			return nil, coinop.Errorf(coinop.KindUnavailable, "gateway_closed", "the gateway is shutting down")
		}
		return gen.authPW.Refund(ctx, id, reason)
	}
	check := g.generations(func(gen *generation) (*paywall.Paywall, http.Handler) { return gen.authPW, gen.auth })
	auth := fwdauth.New(fwdauth.Config{Now: g.now, Refund: refund, Check: check})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gen := g.cur.Load(); gen != nil && gen.sells(r) {
			g.handler.ServeHTTP(w, r)
			return
		}
		auth.ServeHTTP(w, r)
	})
}

// sells reports whether r asks for one of the rails' own routes (a plan's
// purchase path) by its exact, unencoded path.
func (gen *generation) sells(r *http.Request) bool {
	if r.URL.RawPath != "" {
		return false
	}
	for _, rt := range gen.extra {
		pattern := rt.Pattern
		if _, p, ok := strings.Cut(pattern, " "); ok {
			pattern = p
		}
		if pattern == r.URL.Path {
			return true
		}
	}
	return false
}

// generations serves each request with the current generation's handler,
// which of picks with the engine deciding it. A payment for an offer only the
// replaced configuration made (its price) is served by that one, within the
// payment's window.
func (g *Gateway) generations(of func(*generation) (*paywall.Paywall, http.Handler)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gen := g.cur.Load()
		if gen == nil {
			paywall.WriteError(w, r, coinop.Errorf(coinop.KindUnavailable, "gateway_closed", "the gateway is shutting down"))
			return
		}
		pw, _ := of(gen)
		if old := gen.predecessor(g.now()); old != nil && gen.carriesPayment(r) && !pw.Takes(r) {
			if opw, _ := of(old); opw.Takes(r) {
				gen = old
			}
		}
		gen.serving.Add(1)
		defer gen.serving.Done()
		_, h := of(gen)
		h.ServeHTTP(w, r)
	})
}

// Admin is the operator listener's handler (package admin): the gateway's
// metrics, readiness probes of the journal and of every chain it dials,
// the payments API over its journal, and the dashboard, which names the
// configured networks and assets and links to their explorers. getenv reads the bearer token admin.token_env names; a named
// variable that is empty is an error, never an open listener.
func (g *Gateway) Admin(getenv func(string) string) (http.Handler, error) {
	token := ""
	if env := g.cfg.Admin.TokenEnv; env != "" {
		if token = getenv(env); token == "" {
			return nil, g.cfg.Errorf("admin.token_env", "environment variable %s is empty: the admin listener needs its bearer token", env)
		}
	}
	cfg := admin.Config{Metrics: g.metrics.Handler(), Checks: g.checks, Token: token}
	for _, n := range g.cfg.Networks {
		an := admin.Network{ID: n.ID, Name: n.Name, Explorer: n.Explorer}
		if title := paywall.NetworkName(n.ID); title != n.ID {
			an.Title = title
		}
		for _, a := range n.Assets {
			an.Assets = append(an.Assets, admin.Asset{Symbol: a.Symbol, Address: a.Address, Decimals: a.Decimals})
		}
		cfg.Networks = append(cfg.Networks, an)
	}
	if j, ok := g.store.(admin.Journal); ok {
		cfg.Journal = j
	}
	return admin.Handler(cfg), nil
}

// rpcHTTPClient is the HTTP client of a JSON-RPC connection. go-ethereum's
// default keeps two idle connections per node, so concurrent payments (a
// simulation each, and a settlement's calls) would open and close a TCP
// connection per call; this one keeps enough to reuse them.
func rpcHTTPClient(m *metrics.Metrics, network string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: m.RPC(network, tr)}
}

// proxy returns a reverse proxy to target. Payment headers stay at the
// gateway; the upstream learns the payer from X-Coinop-Payer, which clients
// cannot forge because incoming X-Coinop-* headers are removed, under any
// name an upstream folds to one (X-Coinop_Payer). The request
// comes from the engine with its target in canonical form (Path decoded,
// RawPath empty), which SetURL keeps and the transport encodes once, so the
// upstream acts on the path the route was decided on; method- and
// URL-override headers, which would make it act on another method or path,
// are removed. An upstream that sends no response headers within timeout
// gets the client a 504, and any payment is released.
//
// At most conns connections to target are open at once, each kept alive
// for the next request (a request beyond them waits for one, until its
// client gives up), so however many clients are connected, the upstream
// sees a bounded pool. Small bodies are read whole before the answer goes
// out (bufferSmallBody), which frees their connection at once.
func (g *Gateway) proxy(target *url.URL, timeout time.Duration, conns int, maxBody int64, strip map[string]bool) http.Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxConnsPerHost = conns
	// Every connection may stay idle for the next request: none is closed
	// only to be dialled again.
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = 0
	tr.ResponseHeaderTimeout = timeout
	return &httputil.ReverseProxy{
		Transport:      tr,
		BufferPool:     &bufferPool{},
		ModifyResponse: bufferSmallBody,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			// Compared folded: X-Coinop_Payer is X-Coinop-Payer to
			// CGI-style upstreams (PHP, WSGI).
			for k := range pr.Out.Header {
				if f := paywall.FoldHeaderName(k); strings.HasPrefix(f, "X-Coinop-") || strip[f] {
					delete(pr.Out.Header, k)
				}
			}
			paywall.DelOverrides(pr.Out.Header)
			if p := paywall.PaymentFrom(pr.In.Context()); p != nil {
				pr.Out.Header.Set("X-Coinop-Payer", p.Payer)
				pr.Out.Header.Set("X-Coinop-Payment", p.ID)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			perr := proxyError(r, err, maxBody)
			if r.Context().Err() == nil {
				g.log.Warn("upstream call failed", "upstream", target.Host, "path", r.URL.Path, "reason", coinop.AsError(perr).Reason, "err", err)
			}
			paywall.WriteError(w, r, perr)
		},
	}
}

// stripHeaders lists, by folded name, the request headers the rails
// declare they consume (coinop.Rail.Headers): payments stay at the gateway.
func stripHeaders(rails []coinop.Rail) map[string]bool {
	m := map[string]bool{}
	for _, r := range rails {
		for _, h := range r.Headers().Request {
			m[paywall.FoldHeaderName(h)] = true
		}
	}
	return m
}

// Handler is the gateway as an http.Handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Store is the gateway's payments journal.
func (g *Gateway) Store() Journal { return g.store }

// Journal is what a gateway needs of a payments journal; store/sqlite and
// store/postgres implement it.
type Journal interface {
	paywall.Journal
	recovery.Journal
	Get(ctx context.Context, id string) (*coinop.Payment, error)
	List(ctx context.Context, state coinop.State, limit int) ([]*coinop.Payment, error)
	// Ping reports whether the journal can be read: a readiness probe.
	Ping(ctx context.Context) error
	Close() error
}

// OpenJournal opens the journal a config's store names: a postgres:// or
// postgresql:// URL, or a SQLite file path. Several gateway instances may
// share one PostgreSQL journal; a SQLite file belongs to one instance.
// Errors name the store, never a PostgreSQL password.
func OpenJournal(ctx context.Context, store string) (Journal, error) {
	j, err := openJournal(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", storeLabel(store), err)
	}
	return j, nil
}

// openJournal returns a nil Journal on error, never a nil *Store in one,
// so that callers may test it and Close it.
func openJournal(ctx context.Context, store string) (Journal, error) {
	if strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://") {
		j, err := postgres.Open(ctx, store)
		if err != nil {
			return nil, err
		}
		return j, nil
	}
	j, err := sqlite.Open(store)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// Serve serves on ln until ctx is done, then shuts down gracefully, giving
// in-flight requests (and their settlements) up to 30 seconds. The config's
// limits bound the time to read headers, idle connections, the header size
// and the open connections (one more is answered 503 and closed).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	return g.serve(ctx, ln, g.handler)
}

// ServeAuth is Serve for the forward-auth endpoint (Auth) alone, as
// `coinop auth` runs it: the same limits, recovery passes and shutdown.
func (g *Gateway) ServeAuth(ctx context.Context, ln net.Listener) error {
	return g.serve(ctx, ln, g.Auth())
}

// AuthServer is an http.Server for the forward-auth endpoint beside the
// gateway's own listener (Serve runs the recovery passes), with the
// config's limits.
func (g *Gateway) AuthServer() *http.Server { return g.server(g.Auth()) }

func (g *Gateway) server(h http.Handler) *http.Server {
	l := g.cfg.Limits.OrDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

func (g *Gateway) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := g.server(h)
	ln = newLimitListener(ln, g.cfg.Limits.OrDefaults().MaxConnections)
	rep := g.Recover(ctx, g.started) // before the first request is served
	errc := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); g.recoverLoop(rctx, rep) }()
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		stop()
		<-done
		return err
	case <-ctx.Done():
	}
	<-done
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	return nil
}

// recoverLoop reconciles unfinished payments until ctx is done, after a
// first pass (rep) over what was unfinished before this process started
// and whose lease is expired (or this journal's own: a SQLite file's
// leases belong to the one gateway that owns the file, so a restart takes
// them back at once), left by a crashed instance: at RecoveryInterval,
// what stayed unfinished for longer than recoveryGrace. Payments leased by
// another live instance sharing a PostgreSQL journal are its own.
func (g *Gateway) recoverLoop(ctx context.Context, rep recovery.Report) {
	for {
		// What a pass could not decide yet (a transaction still pending)
		// is looked at again soon, then at the regular interval.
		next := RecoveryInterval
		if rep.Pending > 0 {
			next = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
		olderThan := g.now().Add(-recoveryGrace)
		if rep.Pending > 0 {
			olderThan = g.started
		}
		rep = g.Recover(ctx, olderThan)
	}
}

// Recover reconciles unfinished payments last updated before olderThan with
// their chains, logging what it did; problems are logged, not fatal.
func (g *Gateway) Recover(ctx context.Context, olderThan time.Time) recovery.Report {
	ctx, cancel := context.WithTimeout(ctx, RecoveryInterval)
	defer cancel()
	reconcilers := g.reconcilers
	if gen := g.cur.Load(); gen != nil && len(gen.reconcilers) > 0 {
		reconcilers = maps.Clone(g.reconcilers)
		maps.Copy(reconcilers, gen.reconcilers)
	}
	rep, err := recovery.Run(ctx, g.store, reconcilers, olderThan, g.log)
	if e, ok := errors.AsType[*coinop.Error](err); ok && e.Reason == coinop.ReasonStoreUnavailable {
		g.metrics.JournalError("recovery")
	}
	if err != nil {
		g.log.Warn("recovery incomplete; will retry", "err", err)
	}
	if pw := g.paywall(); len(rep.Resettle) > 0 && pw != nil {
		pw.Resume(ctx, rep.Resettle)
	}
	if rep.Checked > 0 {
		g.log.Info("recovery pass", "checked", rep.Checked, "settled", rep.Settled, "failed", rep.Failed, "released", rep.Released, "pending", rep.Pending, "unreconcilable", rep.Unreconcilable)
	}
	return rep
}

// Close stops background settlements (owed ones stay journaled for the next
// start) and releases the store and the chain connections.
func (g *Gateway) Close() error {
	if g.stopRecovery != nil {
		g.stopRecovery()
		<-g.recovered
		g.stopRecovery = nil
	}
	if g.closing != nil {
		select {
		case <-g.closing:
		default:
			close(g.closing)
		}
		g.retired.Wait()
	}
	if gen := g.cur.Swap(nil); gen != nil {
		if err := gen.close(g.log); err != nil {
			g.log.Warn("closing a rail", "err", err)
		}
	}
	for _, c := range g.clients {
		c.Close()
	}
	g.clients = nil
	g.dev.close()
	if g.store != nil {
		err := g.store.Close()
		g.store = nil
		return err
	}
	return nil
}
