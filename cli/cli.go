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
	// Reload, if set, delivers a value each time the operator asks
	// `coinop serve` to read its config file again (SIGHUP).
	Reload <-chan struct{}
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

// command documents one subcommand for `coinop help` and its --help.
type command struct {
	name    string
	summary string // one line: what the command does
	args    string // the positional arguments, after [options]
	argHelp string // what each positional argument is; "" if none
	example string
}

// commands lists every subcommand in the order `coinop help` shows them.
var commands = []command{
	{"dev", "run a gateway with an embedded EVM chain and a demo upstream", "", "",
		"coinop dev --listen 127.0.0.1:8402"},
	{"serve", "run the gateway described by a config file", "", "",
		"coinop serve -c coinop.yaml"},
	{"auth", "serve the forward-auth check of a config alone, for nginx auth_request, Caddy forward_auth or Traefik ForwardAuth", "", "",
		"coinop auth -c coinop.yaml --listen 127.0.0.1:8403"},
	{"check", "check a config without serving: the file, the journal, the keys, the chains and tokens; exit 1 on any problem", "", "",
		"coinop check -c coinop.yaml"},
	{"config", "rewrite a config in the accept form (rail blocks and accept lists): printed, or in place with -w", "upgrade",
		"upgrade   the one subcommand: rewrite the file named by -c",
		"coinop config upgrade -c coinop.yaml -w"},
	{"curl", "make an HTTP request with curl's flags and exit codes, paying a 402 automatically", "URL",
		"URL   the address to request; without a scheme, http:// is assumed",
		"coinop curl -i --max-amount 0.01 http://127.0.0.1:8402/weather"},
	{"sign", "print a PAYMENT-SIGNATURE value for URL's current 402, for a plain HTTP client to send", "URL",
		"URL   the priced address whose 402 to pay",
		`curl -H "PAYMENT-SIGNATURE: $(coinop sign http://127.0.0.1:8402/weather)" http://127.0.0.1:8402/weather`},
	{"balance", "show token balances on a chain (default: the running dev chain)", "[ADDRESS...]",
		"ADDRESS   an account to show; default the dev payer and payee",
		"coinop balance --rpc http://127.0.0.1:8545 --token 0x… 0x…"},
	{"credits", "list the credits plans curl bought and holds, per origin, with their last known balance; revoke TOKEN -c FILE revokes one in a gateway's ledger", "[revoke TOKEN]",
		"revoke TOKEN   the seller's: revoke this token in the ledger of the gateway -c names",
		"coinop credits"},
	{"audit", "reconcile the payments journal with the chain; exit 1 on any discrepancy", "", "",
		"coinop audit -c coinop.yaml --from-block 0"},
	{"facilitator", "serve the x402 facilitator API (POST /verify, POST /settle, GET /supported)", "", "",
		"coinop facilitator --network eip155:84532=https://sepolia.base.org --settlement-key-file settler.key"},
	{"version", "print the module version and the VCS revision it was built from", "", "",
		"coinop version"},
	{"help", "list the commands, or show one command's help", "[COMMAND]",
		"COMMAND   the command to describe", "coinop help curl"},
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// writeUsage lists the commands with their descriptions.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, "coinop — put a price on any HTTP endpoint, and pay for it.\n\nUsage: coinop COMMAND [options] [arguments]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'coinop COMMAND --help' for a command's options and an example.

Wallet (curl, sign): --wallet FILE, else $COINOP_WALLET_KEY, else the dev payer key
(<data>/dev/payer.key; data dir: --data-dir, $COINOP_DATA, default ./.coinop). It is
read only when a 402 asks for payment.
`)
}

// writeHelp writes one command's help: what it does, its arguments, its
// options and an example.
func writeHelp(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "coinop %s — %s\n\nUsage:\n  coinop %s [options]", c.name, c.summary, c.name)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintln(w)
	if c.argHelp != "" {
		fmt.Fprintf(w, "\nArguments:\n  %s\n", c.argHelp)
	}
	if fs != nil && hasFlags(fs) {
		fmt.Fprint(w, "\nOptions:\n")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
	fmt.Fprintf(w, "\nExample:\n  %s\n", c.example)
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// newFlagSet is the flag set of the command name ("curl"); its errors go
// to env.Stderr and parseFlags handles -h and --help.
func newFlagSet(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses a command's arguments (see parseInterspersed) and
// returns the positional ones. -h or --help writes the command's help to
// stdout and returns flag.ErrHelp (exit 0); a bad option is exit 2 with a
// pointer to the help on stderr.
func parseFlags(fs *flag.FlagSet, env Env, args []string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c, _ := lookupCommand(fs.Name())
		writeHelp(env.Stdout, c, fs)
		return nil, flag.ErrHelp
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "coinop %s: try 'coinop %s --help'\n", fs.Name(), fs.Name())
		return nil, &exitError{2, errors.New("")}
	}
	return pos, nil
}

// exitError carries an exit code through a command's error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Main runs one coinop command and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 {
		writeUsage(env.Stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "dev":
		err = runDev(ctx, args[1:], env)
	case "serve":
		err = runServe(ctx, args[1:], env)
	case "auth":
		err = runAuth(ctx, args[1:], env)
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
	case "credits":
		err = runCredits(ctx, args[1:], env)
	case "audit":
		err = runAudit(ctx, args[1:], env)
	case "facilitator":
		err = runFacilitator(ctx, args[1:], env)
	case "version":
		err = runVersion(args[1:], env)
	case "help", "-h", "--help":
		return runHelp(args[1:], env)
	default:
		fmt.Fprintf(env.Stderr, "coinop: unknown command %q\n\n", args[0])
		writeUsage(env.Stderr)
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

// runHelp lists the commands, or with a command's name runs that command's
// --help, so both print the same text.
func runHelp(args []string, env Env) int {
	if len(args) == 0 {
		writeUsage(env.Stdout)
		return 0
	}
	if _, ok := lookupCommand(args[0]); !ok || args[0] == "help" {
		if !ok {
			fmt.Fprintf(env.Stderr, "coinop help: unknown command %q\n\n", args[0])
			writeUsage(env.Stderr)
			return 2
		}
		writeUsage(env.Stdout)
		return 0
	}
	return Main(context.Background(), []string{args[0], "--help"}, env)
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
// arguments (curl's habit: `coinop curl URL -i`). Short flags combine as
// curl's do: -si is -s -i, and a flag taking a value may end the group with
// its value attached (-XPOST, -sSo FILE).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var expanded []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			expanded = append(expanded, args[i:]...)
			break
		}
		short, needsValue, ok := splitShort(fs, a)
		if !ok {
			short, needsValue = []string{a}, takesValue(fs, a)
		}
		expanded = append(expanded, short...)
		if needsValue && i+1 < len(args) {
			// The value is taken as it is, even if it looks like flags.
			i++
			expanded = append(expanded, args[i])
		}
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

// splitShort splits a group of one-letter flags ("-sSL", "-XPOST") into
// separate arguments; ok is false when a is not such a group (a flag of
// its own name, a long flag, a positional argument). needsValue says the
// group ends with a flag whose value is the next argument.
func splitShort(fs *flag.FlagSet, a string) (out []string, needsValue, ok bool) {
	if len(a) <= 2 || a[0] != '-' || a[1] == '-' || strings.Contains(a, "=") || fs.Lookup(a[1:]) != nil {
		return nil, false, false
	}
	for i := 1; i < len(a); i++ {
		f := fs.Lookup(a[i : i+1])
		if f == nil {
			return nil, false, false
		}
		out = append(out, "-"+a[i:i+1])
		if !isBool(f) {
			if i+1 < len(a) {
				return append(out, a[i+1:]), false, true
			}
			return out, true, true
		}
	}
	return out, false, true
}

// takesValue reports whether a is a flag that reads the next argument.
func takesValue(fs *flag.FlagSet, a string) bool {
	name := strings.TrimLeft(a, "-")
	if !strings.HasPrefix(a, "-") || name == "" || strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	return f != nil && !isBool(f)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
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
