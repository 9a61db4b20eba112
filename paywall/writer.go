package paywall

import (
	"errors"
	"net/http"
)

// errReplaced is returned to a handler that keeps writing after the paywall
// answered in its place (a settlement failed).
var errReplaced = errors.New("paywall: the response was replaced by a payment error")

// settleWriter holds the handler's status line until settle has decided
// whether the response may go out. It never buffers the body: once the status
// is committed, bytes stream through, so large and streaming responses cost
// no memory.
type settleWriter struct {
	http.ResponseWriter
	settle    func(status int) bool
	committed bool // settle ran
	replaced  bool // settle refused; the paywall answered instead
}

func (sw *settleWriter) commit(status int) {
	if sw.committed {
		return
	}
	sw.committed = true
	if !sw.settle(status) {
		sw.replaced = true
		return
	}
	sw.ResponseWriter.WriteHeader(status)
}

func (sw *settleWriter) WriteHeader(status int) {
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		if !sw.committed {
			sw.ResponseWriter.WriteHeader(status) // informational: nothing to settle yet
		}
		return
	}
	sw.commit(status)
}

func (sw *settleWriter) Write(b []byte) (int, error) {
	sw.commit(http.StatusOK)
	if sw.replaced {
		return 0, errReplaced
	}
	return sw.ResponseWriter.Write(b)
}

// Flush commits a 200 if nothing was written yet, then flushes.
func (sw *settleWriter) Flush() {
	sw.commit(http.StatusOK)
	if sw.replaced {
		return
	}
	_ = http.NewResponseController(sw.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (sw *settleWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// finish commits an implicit 200 for a handler that wrote nothing.
func (sw *settleWriter) finish() { sw.commit(http.StatusOK) }
