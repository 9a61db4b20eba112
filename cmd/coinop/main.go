// Command coinop puts a price on HTTP endpoints and pays for them.
// Run `coinop help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/coinop/coinop/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// SIGHUP reloads a serving gateway's config; every other command keeps
	// the default, so closing a terminal still ends them.
	var reload chan struct{}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		reload = make(chan struct{}, 1)
		go relay(reload)
	}
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Reload: reload})
	stop()
	os.Exit(code)
}

// relay turns SIGHUPs into reload requests; one pending is enough.
func relay(reload chan<- struct{}) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for range hup {
		select {
		case reload <- struct{}{}:
		default: // a reload is already pending
		}
	}
}
