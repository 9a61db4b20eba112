package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
)

// runCheck runs every start-up probe of a config without serving: the
// file validates, the journal opens, the settlement keys load, and each
// network's node is the configured chain holding the configured tokens.
// It prints one line per probe and exits 1 when anything would stop
// `coinop serve` or make it fail closed.
func runCheck(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("check", env)
	path := fs.String("c", "coinop.yaml", "config file")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "ok       %s: valid\n", *path)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	failed := 0
	for _, f := range gateway.Check(ctx, cfg, gateway.Options{Getenv: env.Getenv}) {
		at := f.Subject
		if f.Err != nil && f.Path != "" {
			at = cfg.Errorf(f.Path, "%s", f.Subject).Error()
		}
		switch {
		case f.Err == nil:
			fmt.Fprintf(env.Stdout, "ok       %s: %s\n", f.Subject, f.Detail)
		case f.Warning:
			fmt.Fprintf(env.Stdout, "warning  %s: %v\n", at, f.Err)
		default:
			failed++
			fmt.Fprintf(env.Stdout, "FAIL     %s: %v\n", at, f.Err)
		}
	}
	if failed > 0 {
		return &exitError{1, fmt.Errorf("%d of the checks failed", failed)}
	}
	return nil
}
