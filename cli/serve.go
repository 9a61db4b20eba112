package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

func runServe(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("serve", env)
	path := fs.String("c", "coinop.yaml", "config file")
	listen := fs.String("listen", "", "address to serve on (overrides the config's listen)")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if cfg.UpstreamURL() == nil && !routesHaveUpstreams(cfg) {
		return &exitError{2, cfg.Errorf("upstream", "not set: this configuration is for forward-auth only; serve it with coinop auth -c %s", *path)}
	}
	log := newLogger(cfg, env)
	reload := func() (*config.Config, error) {
		next, err := config.Load(*path)
		if err == nil && *listen != "" {
			next.Listen = *listen
		}
		return next, err
	}
	return serveGateway(ctx, cfg, log, env, nil, reload, func(url string) {
		// One write, so that whoever waits for the ready line finds the
		// banner with it.
		var b strings.Builder
		fmt.Fprintf(&b, "coinop ready: serving %s on %s\n", *path, url)
		writeBanner(&b, cfg, url)
		io.WriteString(env.Stdout, b.String())
	})
}

// serveGateway builds the gateway, listens on ln (or, if nil, cfg.Listen),
// announces the URL and serves until ctx is done.
//
// Each value on env.Reload reads the configuration again through reload
// (nil: reloading is off) and applies it (gateway.Reload): a file that does
// not load, or that changes what takes a restart, is refused with its
// problems logged, and the running configuration is kept.
func serveGateway(ctx context.Context, cfg *config.Config, log *slog.Logger, env Env, ln net.Listener, reload func() (*config.Config, error), ready func(url string)) error {
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
	conns := &countingListener{Listener: ln}
	if cfg.Admin.Listen != "" {
		stop, err := serveAdmin(ctx, cfg, g, env, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	if cfg.Auth.Listen != "" {
		stop, err := serveAuth(ctx, cfg, g, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	ready("http://" + ln.Addr().String())
	drained := make(chan struct{})
	defer close(drained)
	if reload != nil && env.Reload != nil {
		go reloadOnSignal(ctx, g, log, env.Reload, drained, reload)
	}
	drainStart := make(chan time.Time, 1)
	go func() {
		select {
		case <-ctx.Done():
			drainStart <- time.Now()
			log.Info("draining: refusing new connections, finishing the requests in flight (at most 30s)", "open_connections", conns.open.Load())
		case <-drained:
		}
	}()
	err = g.Serve(ctx, conns)
	if ctx.Err() != nil {
		log.Info("drained", "connections_served", conns.accepted.Load(), "still_open", conns.open.Load(),
			"took", time.Since(<-drainStart).Round(time.Millisecond), "err", err)
	}
	return err
}

// reloadOnSignal applies the configuration reload reads each time a value
// arrives on signals, until ctx is done or stop is closed.
func reloadOnSignal(ctx context.Context, g *gateway.Gateway, log *slog.Logger, signals <-chan struct{}, stop <-chan struct{}, reload func() (*config.Config, error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-signals:
		}
		next, err := reload()
		if err == nil {
			err = g.Reload(ctx, next)
		}
		if err != nil {
			// The problems come with their file and line, one per line.
			log.Error("reload refused; the running configuration is kept", "problems", err.Error())
			continue
		}
		log.Info("reload applied")
	}
}

// countingListener counts the connections it accepted and those still
// open, for the drain's log lines.
type countingListener struct {
	net.Listener
	accepted, open atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
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
	log.Info("admin listener", "url", "http://"+ln.Addr().String(), "dashboard", "http://"+ln.Addr().String()+"/", "endpoints", "/metrics /healthz /readyz /payments /revenue /summary")
	return serveBeside(ctx, srv, ln), nil
}

// serveBeside serves srv on ln, beside the gateway's own listener, until
// ctx is done or stop is called.
func serveBeside(ctx context.Context, srv *http.Server, ln net.Listener) (stop func()) {
	go srv.Serve(ln)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		srv.Close()
	}()
	return sync.OnceFunc(func() { close(done) })
}

// routesHaveUpstreams reports whether some route has an upstream of its own.
func routesHaveUpstreams(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.Upstream != "" {
			return true
		}
	}
	return false
}
