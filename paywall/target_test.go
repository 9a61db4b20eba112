package paywall_test

import (
	"bufio"
	"context"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

// parseTarget parses a raw request target the way net/http's server does.
func parseTarget(t testing.TB, target string) (*url.URL, bool) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: example.com\r\n\r\n")))
	if err != nil {
		return nil, false
	}
	return req.URL, true
}

func TestCanonicalPath(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		want         string // "" when refused
	}{
		{"plain", "/files/secret.txt", "/files/secret.txt"},
		{"trailing slash", "/static/", "/static/"},
		{"root", "/", "/"},
		{"encoded unreserved", "/fil%65s/secret.txt", "/files/secret.txt"},
		{"encoded space", "/static/a%20b.txt", "/static/a b.txt"},
		{"utf-8", "/static/%C3%A9t%C3%A9", "/static/été"},
		{"fullwidth solidus is a character", "/static/%EF%BC%8Ffiles", "/static/／files"},
		{"encoded question mark", "/static/a%3Fb", "/static/a?b"},
		{"query is not the path", "/static/?x=/../files", "/static/"},
		{"absolute form", "http://example.com/static/a.txt", "/static/a.txt"},
		{"encoded slash", "/static/..%2Ffiles/secret.txt", ""},
		{"encoded slash lower case", "/files%2fsecret.txt", ""},
		{"encoded dot", "/static/%2e%2e/files/secret.txt", ""},
		{"encoded dot in a name", "/files/secret%2Etxt", ""},
		{"encoded backslash", "/static/..%5Cfiles", ""},
		{"backslash", `/static/..\files`, ""},
		{"dot dot", "/static/../files/secret.txt", ""},
		{"dot", "/static/./a.txt", ""},
		{"trailing dot dot", "/static/..", ""},
		{"double slash", "/static//a.txt", ""},
		{"leading double slash", "//files/secret.txt", ""},
		{"double encoding", "/static/%252e%252e/files", ""},
		{"encoded percent", "/static/100%25", ""},
		{"encoded NUL", "/files/secret.txt%00.png", ""},
		{"encoded control", "/files/%0Asecret.txt", ""},
		{"encoded DEL", "/files/%7Fsecret.txt", ""},
		{"semicolon", "/files;x/secret.txt", ""},
		{"encoded semicolon", "/files/secret.txt%3Bx", ""},
		{"overlong slash", "/static/%C0%AF../files", ""},
		{"invalid UTF-8", "/static/%FF", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := parseTarget(t, tc.target)
			if !ok {
				t.Fatalf("net/http does not parse %q", tc.target)
			}
			got, err := paywall.CanonicalPath(u)
			if tc.want == "" {
				if err == nil || coinop.AsError(err).Reason != paywall.ReasonAmbiguousPath {
					t.Fatalf("CanonicalPath(%q) = %q, %v; want refused with %s", tc.target, got, err, paywall.ReasonAmbiguousPath)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CanonicalPath(%q) = %q, %v; want %q", tc.target, got, err, tc.want)
			}
		})
	}
}

// A raw percent sign the server could not decode never reaches the engine;
// CanonicalPath refuses it anyway, for URLs built in code.
func TestCanonicalPathInvalidEscape(t *testing.T) {
	for _, raw := range []string{"/a%zz", "/a%2", "/a%"} {
		if _, err := paywall.CanonicalPath(&url.URL{Path: "/a", RawPath: raw}); coinop.AsError(err).Reason != paywall.ReasonAmbiguousPath {
			t.Errorf("RawPath %q: %v, want %s", raw, err, paywall.ReasonAmbiguousPath)
		}
	}
	if _, err := paywall.CanonicalPath(&url.URL{Path: "/files/secret.txt", RawPath: "/static/x"}); err == nil {
		t.Error("a RawPath that does not encode Path was accepted")
	}
}

// FuzzRequestTarget states the path property of the engine: a target is
// refused, or the path routes are matched on is the one an upstream that
// decodes once and cleans (http.FileServer) acts on, and sending it again
// changes nothing.
func FuzzRequestTarget(f *testing.F) {
	for _, s := range []string{
		"/files/secret.txt", "/static/..%2Ffiles/secret.txt", "/static/%2e%2e/files", "/a//b", "/a/./b",
		"/fil%65s/x", "/%C0%AF", "/a;b", "/a%3Fb?c#d", "/static/", "http://h/a", "/%252F", "/a\\b", "/é/%E2%82%AC",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, ok := parseTarget(t, target)
		if !ok {
			return // net/http refuses it before any handler runs
		}
		p, err := paywall.CanonicalPath(u)
		if err != nil {
			return
		}
		if p != u.Path {
			t.Fatalf("canonical path %q is not the decoded path %q", p, u.Path)
		}
		// What is sent on: Path with no RawPath, as httputil.ReverseProxy
		// and http.Client encode it.
		sent := (&url.URL{Path: p}).EscapedPath()
		again, ok := parseTarget(t, sent)
		if !ok {
			t.Fatalf("the canonical form %q of %q does not parse", sent, target)
		}
		p2, err := paywall.CanonicalPath(again)
		if err != nil || p2 != p {
			t.Fatalf("canonicalizing %q again: %q, %v; want %q", sent, p2, err, p)
		}
		// An upstream decodes once and cleans, as http.FileServer does.
		dec, err := url.PathUnescape(sent)
		if err != nil || dec != p {
			t.Fatalf("upstream decodes %q to %q (%v), the route saw %q", sent, dec, err, p)
		}
		clean := path.Clean(dec)
		if clean != p && clean+"/" != p {
			t.Fatalf("upstream cleans %q to %q, the route saw %q", dec, clean, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." || strings.ContainsAny(seg, "\\%;\x00") {
				t.Fatalf("canonical path %q has segment %q", p, seg)
			}
		}
		if strings.Contains(p, "//") {
			t.Fatalf("canonical path %q has an empty segment", p)
		}
	})
}

// newPaywall builds the engine with x402 on a chain that is never dialed:
// these tests end before any payment is verified.
func newPaywall(t *testing.T, unmatchedFree bool, routes ...paywall.Route) func(http.Handler) http.Handler {
	t.Helper()
	rpc, err := ethclient.Dial("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rpc.Close)
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: 84532, Backend: rpc})
	if err != nil {
		t.Fatal(err)
	}
	usdc, err := evm.NewExact(chain, evm.ExactConfig{
		Asset: common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e"), Name: "USDC", Version: "2",
		PayTo: common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
	})
	if err != nil {
		t.Fatal(err)
	}
	journal, err := sqlite.Open(filepath.Join(t.TempDir(), "coinop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { journal.Close() })
	rail := &x402.Rail{Schemes: []x402.Scheme{usdc}}
	for i := range routes {
		if !routes[i].Free {
			routes[i].Accept = []paywall.Accept{{
				Rail:  rail,
				Price: coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6},
			}}
		}
	}
	protect, closeEngine, err := paywall.Middleware(paywall.Config{Journal: journal, Routes: routes, AllowUnmatched: unmatchedFree})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeEngine(context.Background()) })
	return protect
}

// seen is what the protected handler was called with.
type seen struct {
	path, escaped, requestURI string
	header                    http.Header
}

func TestRequestHygiene(t *testing.T) {
	routes := func() []paywall.Route {
		return []paywall.Route{{Pattern: "GET /static/", Free: true}, {Pattern: "/files/"}, {Pattern: "GET /report"}, {Pattern: "POST /upload", Free: true}, {Pattern: "GET /doc"}, {Pattern: "GET /doc/", Free: true}}
	}
	catchAll := []paywall.Route{{Pattern: "/", Free: true}, {Pattern: "GET /report"}, {Pattern: "POST /form", Free: true}, {Pattern: "GET /form"}}
	for _, tc := range []struct {
		name          string
		routes        []paywall.Route // if nil, routes()
		unmatchedFree bool
		method        string
		target        string
		header        []string // name, value pairs
		body          string
		chunked       bool
		status        int
		reason        string
		allow         string
		handlerPath   string // for requests the handler gets
		handlerURI    string
		location      string // for the engine's own redirects
	}{
		{name: "a priced subtree's root without its slash is redirected, not charged", method: "GET", target: "/files?q=1", status: http.StatusTemporaryRedirect, location: "/files/?q=1"},
		{name: "a free subtree's root without its slash is redirected", method: "GET", target: "/static", status: http.StatusTemporaryRedirect, location: "/static/"},
		{name: "free route", method: "GET", target: "/static/a.txt", status: 200, handlerPath: "/static/a.txt", handlerURI: "/static/a.txt"},
		{name: "encoded unreserved is decoded for the handler", method: "GET", target: "/st%61tic/a.txt?q=1", status: 200, handlerPath: "/static/a.txt", handlerURI: "/static/a.txt?q=1"},
		{name: "encoded slash walking into a priced tree", method: "GET", target: "/static/..%2Ffiles/secret.txt", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "encoded dots", method: "GET", target: "/static/%2e%2e/files/secret.txt", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "encoded slash, unmatched free", unmatchedFree: true, method: "GET", target: "/report%2F", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "priced route asks for payment", method: "GET", target: "/files/secret.txt", status: 402, reason: "payment_required"},
		{name: "priced after decoding", method: "GET", target: "/%66iles/secret.txt", status: 402, reason: "payment_required"},
		{name: "HEAD is priced like GET", method: "HEAD", target: "/report", status: 402},
		{name: "other method of a priced path, unmatched free", unmatchedFree: true, method: "POST", target: "/report", status: 405, reason: paywall.ReasonMethodNotAllowed, allow: "GET, HEAD"},
		{name: "other method of a priced path, unmatched denied", method: "DELETE", target: "/report", status: 405, reason: paywall.ReasonMethodNotAllowed, allow: "GET, HEAD"},
		{name: "other method of a free path, unmatched free", unmatchedFree: true, method: "PUT", target: "/upload", status: 200, handlerPath: "/upload", handlerURI: "/upload"},
		{name: "other method of a free path, unmatched denied", method: "PUT", target: "/upload", status: 405, reason: paywall.ReasonMethodNotAllowed, allow: "POST"},
		{name: "path info after a priced file, unmatched free", unmatchedFree: true, method: "GET", target: "/report/x", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "path info after a priced file under another method, unmatched free", unmatchedFree: true, method: "POST", target: "/report/x", body: "x", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "path info after a priced file under OPTIONS, unmatched free", unmatchedFree: true, method: "OPTIONS", target: "/report/x", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "trailing slash after a priced file under another method, unmatched free", unmatchedFree: true, method: "PROPFIND", target: "/report/", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "trailing slash after a priced file, unmatched free", unmatchedFree: true, method: "GET", target: "/report/", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "path info under a free subtree that names it", method: "GET", target: "/static/a.txt/x", status: 200, handlerPath: "/static/a.txt/x", handlerURI: "/static/a.txt/x"},
		{name: "a free route that names the extension of a priced file", unmatchedFree: true, method: "GET", target: "/doc/intro", status: 200, handlerPath: "/doc/intro", handlerURI: "/doc/intro"},
		{name: "free catch-all: other method of a GET-priced path", routes: catchAll, method: "POST", target: "/report", body: "x", status: 405, reason: paywall.ReasonMethodNotAllowed, allow: "GET, HEAD"},
		{name: "free catch-all: OPTIONS of a GET-priced path", routes: catchAll, method: "OPTIONS", target: "/report", status: 405, reason: paywall.ReasonMethodNotAllowed, allow: "GET, HEAD"},
		{name: "free catch-all: PROPFIND of a GET-priced path", routes: catchAll, method: "PROPFIND", target: "/report", status: 405, reason: paywall.ReasonMethodNotAllowed, allow: "GET, HEAD"},
		{name: "free catch-all: path info of a GET-priced path under POST", routes: catchAll, method: "POST", target: "/report/x", body: "x", status: 400, reason: paywall.ReasonAmbiguousPath},
		{name: "free catch-all: HEAD is priced like GET", routes: catchAll, method: "HEAD", target: "/report", status: 402},
		{name: "free catch-all: other paths stay free", routes: catchAll, method: "POST", target: "/other", body: "x", status: 200, handlerPath: "/other", handlerURI: "/other"},
		{name: "free catch-all: a method freed by name", routes: catchAll, method: "POST", target: "/form", body: "x", status: 200, handlerPath: "/form", handlerURI: "/form"},
		{name: "unmatched denied", method: "GET", target: "/nothing", status: 404, reason: "no_route"},
		{name: "unmatched free", unmatchedFree: true, method: "GET", target: "/nothing", status: 200, handlerPath: "/nothing", handlerURI: "/nothing"},
		{name: "method override on a priced route", method: "GET", target: "/files/a", header: []string{"X-HTTP-Method-Override", "DELETE"}, status: 400, reason: paywall.ReasonOverrideHeader},
		{name: "X-HTTP-Method on a priced route", method: "POST", target: "/files/a", header: []string{"X-HTTP-Method", "GET"}, body: "x", status: 400, reason: paywall.ReasonOverrideHeader},
		{name: "X-Method-Override on a priced route", method: "GET", target: "/report", header: []string{"X-Method-Override", "POST"}, status: 400, reason: paywall.ReasonOverrideHeader},
		{name: "URL override on a priced route", method: "GET", target: "/files/a", header: []string{"X-Original-URL", "/static/a"}, status: 400, reason: paywall.ReasonOverrideHeader},
		{name: "override spelled with underscores on a priced route", method: "GET", target: "/files/a", header: []string{"X-HTTP-Method_Override", "DELETE"}, status: 400, reason: paywall.ReasonOverrideHeader},
		{name: "URL override spelled with underscores removed on a free route", method: "GET", target: "/static/a", header: []string{"X_Original_URL", "/files/a", "x-rewrite_url", "/files/a"}, status: 200, handlerPath: "/static/a", handlerURI: "/static/a"},
		{name: "URL override removed on a free route", method: "GET", target: "/static/a", header: []string{"X-Original-URL", "/files/a", "X-Rewrite-URL", "/files/a"}, status: 200, handlerPath: "/static/a", handlerURI: "/static/a"},
		{name: "method override removed on a free route", method: "GET", target: "/static/a", header: []string{"X-HTTP-Method-Override", "POST"}, status: 200, handlerPath: "/static/a", handlerURI: "/static/a"},
		{name: "method override removed when unmatched", unmatchedFree: true, method: "GET", target: "/other", header: []string{"X-Method-Override", "POST"}, status: 200, handlerPath: "/other", handlerURI: "/other"},
		{name: "GET with a body on a priced route", method: "GET", target: "/files/a", body: "GET /files/secret.txt HTTP/1.1\r\n\r\n", status: 400, reason: paywall.ReasonBodyNotAllowed},
		{name: "GET with a body on a free route", method: "GET", target: "/static/a", body: "x", status: 400, reason: paywall.ReasonBodyNotAllowed},
		{name: "HEAD with a chunked body", method: "HEAD", target: "/static/a", body: "x", chunked: true, status: 400},
		{name: "GET with a chunked body, unmatched free", unmatchedFree: true, method: "GET", target: "/other", body: "x", chunked: true, status: 400, reason: paywall.ReasonBodyNotAllowed},
		{name: "POST with a body", method: "POST", target: "/upload", body: "x", status: 200, handlerPath: "/upload", handlerURI: "/upload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *seen
			rts := tc.routes
			if rts == nil {
				rts = routes()
			}
			h := newPaywall(t, tc.unmatchedFree, rts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = &seen{r.URL.Path, r.URL.EscapedPath(), r.RequestURI, r.Header}
			}))
			var raw strings.Builder
			raw.WriteString(tc.method + " " + tc.target + " HTTP/1.1\r\nHost: example.com\r\n")
			for i := 0; i+1 < len(tc.header); i += 2 {
				raw.WriteString(tc.header[i] + ": " + tc.header[i+1] + "\r\n")
			}
			switch {
			case tc.chunked:
				raw.WriteString("Transfer-Encoding: chunked\r\n\r\n1\r\n" + tc.body + "\r\n0\r\n\r\n")
			case tc.body != "":
				raw.WriteString("Content-Length: " + itoa(len(tc.body)) + "\r\n\r\n" + tc.body)
			default:
				raw.WriteString("\r\n")
			}
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw.String())))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.target, rec.Code, tc.status, rec.Body)
			}
			if tc.status >= 400 {
				if got != nil {
					t.Fatalf("the handler was called for a %d", tc.status)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("Content-Type %q, want application/problem+json", ct)
				}
				var prob struct {
					Status int    `json:"status"`
					Reason string `json:"reason"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &prob); err != nil || prob.Status != tc.status {
					t.Fatalf("problem %+v %v\n%s", prob, err, rec.Body)
				}
				if tc.reason != "" && prob.Reason != tc.reason {
					t.Errorf("reason %q, want %q", prob.Reason, tc.reason)
				}
				if a := rec.Header().Get("Allow"); a != tc.allow {
					t.Errorf("Allow %q, want %q", a, tc.allow)
				}
				return
			}
			if tc.location != "" {
				if got != nil {
					t.Fatal("the handler was called for the engine's redirect")
				}
				if loc := rec.Header().Get("Location"); loc != tc.location {
					t.Fatalf("Location %q, want %q", loc, tc.location)
				}
				return
			}
			if got == nil {
				t.Fatal("the handler was not called")
			}
			if got.path != tc.handlerPath || got.escaped != (&url.URL{Path: tc.handlerPath}).EscapedPath() || got.requestURI != tc.handlerURI {
				t.Errorf("handler saw path %q (escaped %q, request URI %q), want %q (%q)", got.path, got.escaped, got.requestURI, tc.handlerPath, tc.handlerURI)
			}
			for k, v := range got.header {
				switch paywall.FoldHeaderName(k) {
				case "X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Url", "X-Rewrite-Url":
					t.Errorf("the handler got %s: %q", k, v)
				}
			}
		})
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
