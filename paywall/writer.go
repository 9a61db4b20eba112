package paywall

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// errReplaced is returned to a handler that keeps writing after the paywall
// answered in its place (a settlement failed).
var errReplaced = errors.New("paywall: the response was replaced by a payment error")

// settleWriter holds the handler's status line until settle has decided
// whether the response may go out. It never buffers the body: once the status
// is committed, bytes stream through, so large and streaming responses cost
// no memory.
//
// Until then the handler writes its headers into a map of its own, not the
// client's: a response the paywall withholds (a failed settlement, an
// unavailable journal) must not leak a single upstream header (Set-Cookie,
// Location, an announced Trailer) into the 402 or 503 sent instead. The
// handler's headers join the engine's (the receipt, the exposed headers) only
// when the response is released.
//
// The commit points are every way a handler can put something in front of
// the client: WriteHeader with a final status (101 included), Write, Flush,
// and Hijack, which takes the connection away from the engine and so must be
// paid for first. Informational responses (1xx but 101) before the commit
// are dropped: they would carry the handler's headers before the money
// moved, and a client loses nothing but a hint without them.
type settleWriter struct {
	http.ResponseWriter
	settle    func(status int) bool
	header    http.Header // the handler's headers until released; nil until asked for
	committed bool        // settle ran
	replaced  bool        // settle refused; the paywall answered instead
	// onHijack, if set, is called once the handler took the connection over.
	onHijack func()
	// hijacked: the handler has the connection. Nothing may be flushed
	// through the ResponseWriter any more: net/http would write a status
	// line into the connection's buffer, which the hijacker shares.
	hijacked bool
}

// Header is the handler's header map: its own until the response is
// released, the client's from then on (so trailers set after the body reach
// the client).
func (sw *settleWriter) Header() http.Header {
	if sw.committed && !sw.replaced {
		return sw.ResponseWriter.Header()
	}
	if sw.header == nil {
		sw.header = http.Header{}
	}
	return sw.header
}

// commit runs settle once and reports whether the handler's response may go
// out; when it may, the handler's headers are released into the client's.
func (sw *settleWriter) commit(status int) bool {
	if sw.committed {
		return !sw.replaced
	}
	sw.committed = true
	if !sw.settle(status) {
		sw.replaced = true
		sw.header = nil
		return false
	}
	mergeHeader(sw.ResponseWriter.Header(), sw.header)
	sw.header = nil
	return true
}

// engineLists are headers the engine sets whose values are lists: the
// handler's values are added to the engine's. For every other header the
// engine set (a payment receipt), the engine's value stands, so a handler
// cannot forge or drop it.
var engineLists = map[string]bool{"Access-Control-Expose-Headers": true, "Vary": true}

func mergeHeader(dst, src http.Header) {
	for k, vs := range src {
		if _, ours := dst[k]; ours && !engineLists[k] {
			continue
		}
		dst[k] = append(dst[k], vs...)
	}
}

func (sw *settleWriter) WriteHeader(status int) {
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		return // informational: dropped before the commit, meaningless after it
	}
	if sw.commit(status) {
		sw.ResponseWriter.WriteHeader(status)
	}
}

func (sw *settleWriter) Write(b []byte) (int, error) {
	if !sw.committed {
		if !sw.commit(http.StatusOK) {
			return 0, errReplaced
		}
		sw.ResponseWriter.WriteHeader(http.StatusOK)
	}
	if sw.replaced {
		return 0, errReplaced
	}
	return sw.ResponseWriter.Write(b)
}

// Flush commits a 200 if nothing was written yet, then flushes.
func (sw *settleWriter) Flush() {
	if !sw.committed {
		sw.WriteHeader(http.StatusOK)
	}
	if sw.replaced {
		return
	}
	_ = http.NewResponseController(sw.ResponseWriter).Flush()
}

// Hijack is a commit point: whoever takes the connection can write anything
// on it (a 101 and a WebSocket's frames, through httputil.ReverseProxy),
// unseen by the engine, so the payment is settled first, as for a 101. If
// the settlement fails, the client has its 402 and the handler gets an
// error instead of the connection.
func (sw *settleWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !CanHijack(sw.ResponseWriter) {
		return nil, nil, http.ErrNotSupported // nothing settled: the handler answers otherwise
	}
	if !sw.commit(http.StatusSwitchingProtocols) {
		return nil, nil, errReplaced
	}
	c, rw, err := http.NewResponseController(sw.ResponseWriter).Hijack()
	if err == nil {
		sw.hijacked = true
		if sw.onHijack != nil {
			sw.onHijack()
		}
	}
	return c, rw, err
}

// CanHijack reports whether w, or a writer it wraps (Unwrap, as
// http.ResponseController follows), can hand the connection over (HTTP/1;
// an HTTP/2 stream cannot), so that a handler is never charged for a
// connection it then does not get.
func CanHijack(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Hijacker); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer for what
// settleWriter does not implement itself (deadlines, full duplex).
func (sw *settleWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// finish commits an implicit 200 for a handler that wrote nothing.
func (sw *settleWriter) finish() {
	if !sw.committed {
		sw.WriteHeader(http.StatusOK)
	}
}
