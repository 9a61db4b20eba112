package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/coinop/coinop/bench/report"
)

// machine describes this computer from /proc and the tools' versions.
func machine(b *bench) report.Machine {
	m := report.Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(cpu)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.Memory = fmt.Sprintf("%.0f GiB", float64(si.Totalram)*float64(si.Unit)/(1<<30))
	}
	var un syscall.Utsname
	if syscall.Uname(&un) == nil {
		m.Kernel = "Linux " + utsString(un.Release[:])
	}
	m.Nginx, m.Node, m.Anvil = b.versions["nginx"], b.versions["node"], b.versions["anvil"]
	m.Load = loadAverage()
	m.Chain = b.opts.chainKind
	if b.chain != nil && b.chain.Kind == "anvil" {
		m.Chain = "anvil (automine), the same chain as the TS stack"
	} else if b.chain != nil {
		m.Chain = "coinop's embedded devchain (blocks at most 2 s ahead of the clock)"
	}
	return m
}

// loadAverage is the 1-minute load average from /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func utsString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// checks evaluates the targets on this run's rows.
func checks(r *report.Report) []report.Check {
	var out []report.Check
	tput := func(id string) float64 {
		if x := r.Find(id); x != nil {
			return x.Throughput
		}
		return 0
	}
	ratioCheck := func(goal string, num, den float64, min float64, detail string) {
		c := report.Check{Goal: goal, Detail: detail}
		if num > 0 && den > 0 {
			v := num / den
			met := v >= min
			c.Value, c.Met = fmt.Sprintf("%.2f×", v), &met
		} else {
			c.Value = "not measured"
		}
		out = append(out, c)
	}
	free := tput("free")
	paidID, paidDetail := "async", "async settlement"
	if tput("async") == 0 {
		paidID, paidDetail = "verify", "async mode pending: verification-only row (payment verified, journaled, released) stands in"
	}
	ratioCheck("paid (async) ≥ 0.5 × free route", tput(paidID), free, 0.5, paidDetail)
	ratioCheck("credits ≥ 0.8 × free route", tput("credits"), free, 0.8,
		"a bearer token over a prepaid balance: one ledger debit per request, journaled, no transfer")
	ratioCheck("402 challenge ≥ 0.8 × free route", tput("challenge"), free, 0.8, "")
	ratioCheck("paid ≥ 20 × official TS stack", tput(paidID), tput("ts-paid"), 20, paidDetail)
	ratioCheck("sync paid ≥ 10 × official TS stack", tput("sync"), tput("ts-paid"), 10, "")
	ratioCheck("nginx + coinop auth ≥ 0.7 × nginx alone", tput("nginx-auth-free"), tput("nginx"), 0.7, "free route")
	ratioCheck("nginx + coinop auth, credits ≥ 0.7 × nginx alone", tput("nginx-auth-credits"), tput("nginx"), 0.7,
		"a credits route: every request one debit of the account, in one journal transaction (fsync), no transfer")
	ratioCheck("nginx + coinop auth, x402 upfront ≥ 0.7 × coinop sync", tput("nginx-auth-sync"), tput("sync"), 0.7,
		"the same payment settled before the check's 2xx instead of before coinop's proxied response")
	if m := r.FindMeasure(measureVerify); m != nil {
		met := m.Value <= 50
		out = append(out, report.Check{Goal: "BenchmarkVerify ≤ 50 µs (cgo)", Value: fmt.Sprintf("%.1f µs", m.Value), Met: &met})
	}
	if v := r.Find("verify"); v != nil {
		met := v.CPUPerReq <= 150
		detail := ""
		if f := r.Find("free"); f != nil {
			detail = fmt.Sprintf("%.0f µs more than the free route's %.0f", v.CPUPerReq-f.CPUPerReq, f.CPUPerReq)
		}
		out = append(out, report.Check{Goal: "verification-only row ≤ 150 µs gateway CPU per payment",
			Value: fmt.Sprintf("%.0f µs/req", v.CPUPerReq), Met: &met, Detail: detail})
	}
	if m := r.FindMeasure(measureColdBuild); m != nil {
		out = append(out, report.Check{Goal: "first `go run ./cmd/coinop dev`: measured, in the README, cut",
			Value: fmt.Sprintf("%.0f s cold build", m.Value)})
	}
	var peak int64
	var peakOf []string
	for _, id := range []string{"free-big", "verify-big"} {
		if x := r.Find(id); x != nil {
			peak = max(peak, x.PeakRSS)
			peakOf = append(peakOf, fmt.Sprintf("%s %.0f MB", id, float64(x.PeakRSS)/(1<<20)))
		}
	}
	if len(peakOf) > 0 {
		met := peak <= 100<<20
		out = append(out, report.Check{Goal: "peak RSS at 1,000 connections ≤ 100 MB", Value: strings.Join(peakOf, ", "), Met: &met})
	}
	return out
}
