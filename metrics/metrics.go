// Package metrics counts what a coinop gateway does, for Prometheus: the
// requests it answered, the problems it answered with (402 challenges
// included) by reason, the payments by rail, route and step, the revenue
// settled by rail and asset, how long settlements took, and the background
// settlements owed. Its collectors live in a registry of their own (no
// global state), served by Handler in the Prometheus text exposition
// format.
//
// The engine reports to it through paywall.Config.OnStep and OnRefuse; the
// gateway through Request. Labels carry route patterns, rail names, reason
// codes and asset identifiers only: never a payer, a credential or a URL
// a client chose, so their number stays bounded by the configuration.
package metrics

import (
	"context"
	"math/big"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coinop/coinop"
)

// Metrics holds a gateway's collectors. It is safe for concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	refusals   *prometheus.CounterVec
	payments   *prometheus.CounterVec
	revenue    *prometheus.CounterVec
	settleTime *prometheus.HistogramVec
	rpc        *prometheus.CounterVec
	journal    *prometheus.CounterVec

	now func() time.Time
}

// New returns Metrics with an empty registry of its own. now is the clock
// settlement latencies are measured with (nil: time.Now). owed, if set, is
// read at each scrape for the background settlements owed right now.
func New(now func() time.Time, owed func() int) *Metrics {
	if now == nil {
		now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry(), now: now}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coinop_requests_total", Help: "Requests answered, by route pattern (\"\" for none) and status code.",
	}, []string{"route", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "coinop_request_duration_seconds", Help: "Time from a request's arrival to the end of its answer, by route pattern.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	}, []string{"route"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coinop_refusals_total", Help: "Priced requests answered with a problem (402 challenges included), by route, status and reason code.",
	}, []string{"route", "status", "reason"})
	m.payments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coinop_payments_total", Help: "Payment steps reached (reserved, settled, served, failed, released), by rail and route.",
	}, []string{"rail", "route", "step"})
	m.revenue = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coinop_revenue_atomic_total", Help: "Amount settled, in the asset's atomic units, by rail, network and asset.",
	}, []string{"rail", "network", "asset"})
	m.settleTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "coinop_settlement_seconds", Help: "Time from a payment's reservation to its settlement, by rail and mode.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
	}, []string{"rail", "mode"})
	m.rpc = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coinop_rpc_requests_total", Help: "HTTP requests to a network's node, by network and outcome (ok; error: no answer, or an HTTP status of 400 or more).",
	}, []string{"network", "outcome"})
	m.journal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coinop_journal_errors_total", Help: "Times the payments journal could not be used, by where it was noticed (request: a request refused for it; probe: a readiness probe; recovery: a reconciliation pass).",
	}, []string{"where"})
	m.reg.MustRegister(m.requests, m.latency, m.refusals, m.payments, m.revenue, m.settleTime, m.rpc, m.journal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if owed != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "coinop_settlements_owed", Help: "Background settlements queued or in progress in this process.",
		}, func() float64 { return float64(owed()) }))
	}
	return m
}

// Registry is where the collectors are registered, for more of them
// (journal or chain collectors of the caller's).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the collectors in the Prometheus text exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Request counts one answered request.
func (m *Metrics) Request(route string, status int, took time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(took.Seconds())
}

// Refused counts a problem answered on a priced route (paywall.Config.OnRefuse).
// A refusal because the journal is unavailable also counts as a journal
// error.
func (m *Metrics) Refused(r *http.Request, route string, e *coinop.Error) {
	m.refusals.WithLabelValues(route, strconv.Itoa(e.Kind.Status()), e.Reason).Inc()
	if e.Reason == coinop.ReasonStoreUnavailable || e.Reason == coinop.ReasonJournalFailed {
		m.JournalError("request")
	}
}

// JournalError counts a failure to use the journal noticed at where
// ("request", "probe", "recovery").
func (m *Metrics) JournalError(where string) { m.journal.WithLabelValues(where).Inc() }

// Ledger reports, at each scrape, what a credits ledger holds: read
// returns its accounts and the sum of their balances. A scrape whose read
// fails shows neither gauge (and counts a journal error).
func (m *Metrics) Ledger(read func(ctx context.Context) (accounts, credits int64, err error)) {
	m.reg.MustRegister(&ledgerCollector{m: m, read: read})
}

var (
	ledgerAccounts = prometheus.NewDesc("coinop_credits_accounts", "Credit accounts in the ledger.", nil, nil)
	ledgerCredits  = prometheus.NewDesc("coinop_credits_outstanding", "Credits held by all accounts together: sold and not yet spent.", nil, nil)
)

type ledgerCollector struct {
	m    *Metrics
	read func(ctx context.Context) (accounts, credits int64, err error)
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ledgerAccounts
	ch <- ledgerCredits
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accounts, credits, err := c.read(ctx)
	if err != nil {
		c.m.JournalError("probe")
		return
	}
	ch <- prometheus.MustNewConstMetric(ledgerAccounts, prometheus.GaugeValue, float64(accounts))
	ch <- prometheus.MustNewConstMetric(ledgerCredits, prometheus.GaugeValue, float64(credits))
}

// RPC wraps base (nil: http.DefaultTransport) so that every request to
// network's node is counted, by outcome. On nil Metrics it is base.
func (m *Metrics) RPC(network string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if m == nil {
		return base
	}
	return &countedRPC{base: base, ok: m.rpc.WithLabelValues(network, "ok"), failed: m.rpc.WithLabelValues(network, "error")}
}

type countedRPC struct {
	base       http.RoundTripper
	ok, failed prometheus.Counter
}

func (c *countedRPC) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err != nil || resp.StatusCode >= 400 {
		c.failed.Inc()
	} else {
		c.ok.Inc()
	}
	return resp, err
}

// Step counts a payment step (paywall.Config.OnStep): reserved, settled
// (adding the amount to the revenue and observing the time since the
// journal reserved it, Payment.Created), served, failed, released.
func (m *Metrics) Step(step string, p *coinop.Payment) {
	switch step {
	case "settled":
		if !p.Created.IsZero() {
			m.settleTime.WithLabelValues(p.Rail, modeOf(p)).Observe(m.now().Sub(p.Created).Seconds())
		}
		if p.Amount != nil {
			m.revenue.WithLabelValues(p.Rail, p.Network, p.Asset).Add(atomicFloat(p.Amount))
		}
	case "reserved", "served", "failed", "released":
	default:
		return
	}
	m.payments.WithLabelValues(p.Rail, p.Route, step).Inc()
}

func modeOf(p *coinop.Payment) string {
	if p.Mode == "" {
		return coinop.ModeSync
	}
	return p.Mode
}

// atomicFloat is v as a float64: exact up to 2^53 atomic units (9e9 USDC),
// rounded beyond, which a counter can live with.
func atomicFloat(v *big.Int) float64 {
	f, _ := new(big.Float).SetInt(v).Float64()
	return f
}
