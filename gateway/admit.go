package gateway

import (
	"bufio"
	"net"
	"net/http"

	"github.com/coinop/coinop/paywall"
)

// admit bounds the requests carrying a payment (carries) that the engine
// works on at once to cap(slots): decoding and verifying the payment,
// reserving it in the journal, the upstream's headers and the journal's
// record of the outcome. One beyond waits here, before any of that, until a
// slot is free or its client gives up. The slot is given back once the
// response's headers have passed the engine (or the connection was taken
// over, or the handler returned), so a body being copied or a WebSocket
// session does not hold it. Requests without a payment (free routes, 402
// challenges) pass at once. nil slots: no bound.
func admit(slots chan struct{}, carries func(*http.Request) bool, next http.Handler) http.Handler {
	if slots == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !carries(r) {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			select {
			case slots <- struct{}{}:
			case <-r.Context().Done():
				return // the client is gone: nothing was decided
			}
		}
		aw := &admittedWriter{ResponseWriter: w, slots: slots}
		defer aw.release()
		if paywall.CanHijack(w) {
			next.ServeHTTP(&admittedHijacker{aw}, r)
			return
		}
		next.ServeHTTP(aw, r)
	})
}

// admittedWriter gives its request's slot back once the final headers are
// written.
type admittedWriter struct {
	http.ResponseWriter
	slots    chan struct{}
	released bool
}

func (w *admittedWriter) release() {
	if !w.released {
		w.released = true
		<-w.slots
	}
}

func (w *admittedWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	if code >= 200 {
		w.release()
	}
}

func (w *admittedWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.release()
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *admittedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// admittedHijacker is an admittedWriter on a connection that can be taken
// over (HTTP/1): taking it gives the slot back.
type admittedHijacker struct{ *admittedWriter }

func (w *admittedHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.release()
	}
	return c, rw, err
}
