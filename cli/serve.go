package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

func runServe(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("coinop serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("c", "coinop.yaml", "config file")
	listen := fs.String("listen", "", "address to serve on (overrides the config's listen)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return &exitError{2, errors.New("")}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	log := newLogger(cfg, env)
	return serveGateway(ctx, cfg, log, env, nil, func(url string) {
		fmt.Fprintf(env.Stdout, "coinop ready: serving %s on %s\n", *path, url)
	})
}

// serveGateway builds the gateway, listens on ln (or, if nil, cfg.Listen),
// announces the URL and serves until ctx is done.
func serveGateway(ctx context.Context, cfg *config.Config, log *slog.Logger, env Env, ln net.Listener, ready func(url string)) error {
	onStep, err := crashHook(env.getenv("COINOP_CRASH_AT"))
	if err != nil {
		return &exitError{2, err}
	}
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: log, Getenv: env.Getenv, OnStep: onStep})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	defer g.Close()
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	if cfg.Admin.Listen != "" {
		stop, err := serveAdmin(ctx, cfg, g, env, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	ready("http://" + ln.Addr().String())
	return g.Serve(ctx, ln)
}

// newLogger is the gateway's logger, in the config's log format.
func newLogger(cfg *config.Config, env Env) *slog.Logger {
	if cfg.Log.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(env.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(env.Stderr, nil))
}

// serveAdmin serves the gateway's admin listener on cfg.Admin.Listen until
// ctx is done or stop is called.
func serveAdmin(ctx context.Context, cfg *config.Config, g *gateway.Gateway, env Env, log *slog.Logger) (stop func(), err error) {
	h, err := g.Admin(env.getenv)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, cfg.Errorf("admin.listen", "%v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	log.Info("admin listener", "url", "http://"+ln.Addr().String(), "endpoints", "/metrics /healthz /readyz")
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		srv.Close()
	}()
	return sync.OnceFunc(func() { close(done) }), nil
}
