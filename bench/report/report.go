// Package report turns bench measurements into the Markdown table and the
// PNG chart kept under bench/results.
package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Row is one measured workload against one target.
type Row struct {
	ID          string        `json:"id"`     // stable key: "free", "sync", "ts-paid"
	Name        string        `json:"name"`   // what ran, for people
	Target      string        `json:"target"` // process group measured: "coinop", "nginx", "x402-ts", "upstream"
	Concurrency int           `json:"concurrency"`
	Requests    int64         `json:"requests"` // completed in the measured window
	OK          int64         `json:"ok"`       // answered with the expected status
	Errors      int64         `json:"errors"`   // no answer
	Expect      int           `json:"expect"`   // the expected status
	Seconds     float64       `json:"seconds"`  // measured window
	Throughput  float64       `json:"reqPerSec"`
	P50         float64       `json:"p50Ms"`
	P99         float64       `json:"p99Ms"`
	CPUPerReq   float64       `json:"cpuUsPerReq"`      // target processes, µs per completed request
	ChainCPU    float64       `json:"chainCpuUsPerReq"` // the chain's process, µs per request; 0 if none
	PeakRSS     int64         `json:"peakRssBytes"`     // target processes, summed VmHWM
	Statuses    map[int]int64 `json:"statuses"`
	FirstBad    string        `json:"firstBad,omitempty"`
	EndedEarly  bool          `json:"endedEarly,omitempty"` // the pre-signed payments ran out before the time bound
}

// Machine describes where the bench ran.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Nginx  string `json:"nginx,omitempty"`
	Node   string `json:"node,omitempty"`
	Anvil  string `json:"anvil,omitempty"`
	Chain  string `json:"chain"` // what coinop settled on
	// Load is the 1-minute load average before and after the run: other
	// work on the machine shows up in every row.
	Load    string `json:"load,omitempty"`
	Started string `json:"started"`
}

// Check is one target of the issue, evaluated on this run.
type Check struct {
	Goal   string `json:"goal"`
	Value  string `json:"value"`
	Met    *bool  `json:"met,omitempty"` // nil: could not be evaluated
	Detail string `json:"detail,omitempty"`
}

// Report is one bench run.
type Report struct {
	Command  string        `json:"command"`
	Machine  Machine       `json:"machine"`
	Duration time.Duration `json:"durationPerRow"`
	Rows     []Row         `json:"rows"`
	Checks   []Check       `json:"checks"`
	// Measures are what the run measured besides the load rows: Go
	// benchmarks of hot paths and the cold build.
	Measures []Measure `json:"measures,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
}

// Measure is one figure measured outside the load rows.
type Measure struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	How    string  `json:"how"`              // the command
	Detail string  `json:"detail,omitempty"` // what dominates, when known
}

// FindMeasure returns the measure with id, or nil.
func (r *Report) FindMeasure(id string) *Measure {
	for i := range r.Measures {
		if r.Measures[i].ID == id {
			return &r.Measures[i]
		}
	}
	return nil
}

// Find returns the row with id, or nil.
func (r *Report) Find(id string) *Row {
	for i := range r.Rows {
		if r.Rows[i].ID == id {
			return &r.Rows[i]
		}
	}
	return nil
}

// ratio formats a/b, or "–" when either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	x := a / b
	switch {
	case x >= 10:
		return fmt.Sprintf("%.0f×", x)
	case x >= 1:
		return fmt.Sprintf("%.2f×", x)
	default:
		return fmt.Sprintf("%.3f×", x)
	}
}

// Markdown renders the machine, the table with ratios to the direct and
// free-route baselines, and the targets.
func (r *Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Run %s on %d × %s, %s RAM, %s; %s", m.Started, m.Cores, m.CPU, m.Memory, m.Kernel, m.Go)
	for _, s := range []struct{ k, v string }{{"nginx", m.Nginx}, {"node", m.Node}, {"anvil", m.Anvil}} {
		if s.v != "" {
			fmt.Fprintf(&b, "; %s %s", s.k, s.v)
		}
	}
	if m.Load != "" {
		fmt.Fprintf(&b, "; load average %s", m.Load)
	}
	fmt.Fprintf(&b, ". coinop settles on %s. Every row: `%s` measured after a warm-up, closed loop, loopback.\n\n", m.Chain, r.Duration)
	fmt.Fprintf(&b, "Command: `%s`\n\n", r.Command)

	direct, free := r.Find("direct"), r.Find("free")
	tput := func(x *Row) float64 {
		if x == nil {
			return 0
		}
		return x.Throughput
	}
	b.WriteString("| what ran | conns | req/s | p50 ms | p99 ms | CPU µs/req | chain CPU µs/req | peak RSS MB | ÷ free route | ÷ direct | answers |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Rows {
		chainCPU := "–"
		if x.ChainCPU > 0 {
			chainCPU = fmt.Sprintf("%.0f", x.ChainCPU)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %.0f | %s | %.1f | %s | %s | %s |\n",
			x.Name, x.Concurrency, num(x.Throughput), ms(x.P50), ms(x.P99), x.CPUPerReq, chainCPU,
			float64(x.PeakRSS)/(1<<20), ratio(x.Throughput, tput(free)), ratio(x.Throughput, tput(direct)), answers(&x))
	}
	if len(r.Measures) > 0 {
		b.WriteString("\n| measured | value | how |\n|---|---:|---|\n")
		for _, x := range r.Measures {
			how := "`" + x.How + "`"
			if x.Detail != "" {
				how += "; " + x.Detail
			}
			fmt.Fprintf(&b, "| %s | %s %s | %s |\n", x.Name, strconv.FormatFloat(x.Value, 'f', -1, 64), x.Unit, how)
		}
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n| target | this run | met |\n|---|---|---|\n")
		for _, c := range r.Checks {
			met := "n/a"
			if c.Met != nil {
				met = map[bool]string{true: "yes", false: "**no**"}[*c.Met]
			}
			v := c.Value
			if c.Detail != "" {
				v += " (" + c.Detail + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Goal, v, met)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String()
}

// answers summarizes the statuses: "200 ×41k" or "200 ×9.9k, 402 ×12".
func answers(x *Row) string {
	codes := make([]int, 0, len(x.Statuses))
	for c := range x.Statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d ×%s", c, count(x.Statuses[c])))
	}
	if x.Errors > 0 {
		parts = append(parts, fmt.Sprintf("no answer ×%s", count(x.Errors)))
	}
	s := strings.Join(parts, ", ")
	if x.EndedEarly {
		s += " (payments used up)"
	}
	return s
}

func count(n int64) string {
	switch {
	case n >= 10000:
		return fmt.Sprintf("%.0fk", float64(n)/1000)
	case n >= 1000:
		return fmt.Sprintf("%.1fk", float64(n)/1000)
	}
	return fmt.Sprint(n)
}

func num(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.2f", f)
}

func ms(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.2f", f)
}
