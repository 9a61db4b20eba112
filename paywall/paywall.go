// Package paywall is coinop's engine as net/http middleware: it prices
// routes, answers 402 with every rail's challenge, verifies presented
// payments, reserves them in a durable journal, calls the protected handler,
// and settles only when the handler answers with a status below 400.
//
// The engine knows no payment protocol: rails (x402, and later L402, credits)
// plug in through coinop.Rail, and the journal through the Journal
// interface. The package links neither go-ethereum nor a SQL driver.
package paywall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Journal durably records payments. The store packages implement it.
type Journal interface {
	// Reserve records p as verified and claims its replay key, durably,
	// before the handler runs. A payment already reserved or settled yields a
	// *coinop.Error of KindReplayed.
	Reserve(ctx context.Context, p *coinop.Payment) error
	// Transition moves payment id from one state to another (compare and
	// set), recording tx and reason when non-empty.
	Transition(ctx context.Context, id string, from, to coinop.State, tx, reason string) error
}

// Route prices the requests that match Pattern.
type Route struct {
	// Pattern is a net/http ServeMux pattern: "GET /weather", "/files/{name}".
	Pattern string
	// Free routes pass through unpaid; Price and Rails are ignored.
	Free bool
	// Price is what one request costs.
	Price coinop.Price
	// Rails are the ways to pay this route, offered in order.
	Rails []coinop.Rail
	// Description and MimeType describe the resource in challenges.
	Description string
	MimeType    string
}

// Config configures a Paywall.
type Config struct {
	// Routes are matched with net/http ServeMux rules (most specific wins).
	Routes []Route
	// Journal records payments; required.
	Journal Journal
	// AllowUnmatched lets requests that match no route through unpaid. If
	// false (the default), they are answered 404.
	AllowUnmatched bool
	// SettleTimeout bounds one settlement, detached from the client's
	// request so a client hanging up cannot abandon it half-done. If zero,
	// 60 seconds.
	SettleTimeout time.Duration
	// Logger receives one line per payment and every internal error. If nil,
	// slog.Default().
	Logger *slog.Logger
}

// Paywall is the engine. It is safe for concurrent use.
type Paywall struct {
	cfg      Config
	mux      *http.ServeMux
	routes   map[string]*Route
	log      *slog.Logger
	inflight sync.Map // payment ID → struct{}: duplicates in flight get 409
}

// New checks cfg and builds a Paywall.
func New(cfg Config) (pw *Paywall, err error) {
	if cfg.Journal == nil {
		return nil, errors.New("paywall: Config.Journal is required")
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pw = &Paywall{cfg: cfg, mux: http.NewServeMux(), routes: map[string]*Route{}, log: cfg.Logger}
	for i := range cfg.Routes {
		rt := &cfg.Routes[i]
		if !rt.Free && (rt.Price.Amount == nil || len(rt.Rails) == 0) {
			return nil, fmt.Errorf("paywall: route %q: a priced route needs a price and at least one rail", rt.Pattern)
		}
		if _, dup := pw.routes[rt.Pattern]; dup {
			return nil, fmt.Errorf("paywall: route %q is listed twice", rt.Pattern)
		}
		if err := register(pw.mux, rt.Pattern); err != nil {
			return nil, fmt.Errorf("paywall: route %q: %w", rt.Pattern, err)
		}
		pw.routes[rt.Pattern] = rt
	}
	return pw, nil
}

// register adds a pattern to mux, turning ServeMux's panics on invalid or
// conflicting patterns into errors.
func register(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

// Middleware returns the engine as a func(http.Handler) http.Handler for use
// with any router.
func Middleware(cfg Config) (func(http.Handler) http.Handler, error) {
	pw, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return pw.Wrap, nil
}

// Wrap protects next.
func (pw *Paywall) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pw.serve(w, r, next)
	})
}

// Match returns the route r matches, or nil.
func (pw *Paywall) Match(r *http.Request) *Route {
	_, pattern := pw.mux.Handler(r)
	return pw.routes[pattern]
}

func (pw *Paywall) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	rt := pw.Match(r)
	if rt == nil {
		if pw.cfg.AllowUnmatched {
			next.ServeHTTP(w, r)
			return
		}
		writeProblem(w, r, coinop.Errorf(coinop.KindNotFound, "no_route", "no route matches %s %s", r.Method, r.URL.Path), nil)
		return
	}
	if rt.Free {
		next.ServeHTTP(w, r)
		return
	}
	exposeHeaders(w.Header())
	charge := coinop.Charge{Price: rt.Price, Resource: coinop.Resource{
		URL: resourceURL(r), Method: r.Method, Description: rt.Description, MimeType: rt.MimeType,
	}}

	var (
		p    *coinop.Payment
		rail coinop.Rail
	)
	for _, rl := range rt.Rails {
		var err error
		if p, err = rl.Inspect(r, charge); err != nil {
			pw.refuse(w, r, rt, charge, err)
			return
		}
		if p != nil {
			rail = rl
			break
		}
	}
	if p == nil {
		pw.refuse(w, r, rt, charge, coinop.Errorf(coinop.KindPaymentRequired, "payment_required", "%s %s costs %s", r.Method, r.URL.Path, rt.Price))
		return
	}
	if _, busy := pw.inflight.LoadOrStore(p.ID, struct{}{}); busy {
		pw.refuse(w, r, rt, charge, coinop.Errorf(coinop.KindInFlight, "payment_in_flight", "this payment is being processed by another request"))
		return
	}
	defer pw.inflight.Delete(p.ID)

	if err := pw.seen(r.Context(), p); err != nil {
		pw.refuse(w, r, rt, charge, err)
		return
	}
	if err := rail.Verify(r.Context(), p); err != nil {
		pw.refuse(w, r, rt, charge, err)
		return
	}
	if err := pw.cfg.Journal.Reserve(r.Context(), p); err != nil {
		pw.refuse(w, r, rt, charge, err)
		return
	}
	pw.serveReserved(w, r, next, rt, charge, rail, p)
}

// Looker is an optional Journal method: a point read that lets the engine
// refuse a replayed payment before any cryptography or chain call.
type Looker interface {
	Get(ctx context.Context, id string) (*coinop.Payment, error)
}

// seen refuses a payment the journal already holds (unless it was released).
func (pw *Paywall) seen(ctx context.Context, p *coinop.Payment) error {
	l, ok := pw.cfg.Journal.(Looker)
	if !ok {
		return nil
	}
	prev, err := l.Get(ctx, p.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case prev.State == coinop.StateReleased:
		return nil
	}
	return coinop.Errorf(coinop.KindReplayed, "payment_replayed", "this payment was already used")
}

// refuse answers with err's status, the problem body and a fresh challenge.
func (pw *Paywall) refuse(w http.ResponseWriter, r *http.Request, rt *Route, charge coinop.Charge, err error) {
	e := coinop.AsError(err)
	if e.Kind == coinop.KindInternal || e.Kind == coinop.KindUnavailable {
		pw.log.Error("payment check could not complete", "method", r.Method, "path", r.URL.Path, "reason", e.Reason, "err", err)
	}
	ch := &coinop.Challenge{Header: w.Header(), Reason: e.Reason, Message: e.Message}
	for _, rl := range rt.Rails {
		rl.Challenge(ch, charge)
	}
	writeProblem(w, r, e, &challengeView{Challenge: ch, Price: rt.Price})
}

// serveReserved calls next with a writer that settles at the moment next
// commits to a status: below 400 → settle, then send; 400 and above →
// release the reservation, charge nothing.
func (pw *Paywall) serveReserved(w http.ResponseWriter, r *http.Request, next http.Handler, rt *Route, charge coinop.Charge, rail coinop.Rail, p *coinop.Payment) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sw := &settleWriter{ResponseWriter: w, settle: func(status int) bool {
		return pw.settle(w, r, rt, charge, rail, p, status, cancel)
	}}
	defer func() {
		if v := recover(); v != nil {
			if sw.replaced && v == http.ErrAbortHandler {
				return // our own answer replaced the handler's; it stopped as asked
			}
			if !sw.committed {
				pw.release(p, "handler_panic")
			}
			panic(v)
		}
		sw.finish()
	}()
	next.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, paymentKey{}, p)))
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
func (pw *Paywall) settle(w http.ResponseWriter, r *http.Request, rt *Route, charge coinop.Charge, rail coinop.Rail, p *coinop.Payment, status int, cancel context.CancelFunc) bool {
	if status >= 400 {
		pw.release(p, fmt.Sprintf("upstream_status_%d", status))
		pw.log.Info("upstream failed; payment released, nothing charged", "path", r.URL.Path, "status", status, "payer", p.Payer, "payment", p.ID)
		return true
	}
	ctx, done := context.WithTimeout(context.WithoutCancel(r.Context()), pw.cfg.SettleTimeout)
	defer done()
	if err := pw.cfg.Journal.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
		pw.release(p, "journal_unavailable")
		cancel()
		pw.refuse(w, r, rt, charge, coinop.Wrap(coinop.KindUnavailable, "store_unavailable", err, "the payment journal is unavailable; nothing was charged"))
		return false
	}
	p.RecordTx = func(ctx context.Context, tx string) error {
		return pw.cfg.Journal.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettling, tx, "")
	}
	rc, err := rail.Settle(ctx, p)
	if rc != nil {
		for k, v := range rc.Header {
			w.Header()[k] = v
		}
	}
	switch {
	case err == nil && rc != nil && rc.Success:
		if jerr := pw.cfg.Journal.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettled, rc.Tx, ""); jerr != nil {
			// The money moved; the journal lags. Recovery reconciles it from the chain.
			pw.log.Error("settled but the journal did not record it", "payment", p.ID, "tx", rc.Tx, "err", jerr)
		}
		pw.log.Info("payment settled", "path", r.URL.Path, "payer", p.Payer, "amount", p.Amount.String(), "network", p.Network, "tx", rc.Tx)
		return true
	case rc != nil && rc.Pending:
		if rc.Tx != "" {
			if jerr := pw.cfg.Journal.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettling, rc.Tx, "settlement_pending"); jerr != nil {
				pw.log.Error("journal did not record a pending settlement", "payment", p.ID, "tx", rc.Tx, "err", jerr)
			}
		}
		pw.log.Warn("settlement pending", "payment", p.ID, "tx", rc.Tx)
		return true
	}
	e := coinop.AsError(err)
	if e.Kind == coinop.KindInternal && err == nil {
		e = coinop.Errorf(coinop.KindSettleFailed, "unexpected_settle_error", "settlement did not succeed")
	}
	if e.Kind != coinop.KindUnavailable {
		e.Kind = coinop.KindSettleFailed
	}
	if jerr := pw.cfg.Journal.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateFailed, txOf(rc), e.Reason); jerr != nil {
		pw.log.Error("journal did not record a failed settlement", "payment", p.ID, "err", jerr)
	}
	pw.log.Warn("settlement failed; response withheld", "path", r.URL.Path, "payer", p.Payer, "reason", e.Reason, "err", err)
	cancel()
	pw.refuse(w, r, rt, charge, e)
	return false
}

func txOf(rc *coinop.Receipt) string {
	if rc == nil {
		return ""
	}
	return rc.Tx
}

func (pw *Paywall) release(p *coinop.Payment, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pw.cfg.Journal.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateReleased, "", reason); err != nil {
		pw.log.Error("could not release a payment reservation", "payment", p.ID, "err", err)
	}
}
