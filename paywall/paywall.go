// Package paywall is coinop's engine as net/http middleware: it prices
// routes, answers 402 with every rail's challenge, verifies presented
// payments, reserves them in a durable journal, calls the protected handler,
// and settles only when the handler answers with a status below 400.
//
// The engine knows no payment protocol: rails (x402, and later L402, credits)
// plug in through coinop.Rail, each route accepting one or more of them at
// its own price (Accept). A payment's way through the journal is package
// lifecycle's, which the x402 facilitator shares; this package adds what
// HTTP brings: the request target, the route, the challenge, and the
// moment the handler commits to a status. It links neither go-ethereum nor
// a SQL driver.
package paywall

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lifecycle"
)

// Journal durably records payments; see lifecycle.Journal. The store
// packages implement it.
type Journal = lifecycle.Journal

// Route prices the requests that match Pattern.
type Route struct {
	// Pattern is a net/http ServeMux pattern: "GET /weather", "/files/{name}".
	Pattern string
	// Free routes pass through unpaid; Accept is ignored.
	Free bool
	// Accept lists the ways to pay this route, offered in this order: each
	// a rail and what a request costs on it.
	Accept []Accept
	// Description and MimeType describe the resource in challenges.
	Description string
	MimeType    string
	// Settlement is coinop.ModeSync (the default: the response is released
	// after the payment settled on chain) or coinop.ModeAsync (released once
	// verified and reserved; settled in the background, within each
	// accept entry's AsyncExposure).
	Settlement string
	// Upgrade lets requests that ask to switch protocols (a WebSocket's
	// Upgrade) through on this priced route. If false (the default) they are
	// refused with 403 upgrade_not_allowed. When true, the payment is always
	// settled synchronously, and the switch (a 101, or the handler taking
	// the connection) happens only after the money moved: once the
	// connection is handed over, the engine sees nothing more of it, so
	// nothing can be taken back.
	Upgrade bool
	// Allowance, when set, may serve requests of this priced route free:
	// a free tier (see Allowance).
	Allowance Allowance
}

// Allowance lets some requests of a priced route through unpaid (a free
// tier). The engine asks it once a request's identity is known: the payer
// of a payment its rail verified, or "" for a request without a payment
// (the allowance then goes by the client's address). Admit reports whether
// the request is served free, and sets its headers (RateLimit) on h either
// way; a request it refuses goes on to be paid for, or answered 402. An
// error fails the request closed (503).
type Allowance interface {
	Admit(ctx context.Context, r *http.Request, payer string, h http.Header) (bool, error)
}

// Accept is one way to pay a route: a rail and its price.
type Accept struct {
	Rail coinop.Rail
	// Price is what one request costs on Rail.
	Price coinop.Price
	// Pricer, if set, prices each request instead of Price. A *coinop.Error
	// it returns is answered as it is (KindMalformed: 400); any other error
	// is an internal one (500), its detail logged only.
	Pricer coinop.Pricer
	// AsyncExposure caps, per payer, the total amount (atomic units of
	// this rail's asset) served on async routes but not yet settled. A
	// payment that would exceed it is settled synchronously instead. Nil on
	// an async route means every payment through this rail is settled
	// synchronously. The journal keeps the total (lifecycle.Exposure): it
	// holds across every engine on one journal and across restarts, and a
	// journal that cannot keep it has every payment settled synchronously.
	AsyncExposure *big.Int
}

// price is what r costs through a.
func (a *Accept) price(r *http.Request) (coinop.Price, error) {
	if a.Pricer == nil {
		return a.Price, nil
	}
	pr, err := a.Pricer.Price(r)
	var e *coinop.Error
	switch {
	case errors.As(err, &e):
		return coinop.Price{}, e // the Pricer's own verdict (a quantity the client got wrong: 400)
	case err != nil:
		return coinop.Price{}, coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "this request could not be priced")
	}
	return pr, nil
}

// Config configures a Paywall.
type Config struct {
	// Routes are matched with net/http ServeMux rules (most specific wins).
	Routes []Route
	// Journal records payments; required.
	Journal lifecycle.Journal
	// AllowUnmatched lets requests that match no route through unpaid. If
	// false (the default), they are answered 404.
	AllowUnmatched bool
	// SettleTimeout bounds one settlement, detached from the client's
	// request so a client hanging up cannot abandon it half-done. If zero,
	// 60 seconds.
	SettleTimeout time.Duration
	// SyncBatchWindow is how long a batch of sync payments takes payments
	// on a rail that batches them (see Batching) before it goes. If zero,
	// 2 ms.
	SyncBatchWindow time.Duration
	// Logger receives one line per payment and every internal error. If nil,
	// slog.Default().
	Logger *slog.Logger
	// SettleWorkers is how many background settlements run at once. If zero, 4.
	SettleWorkers int
	// BatchWindow is how long a background settlement waits for others to
	// share its transaction, on rails that batch (coinop.BatchSettler). If
	// zero, 50 ms; negative disables batching.
	BatchWindow time.Duration
	// OnStep, if set, is called at each step boundary of a payment:
	// "reserved", "tx_recorded", "tx_sent", "settled", "served", and
	// "failed" or "released" for a payment that ends without moving money.
	// For tracing, metrics and crash tests; it must not block.
	OnStep func(step string, p *coinop.Payment)
	// OnRefuse, if set, is called for every priced request answered with a
	// problem (a 402 challenge included) with the route's pattern and the
	// error answered. For metrics; it must not block.
	OnRefuse func(r *http.Request, route string, e *coinop.Error)
	// Rails are rails the engine must know beyond the routes' (a rail
	// removed from every route whose payments are still owed), so that
	// Resume finds them by name.
	Rails []coinop.Rail
	// Rand is the source of bearer charges' IDs. If nil, crypto/rand.
	Rand io.Reader
}

// Paywall is the engine. It is safe for concurrent use.
type Paywall struct {
	cfg    Config
	mux    *http.ServeMux
	routes map[string]*Route
	log    *slog.Logger
	lc     *lifecycle.Lifecycle // the journal lifecycle every payment goes through
	// pricedMethods are the methods priced patterns name (see pricedForOtherMethods).
	pricedMethods []string
	bg            *background
	sync          *syncBatches           // sync payments settled together
	rails         map[string]coinop.Rail // by name: every rail of every route, and Config.Rails
	expose        string                 // the rails' exposed headers, for CORS
}

// New checks cfg and builds a Paywall.
func New(cfg Config) (pw *Paywall, err error) {
	if cfg.Journal == nil {
		return nil, errors.New("paywall: Config.Journal is required")
	}
	if cfg.SyncBatchWindow <= 0 {
		cfg.SyncBatchWindow = 2 * time.Millisecond
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SettleWorkers == 0 {
		cfg.SettleWorkers = 4
	}
	if cfg.BatchWindow == 0 {
		cfg.BatchWindow = 50 * time.Millisecond
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	pw = &Paywall{cfg: cfg, mux: http.NewServeMux(), routes: map[string]*Route{}, log: cfg.Logger, rails: map[string]coinop.Rail{}}
	for _, r := range cfg.Rails {
		if err := pw.addRail(r); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Routes {
		rt := &cfg.Routes[i]
		if !rt.Free {
			if err := pw.addAccepts(rt); err != nil {
				return nil, err
			}
		}
		if _, dup := pw.routes[rt.Pattern]; dup {
			return nil, fmt.Errorf("paywall: route %q is listed twice", rt.Pattern)
		}
		if err := register(pw.mux, rt.Pattern); err != nil {
			return nil, fmt.Errorf("paywall: route %q: %w", rt.Pattern, err)
		}
		if rt.Settlement != "" && rt.Settlement != coinop.ModeSync && rt.Settlement != coinop.ModeAsync {
			return nil, fmt.Errorf("paywall: route %q: settlement %q is not sync or async", rt.Pattern, rt.Settlement)
		}
		pw.routes[rt.Pattern] = rt
	}
	if _, ok := cfg.Journal.(lifecycle.Exposure); !ok {
		for _, rt := range pw.routes {
			if rt.Settlement == coinop.ModeAsync {
				pw.log.Warn("the journal cannot keep the async exposure cap: async routes settle every payment synchronously", "route", rt.Pattern)
			}
		}
	}
	pw.pricedMethods = pricedMethods(pw.routes)
	pw.expose = exposedHeaders(pw.rails)
	pw.lc = lifecycle.New(cfg.Journal, cfg.Logger, cfg.OnStep)
	pw.bg = newBackground(pw)
	pw.sync = newSyncBatches(pw)
	return pw, nil
}

// addAccepts checks a priced route's accept list and registers its rails.
func (pw *Paywall) addAccepts(rt *Route) error {
	if len(rt.Accept) == 0 {
		return fmt.Errorf("paywall: route %q: a priced route needs at least one way to pay", rt.Pattern)
	}
	seen := map[coinop.Rail]bool{}
	for _, a := range rt.Accept {
		switch {
		case a.Rail == nil:
			return fmt.Errorf("paywall: route %q: an accept entry has no rail", rt.Pattern)
		case a.Pricer == nil && (a.Price.Amount == nil || a.Price.Amount.Sign() < 0):
			return fmt.Errorf("paywall: route %q: rail %q has no price", rt.Pattern, a.Rail.Name())
		case seen[a.Rail]:
			return fmt.Errorf("paywall: route %q: rail %q is accepted twice", rt.Pattern, a.Rail.Name())
		}
		seen[a.Rail] = true
		if err := pw.addRail(a.Rail); err != nil {
			return err
		}
	}
	return nil
}

// addRail registers r by name. Names identify rails in the journal, so two
// rails may not share one.
func (pw *Paywall) addRail(r coinop.Rail) error {
	name := r.Name()
	if name == "" {
		return errors.New("paywall: a rail has no name")
	}
	if prev, ok := pw.rails[name]; ok && prev != r {
		return fmt.Errorf("paywall: two rails are named %q; rail names identify payments in the journal and must be unique", name)
	}
	pw.rails[name] = r
	return nil
}

// Takes reports whether r carries a payment that answers one of the offers
// this engine makes for r's route: a rail's Inspect takes it. It has no
// side effect (no journal, no network, no cryptography), so a caller with
// two engines (a configuration reloaded while a payment for the old price
// was on its way) can ask which one made the offer a payment answers.
func (pw *Paywall) Takes(r *http.Request) bool {
	c, e := canonicalRequest(r)
	if e != nil {
		return false
	}
	rt := pw.Match(c)
	if rt == nil || rt.Free {
		return false
	}
	p, _, err := pw.inspect(c, rt)
	return err == nil && p != nil
}

// Owed counts the payments this engine settles in the background right
// now (queued or in progress).
func (pw *Paywall) Owed() int {
	pw.bg.mu.Lock()
	defer pw.bg.mu.Unlock()
	return len(pw.bg.owned)
}

// Rail returns the rail registered under name, or nil.
func (pw *Paywall) Rail(name string) coinop.Rail { return pw.rails[name] }

// Close stops the background settlements, waiting up to ctx for those in
// progress. Payments still owed stay journaled as settling and are finished
// by the next recovery pass.
func (pw *Paywall) Close(ctx context.Context) error { return pw.bg.close(ctx) }

// register adds a pattern to mux, turning ServeMux's panics on invalid or
// conflicting patterns into errors.
func register(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, routeMark{})
	return nil
}

// routeMark is the handler every route's pattern is registered with, so that
// a ServeMux answer can be told from its redirects.
type routeMark struct{}

func (routeMark) ServeHTTP(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }

// Middleware returns the engine as a func(http.Handler) http.Handler for use
// with any router, and the engine's Close: call it on shutdown, so that
// settlements in flight finish (or stay journaled for the next start).
func Middleware(cfg Config) (wrap func(http.Handler) http.Handler, close func(context.Context) error, err error) {
	pw, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return pw.Wrap, pw.Close, nil
}

// Wrap protects next.
func (pw *Paywall) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pw.serve(w, r, next)
	})
}

// Match returns the route r matches, or nil. r must be in the form the
// engine passes to the protected handler (see CanonicalPath); Match does not
// decide the request target itself. A request ServeMux would redirect to a
// slash form matches no route: the engine answers those itself, unpriced.
func (pw *Paywall) Match(r *http.Request) *Route {
	h, pattern := pw.mux.Handler(r)
	if _, ok := h.(routeMark); !ok {
		return nil // no match, or ServeMux's redirect to a slash form (see admit)
	}
	return pw.routes[pattern]
}

func (pw *Paywall) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	r, rt, ok := pw.admit(w, r)
	if !ok {
		return
	}
	n := note(r) // nil unless the caller reads notes
	if rt == nil || rt.Free {
		if n != nil {
			n.Outcome = "unmatched"
			if rt != nil {
				n.Route, n.Outcome = rt.Pattern, "free"
			}
		}
		next.ServeHTTP(w, withoutOverrides(r))
		return
	}
	if n != nil {
		n.Route = rt.Pattern
	}
	ignoreH2C(r)
	upgrade := isUpgrade(r)
	if upgrade && !rt.Upgrade {
		writeProblem(w, r, coinop.Errorf(coinop.KindForbidden, coinop.ReasonUpgradeNotAllowed, "%s %s does not allow protocol upgrades", r.Method, r.URL.Path), nil)
		return
	}
	w.Header().Set("Access-Control-Expose-Headers", pw.expose)
	p, accept, err := pw.inspect(r, rt)
	if err != nil {
		pw.refuse(w, r, rt, err)
		return
	}
	if p == nil {
		if pw.allowed(w, r, next, rt, "") {
			return
		}
		pw.refuse(w, r, rt, coinop.Errorf(coinop.KindPaymentRequired, coinop.ReasonPaymentRequired, "%s %s costs %s", r.Method, r.URL.Path, pw.headline(r, rt)))
		return
	}
	rail := accept.Rail
	p.Rail, p.Route = rail.Name(), rt.Pattern
	if n != nil {
		n.Rail, n.Payer = p.Rail, p.Payer
		if p.Amount != nil {
			n.Price = coinop.Price{Amount: p.Amount, Symbol: accept.Price.Symbol, Decimals: accept.Price.Decimals}.String()
		}
	}
	if p.IdempotencyKey == "" {
		p.IdempotencyKey = idempotencyKey(r)
	}
	if p.Bearer {
		// A bearer credential may be charged again and again: each charge
		// is a journal entry of its own, and nothing is looked up by ID.
		if err := pw.bearerID(p); err != nil {
			pw.refuse(w, r, rt, err)
			return
		}
	} else {
		if p.ID == "" || p.ReplayKey == "" {
			pw.refuse(w, r, rt, coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "rail %s returned a single-use payment without ID or replay key", rail.Name()))
			return
		}
		release, err := pw.lc.Hold(r.Context(), p.ID, lifecycle.DuplicateWait)
		if err != nil {
			pw.refuse(w, r, rt, err)
			return
		}
		defer release()
		if prev, err := pw.lc.Previous(r.Context(), rail, p); err != nil || prev != nil {
			pw.answerPrevious(w, r, next, rt, prev, err)
			return
		}
	}
	if n != nil {
		n.Payment = p.ID
	}
	if err := rail.Verify(r.Context(), p); err != nil {
		pw.refuse(w, r, rt, err)
		return
	}
	if pw.allowed(w, r, next, rt, p.Payer) {
		return
	}
	// Another payment for this purchase (its idempotency key) may be in
	// this process right now; once it is done, the journal says what it
	// became.
	prev, release, err := pw.lc.HoldPurchase(r.Context(), p, lifecycle.DuplicateWait)
	if err != nil || prev != nil {
		pw.answerPrevious(w, r, next, rt, prev, err)
		return
	}
	defer release()
	// Reserved sync: the journal decides when p is owed whether it may be
	// served before it settles (lifecycle.OweWithin), within limit.
	p.Mode = coinop.ModeSync
	var limit *big.Int
	if rt.Settlement == coinop.ModeAsync && !upgrade {
		limit = accept.AsyncExposure
	}
	if err := pw.lc.Reserve(r.Context(), p); err != nil {
		pw.refuse(w, r, rt, err)
		return
	}
	pw.serveReserved(w, r, next, rt, rail, p, limit)
}

// allowed serves r free when the route's allowance admits it, and reports
// whether r was answered (served, or refused because the allowance could
// not be asked).
func (pw *Paywall) allowed(w http.ResponseWriter, r *http.Request, next http.Handler, rt *Route, payer string) bool {
	if rt.Allowance == nil {
		return false
	}
	free, err := rt.Allowance.Admit(r.Context(), r, payer, w.Header())
	if err != nil {
		pw.refuse(w, r, rt, err)
		return true
	}
	if !free {
		return false
	}
	if n := note(r); n != nil {
		n.Outcome = "free-tier"
	}
	next.ServeHTTP(w, withoutOverrides(r))
	return true
}

// bearerID gives a bearer charge a fresh journal ID from Config.Rand.
func (pw *Paywall) bearerID(p *coinop.Payment) error {
	if p.ReplayKey != "" {
		return coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "rail %s returned a bearer charge with a replay key", p.Rail)
	}
	var b [16]byte
	if _, err := io.ReadFull(pw.cfg.Rand, b[:]); err != nil {
		return coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
	}
	p.ID = p.Rail + ":" + hex.EncodeToString(b[:])
	return nil
}

// idempotencyKey derives a purchase key from an Idempotency-Key header,
// scoped to the method (an HTTP idempotency key names one operation). Like
// every key it is journaled per payer, and the purchase it names is compared
// with the current one (samePurchase): a key reused for another resource or
// price is refused, never served.
func idempotencyKey(r *http.Request) string {
	k := r.Header.Get("Idempotency-Key")
	if k == "" || len(k) > 256 {
		return ""
	}
	sum := sha256.Sum256([]byte(k + "\x00" + r.Method))
	return "idem:" + hex.EncodeToString(sum[:16])
}

// ignoreH2C removes an offer to switch to cleartext HTTP/2 (what `curl
// --http2` sends on http URLs) from r. A server may ignore it (RFC 9113
// obsoletes it; RFC 7540 §3.2 lets the server answer in HTTP/1.1), which
// keeps such clients working on priced routes instead of refused as an
// upgrade, and keeps the offer from the upstream, whose switch the engine
// would have to be paid for first.
func ignoreH2C(r *http.Request) {
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "h2c") {
		return
	}
	r.Header.Del("Upgrade")
	r.Header.Del("Http2-Settings")
	var keep []string
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok != "" && !strings.EqualFold(tok, "upgrade") && !strings.EqualFold(tok, "http2-settings") {
				keep = append(keep, tok)
			}
		}
	}
	r.Header.Del("Connection")
	if len(keep) > 0 {
		r.Header.Set("Connection", strings.Join(keep, ", "))
	}
}

// isUpgrade reports whether r asks to switch protocols. Either header
// counts, whatever the other says: a request is refused or settled first on
// suspicion rather than proxied into a switch the engine did not expect.
func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return true
	}
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// answerPrevious serves prev again, or refuses with err.
func (pw *Paywall) answerPrevious(w http.ResponseWriter, r *http.Request, next http.Handler, rt *Route, prev *coinop.Payment, err error) {
	if err != nil {
		pw.refuse(w, r, rt, err)
		return
	}
	pw.serveAgain(w, r, next, rt, prev)
}

// serveAgain serves the response of a payment that was settled but never
// served, without charging again. Served is claimed with a compare-and-set,
// so concurrent retries are served once.
func (pw *Paywall) serveAgain(w http.ResponseWriter, r *http.Request, next http.Handler, rt *Route, prev *coinop.Payment) {
	sw := &settleWriter{ResponseWriter: w, settle: func(status int) bool {
		if status >= 400 {
			return true
		}
		if err := pw.cfg.Journal.MarkServed(r.Context(), prev.ID); err != nil {
			pw.refuse(w, r, rt, err)
			return false
		}
		pw.log.Info("served a settled payment's retry without a new charge", "payment", prev.ID, "tx", prev.Reference)
		setOutcome(r, "served-again")
		pw.lc.Step("served", prev)
		return true
	}}
	defer func() {
		if v := recover(); v != nil && !(sw.replaced && v == http.ErrAbortHandler) {
			panic(v)
		}
	}()
	next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), paymentKey{}, prev)))
	sw.finish()
}

// refuse answers with err's status, the problem body and a fresh challenge
// from every rail of the route. A rail whose challenge fails (it could not
// create an invoice) is left out and logged; when none could make an
// offer, a 402 becomes a 503.
func (pw *Paywall) refuse(w http.ResponseWriter, r *http.Request, rt *Route, err error) {
	e := coinop.AsError(err)
	switch {
	case r.Context().Err() != nil:
		// The client hung up; whatever failed failed because of that.
		pw.log.Debug("client went away during a payment check", "method", r.Method, "path", r.URL.Path, "err", err)
	case e.Kind == coinop.KindInternal || e.Kind == coinop.KindUnavailable:
		pw.log.Error("payment check could not complete", "method", r.Method, "path", r.URL.Path, "route", rt.Pattern, "reason", e.Reason, "err", err)
	default:
		// The access line (gateway) says it too; middleware users see
		// refusals at debug. Guarded: the arguments cost on the 402 path.
		if pw.log.Enabled(r.Context(), slog.LevelDebug) {
			pw.log.Debug("payment refused", "method", r.Method, "path", r.URL.Path, "route", rt.Pattern, "reason", e.Reason)
		}
	}
	ch := &coinop.Challenge{Header: w.Header(), Reason: e.Reason, Message: e.Message, Request: r}
	var headline coinop.Price
	offered := 0
	for i := range rt.Accept {
		a := &rt.Accept[i]
		charge, cerr := pw.charge(r, rt, a)
		if cerr == nil {
			cerr = a.Rail.Challenge(r.Context(), ch, charge)
		}
		if cerr != nil {
			pw.log.Error("a rail could not make its offer", "rail", a.Rail.Name(), "route", rt.Pattern, "err", cerr)
			continue
		}
		if offered == 0 {
			headline = charge.Price
		}
		offered++
	}
	if offered == 0 && e.Kind.Status() == http.StatusPaymentRequired {
		e = coinop.Errorf(coinop.KindUnavailable, coinop.ReasonNoOffer, "no way to pay for %s %s can be offered right now; try again shortly", r.Method, r.URL.Path)
	}
	if n := note(r); n != nil {
		n.Outcome, n.Reason = "refused", e.Reason
	}
	if pw.cfg.OnRefuse != nil {
		pw.cfg.OnRefuse(r, rt.Pattern, e)
	}
	writeProblem(w, r, e, &challengeView{Challenge: ch, Price: headline})
}

// charge is what one accept entry of rt asks for r.
func (pw *Paywall) charge(r *http.Request, rt *Route, a *Accept) (coinop.Charge, error) {
	price, err := a.price(r)
	if err != nil {
		return coinop.Charge{}, err
	}
	return coinop.Charge{Price: price, Route: rt.Pattern, Resource: coinop.Resource{
		URL: resourceURL(r), Method: r.Method, Description: rt.Description, MimeType: rt.MimeType,
	}}, nil
}

// headline is the route's first price, for messages.
func (pw *Paywall) headline(r *http.Request, rt *Route) string {
	pr, err := rt.Accept[0].price(r)
	if err != nil {
		return "a price that could not be computed"
	}
	return pr.String()
}

// inspect asks the route's rails, in order, for a credential in r. The
// first rail that takes one wins. A credential that answers another rail's
// offer (coinop.Error.OtherOffer) goes on to the next rail; when no rail
// takes it, the first refusal that was about this route's offers is
// answered, else the first one.
func (pw *Paywall) inspect(r *http.Request, rt *Route) (*coinop.Payment, *Accept, error) {
	var other error
	for i := range rt.Accept {
		a := &rt.Accept[i]
		charge, err := pw.charge(r, rt, a)
		if err != nil {
			return nil, nil, err
		}
		p, err := a.Rail.Inspect(r, charge)
		switch {
		case err != nil && coinop.AsError(err).OtherOffer:
			if other == nil {
				other = err
			}
		case err != nil:
			return nil, nil, err
		case p != nil:
			return p, a, nil
		}
	}
	return nil, nil, other
}

// serveReserved calls next with a writer that settles at the moment next
// commits to a status: below 400 → settle, then send; 400 and above →
// release the reservation, charge nothing.
func (pw *Paywall) serveReserved(w http.ResponseWriter, r *http.Request, next http.Handler, rt *Route, rail coinop.Rail, p *coinop.Payment, limit *big.Int) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var deliver bool // settled: the served mark waits for the response to reach the connection
	sw := &settleWriter{ResponseWriter: w, settle: func(status int) bool {
		ok := pw.settle(w, r, rt, rail, p, limit, status, cancel)
		deliver = ok && status < 400 && p.State == coinop.StateSettled
		return ok
	}}
	var marked bool
	markServed := func() {
		sctx, done := context.WithTimeout(context.WithoutCancel(r.Context()), pw.cfg.SettleTimeout)
		defer done()
		pw.lc.Served(sctx, p)
		marked = true
	}
	// A connection taken over after the settlement is delivered at that
	// moment: the handler may hold it for as long as a WebSocket lives.
	sw.onHijack = func() {
		if deliver {
			markServed()
		}
	}
	defer func() {
		if v := recover(); v != nil {
			if sw.replaced && v == http.ErrAbortHandler {
				return // our own answer replaced the handler's; it stopped as asked
			}
			if !sw.committed {
				pw.lc.Release(p, coinop.ReasonHandlerPanic)
			}
			panic(v)
		}
		sw.finish()
		if deliver && !marked && (sw.hijacked || delivered(w)) {
			markServed()
		}
	}()
	next.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, paymentKey{}, p)))
}

// delivered flushes what the handler wrote and reports whether it reached
// the connection. A settled payment is marked served only then: the mark
// makes a retry of the same payment a replay (402), so a mark written
// before the bytes left would turn a crash or a broken connection between
// the two into a purchase paid for and never received, and a client that
// pays again on that 402 into a second charge. Without the mark, the retry
// is served again without a new charge. A connection taken over by the
// handler (an upgrade; see settleWriter.Hijack) and a writer that cannot flush
// count as delivered.
func delivered(w http.ResponseWriter) bool {
	err := http.NewResponseController(w).Flush()
	return err == nil || errors.Is(err, http.ErrHijacked) || errors.Is(err, http.ErrNotSupported)
}

type paymentKey struct{}

// PaymentFrom returns the verified, reserved payment for the request whose
// context is ctx, or nil for free and unmatched requests. Handlers behind
// the paywall use it to learn who paid.
func PaymentFrom(ctx context.Context) *coinop.Payment {
	p, _ := ctx.Value(paymentKey{}).(*coinop.Payment)
	return p
}

// settle runs once, when the handler commits to status. It reports whether
// the handler's response may be sent.
func (pw *Paywall) settle(w http.ResponseWriter, r *http.Request, rt *Route, rail coinop.Rail, p *coinop.Payment, limit *big.Int, status int, cancel context.CancelFunc) bool {
	if status >= 400 {
		pw.lc.Release(p, coinop.ReasonUpstreamStatus(status))
		setOutcome(r, "released")
		pw.log.Info("upstream failed; payment released, nothing charged", "path", r.URL.Path, "route", rt.Pattern, "status", status, "payer", p.Payer, "payment", p.ID)
		return true
	}
	ctx, done := context.WithTimeout(context.WithoutCancel(r.Context()), pw.cfg.SettleTimeout)
	defer done()
	if js, ok := rail.(coinop.JournalSettler); ok && limit == nil {
		// Owed, moved and settled in one journal transaction.
		rc, err := pw.lc.SettleOwed(ctx, js, p)
		if rc != nil {
			for k, v := range rc.Header {
				w.Header()[k] = v
			}
		}
		if err != nil {
			return pw.settleFailed(w, r, rt, p, err, cancel)
		}
		setOutcome(r, "settled")
		return true
	}
	// From here on the settlement is owed: the journal says so durably
	// before the response (async) or the transaction (sync) goes out. With
	// a limit, the journal also decides, in the same transaction, whether
	// the payer's async exposure leaves room to serve p before it settles.
	// An async payment's response leaves as soon as it is owed: the
	// journal marks it served in the same write.
	var err error
	if limit != nil {
		_, err = pw.lc.OweServing(ctx, p, limit)
	} else {
		err = pw.lc.Owe(ctx, p)
	}
	if err != nil {
		cancel()
		pw.refuse(w, r, rt, err)
		return false
	}
	if p.Mode == coinop.ModeAsync {
		setOutcome(r, "owed")
		pw.bg.enqueue(rail, p)
		return true
	}
	rc, err := pw.collect(ctx, rail, p)
	if rc != nil {
		for k, v := range rc.Header {
			w.Header()[k] = v
		}
	}
	if err == nil {
		setOutcome(r, "settled")
		return true // settled: serveReserved marks it served once the response is delivered
	}
	// A switch of protocols hands the connection over for good: it waits
	// for money that moved, not for a transaction still pending.
	if rc != nil && rc.Pending && status != http.StatusSwitchingProtocols {
		// Not paid yet: the mark goes first, as the audit's evidence that
		// a response was given away should the settlement fail.
		setOutcome(r, "pending")
		pw.lc.Served(ctx, p)
		return true
	}
	return pw.settleFailed(w, r, rt, p, err, cancel)
}

// settleFailed answers a settlement that failed: the response is withheld.
func (pw *Paywall) settleFailed(w http.ResponseWriter, r *http.Request, rt *Route, p *coinop.Payment, err error, cancel context.CancelFunc) bool {
	e := coinop.AsError(err)
	if e.Kind != coinop.KindUnavailable {
		e.Kind = coinop.KindSettleFailed
	}
	pw.log.Warn("settlement failed; response withheld", "path", r.URL.Path, "route", rt.Pattern, "payer", p.Payer, "reason", e.Reason, "err", err)
	cancel()
	pw.refuse(w, r, rt, e)
	return false
}
