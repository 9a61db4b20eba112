package loadgen_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop/bench/loadgen"
)

func TestRunCountsAndBounds(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.Header.Get("X-Pay") == "" {
			w.WriteHeader(http.StatusPaymentRequired)
		}
	}))
	defer srv.Close()

	// Headers run out after 50 requests: the run ends early, every answer
	// in the window is counted.
	res, err := loadgen.Run(t.Context(), loadgen.Config{
		URL: srv.URL, Concurrency: 4, Duration: 5 * time.Second,
		Header: func(i int64) (string, string, bool) { return "X-Pay", fmt.Sprint(i), i < 50 },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK == 0 || res.OK > 50 || res.Statuses[200] != res.OK || res.Elapsed > 4*time.Second {
		t.Errorf("result %+v", res)
	}
	if len(res.Latencies) != int(res.Requests) || res.Percentile(0.5) > res.Percentile(0.99) {
		t.Errorf("latencies: %d for %d requests", len(res.Latencies), res.Requests)
	}

	// MaxRequests bounds the measured count; unexpected statuses are not OK.
	res, err = loadgen.Run(t.Context(), loadgen.Config{URL: srv.URL, Concurrency: 2, Duration: 5 * time.Second, MaxRequests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Statuses[402] == 0 || res.Statuses[402] > 20 || res.FirstBad != "status 402" {
		t.Errorf("result %+v", res)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1/", "http://example.com/", "http://192.168.1.1:80/"} {
		if _, err := loadgen.Run(t.Context(), loadgen.Config{URL: u, Duration: time.Second}); err == nil {
			t.Errorf("Run(%s) accepted a non-loopback target", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1/", "http://localhost/", "http://[::1]/"} {
		if err := loadgen.CheckLoopback(u); err != nil {
			t.Errorf("CheckLoopback(%s): %v", u, err)
		}
	}
}

func TestUsageOfThisProcess(t *testing.T) {
	u, err := loadgen.Procs{os.Getpid()}.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSS <= 0 {
		t.Errorf("peak RSS %d", u.PeakRSS)
	}
	spin := time.Now()
	for time.Since(spin) < 50*time.Millisecond {
	}
	after, _ := loadgen.Procs{os.Getpid()}.Usage()
	if after.CPU <= u.CPU {
		t.Errorf("CPU did not grow: %v → %v", u.CPU, after.CPU)
	}
}
