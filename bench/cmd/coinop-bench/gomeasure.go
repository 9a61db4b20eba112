package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coinop/coinop/bench/report"
)

// The measures besides the load rows, by id: what -only names them by.
const (
	measureVerify    = "go-verify"
	measureColdBuild = "cold-build"
)

// wantMeasure reports whether the run measures id: always without -only,
// else when -only names it.
func (b *bench) wantMeasure(id string) bool {
	if b.opts.only == "" {
		return true
	}
	for _, f := range strings.Split(b.opts.only, ",") {
		if strings.TrimSpace(f) == id {
			return true
		}
	}
	return false
}

// src is the checkout the gateway is built from.
func (b *bench) src() string {
	if b.opts.coinopSrc != "" {
		return b.opts.coinopSrc
	}
	return b.root
}

// goMeasures measures what the run wants of the Go benchmarks and the cold
// build, in the gateway's checkout.
func (b *bench) goMeasures(ctx context.Context) ([]report.Measure, error) {
	var out []report.Measure
	if b.wantMeasure(measureVerify) {
		m, err := goBenchmark(ctx, b.src(), "./evm", "BenchmarkVerify", 5000, 5)
		if err != nil {
			return nil, err
		}
		m.ID, m.Name = measureVerify, "evm BenchmarkVerify (cgo): one payment's whole verification, instant node"
		out = append(out, m)
	}
	if b.wantMeasure(measureColdBuild) {
		m, err := coldBuild(ctx, b.src(), filepath.Join(b.w.dir, "cold"))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+([0-9.]+) ns/op`)

// goBenchmark runs one Go benchmark count times in dir and returns the
// median, in µs per operation.
func goBenchmark(ctx context.Context, dir, pkg, name string, n, count int) (report.Measure, error) {
	args := []string{"test", "-run", "^$", "-bench", "^" + name + "$", "-benchtime", fmt.Sprintf("%dx", n), "-count", strconv.Itoa(count), pkg}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return report.Measure{}, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, outb)
	}
	var ns []float64
	sc := bufio.NewScanner(bytes.NewReader(outb))
	for sc.Scan() {
		if m := benchLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			ns = append(ns, v)
		}
	}
	if len(ns) == 0 {
		return report.Measure{}, fmt.Errorf("go %s printed no result:\n%s", strings.Join(args, " "), outb)
	}
	slices.Sort(ns)
	us := ns[len(ns)/2] / 1000
	return report.Measure{
		Value: float64(int(us*10+0.5)) / 10, Unit: "µs/op",
		How:    "go " + strings.Join(args, " "),
		Detail: fmt.Sprintf("median of %d runs (%.1f–%.1f)", len(ns), ns[0]/1000, ns[len(ns)-1]/1000),
	}, nil
}

// coldBuild builds ./cmd/coinop in dir with an empty build cache (the
// modules already downloaded), as a newcomer's first `go run ./cmd/coinop
// dev` does, and says what the build spent its time on, from the go
// command's trace: the slowest packages to compile, and the link.
func coldBuild(ctx context.Context, dir, scratch string) (report.Measure, error) {
	cache := filepath.Join(scratch, "gocache")
	trace := filepath.Join(scratch, "trace.json")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return report.Measure{}, err
	}
	defer os.RemoveAll(cache)
	args := []string{"build", "-debug-trace=" + trace, "-o", filepath.Join(scratch, "coinop"), "./cmd/coinop"}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOCACHE="+cache)
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return report.Measure{}, fmt.Errorf("cold build: %v\n%s", err, outb)
	}
	detail := ""
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		detail = fmt.Sprintf("peak RSS of one process %d MB", ru.Maxrss/1024)
	}
	if d, err := traceSummary(trace); err == nil {
		detail += "; " + d
	}
	return report.Measure{
		ID: measureColdBuild, Name: "first `go run ./cmd/coinop dev`: the cold build (empty build cache, modules downloaded)",
		Value: float64(int(wall.Seconds()*10+0.5)) / 10, Unit: "s",
		How:    "GOCACHE=$(mktemp -d) go build ./cmd/coinop",
		Detail: detail,
	}, nil
}

// traceSummary reads a go command trace (-debug-trace) and names the
// slowest actions: per module, the compile time of its packages summed,
// and the longest single packages.
func traceSummary(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var events []struct {
		Name string  `json:"name"`
		Ph   string  `json:"ph"`
		TS   float64 `json:"ts"`
		TID  int     `json:"tid"`
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		return "", err
	}
	const prefix = "Executing action ("
	begun := map[string]float64{}
	perPkg := map[string]float64{} // seconds
	for _, e := range events {
		if !strings.HasPrefix(e.Name, prefix) || strings.Contains(e.Name, "->") || strings.Contains(e.Name, "check cache") {
			continue
		}
		key := e.Name + "#" + strconv.Itoa(e.TID)
		switch e.Ph {
		case "B":
			begun[key] = e.TS
		case "E":
			if t0, ok := begun[key]; ok {
				what := strings.TrimSuffix(strings.TrimPrefix(e.Name, prefix), ")")
				perPkg[what] += (e.TS - t0) / 1e6
				delete(begun, key)
			}
		}
	}
	type entry struct {
		name string
		s    float64
	}
	var pkgs []entry
	perModule := map[string]float64{}
	for name, s := range perPkg {
		pkgs = append(pkgs, entry{name, s})
		pkg, ok := strings.CutPrefix(name, "build ")
		if !ok {
			continue
		}
		perModule[moduleOf(pkg)] += s
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].s > pkgs[j].s })
	var mods []entry
	for m, s := range perModule {
		mods = append(mods, entry{m, s})
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].s > mods[j].s })
	var b strings.Builder
	b.WriteString("compile time by module:")
	for i, m := range mods[:min(5, len(mods))] {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %.0f s", m.name, m.s)
	}
	b.WriteString("; slowest actions:")
	for i, p := range pkgs[:min(4, len(pkgs))] {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %.0f s", p.name, p.s)
	}
	return b.String(), nil
}

// moduleOf names the module a package path belongs to, roughly: the
// standard library, or the path's first three elements (two for hosts
// whose module paths are short, like modernc.org/sqlite).
func moduleOf(pkg string) string {
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") {
		return "std"
	}
	n := 3
	switch first {
	case "modernc.org", "google.golang.org", "gopkg.in", "go.yaml.in", "rsc.io":
		n = 2
	}
	parts := strings.Split(pkg, "/")
	return strings.Join(parts[:min(n, len(parts))], "/")
}
