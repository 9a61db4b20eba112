// Command coinop-bench runs the same closed-loop HTTP workload, on loopback,
// against the upstream directly, nginx as a plain proxy, coinop (free route,
// 402 challenge, paid with pre-signed x402 payments) and the official x402
// TypeScript stack on anvil, and writes a Markdown table, a PNG chart and
// the raw numbers under bench/results. See bench/README.md.
//
//	go run ./bench/cmd/coinop-bench                 # everything, about 3 minutes
//	go run ./bench/cmd/coinop-bench -d 3s -only coinop
//	coinop-bench load -c 100 -d 5s http://127.0.0.1:8402/health   # one workload, printed
//	coinop-bench chain                              # internal: the devchain process
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coinop/coinop/bench/loadgen"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("coinop-bench: ")
	if len(os.Args) > 1 {
		var sub func([]string) error
		switch os.Args[1] {
		case "chain":
			sub = runChain
		case "load":
			sub = runLoad
		}
		if sub != nil {
			if err := sub(os.Args[2:]); err != nil {
				log.Fatal(err)
			}
			return
		}
	}
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

// options are the command's flags.
type options struct {
	duration, warmup time.Duration
	conc, bigConc    int
	payments         int
	chainKind        string
	only             string
	out              string
	readme           string
	keep             bool
	perf             string
	coinopSrc        string
	coinopEnv        string
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("coinop-bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "d", 8*time.Second, "measured time per row")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up per row")
	fs.IntVar(&o.conc, "c", 32, "concurrent connections (closed loop)")
	fs.IntVar(&o.bigConc, "c-big", 1000, "connections of the memory rows")
	fs.IntVar(&o.payments, "payments", 40000, "pre-signed payments per paid row (the count bound of those rows)")
	fs.StringVar(&o.chainKind, "chain", "anvil", "chain coinop settles on: anvil (the TS stack's chain) or devchain (coinop's embedded chain)")
	fs.StringVar(&o.only, "only", "", "run only rows whose id or name contains this (comma-separated)")
	fs.StringVar(&o.out, "out", "bench/results", "directory for results.md, results.png, results.json")
	fs.StringVar(&o.readme, "readme", "bench/README.md", "README whose results section is replaced; empty: none")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch directory (logs, configs, journal)")
	fs.StringVar(&o.perf, "perf", "", "record a CPU profile of the target with perf(1) during the rows with these ids (comma-separated); implies -keep")
	fs.StringVar(&o.coinopEnv, "coinop-env", "", "extra environment for the gateway, comma-separated KEY=VALUE (GOMEMLIMIT=64MiB)")
	fs.StringVar(&o.coinopSrc, "coinop-src", "", "build the gateway from this checkout instead (to compare two versions)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if o.perf != "" {
		o.keep = true
	}
	dir, err := os.MkdirTemp("", "coinop-bench-")
	if err != nil {
		return err
	}
	w := &world{dir: dir}
	defer func() {
		w.close()
		if o.keep {
			log.Printf("scratch directory kept: %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	log.Printf("scratch directory %s", dir)

	b := &bench{opts: o, root: root, w: w}
	if err := b.build(ctx); err != nil {
		return err
	}
	if err := b.setup(ctx); err != nil {
		return err
	}
	rep, err := b.measure(ctx)
	if err != nil {
		return err
	}
	return b.write(rep, args)
}

// runLoad is the "load" command: one closed-loop workload against one
// loopback URL, printed.
func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	d := fs.Duration("d", 5*time.Second, "measured time")
	warm := fs.Duration("warmup", time.Second, "unmeasured warm-up")
	c := fs.Int("c", 32, "concurrent connections")
	expect := fs.Int("expect", 200, "status of a successful answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: coinop-bench load [-c N] [-d DURATION] URL")
	}
	res, err := loadgen.Run(context.Background(), loadgen.Config{URL: fs.Arg(0), Concurrency: *c, Duration: *d, Warmup: *warm, Expect: *expect})
	if err != nil {
		return err
	}
	fmt.Printf("%.1f req/s  p50 %s  p99 %s  %v %s\n", res.Throughput(), res.Percentile(0.5), res.Percentile(0.99), res.Statuses, res.FirstBad)
	return nil
}

// repoRoot is the module root: the bench builds from source.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run coinop-bench from inside the coinop module")
	}
	return filepath.Dir(mod), nil
}
