package gateway

import (
	"context"
	"net/http"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/paywall"
)

// Open builds coinop's paywall from the coinop.yaml at path, for a Go
// program that serves its own handlers: the journal, the chains and the
// rails the file names, as `coinop serve` would, and the reconciliation of
// unfinished payments in the background. The file needs no upstream: the
// routes without one are served by the handler Wrap protects. Close
// releases it all.
//
//	g, err := gateway.Open(ctx, "coinop.yaml", gateway.Options{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer g.Close()
//	http.ListenAndServe(":8080", g.Wrap(mux))
func Open(ctx context.Context, path string, opts Options) (*Gateway, error) {
	cfg, err := config.LoadEmbedded(path)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, cfg, opts)
}

// OpenConfig is Open for a configuration already read
// (config.LoadEmbedded, config.ParseEmbedded) or built in code (a
// config.Config with Embedded set, that passed Validate).
func OpenConfig(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	g, err := New(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	rep := g.Recover(ctx, g.started) // before the first request is served
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	g.stopRecovery, g.recovered = stop, make(chan struct{})
	go func() {
		defer close(g.recovered)
		g.recoverLoop(rctx, rep)
	}()
	return g, nil
}

// nextKey carries, in a request's context, the handler Wrap protects.
type nextKey struct{}

// Wrap protects next with the paywall: a priced route's request reaches
// next only once paid, and its payment settles after next answered
// successfully, exactly as in front of an upstream. Routes with an upstream
// of their own are proxied to it; other routes, and unmatched requests the
// configuration lets through, are served by next. next never sees the
// request headers that carry payments. Wrap may be called more than once.
func (g *Gateway) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.handler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nextKey{}, next)))
	})
}

// withoutHeaders is r without the headers strip names (folded), copied
// only when it has one.
func withoutHeaders(r *http.Request, strip map[string]bool) *http.Request {
	var h http.Header
	for k := range r.Header {
		if strip[paywall.FoldHeaderName(k)] {
			if h == nil {
				h = r.Header.Clone()
			}
			delete(h, k)
		}
	}
	if h == nil {
		return r
	}
	r2 := *r
	r2.Header = h
	return &r2
}
