package evm_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/x402"
)

// wsAccept is RFC 6455's Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// paidFrame is the one WebSocket text frame the upstream sends.
var paidFrame = append([]byte{0x81, 10}, "paid frame"...)

// wsUpstream is a minimal WebSocket server: it completes the handshake,
// sends paidFrame and holds the connection until the peer closes it.
func wsUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "websocket only", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
		brw.Write(paidFrame)
		brw.Flush()
		io.Copy(io.Discard, brw)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// dialWS sends a WebSocket handshake for path with a payment header and
// returns the gateway's answer and the connection's reader.
func (r *rig) dialWS(t *testing.T, path, payment string) (*http.Response, *bufio.Reader) {
	t.Helper()
	u, _ := url.Parse(r.srv.URL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second)) // bounds a broken test, not a measurement
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set(x402.HeaderPaymentSignature, payment)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, br
}

// A WebSocket on a priced route, through httputil.ReverseProxy: the client
// sees the 101 only once the payment's Transfer is on chain; a settlement
// that fails gives a 402 and no 101; a route that does not allow upgrades
// refuses them before anything is verified.
func TestWebSocketIsPaidBeforeTheSwitch(t *testing.T) {
	r := newRig(t)
	up, _ := url.Parse(wsUpstream(t).URL)
	r.ws = httputil.NewSingleHostReverseProxy(up)

	t.Run("settled before the 101", func(t *testing.T) {
		before := r.balance(t, r.payee)
		resp, br := r.dialWS(t, "/ws/chat", r.newPayment(t).header(t))
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("got %d, want 101", resp.StatusCode)
		}
		// Read the chain as soon as the 101 arrived: the money moved already.
		if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
			t.Fatalf("at the 101 the payee got %s, want the price", d)
		}
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept("dGhlIHNhbXBsZSBub25jZQ==") {
			t.Errorf("Sec-WebSocket-Accept %q", got)
		}
		if resp.Header.Get(x402.HeaderPaymentResponse) == "" {
			t.Error("the 101 carries no receipt")
		}
		frame := make([]byte, len(paidFrame))
		if _, err := io.ReadFull(br, frame); err != nil || string(frame) != string(paidFrame) {
			t.Fatalf("frame %q, %v", frame, err)
		}
	})
	t.Run("settlement fails", func(t *testing.T) {
		p := r.newPayment(t)
		h := p.header(t)
		r.onUpstream = func(*http.Request) { r.sendAuthorization(t, p) }
		defer func() { r.onUpstream = nil }()
		resp, _ := r.dialWS(t, "/ws/chat", h)
		if resp.StatusCode != http.StatusPaymentRequired {
			t.Fatalf("got %d, want 402", resp.StatusCode)
		}
		if resp.Header.Get("Sec-WebSocket-Accept") != "" || resp.Header.Get("Upgrade") != "" {
			t.Errorf("the refusal carries the upstream's handshake: %v", resp.Header)
		}
	})
	t.Run("route without upgrades", func(t *testing.T) {
		calls := r.upCalls
		resp, _ := r.dialWS(t, "/paid/chat", r.newPayment(t).header(t))
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "upgrade_not_allowed") {
			t.Fatalf("got %d %s, want 403 upgrade_not_allowed", resp.StatusCode, b)
		}
		if r.upCalls != calls {
			t.Error("the upstream was called")
		}
	})
}
