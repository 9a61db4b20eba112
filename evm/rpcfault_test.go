package evm_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// fault is what faultRPC does to one JSON-RPC call.
type fault int

const (
	pass       fault = iota // forward and answer
	tooMany                 // answer 429 without forwarding
	dropBefore              // close the connection without forwarding
	dropAfter               // forward, let the node act, close without answering
	reject                  // answer a JSON-RPC error without forwarding
	stall                   // hold the call, unforwarded, until the caller gives up
)

// faultRPC is a JSON-RPC-aware HTTP proxy in front of a node that injects
// faults per method and per call: plan[method][i] is what happens to the
// method's call number i+1; calls past the plan pass, unless a fault is set
// for every call with always.
type faultRPC struct {
	target string
	srv    *httptest.Server

	mu     sync.Mutex
	plan   map[string][]fault
	every  map[string]fault
	calls  map[string]int
	gaveUp map[string]int // stalled calls whose caller gave up, by method
	reject string         // the JSON-RPC error message of reject
}

// newFaultRPC starts a proxy to the JSON-RPC endpoint target on loopback;
// t.Cleanup stops it, releasing stalled calls.
func newFaultRPC(t *testing.T, target string) *faultRPC {
	f := &faultRPC{target: target, plan: map[string][]fault{}, every: map[string]fault{}, calls: map[string]int{}, gaveUp: map[string]int{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

// URL is the proxy's JSON-RPC endpoint.
func (f *faultRPC) URL() string { return f.srv.URL }

// script sets the faults of method's next calls, counted from now.
func (f *faultRPC) script(method string, faults ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan[method], f.calls[method] = faults, 0
	delete(f.every, method)
}

// always sets one fault for every later call of method.
func (f *faultRPC) always(method string, ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.every[method] = ft
}

// heal makes every later call pass.
func (f *faultRPC) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.plan)
	clear(f.every)
}

// count is how many calls of method arrived since its last script.
func (f *faultRPC) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// givenUp is how many stalled calls of method their callers gave up on.
func (f *faultRPC) givenUp(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gaveUp[method]
}

func (f *faultRPC) decide(method string) fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.calls[method]
	f.calls[method] = n + 1
	if ft, ok := f.every[method]; ok {
		return ft
	}
	if n < len(f.plan[method]) {
		return f.plan[method][n]
	}
	return pass
}

func (f *faultRPC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var call struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	json.Unmarshal(body, &call) // a batch has no method: it passes
	switch f.decide(call.Method) {
	case tooMany:
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	case dropBefore:
		hangUp(w)
		return
	case reject:
		f.mu.Lock()
		msg := f.reject
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": call.ID, "error": map[string]any{"code": -32000, "message": msg}})
		return
	case stall:
		<-r.Context().Done()
		f.mu.Lock()
		f.gaveUp[call.Method]++
		f.mu.Unlock()
		return
	case dropAfter:
		if resp, err := f.forward(r, body); err == nil {
			resp.Body.Close() // the node has acted on the call
		}
		hangUp(w)
		return
	}
	resp, err := f.forward(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (f *faultRPC) forward(r *http.Request, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, f.target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	// Read it all now, so that the node's work is done whatever the caller
	// is told.
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
