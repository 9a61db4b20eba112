// Package admin is a gateway's operator listener: Prometheus metrics
// (/metrics), liveness (/healthz), readiness (/readyz), the payments API
// (/payments, /payments.csv, /payments/{id}, /revenue, /summary,
// /networks) and a dashboard that reads it (/ and /dashboard), on an
// address of its own, apart from the paid traffic.
//
// Configured with a token, every request must carry it (Authorization:
// Bearer …, compared in constant time), but for the dashboard's document,
// which holds no figures and asks for the token to read them; the
// configuration refuses a listener beyond loopback without one
// (config.LoopbackListen): it shows revenue and payers' activity, which is
// the seller's business only.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/coinop/coinop"
)

// Check is one readiness probe: nil when the part it probes can serve
// payments now (the journal writable, a chain answering with the right
// chain id).
type Check func(ctx context.Context) error

// Config configures the admin handler.
type Config struct {
	// Metrics serves /metrics; nil answers 404 there.
	Metrics http.Handler
	// Checks are the readiness probes by name; /readyz is 200 when all
	// pass, else 503 naming the failing ones.
	Checks map[string]Check
	// CheckTimeout bounds each probe. If zero, 2 seconds.
	CheckTimeout time.Duration
	// Token, when set, is the bearer token every request must carry.
	Token string
	// Journal, when set, serves the payments API: GET /payments (paged,
	// filtered by from, to, route, payer, rail, state), /payments.csv, /payments/{id}
	// (with its history), /revenue (settled totals by route, day or rail)
	// and /summary (payments and amounts by state).
	Journal Journal
	// Networks are the configured networks and assets, served at
	// /networks: the dashboard writes amounts with their symbols and
	// decimals and links transactions to the explorers named here.
	Networks []Network
}

// Handler returns the admin endpoints as an http.Handler.
func Handler(cfg Config) http.Handler {
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		status, body := ready(r.Context(), cfg)
		writeJSON(w, status, body)
	})
	mux.HandleFunc("GET /{$}", serveDashboard)
	mux.HandleFunc("GET /dashboard", serveDashboard)
	mux.HandleFunc("GET /networks", networks(cfg.Networks))
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Journal != nil {
		a := &api{cfg.Journal}
		mux.HandleFunc("GET /payments", a.list)
		mux.HandleFunc("GET /payments.csv", a.export)
		mux.HandleFunc("GET /payments/{id}", a.one)
		mux.HandleFunc("GET /revenue", a.revenue)
		mux.HandleFunc("GET /summary", a.summary)
	}
	if cfg.Token == "" {
		return mux
	}
	want := []byte("Bearer " + cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPage(r) {
			mux.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="coinop admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"status": "unauthorized", "detail": "this listener needs Authorization: Bearer <admin token>"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// ready runs every check, concurrently and bounded in time, and reports
// each one's verdict; a check's error text goes to the operator, who owns
// this listener.
func ready(ctx context.Context, cfg Config) (int, map[string]any) {
	type verdict struct {
		name string
		err  error
	}
	out := make(chan verdict, len(cfg.Checks))
	for name, c := range cfg.Checks {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, cfg.CheckTimeout)
			defer cancel()
			out <- verdict{name, c(cctx)}
		}()
	}
	checks := map[string]string{}
	var failing []string
	for range cfg.Checks {
		v := <-out
		if v.err != nil {
			checks[v.name] = coinop.AsError(v.err).Message
			if coinop.KindOf(v.err) == coinop.KindInternal {
				checks[v.name] = v.err.Error()
			}
			failing = append(failing, v.name)
			continue
		}
		checks[v.name] = "ok"
	}
	sort.Strings(failing)
	if len(failing) > 0 {
		return http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failing": failing, "checks": checks}
	}
	return http.StatusOK, map[string]any{"status": "ok", "checks": checks}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
