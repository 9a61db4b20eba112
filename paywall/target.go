package paywall

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/coinop/coinop"
)

// Reasons of the requests the engine refuses before matching a route.
const (
	ReasonAmbiguousPath    = "ambiguous_path"
	ReasonBodyNotAllowed   = "body_not_allowed"
	ReasonOverrideHeader   = "override_header_refused"
	ReasonMethodNotAllowed = "method_not_allowed"
)

// overrideHeaders make some frameworks act on another method or path than
// the request line's (method override middleware; IIS and Symfony's
// X-Original-URL and X-Rewrite-URL). The engine prices by the request line,
// so these must never reach a handler: on priced routes they are refused,
// elsewhere removed.
var overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Url", "X-Rewrite-Url"}

// CanonicalPath decides, once, the path of a request target: the decoded
// path the engine matches routes on, which is also the path the protected
// handler and any upstream act on. u is the request's URL as net/http parsed
// it (Path decoded, RawPath the raw form when that differs from the default
// encoding).
//
// The path is refused (a *coinop.Error of KindMalformed, reason
// ReasonAmbiguousPath) when servers disagree about what it names, so that no
// route decision can differ from the upstream's: invalid percent-encoding;
// an encoded "/", "\" or "."; a "\" (Windows servers read it as "/"); NUL or
// any other control byte; a "%" after decoding (a double encoding such as
// %252F, which servers that decode twice read as "/"); a ";" (Tomcat and
// Jetty cut path parameters out of segments); bytes that are not UTF-8
// (overlong forms such as %C0%AF, once read as "/"); a "." or ".." segment;
// an empty segment ("//") anywhere but a trailing slash; and anything that
// is not an absolute path. Percent-encoded unreserved characters (%61) are
// decoded and mean the plain character.
//
// What is left is unambiguous. The engine passes it on with RawPath empty,
// so httputil.ReverseProxy and http.Client send url.URL.EscapedPath's one
// encoding of it; decoding that once gives back the same path, and
// path.Clean leaves it unchanged but for a trailing slash.
// (FuzzRequestTarget states this.)
//
// Paths are case-sensitive, like ServeMux patterns. An upstream that maps
// paths to names case-insensitively (a case-folding file system, IIS) or that
// strips trailing dots (Windows) may serve one resource under several paths:
// price the whole subtree (/files/) rather than single files there.
func CanonicalPath(u *url.URL) (string, error) {
	p := u.Path
	if u.RawPath != "" {
		if err := checkEncoded(u.RawPath); err != nil {
			return "", err
		}
		dec, err := url.PathUnescape(u.RawPath)
		if err != nil {
			return "", ambiguous("the path has an invalid percent-encoding")
		}
		if dec != p {
			return "", ambiguous("the path and its encoded form differ")
		}
	}
	if !strings.HasPrefix(p, "/") {
		return "", ambiguous("the request target is not an absolute path")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f:
			return "", ambiguous("the path holds a control character")
		case c == '\\':
			return "", ambiguous(`the path holds a "\"`)
		case c == '%':
			return "", ambiguous(`the path holds an encoded "%" (a double encoding)`)
		case c == ';':
			return "", ambiguous(`the path holds a ";" (a path parameter)`)
		}
	}
	if !utf8.ValidString(p) {
		return "", ambiguous("the decoded path is not UTF-8")
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		switch {
		case s == "." || s == "..":
			return "", ambiguous("the path has a dot segment")
		case s == "" && i < len(segs)-1:
			return "", ambiguous(`the path has an empty segment ("//")`)
		}
	}
	return p, nil
}

// checkEncoded refuses a raw path's invalid escapes and the escapes of the
// characters that separate or climb path segments.
func checkEncoded(raw string) error {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		if i+2 >= len(raw) || !ishex(raw[i+1]) || !ishex(raw[i+2]) {
			return ambiguous("the path has an invalid percent-encoding")
		}
		switch strings.ToUpper(raw[i+1 : i+3]) {
		case "2F":
			return ambiguous(`the path holds an encoded "/"`)
		case "5C":
			return ambiguous(`the path holds an encoded "\"`)
		case "2E":
			return ambiguous(`the path holds an encoded "."`)
		}
		i += 2
	}
	return nil
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func ambiguous(msg string) *coinop.Error {
	return coinop.Errorf(coinop.KindMalformed, ReasonAmbiguousPath, "%s; send the path plainly, without encoded separators or dot segments", msg)
}

// canonicalRequest returns r with its target in canonical form (see
// CanonicalPath), or the error to refuse it with. GET and HEAD requests with
// a body are refused too: a server that does not read a GET body takes it for
// the next request on the connection, and the gateway's upstream connections
// are shared by every client.
func canonicalRequest(r *http.Request) (*http.Request, *coinop.Error) {
	if _, err := CanonicalPath(r.URL); err != nil {
		return nil, coinop.AsError(err)
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
		return nil, coinop.Errorf(coinop.KindMalformed, ReasonBodyNotAllowed, "a %s request must not have a body", r.Method)
	}
	if r.URL.RawPath == "" {
		return r, nil // already in canonical form
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.RawPath = ""
	r2.URL = &u
	if r.RequestURI != "" {
		r2.RequestURI = u.RequestURI()
	}
	return r2, nil
}

// FoldHeaderName is the name a CGI-style server gives header k: "_" read as
// "-", in canonical case. PHP, WSGI and CGI expose headers as HTTP_*
// variables with "-" turned into "_", so X-Coinop_Payer reaches the
// application as X-Coinop-Payer would. Whoever removes a header a client
// must not send upstream compares folded names.
func FoldHeaderName(k string) string {
	return http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
}

// isOverride reports whether header k is an override header, under any
// spelling an upstream folds to one.
func isOverride(k string) bool {
	f := FoldHeaderName(k)
	for _, h := range overrideHeaders {
		if f == h {
			return true
		}
	}
	return false
}

// hasOverride reports whether r carries an override header.
func hasOverride(r *http.Request) bool { return HasOverride(r.Header) }

// HasOverride reports whether h holds a header that overrides a request's
// method or path, under any spelling an upstream folds to one (see
// DelOverrides). Whoever cannot remove them from what reaches the upstream
// (a forward-auth check: the proxy sends the client's headers on) refuses
// the request instead.
func HasOverride(h http.Header) bool {
	for k := range h {
		if isOverride(k) {
			return true
		}
	}
	return false
}

// withoutOverrides returns r without its override headers.
func withoutOverrides(r *http.Request) *http.Request {
	if !hasOverride(r) {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	DelOverrides(r2.Header)
	return r2
}

// DelOverrides deletes the headers that override a request's method or
// path from h, under every spelling an upstream folds to one of them (see
// FoldHeaderName). A proxy behind the engine calls it on what it sends
// upstream, so no upstream acts on a method or path other than the one the
// engine priced.
func DelOverrides(h http.Header) {
	for k := range h {
		if isOverride(k) {
			delete(h, k)
		}
	}
}

// admit decides a request's target and route before anything else looks at
// it. It returns the request in canonical form and its route (nil when
// unmatched requests go through unpaid), or answers the client itself and
// returns ok false.
func (pw *Paywall) admit(w http.ResponseWriter, r *http.Request) (_ *http.Request, _ *Route, ok bool) {
	c, e := canonicalRequest(r)
	if e != nil {
		writeProblem(w, r, e, nil)
		return nil, nil, false
	}
	r = c
	if h, pattern := pw.mux.Handler(r); pattern != "" {
		if _, ok := h.(routeMark); !ok {
			// ServeMux sends /files to /files/ when only the subtree has a
			// route, and its pattern used to price the request: a buyer
			// paid for the upstream's own redirect, then again for
			// /files/. The engine answers that redirect itself, before any
			// price, so a buyer pays once, for what the redirect names.
			h.ServeHTTP(w, r)
			return nil, nil, false
		}
	}
	rt := pw.Match(r)
	switch {
	case rt == nil:
		// A path a route prices for other methods is not "unmatched": with
		// unmatched requests free, that would make a GET-priced path free
		// to POST.
		if allow, priced := pw.otherMethods(r); allow != "" && (priced || !pw.cfg.AllowUnmatched) {
			w.Header().Set("Allow", allow)
			writeProblem(w, r, coinop.Errorf(coinop.KindMethodNotAllowed, ReasonMethodNotAllowed, "%s is served for %s only", r.URL.Path, allow), nil)
			return nil, nil, false
		}
		if !pw.cfg.AllowUnmatched {
			writeProblem(w, r, coinop.Errorf(coinop.KindNotFound, coinop.ReasonNoRoute, "no route matches %s %s", r.Method, r.URL.Path), nil)
			return nil, nil, false
		}
		if pr := pw.extendsPriced(r, nil); pr != nil {
			writeProblem(w, r, pathInfo(pr), nil)
			return nil, nil, false
		}
	case rt.Free:
		if !namesMethod(rt.Pattern) {
			if pr, methods := pw.pricedForOtherMethods(r); pr != nil {
				allow := strings.Join(methods, ", ")
				w.Header().Set("Allow", allow)
				writeProblem(w, r, coinop.Errorf(coinop.KindMethodNotAllowed, ReasonMethodNotAllowed, "%s is priced for %s; %s frees other paths, not this one under another method", r.URL.Path, allow, rt.Pattern), nil)
				return nil, nil, false
			}
		}
		if pr := pw.extendsPriced(r, rt); pr != nil {
			writeProblem(w, r, pathInfo(pr), nil)
			return nil, nil, false
		}
	case hasOverride(r):
		writeProblem(w, r, coinop.Errorf(coinop.KindMalformed, ReasonOverrideHeader, "method- and URL-override headers are not accepted on priced routes; send the method and path in the request line"), nil)
		return nil, nil, false
	}
	return r, rt, true
}

// extendsPriced returns the priced route, if any, that names a single
// resource whose path is a proper prefix of r's (at a segment boundary),
// when r is unmatched or on the free route rt. Servers that resolve path
// info (PHP's built-in server, CGI, Apache's AcceptPathInfo) serve
// /files/secret.txt for /files/secret.txt/x, so such a request would get the
// priced resource for free. A free route whose literal path names the
// extension (a free /report/ next to a priced /report) is the operator's
// explicit choice and is let through.
func (pw *Paywall) extendsPriced(r *http.Request, free *Route) *Route {
	p := r.URL.Path
	for i := len(p) - 1; i > 0; i-- {
		if p[i] != '/' {
			continue
		}
		q := p[:i]
		if free != nil && strings.HasPrefix(literalPath(free.Pattern), q+"/") {
			return nil
		}
		u := *r.URL
		u.Path = q
		probe := *r
		probe.URL = &u
		if pr := pw.pricedAt(&probe); pr != nil && !subtree(pr.Pattern) {
			return pr
		}
	}
	return nil
}

// pricedAt returns the priced route for r's path under r's method or, when
// no route that names r's method frees it, under any other method a route
// prices it for (see pricedForOtherMethods). Servers that resolve path info
// serve the file for other methods than GET too (PHP's built-in server
// answers POST, OPTIONS and PROPFIND with it), so an extension of a path
// priced for GET is the priced resource whatever the request's method.
func (pw *Paywall) pricedAt(r *http.Request) *Route {
	rt := pw.Match(r)
	switch {
	case rt != nil && !rt.Free:
		return rt
	case rt != nil && namesMethod(rt.Pattern):
		return nil // the operator freed this method by name
	}
	pr, _ := pw.pricedForOtherMethods(r)
	return pr
}

// pricedForOtherMethods returns the first priced route r's path has under
// another method than r's, and every method it is priced for ("HEAD" with
// "GET"). Most file servers answer POST, OPTIONS, PROPFIND or TRACE on a
// file with the file itself, so a free catch-all (a free "/" beside a priced
// "GET /report") must not make a GET-priced path free under those methods.
func (pw *Paywall) pricedForOtherMethods(r *http.Request) (*Route, []string) {
	var (
		first   *Route
		methods []string
	)
	for _, m := range pw.pricedMethods {
		if m == r.Method || m == http.MethodHead && r.Method == http.MethodGet {
			continue
		}
		other := *r
		other.Method = m
		if rt := pw.Match(&other); rt != nil && !rt.Free {
			if first == nil {
				first = rt
			}
			methods = append(methods, m)
		}
	}
	return first, methods
}

// namesMethod reports whether a ServeMux pattern starts with a method.
func namesMethod(pattern string) bool { return strings.ContainsAny(pattern, " \t") }

// pricedMethods returns the methods named by priced patterns, with HEAD
// beside GET (ServeMux serves HEAD with a GET pattern), sorted.
func pricedMethods(routes map[string]*Route) []string {
	set := map[string]bool{}
	for pattern, rt := range routes {
		if rt.Free || !namesMethod(pattern) {
			continue
		}
		m, _, _ := strings.Cut(strings.TrimLeft(pattern, " \t"), " ")
		m, _, _ = strings.Cut(m, "\t")
		set[m] = true
		if m == http.MethodGet {
			set[http.MethodHead] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func pathInfo(priced *Route) *coinop.Error {
	return coinop.Errorf(coinop.KindMalformed, ReasonAmbiguousPath, "the path extends the priced resource %s, which servers that read path info would serve; ask for it directly", priced.Pattern)
}

// literalPath is a ServeMux pattern's path up to its first wildcard.
func literalPath(pattern string) string {
	if _, after, ok := strings.Cut(pattern, " "); ok {
		pattern = strings.TrimLeft(after, " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		pattern = pattern[i:]
	}
	literal, _, _ := strings.Cut(pattern, "{")
	return literal
}

// subtree reports whether a pattern matches a whole subtree (a trailing
// slash or a {name...} wildcard), rather than single resources.
func subtree(pattern string) bool {
	return strings.HasSuffix(pattern, "/") || strings.HasSuffix(pattern, "...}")
}

// otherMethods returns, for a request no route matches, the methods routes
// serve its path with (ServeMux's Allow list, empty when none), and whether
// any of those routes is priced.
func (pw *Paywall) otherMethods(r *http.Request) (allow string, priced bool) {
	h, pattern := pw.mux.Handler(r)
	if pattern != "" {
		return "", false // a redirect, or a match
	}
	rec := &allowRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.status != http.StatusMethodNotAllowed {
		return "", false
	}
	allow = rec.header.Get("Allow")
	for _, m := range strings.Split(allow, ", ") {
		other := *r
		other.Method = m
		if rt := pw.Match(&other); rt != nil && !rt.Free {
			priced = true
		}
	}
	return allow, priced
}

// allowRecorder keeps the status and headers ServeMux's 405 handler writes.
type allowRecorder struct {
	header http.Header
	status int
}

func (a *allowRecorder) Header() http.Header         { return a.header }
func (a *allowRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (a *allowRecorder) WriteHeader(status int)      { a.status = status }
