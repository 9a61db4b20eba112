package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

// runAuth serves the forward-auth check of a config alone: the proxy in
// front (nginx auth_request, Caddy forward_auth, Traefik ForwardAuth) asks
// it about each request and proxies to the seller's service itself.
func runAuth(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("auth", env)
	path := fs.String("c", "coinop.yaml", "config file")
	listen := fs.String("listen", "", "address to serve the check on (overrides the config's auth.listen; default "+config.DefaultAuthListen+")")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	addr := cfg.Auth.Listen
	if *listen != "" {
		addr = *listen
	}
	if addr == "" {
		addr = config.DefaultAuthListen
	}
	if !cfg.Auth.AllowRemote && !config.LoopbackListen(addr) {
		return &exitError{2, fmt.Errorf("--listen %q is beyond loopback: the check believes the X-Original-*/X-Forwarded-* headers, so clients must not reach it; set auth.allow_remote: true in %s if only the proxy can reach this address", addr, *path)}
	}
	log := newLogger(cfg, env)
	onStep, err := crashHook(env.getenv("COINOP_CRASH_AT"))
	if err != nil {
		return &exitError{2, err}
	}
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: log, Getenv: env.Getenv, OnStep: onStep})
	if err != nil {
		return err
	}
	defer g.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if cfg.Admin.Listen != "" {
		stop, err := serveAdmin(ctx, cfg, g, env, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	io.WriteString(env.Stdout, fmt.Sprintf("coinop ready: forward-auth check of %s on http://%s\n", *path, ln.Addr()))
	return g.ServeAuth(ctx, ln)
}

// serveAuth serves the gateway's forward-auth check on cfg.Auth.Listen
// beside the gateway until ctx is done or stop is called.
func serveAuth(ctx context.Context, cfg *config.Config, g *gateway.Gateway, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", cfg.Auth.Listen)
	if err != nil {
		return nil, cfg.Errorf("auth.listen", "%v", err)
	}
	log.Info("forward-auth listener", "url", "http://"+ln.Addr().String())
	return serveBeside(ctx, g.AuthServer(), ln), nil
}
