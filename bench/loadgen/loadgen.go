// Package loadgen is coinop's closed-loop HTTP load generator: a fixed
// number of workers, each with one request in flight, for a bounded time and
// a bounded count, against loopback targets only. Every number in the bench
// table comes from it, so targets are compared with one tool.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one run.
type Config struct {
	// URL is the target; its host must be a loopback address.
	URL string
	// Concurrency is the number of workers, each with its own connection and
	// one request in flight. If zero, 32.
	Concurrency int
	// Duration bounds the measured run. Required.
	Duration time.Duration
	// Warmup runs before the measured run and is not counted. Zero: none.
	Warmup time.Duration
	// MaxRequests bounds the number of measured requests; zero: no bound
	// other than Duration (and Header running out).
	MaxRequests int64
	// Header, if set, returns the extra header for request i (counted from 0
	// across warmup and measurement). ok false means no request is left: the
	// run ends (the pre-signed payments are used up).
	Header func(i int64) (name, value string, ok bool)
	// Expect is the status a successful request answers with. If zero, 200.
	Expect int
	// Timeout bounds one request. If zero, 30 s.
	Timeout time.Duration
	// OnWindowEnd, if set, is called when the measured window closes, while
	// the workers are still connected (to sample the target's memory).
	OnWindowEnd func()
}

// Result is what a run measured.
type Result struct {
	Requests  int64         // measured requests that completed (any status)
	OK        int64         // of those, answered with Config.Expect
	Errors    int64         // transport errors (no answer)
	Statuses  map[int]int64 // answers by status
	FirstBad  string        // the first unexpected answer or error, for the report
	Elapsed   time.Duration // measured wall time
	Latencies []time.Duration
}

// Throughput is successful requests per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q ≤ 1) of the latencies of all
// measured requests, by the nearest-rank method.
func (r *Result) Percentile(q float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	i := int(q*float64(n)+0.999999) - 1
	return r.Latencies[min(max(i, 0), n-1)]
}

// CheckLoopback refuses any target that is not on this machine's loopback.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("loadgen: %s is not a loopback address", host)
}

// Run runs cfg's workload and returns what it measured.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := CheckLoopback(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Duration <= 0 {
		return nil, errors.New("loadgen: Duration is required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Expect == 0 {
		cfg.Expect = http.StatusOK
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	tr := &http.Transport{
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var (
		next     atomic.Int64 // request index, for Header
		measured atomic.Bool
		counted  atomic.Int64 // measured requests started
		mu       sync.Mutex
		res      = &Result{Statuses: map[int]int64{}}
	)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	worker := func() {
		lat := make([]time.Duration, 0, 4096)
		statuses := map[int]int64{}
		var ok, errs int64
		var firstBad string
		for runCtx.Err() == nil {
			i := next.Add(1) - 1
			inWindow := measured.Load()
			if inWindow && cfg.MaxRequests > 0 && counted.Add(1) > cfg.MaxRequests {
				stop()
				break
			}
			req, err := http.NewRequestWithContext(runCtx, http.MethodGet, cfg.URL, nil)
			if err != nil {
				firstBad = err.Error()
				break
			}
			if cfg.Header != nil {
				name, value, more := cfg.Header(i)
				if !more {
					stop()
					break
				}
				req.Header.Set(name, value)
			}
			start := time.Now()
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			d := time.Since(start)
			if !inWindow || !measured.Load() {
				continue // warmup, or the window closed while it ran
			}
			if runCtx.Err() != nil && err != nil {
				break // cancelled at the end of the run: not a target error
			}
			lat = append(lat, d)
			switch {
			case err != nil:
				errs++
				if firstBad == "" {
					firstBad = err.Error()
				}
			case resp.StatusCode == cfg.Expect:
				ok++
				statuses[resp.StatusCode]++
			default:
				statuses[resp.StatusCode]++
				if firstBad == "" {
					firstBad = fmt.Sprintf("status %d", resp.StatusCode)
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		res.Latencies = append(res.Latencies, lat...)
		res.OK += ok
		res.Errors += errs
		for s, n := range statuses {
			res.Statuses[s] += n
		}
		if res.FirstBad == "" {
			res.FirstBad = firstBad
		}
	}

	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(worker)
	}
	if cfg.Warmup > 0 {
		select {
		case <-time.After(cfg.Warmup):
		case <-runCtx.Done():
		}
	}
	measured.Store(true)
	start := time.Now()
	select {
	case <-time.After(cfg.Duration):
	case <-runCtx.Done():
	}
	res.Elapsed = time.Since(start)
	measured.Store(false)
	if cfg.OnWindowEnd != nil {
		cfg.OnWindowEnd()
	}
	stop()
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	slices.Sort(res.Latencies)
	res.Requests = int64(len(res.Latencies))
	return res, nil
}
