package report_test

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/bench/report"
)

func sample() *report.Report {
	return &report.Report{
		Command: "go run ./bench/cmd/coinop-bench", Duration: 8 * time.Second,
		Machine: report.Machine{CPU: "Test CPU", Cores: 2, Go: "go1.26.8", Chain: "anvil"},
		Rows: []report.Row{
			{ID: "direct", Name: "upstream, direct", Target: "upstream", Concurrency: 32, Throughput: 30000, P50: 1, P99: 5, OK: 240000, Statuses: map[int]int64{200: 240000}},
			{ID: "free", Name: "coinop, free route", Target: "coinop", Concurrency: 32, Throughput: 10000, P50: 3, P99: 10, OK: 80000, Statuses: map[int]int64{200: 80000}},
			{ID: "challenge", Name: "coinop, 402 challenge", Target: "coinop", Concurrency: 32, Throughput: 15000, Statuses: map[int]int64{402: 1}},
			{ID: "ts-paid", Name: "x402 TS, paid", Target: "x402-ts", Concurrency: 32, Throughput: 15, Statuses: map[int]int64{200: 120}},
		},
	}
}

func TestMarkdown(t *testing.T) {
	md := sample().Markdown()
	for _, want := range []string{
		"| coinop, free route | 32 | 10000 | 3.00 | 10.0 |",
		"| 1.00× | 0.333× |", // free route against itself and against direct
		"| x402 TS, paid | 32 | 15.0 |",
		"`go run ./bench/cmd/coinop-bench`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestChart(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteChart(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 150 {
		t.Errorf("chart is %v", b)
	}
}
