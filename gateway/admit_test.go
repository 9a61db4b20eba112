package gateway_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/gateway"
)

// paidRig is a gateway on the dev chain in front of upstream, with a free
// route, a priced route /refuse (the upstream's 409 releases the payment:
// no settlement) and a priced WebSocket route /ws, under limits (YAML).
func paidRig(t *testing.T, ctx context.Context, upstream, limits string) (*httptest.Server, func() *http.Client) {
	t.Helper()
	dev, _ := startChain(t, ctx)
	cfg := devConfig(t, dev, upstream, "rpc: "+dev.RPCURL+"\n    settlement_key_env: SETTLER", `
  - match: GET /free
    free: true
  - match: GET /refuse/
    price: 0.001 USDC
  - match: GET /ws
    price: 0.001 USDC
    upgrade: true
`, "limits:\n"+limits)
	settler := hex.EncodeToString(crypto.FromECDSA(dev.Settler))
	_, gsrv := startGateway(t, ctx, cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return settler }})
	return gsrv, func() *http.Client { return payingClient(t, dev) }
}

// At most max_payments_in_flight paid requests are worked on at once: 8
// concurrent payments with a bound of 2 reach the upstream 2 at a time,
// and every one is answered.
func TestPaymentsInFlightBound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, busiest atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := busy.Add(1)
		defer busy.Add(-1)
		for {
			if m := busiest.Load(); n <= m || busiest.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
		w.WriteHeader(http.StatusConflict)
	}))
	defer up.Close()
	gsrv, client := paidRig(t, ctx, up.URL, "  max_payments_in_flight: 2\n")
	var wg sync.WaitGroup
	for i := range 8 {
		hc := client()
		wg.Go(func() {
			resp, err := hc.Get(fmt.Sprintf("%s/refuse/%d", gsrv.URL, i))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusConflict {
				t.Errorf("payment %d: %d, want the upstream's 409", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if b := busiest.Load(); b != 2 {
		t.Errorf("%d paid requests at the upstream at once, want 2", b)
	}
}

// While the bound is taken, requests without a payment (free routes, 402
// challenges) pass at once, and a paid one waits for its turn.
func TestPaymentsInFlightLetUnpaidThrough(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	held, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse/held" {
			close(held)
			<-release
		}
		w.WriteHeader(http.StatusConflict)
	}))
	defer up.Close()
	defer close(release) // before up.Close: the held request ends
	gsrv, client := paidRig(t, ctx, up.URL, "  max_payments_in_flight: 1\n")
	first := statusOf(client(), gsrv.URL+"/refuse/held")
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the first payment never reached the upstream")
	}
	quick := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]int{"/free": http.StatusConflict, "/refuse/unpaid": http.StatusPaymentRequired} {
		resp, err := quick.Get(gsrv.URL + path)
		if err != nil {
			t.Fatalf("%s while the bound is taken: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	second := statusOf(client(), gsrv.URL+"/refuse/second")
	select {
	case code := <-second:
		t.Fatalf("a second payment was answered (%d) while the bound of 1 was taken", code)
	case <-time.After(500 * time.Millisecond):
	}
	release <- struct{}{}
	if code := <-first; code != http.StatusConflict {
		t.Errorf("first payment: %d, want 409", code)
	}
	if code := <-second; code != http.StatusConflict {
		t.Errorf("second payment: %d, want 409", code)
	}
}

// statusOf sends GET url with hc and delivers the answer's status, 0 if
// there was none.
func statusOf(hc *http.Client, url string) <-chan int {
	c := make(chan int, 1)
	go func() {
		resp, err := hc.Get(url)
		if err != nil {
			c <- 0
			return
		}
		resp.Body.Close()
		c <- resp.StatusCode
	}()
	return c
}

// A paid WebSocket session gives its turn back once switched: with a bound
// of 1 and a session open, the next payment is served.
func TestPaymentsInFlightFreedBySwitch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			w.WriteHeader(http.StatusConflict)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo until the client hangs up
	}))
	defer up.Close()
	gsrv, client := paidRig(t, ctx, up.URL, "  max_payments_in_flight: 1\n")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gsrv.URL+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	wsc := client()
	wsc.Timeout = 0 // bounded by ctx; a client timeout would hide the session's writer
	resp, err := wsc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		t.Fatalf("upgrade: %d, want 101", resp.StatusCode)
	}
	session, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("a 101 whose body is a %T", resp.Body)
	}
	defer session.Close()
	if _, err := io.WriteString(session, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(session).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	// The session is open; the next payment must not wait for its end.
	hc := client()
	hc.Timeout = 20 * time.Second
	next, err := hc.Get(gsrv.URL + "/refuse/next")
	if err != nil {
		t.Fatalf("a payment while a paid session is open: %v", err)
	}
	next.Body.Close()
	if next.StatusCode != http.StatusConflict {
		t.Errorf("next payment: %d, want 409", next.StatusCode)
	}
}
