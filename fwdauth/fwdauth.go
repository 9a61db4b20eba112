// Package fwdauth is coinop as the payment check of another proxy (nginx
// auth_request, Caddy forward_auth, Traefik ForwardAuth): the proxy asks,
// for each request it is about to serve, whether it is paid, and coinop
// answers from the same routes and engine as its own gateway.
//
// The proxy describes the request it is asking about in headers: nginx's
// convention (X-Original-Method, X-Original-URI, X-Original-Host) or the
// X-Forwarded-* one of Caddy and Traefik (X-Forwarded-Method,
// X-Forwarded-Uri, X-Forwarded-Host), with X-Forwarded-Proto for the scheme
// in both. Every other header of the check is the original request's (the
// payment headers among them). The check answers 2xx when the request may
// go on (free, or paid: with X-Coinop-Payer, X-Coinop-Payment and the
// rail's receipt headers for the proxy to copy), or the engine's own
// refusal: a 402 with every challenge, a 400, 403 or 503.
//
// These headers are believed as they come, so the check must be reachable
// by the proxy only, never by clients: it listens on loopback by default.
package fwdauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
)

// The headers that name the request a check is about, in the two
// conventions. Original removes them from the request it returns.
var (
	methodHeaders = [...]string{"X-Original-Method", "X-Forwarded-Method"}
	uriHeaders    = [...]string{"X-Original-Uri", "X-Forwarded-Uri"}
	hostHeaders   = [...]string{"X-Original-Host", "X-Forwarded-Host"}
)

// KeepHeader is the request header with which a proxy asks the check to
// keep a refusal it answers (KeepValue), and the response header that
// gives the kept refusal's ID. nginx needs it: auth_request drops the
// body of a check's answer and turns any status but 2xx, 401 and 403 into
// its own 500, so its configuration fetches the refusal, byte for byte,
// from RefusalPath + ID.
const (
	KeepHeader  = "X-Coinop-Refusal"
	KeepValue   = "keep"
	RefusalPath = "/refusal/"
)

// The report hook: a POST to ReportPath with PaymentHeader (the
// X-Coinop-Payment a paid check answered with) and StatusHeader (the status
// the proxy's upstream answered) says how the purchase went. A status of
// 400 or more gives a bearer charge (credits) back through Config.Refund; a
// payment settled on a network (x402) is not given back, and the report is
// refused with 409.
const (
	ReportPath    = "/report"
	PaymentHeader = "X-Coinop-Payment"
	StatusHeader  = "X-Upstream-Status"
)

// maxURI bounds the original URI: longer than any request line the
// gateway's header limit lets through.
const maxURI = 64 << 10

// Original returns the request r is a check about: the method, target and
// host its headers name, every other header of r, and no body. It is
// refused (a *coinop.Error of KindMalformed) when the method or the URI is
// missing, when a header is repeated or two conventions disagree (a header
// a client sent beside the proxy's), or when a value could not be a request
// line's or a Host header's. The target is not canonicalized here: the
// engine decides it, with the same refusals as the gateway.
func Original(r *http.Request) (*http.Request, error) {
	method, err := one(r.Header, methodHeaders[:])
	if err != nil {
		return nil, err
	}
	uri, err := one(r.Header, uriHeaders[:])
	if err != nil {
		return nil, err
	}
	if method == "" || uri == "" {
		return nil, coinop.Errorf(coinop.KindMalformed, coinop.ReasonAuthOriginalMissing,
			"a forward-auth check needs the original method and URI (X-Original-Method and X-Original-URI, or X-Forwarded-Method and X-Forwarded-Uri)")
	}
	if !isToken(method) {
		return nil, invalid("the original method is not an HTTP method token")
	}
	if len(uri) > maxURI || uri[0] != '/' || !printable(uri) {
		return nil, invalid("the original URI is not an origin-form request target (a path starting with \"/\")")
	}
	u, perr := url.ParseRequestURI(uri)
	if perr != nil || u.Host != "" || u.Scheme != "" {
		return nil, invalid("the original URI is not an origin-form request target (a path starting with \"/\")")
	}
	host, err := one(r.Header, hostHeaders[:])
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = r.Host
	}
	if !validHost(host) {
		return nil, invalid("the original host is not a host[:port]")
	}
	o := new(http.Request)
	*o = *r
	o.Method, o.URL, o.RequestURI, o.Host = method, u, uri, host
	o.Body, o.ContentLength, o.TransferEncoding, o.Trailer = http.NoBody, 0, nil, nil
	o.Form, o.PostForm, o.MultipartForm = nil, nil, nil
	// The values are shared, not copied: whoever changes o's headers
	// replaces a value, which leaves r's as it is.
	o.Header = make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		if !consumed(k) {
			o.Header[k] = vs
		}
	}
	return o, nil
}

// consumed reports whether the header named k (canonical) is the check's
// own: it names the original request, or asks for its refusal to be kept,
// or frames the check's body.
func consumed(k string) bool {
	switch k {
	case "X-Original-Method", "X-Forwarded-Method", "X-Original-Uri", "X-Forwarded-Uri", "X-Original-Host", "X-Forwarded-Host",
		KeepHeader, "Content-Length", "Transfer-Encoding":
		return true
	}
	return false
}

// one is the value the headers names give, "" when none is set. A header
// given twice, or two names giving different values, is a conflict.
func one(h http.Header, names []string) (string, error) {
	v := ""
	for _, k := range names {
		vs := h[k]
		switch {
		case len(vs) == 0:
			continue
		case len(vs) > 1:
			return "", conflict(k + " is given more than once")
		case v != "" && vs[0] != v:
			return "", conflict(strings.Join(names, " and ") + " disagree")
		}
		v = vs[0]
		if v == "" {
			return "", invalid(k + " is empty")
		}
	}
	return v, nil
}

func conflict(msg string) error {
	return coinop.Errorf(coinop.KindMalformed, coinop.ReasonAuthOriginalConflict, "%s: the proxy must set the original request's headers itself, overwriting what a client sent", msg)
}

func invalid(msg string) error {
	return coinop.Errorf(coinop.KindMalformed, coinop.ReasonAuthOriginalInvalid, "%s", msg)
}

// isToken reports whether s is an RFC 9110 token (a method), of at most 32
// bytes.
func isToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// printable reports whether s has no byte a request line could not carry
// (controls, space, DEL, and bytes beyond ASCII, which must arrive encoded).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether h could be a Host header: a name or address
// with an optional port, with nothing that would make it a path or user
// information.
func validHost(h string) bool {
	if h == "" || len(h) > 255 || !utf8.ValidString(h) {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Allow is the handler the engine protects for a check: it answers 200,
// with X-Coinop-Payer and X-Coinop-Payment when the request was paid. The
// engine has set the rail's receipt headers (PAYMENT-RESPONSE) by then.
var Allow http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if p := paywall.PaymentFrom(r.Context()); p != nil {
		w.Header().Set("X-Coinop-Payer", p.Payer)
		w.Header().Set("X-Coinop-Payment", p.ID)
	}
	w.WriteHeader(http.StatusOK)
})

// Config configures a Handler.
type Config struct {
	// Check answers the original request (see Original): the engine in
	// front of Allow. Its routes must settle synchronously, so that money
	// moved before the 2xx: the proxy cannot tell coinop what its upstream
	// answered.
	Check http.Handler
	// Now is the clock of kept refusals. If nil, time.Now.
	Now func() time.Time
	// Rand is the source of kept refusals' IDs. If nil, crypto/rand.
	Rand io.Reader
	// KeepFor is how long a kept refusal waits to be fetched. If zero, 10 s.
	KeepFor time.Duration
	// MaxKept bounds the refusals kept at once; the oldest goes first. If
	// zero, 1024.
	MaxKept int
	// Refund gives back the charge id with reason (paywall.Paywall.Refund),
	// for the report hook. If nil, reports are answered 404.
	Refund func(ctx context.Context, id, reason string) (*coinop.Payment, error)
}

// Handler is the forward-auth endpoint. It is safe for concurrent use.
type Handler struct {
	cfg   Config
	mu    sync.Mutex
	kept  map[string]*refusal
	order []string // IDs in the order kept; some may be gone already
}

type refusal struct {
	status  int
	header  http.Header
	body    []byte
	expires time.Time
}

// maxKeptBody bounds the body of a kept refusal; a longer one is not kept.
const maxKeptBody = 1 << 20

// New returns the endpoint answering with cfg.Check.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.KeepFor == 0 {
		cfg.KeepFor = 10 * time.Second
	}
	if cfg.MaxKept == 0 {
		cfg.MaxKept = 1024
	}
	return &Handler{cfg: cfg, kept: map[string]*refusal{}}
}

// ServeHTTP answers a check at any path but RefusalPath's, and a GET of
// RefusalPath + ID with the refusal kept under that ID (once; 503
// auth_refusal_gone when there is none). A fetch is never a check, whatever
// headers it carries.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := strings.CutPrefix(r.URL.Path, RefusalPath); ok {
		h.serveRefusal(w, r, id)
		return
	}
	if r.URL.Path == ReportPath && r.Method == http.MethodPost && h.cfg.Refund != nil {
		h.serveReport(w, r)
		return
	}
	if r.Header.Get(KeepHeader) != KeepValue {
		h.check(w, r)
		return
	}
	k := &keeper{ResponseWriter: w}
	h.check(k, r)
	if k.status == 0 {
		k.WriteHeader(http.StatusOK) // a handler that wrote nothing answered 200
	}
	if !k.buffering {
		return
	}
	// Kept before the answer goes out: the proxy fetches it as soon as it
	// has read the answer.
	if !k.over {
		if id := h.keep(k.status, w.Header().Clone(), k.body.Bytes()); id != "" {
			w.Header().Set(KeepHeader, id)
		}
	}
	w.WriteHeader(k.status)
	w.Write(k.body.Bytes())
}

// check answers the check r with the original request's answer.
func (h *Handler) check(w http.ResponseWriter, r *http.Request) {
	o, err := Original(r)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	// The gateway removes these from what it proxies; the proxy asking
	// sends the client's headers on to its upstream, which may act on
	// another path or method than the one priced: refused on every route.
	if paywall.HasOverride(o.Header) {
		paywall.WriteError(w, o, coinop.Errorf(coinop.KindMalformed, paywall.ReasonOverrideHeader,
			"method- and URL-override headers are not accepted; send the method and path in the request line"))
		return
	}
	h.cfg.Check.ServeHTTP(w, o)
}

// keep stores a refusal and returns its ID, or "" when no ID could be drawn.
func (h *Handler) keep(status int, header http.Header, body []byte) string {
	var b [16]byte
	if _, err := io.ReadFull(h.cfg.Rand, b[:]); err != nil {
		return ""
	}
	id := hex.EncodeToString(b[:])
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.order) > 0 {
		old, ok := h.kept[h.order[0]]
		if ok && len(h.kept) < h.cfg.MaxKept && now.Before(old.expires) {
			break
		}
		delete(h.kept, h.order[0])
		h.order = h.order[1:]
	}
	h.kept[id] = &refusal{status: status, header: header, body: bytes.Clone(body), expires: now.Add(h.cfg.KeepFor)}
	h.order = append(h.order, id)
	return id
}

// take removes and returns the refusal kept under id, or nil.
func (h *Handler) take(id string) *refusal {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.kept[id]
	if k == nil {
		return nil
	}
	delete(h.kept, id)
	if !h.cfg.Now().Before(k.expires) {
		return nil
	}
	return k
}

// serveReport answers the report hook: 204 when the upstream succeeded
// (nothing to do), 200 with the charge's state once it is given back, or
// the refusal as problem+json.
func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(PaymentHeader)
	status, err := strconv.Atoi(r.Header.Get(StatusHeader))
	if id == "" || err != nil || status < 100 || status > 999 {
		paywall.WriteError(w, r, coinop.Errorf(coinop.KindMalformed, coinop.ReasonAuthReportInvalid,
			"a report needs %s (the paid check's payment) and %s (the upstream's status, 100 to 999)", PaymentHeader, StatusHeader))
		return
	}
	if status < 400 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	p, err := h.cfg.Refund(r.Context(), id, coinop.ReasonUpstreamStatus(status))
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Payment string       `json:"payment"`
		State   coinop.State `json:"state"`
	}{p.ID, p.State})
}

func (h *Handler) serveRefusal(w http.ResponseWriter, r *http.Request, id string) {
	k := h.take(id)
	if k == nil || r.Method != http.MethodGet && r.Method != http.MethodHead {
		paywall.WriteError(w, r, coinop.Errorf(coinop.KindUnavailable, coinop.ReasonAuthRefusalGone, "the payment check's answer is no longer available; send the request again"))
		return
	}
	for name, vs := range k.header {
		w.Header()[name] = vs
	}
	w.WriteHeader(k.status)
	w.Write(k.body)
}

// keeper holds back an answer other than 2xx (and 1xx) until the check is
// done, so that it can be kept before the proxy reads it. A 2xx goes
// through as it is written.
type keeper struct {
	http.ResponseWriter
	status    int
	buffering bool
	body      bytes.Buffer
	over      bool // the body passed maxKeptBody: sent, not kept
}

func (k *keeper) WriteHeader(code int) {
	if k.status != 0 {
		return
	}
	if code < 200 {
		k.ResponseWriter.WriteHeader(code)
		return
	}
	k.status = code
	if code >= 300 {
		k.buffering = true
		return
	}
	k.ResponseWriter.WriteHeader(code)
}

func (k *keeper) Write(b []byte) (int, error) {
	if k.status == 0 {
		k.WriteHeader(http.StatusOK)
	}
	if !k.buffering {
		return k.ResponseWriter.Write(b)
	}
	if k.body.Len()+len(b) > maxKeptBody {
		k.over = true
	}
	return k.body.Write(b)
}

// FlushError flushes a 2xx through; a refusal held back stays held.
func (k *keeper) FlushError() error {
	if k.status == 0 || k.buffering {
		return nil
	}
	return http.NewResponseController(k.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (k *keeper) Unwrap() http.ResponseWriter { return k.ResponseWriter }
