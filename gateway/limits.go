package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/paywall"
)

// bound applies the per-request limits around next: a body larger than
// MaxBodyBytes is refused with 413 (at once when Content-Length says so,
// else when the read passes the bound), and a body must arrive within
// BodyTimeout of the headers. Both run before the paywall sees the request,
// and a body refused later makes the upstream call fail, which releases any
// payment: nothing is charged for a request that was never whole.
func bound(l config.Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > l.MaxBodyBytes {
			paywall.WriteError(w, r, tooLarge(l.MaxBodyBytes))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body := &boundedBody{ReadCloser: http.MaxBytesReader(w, r.Body, l.MaxBodyBytes)}
			// A request that switches protocols has no body to wait for:
			// its connection lives on after the switch, and a read deadline
			// would cut it.
			if r.Header.Get("Upgrade") == "" {
				rc := http.NewResponseController(w)
				// Network deadlines are wall-clock times for the OS.
				if rc.SetReadDeadline(time.Now().Add(l.BodyTimeout)) == nil {
					body.clear = sync.OnceFunc(func() { _ = rc.SetReadDeadline(time.Time{}) })
				}
			}
			// The proxy hands its error handler a wrapped body: the
			// context carries this one there.
			r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, body))
			r.Body = body
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(max int64) error {
	return coinop.Errorf(coinop.KindTooLarge, coinop.ReasonBodyTooLarge, "the request body is larger than %d bytes", max)
}

type bodyKey struct{}

// boundedBody lifts the body's read deadline once the body is read (the
// server's own read for a client hang-up must not time out while the
// upstream works) and remembers a read that timed out, so the proxy's error
// handler blames the client (408), not the upstream: the server cancels the
// request when its connection times out, and the proxy sees only that.
type boundedBody struct {
	io.ReadCloser
	clear    func()
	timedOut atomic.Bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.clear != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			b.timedOut.Store(true)
			return n, err
		}
		b.clear()
	}
	return n, err
}

// proxyError is the problem for an error of the reverse proxy: a body the
// client sent too slowly or too large (408, 413), an upstream that did not
// answer within its route's upstream_timeout (504), or one that could not be
// reached (502). On a priced route each releases the payment.
func proxyError(r *http.Request, err error, maxBody int64) error {
	var tooBig *http.MaxBytesError
	var ne net.Error
	body, _ := r.Context().Value(bodyKey{}).(*boundedBody)
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(maxBody)
	case body != nil && body.timedOut.Load():
		return coinop.Wrap(coinop.KindRequestTimeout, coinop.ReasonBodyTimeout, err, "the request body did not arrive in time; nothing was charged")
	case errors.As(err, &ne) && ne.Timeout():
		return coinop.Wrap(coinop.KindUpstreamTimeout, coinop.ReasonUpstreamTimeout, err, "the upstream service did not answer in time; nothing was charged")
	}
	return coinop.Wrap(coinop.KindBadGateway, coinop.ReasonUpstreamFailed, err, "the upstream service did not answer; nothing was charged")
}

// limitListener accepts at most n connections at once. One more is answered
// at once with a 503 problem and closed, rather than left waiting in the
// kernel's queue where the client cannot tell a busy gateway from a dead one.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
		default:
			go refuseConn(c)
		}
	}
}

// busyAnswer is the whole answer to a connection beyond the limit.
var busyAnswer = func() []byte {
	body := `{"type":"about:blank","title":"Service Unavailable","status":503,` +
		`"detail":"the gateway has too many open connections; retry shortly","reason":"too_many_connections"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n" +
		"Retry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func refuseConn(c net.Conn) {
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(busyAnswer)
}

// limitConn gives its slot back when closed, before the close itself, so
// that a client that saw the connection end can count on the slot.
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	c.release()
	return c.Conn.Close()
}
