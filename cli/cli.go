// Package cli implements the coinop command line: serve, check, dev, curl,
// sign, balance, audit, facilitator. Main is the whole program; cmd/coinop
// only wires signals and the exit code, so every command is testable
// in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/eip3009"
)

// Env is the process environment a command runs in.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads environment variables. If nil, nothing is set.
	Getenv func(string) string
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

const usage = `coinop — put a price on any HTTP endpoint, and pay for it.

Usage:
  coinop dev     [--listen ADDR] [--rpc-listen ADDR] [--data DIR]
                 run a gateway with an embedded EVM chain and a demo upstream
  coinop serve   -c coinop.yaml
                 run the gateway described by a config file
  coinop check   -c coinop.yaml
                 check a config without serving: the file, the journal, the keys, and that each
                 chain and token is the one configured; exit 1 on any problem
  coinop config upgrade -c coinop.yaml [-w]
                 print the config rewritten with rail blocks and accept lists (-w: in place)
  coinop curl    URL [-X METHOD] [-H 'K: V']... [-d DATA] [-i] [-o FILE] [-s] [--max-amount 0.01]
                 make a request, paying a 402 automatically
  coinop sign    URL [--max-amount 0.01]
                 print a PAYMENT-SIGNATURE value for URL's current 402
  coinop balance [ADDRESS...] [--rpc URL --token ADDR]
                 show token balances on a chain (default: the dev chain)
  coinop audit   -c coinop.yaml [--from-block N]
                 reconcile the payments journal with the chain; exit 1 on any discrepancy
  coinop facilitator --network eip155:84532=RPC-URL... --settlement-key-file FILE|--settlement-key-env NAME
                 [--listen 127.0.0.1:8403] [--store PATH]
                 serve the x402 facilitator API (POST /verify, POST /settle, GET /supported)

Wallet (curl, sign): --wallet FILE, else $COINOP_WALLET_KEY, else the dev payer key
(<data>/dev/payer.key; data dir: --data, $COINOP_DATA, default ./.coinop).
`

// exitError carries an exit code through a command's error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Main runs one coinop command and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "dev":
		err = runDev(ctx, args[1:], env)
	case "serve":
		err = runServe(ctx, args[1:], env)
	case "check":
		err = runCheck(ctx, args[1:], env)
	case "config":
		err = runConfig(ctx, args[1:], env)
	case "curl":
		err = runCurl(ctx, args[1:], env)
	case "sign":
		err = runSign(ctx, args[1:], env)
	case "balance":
		err = runBalance(ctx, args[1:], env)
	case "audit":
		err = runAudit(ctx, args[1:], env)
	case "facilitator":
		err = runFacilitator(ctx, args[1:], env)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(env.Stderr, "coinop: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(env.Stderr, "coinop %s: %v\n", args[0], ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(env.Stderr, "coinop %s: %s\n", args[0], oneLine(err))
	return 1
}

// oneLine writes err on one line, the way an operator reads a failed start:
// the causes some libraries list on lines of their own (a PostgreSQL
// driver, one per address tried) are joined with " ", once each. A
// configuration's problems keep their line each, as Validate reports them.
func oneLine(err error) string {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return flatten(err.Error())
	}
	lines := make([]string, len(ce.Problems))
	for i, p := range ce.Problems {
		p.Message = flatten(p.Message)
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func flatten(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(parts, l) {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// parseInterspersed parses flags that may come before or after positional
// arguments (curl's habit: `coinop curl URL -i`). Combined short boolean
// flags such as -si are split.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var expanded []string
	for _, a := range args {
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && !strings.Contains(a, "=") && fs.Lookup(a[1:]) == nil && allBool(fs, a[1:]) {
			for _, c := range a[1:] {
				expanded = append(expanded, "-"+string(c))
			}
			continue
		}
		expanded = append(expanded, a)
	}
	var pos []string
	rest := expanded
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

func allBool(fs *flag.FlagSet, letters string) bool {
	for _, c := range letters {
		f := fs.Lookup(string(c))
		if f == nil {
			return false
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			return false
		}
	}
	return true
}

// dataDir is --data, else $COINOP_DATA, else ./.coinop.
func dataDir(flagValue string, env Env) string {
	if flagValue != "" {
		return flagValue
	}
	if d := env.getenv("COINOP_DATA"); d != "" {
		return d
	}
	return ".coinop"
}

// loadWallet finds the payer's key and says where it came from.
func loadWallet(walletFile, data string, env Env) (*eip3009.Key, string, error) {
	if walletFile != "" {
		k, err := eip3009.LoadKey(walletFile)
		return k, "wallet file " + walletFile, err
	}
	if s := env.getenv("COINOP_WALLET_KEY"); s != "" {
		k, err := eip3009.ParseKey(s)
		if err != nil {
			return nil, "", fmt.Errorf("COINOP_WALLET_KEY: %w", err)
		}
		return k, "$COINOP_WALLET_KEY", nil
	}
	p := filepath.Join(data, "dev", "payer.key")
	if _, err := os.Stat(p); err == nil {
		k, err := eip3009.LoadKey(p)
		return k, "dev payer key " + p, err
	}
	return nil, "", errors.New("no wallet: pass --wallet FILE, set COINOP_WALLET_KEY, or run `coinop dev` to create a dev payer key")
}
