package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/coinop/coinop/metrics"
	"github.com/coinop/coinop/paywall"
)

// access wraps next with one access log line and the request metrics per
// request: method, path, route, status, bytes, latency, and, from the
// engine's note, the rail, the price, the payer, the payment and what
// became of it (with the refusal's reason). Nothing secret is logged: no
// header, no query string (it may carry tokens), no credential. m may be
// nil.
func access(log *slog.Logger, m *metrics.Metrics, now func() time.Time, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := now()
		r, n := paywall.Noting(r)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			took := now().Sub(start)
			status := sw.status
			if status == 0 {
				status = http.StatusOK // a handler that wrote nothing answered 200
			}
			m.Request(n.Route, status, took)
			if log == nil || !log.Enabled(r.Context(), slog.LevelInfo) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", n.Route),
				slog.Int("status", status), slog.Int64("bytes", sw.bytes), slog.Duration("took", took),
				slog.String("outcome", n.Outcome),
			}
			if n.Reason != "" {
				attrs = append(attrs, slog.String("reason", n.Reason))
			}
			if n.Rail != "" {
				attrs = append(attrs, slog.String("rail", n.Rail), slog.String("price", n.Price),
					slog.String("payer", n.Payer), slog.String("payment", n.Payment))
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records the final status and the body bytes written. It
// reaches the connection's other abilities (flush, hijack, deadlines)
// through Unwrap, as http.ResponseController does.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
