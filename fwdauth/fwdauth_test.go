package fwdauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/fwdauth"
)

// checkRequest is a check as a proxy sends it: GET /check with header pairs.
func checkRequest(pairs ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://auth.internal/check", nil)
	for i := 0; i+1 < len(pairs); i += 2 {
		r.Header.Add(pairs[i], pairs[i+1])
	}
	return r
}

func TestOriginal(t *testing.T) {
	for _, c := range []struct {
		name              string
		pairs             []string
		reason            string // "" when accepted
		method, uri, host string
	}{
		{"nginx", []string{"X-Original-Method", "POST", "X-Original-URI", "/a/b?q=1", "X-Original-Host", "shop.example:8080"}, "", "POST", "/a/b?q=1", "shop.example:8080"},
		{"caddy", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/x", "X-Forwarded-Host", "shop.example"}, "", "GET", "/x", "shop.example"},
		{"both agree", []string{"X-Original-Method", "GET", "X-Forwarded-Method", "GET", "X-Original-URI", "/x", "X-Forwarded-Uri", "/x"}, "", "GET", "/x", "auth.internal"},
		{"host from Host", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/x"}, "", "GET", "/x", "auth.internal"},
		{"encoded path kept raw", []string{"X-Original-Method", "GET", "X-Original-URI", "/static/..%2Ffiles"}, "", "GET", "/static/..%2Ffiles", "auth.internal"},
		{"nothing", nil, coinop.ReasonAuthOriginalMissing, "", "", ""},
		{"no method", []string{"X-Original-URI", "/x"}, coinop.ReasonAuthOriginalMissing, "", "", ""},
		{"no URI", []string{"X-Forwarded-Method", "GET"}, coinop.ReasonAuthOriginalMissing, "", "", ""},
		{"empty URI", []string{"X-Original-Method", "GET", "X-Original-URI", ""}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"URIs disagree", []string{"X-Original-Method", "GET", "X-Original-URI", "/paid", "X-Forwarded-Uri", "/free"}, coinop.ReasonAuthOriginalConflict, "", "", ""},
		{"methods disagree", []string{"X-Original-Method", "GET", "X-Forwarded-Method", "POST", "X-Original-URI", "/x"}, coinop.ReasonAuthOriginalConflict, "", "", ""},
		{"hosts disagree", []string{"X-Original-Method", "GET", "X-Original-URI", "/x", "X-Original-Host", "a", "X-Forwarded-Host", "b"}, coinop.ReasonAuthOriginalConflict, "", "", ""},
		{"URI twice", []string{"X-Original-Method", "GET", "X-Original-URI", "/x", "X-Original-URI", "/y"}, coinop.ReasonAuthOriginalConflict, "", "", ""},
		{"host list", []string{"X-Original-Method", "GET", "X-Original-URI", "/x", "X-Forwarded-Host", "a.example, b.example"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"host with path", []string{"X-Original-Method", "GET", "X-Original-URI", "/x", "X-Original-Host", "a.example/paid"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"host with user", []string{"X-Original-Method", "GET", "X-Original-URI", "/x", "X-Original-Host", "u@a.example"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"absolute URI", []string{"X-Original-Method", "GET", "X-Original-URI", "http://evil/x"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"scheme-relative URI", []string{"X-Original-Method", "GET", "X-Original-URI", "//evil/x"}, "", "GET", "//evil/x", "auth.internal"},
		{"asterisk", []string{"X-Original-Method", "OPTIONS", "X-Original-URI", "*"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"space in URI", []string{"X-Original-Method", "GET", "X-Original-URI", "/a b"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"non-ASCII URI", []string{"X-Original-Method", "GET", "X-Original-URI", "/café"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"method with space", []string{"X-Original-Method", "GET /x", "X-Original-URI", "/x"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"long method", []string{"X-Original-Method", strings.Repeat("A", 33), "X-Original-URI", "/x"}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
		{"long URI", []string{"X-Original-Method", "GET", "X-Original-URI", "/" + strings.Repeat("a", 64<<10)}, coinop.ReasonAuthOriginalInvalid, "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := checkRequest(append(c.pairs, "Payment-Signature", "sig", "X-Coinop-Refusal", "keep", "X-Forwarded-Proto", "https")...)
			o, err := fwdauth.Original(r)
			if c.reason != "" {
				var e *coinop.Error
				if !errors.As(err, &e) || e.Reason != c.reason || e.Kind != coinop.KindMalformed {
					t.Fatalf("err %v, want reason %s", err, c.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Method != c.method || o.RequestURI != c.uri || o.URL.RequestURI() != c.uri && !strings.Contains(c.uri, "%") || o.Host != c.host {
				t.Errorf("got %s %s (%s) host %s", o.Method, o.RequestURI, o.URL.RequestURI(), o.Host)
			}
			if o.Header.Get("Payment-Signature") != "sig" || o.Header.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("the original's headers did not pass: %v", o.Header)
			}
			for _, k := range []string{"X-Original-Method", "X-Original-Uri", "X-Original-Host", "X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host", "X-Coinop-Refusal"} {
				if o.Header.Get(k) != "" {
					t.Errorf("%s is left in the original request", k)
				}
			}
			if o.ContentLength != 0 || o.Body != http.NoBody {
				t.Errorf("the original request has a body")
			}
			if r.Header.Get("X-Original-Method") == "" && r.Header.Get("X-Forwarded-Method") == "" {
				t.Errorf("Original changed the check's headers")
			}
		})
	}
}

// FuzzOriginal: whatever the headers, Original never panics, and a request
// it accepts is exactly the one the headers name: its method, its raw
// target, a host without separators, and none of the naming headers left.
func FuzzOriginal(f *testing.F) {
	f.Add("GET", "/a?b=c", "host:1", "", "", "")
	f.Add("POST", "/a%2Fb", "", "GET", "/a", "h")
	f.Add("GET", "http://x/y", "a b", "", "", "")
	f.Add("", "", "", "GET", "/", "x,y")
	f.Fuzz(func(t *testing.T, om, ouri, ohost, fm, furi, fhost string) {
		r := httptest.NewRequest(http.MethodGet, "http://auth.internal/check", nil)
		set := func(k, v string) {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		set("X-Original-Method", om)
		set("X-Original-Uri", ouri)
		set("X-Original-Host", ohost)
		set("X-Forwarded-Method", fm)
		set("X-Forwarded-Uri", furi)
		set("X-Forwarded-Host", fhost)
		o, err := fwdauth.Original(r)
		if err != nil {
			var e *coinop.Error
			if !errors.As(err, &e) || e.Kind != coinop.KindMalformed {
				t.Fatalf("error %v is not a malformed-request refusal", err)
			}
			return
		}
		pick := func(a, b string) string {
			if a != "" {
				return a
			}
			return b
		}
		if o.Method != pick(om, fm) || o.RequestURI != pick(ouri, furi) || o.Host != pick(pick(ohost, fhost), "auth.internal") {
			t.Fatalf("accepted %q %q %q from %q", o.Method, o.RequestURI, o.Host, []string{om, ouri, ohost, fm, furi, fhost})
		}
		if om != "" && fm != "" && om != fm || ouri != "" && furi != "" && ouri != furi || ohost != "" && fhost != "" && ohost != fhost {
			t.Fatalf("two conventions disagree and were accepted: %q", []string{om, ouri, ohost, fm, furi, fhost})
		}
		if strings.ContainsAny(o.Host, "/?#@ ,\\") || !strings.HasPrefix(o.RequestURI, "/") || o.URL.Host != "" {
			t.Fatalf("accepted host %q target %q", o.Host, o.RequestURI)
		}
		for _, k := range []string{"X-Original-Method", "X-Original-Uri", "X-Original-Host", "X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host"} {
			if len(o.Header[k]) > 0 {
				t.Fatalf("%s left in the original request", k)
			}
		}
	})
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// seqRand yields 0, 1, 2, … as random bytes: IDs are distinct and known.
type seqRand struct{ n byte }

func (s *seqRand) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = s.n
	}
	s.n++
	return len(b), nil
}

// refusing answers every original request with a 402 whose body names the
// original path, or 200 for /free.
var refusing = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/free" {
		w.Header().Set("X-Coinop-Payer", "0xabc")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Payment-Required", "terms-for-"+r.URL.Path)
	w.WriteHeader(http.StatusPaymentRequired)
	io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
})

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestKeptRefusal(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	h := fwdauth.New(fwdauth.Config{Check: refusing, Now: clk.now, Rand: &seqRand{}, KeepFor: 10 * time.Second, MaxKept: 2})
	ask := func(path string, keep bool) *httptest.ResponseRecorder {
		pairs := []string{"X-Original-Method", "GET", "X-Original-URI", path}
		if keep {
			pairs = append(pairs, "X-Coinop-Refusal", "keep")
		}
		return serve(h, checkRequest(pairs...))
	}
	fetch := func(id string) *httptest.ResponseRecorder {
		return serve(h, httptest.NewRequest(http.MethodGet, "http://auth.internal/refusal/"+id, nil))
	}
	gone := func(w *httptest.ResponseRecorder) bool {
		var p struct{ Reason string }
		json.Unmarshal(w.Body.Bytes(), &p)
		return w.Code == http.StatusServiceUnavailable && p.Reason == coinop.ReasonAuthRefusalGone
	}

	// Without keep: nothing kept, no ID.
	if w := ask("/a", false); w.Code != 402 || w.Header().Get("X-Coinop-Refusal") != "" {
		t.Fatalf("unkept: %d %v", w.Code, w.Header())
	}
	// A 2xx is never kept.
	if w := ask("/free", true); w.Code != 200 || w.Header().Get("X-Coinop-Refusal") != "" || w.Header().Get("X-Coinop-Payer") != "0xabc" {
		t.Fatalf("2xx: %d %v", w.Code, w.Header())
	}
	// Kept: the fetch gives back status, headers and body, once.
	w := ask("/a", true)
	id := w.Header().Get("X-Coinop-Refusal")
	if w.Code != 402 || id == "" || w.Body.String() != `{"path":"/a"}` {
		t.Fatalf("kept: %d %q %q", w.Code, id, w.Body)
	}
	got := fetch(id)
	if got.Code != 402 || got.Body.String() != `{"path":"/a"}` || got.Header().Get("Payment-Required") != "terms-for-/a" ||
		got.Header().Get("X-Coinop-Refusal") != "" {
		t.Fatalf("fetched: %d %v %q", got.Code, got.Header(), got.Body)
	}
	if !gone(fetch(id)) {
		t.Fatalf("a refusal was fetched twice")
	}
	if !gone(fetch("nonexistent")) || !gone(fetch("")) {
		t.Fatalf("an unknown ID was served")
	}
	// Expired after KeepFor.
	id = ask("/b", true).Header().Get("X-Coinop-Refusal")
	clk.t = clk.t.Add(10 * time.Second)
	if !gone(fetch(id)) {
		t.Fatalf("an expired refusal was served")
	}
	// At most MaxKept: the oldest goes first.
	ids := []string{ask("/c", true).Header().Get("X-Coinop-Refusal"), ask("/d", true).Header().Get("X-Coinop-Refusal"), ask("/e", true).Header().Get("X-Coinop-Refusal")}
	if !gone(fetch(ids[0])) {
		t.Errorf("the oldest of three was kept with MaxKept 2")
	}
	for i, id := range ids[1:] {
		if w := fetch(id); w.Code != 402 || !strings.Contains(w.Body.String(), []string{"/d", "/e"}[i]) {
			t.Errorf("refusal %d: %d %q", i+1, w.Code, w.Body)
		}
	}
	// A refusal fetch is never a check, whatever it carries.
	r := httptest.NewRequest(http.MethodGet, "http://auth.internal/refusal/x", nil)
	r.Header.Set("X-Forwarded-Uri", "/free")
	r.Header.Set("X-Forwarded-Method", "GET")
	if !gone(serve(h, r)) {
		t.Errorf("a fetch with check headers was answered as a check")
	}
	// A check that names no request is refused, and the refusal kept like any.
	w = serve(h, checkRequest("X-Coinop-Refusal", "keep"))
	if w.Code != 400 || w.Header().Get("X-Coinop-Refusal") == "" {
		t.Fatalf("a check without headers: %d %v", w.Code, w.Header())
	}
	if f := fetch(w.Header().Get("X-Coinop-Refusal")); f.Code != 400 || !bytes.Contains(f.Body.Bytes(), []byte(coinop.ReasonAuthOriginalMissing)) {
		t.Fatalf("fetched: %d %q", f.Code, f.Body)
	}
}

// A refusal too long to keep is answered, not kept; an ID that cannot be
// drawn keeps nothing.
func TestKeptRefusalLimits(t *testing.T) {
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusPaymentRequired)
		w.Write(bytes.Repeat([]byte("x"), 1<<20+1))
	})
	h := fwdauth.New(fwdauth.Config{Check: big})
	w := serve(h, checkRequest("X-Original-Method", "GET", "X-Original-URI", "/x", "X-Coinop-Refusal", "keep"))
	if w.Code != 402 || w.Body.Len() != 1<<20+1 || w.Header().Get("X-Coinop-Refusal") != "" {
		t.Fatalf("%d %d %v", w.Code, w.Body.Len(), w.Header())
	}
	h = fwdauth.New(fwdauth.Config{Check: refusing, Rand: failingRand{}})
	w = serve(h, checkRequest("X-Original-Method", "GET", "X-Original-URI", "/x", "X-Coinop-Refusal", "keep"))
	if w.Code != 402 || w.Header().Get("X-Coinop-Refusal") != "" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
}

type failingRand struct{}

func (failingRand) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// The report hook hands failures (400 and above) to Refund, answers
// successes with 204, and refuses a report that names no payment or status.
func TestReport(t *testing.T) {
	var got []string
	h := fwdauth.New(fwdauth.Config{Check: refusing, Refund: func(_ context.Context, id, reason string) (*coinop.Payment, error) {
		got = append(got, id+" "+reason)
		if id == "x402:1" {
			return nil, coinop.Errorf(coinop.KindConflict, coinop.ReasonRefundNotBearer, "not given back")
		}
		return &coinop.Payment{ID: id, State: coinop.StateReleased}, nil
	}})
	report := func(method string, pairs ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://auth.internal/report", nil)
		for i := 0; i+1 < len(pairs); i += 2 {
			r.Header.Set(pairs[i], pairs[i+1])
		}
		return serve(h, r)
	}
	if w := report("POST", "X-Coinop-Payment", "credits:1", "X-Upstream-Status", "502"); w.Code != 200 || !strings.Contains(w.Body.String(), `"state":"released"`) {
		t.Errorf("a 502: %d %s", w.Code, w.Body)
	}
	if w := report("POST", "X-Coinop-Payment", "credits:2", "X-Upstream-Status", "200"); w.Code != 204 {
		t.Errorf("a 200: %d %s", w.Code, w.Body)
	}
	if w := report("POST", "X-Coinop-Payment", "x402:1", "X-Upstream-Status", "500"); w.Code != 409 {
		t.Errorf("an x402 payment: %d %s", w.Code, w.Body)
	}
	for _, pairs := range [][]string{{"X-Upstream-Status", "502"}, {"X-Coinop-Payment", "c"}, {"X-Coinop-Payment", "c", "X-Upstream-Status", "5xx"},
		{"X-Coinop-Payment", "c", "X-Upstream-Status", "99"}, {"X-Coinop-Payment", "c", "X-Upstream-Status", "1000"}} {
		var p struct{ Reason string }
		w := report("POST", pairs...)
		json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != 400 || p.Reason != coinop.ReasonAuthReportInvalid {
			t.Errorf("%v: %d %s", pairs, w.Code, w.Body)
		}
	}
	if want := []string{"credits:1 upstream_status_502", "x402:1 upstream_status_500"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("refunds %q, want %q", got, want)
	}
	// A GET of /report is a check like any other path, never a report.
	if w := report("GET", "X-Coinop-Payment", "credits:3", "X-Upstream-Status", "502"); w.Code != 400 || len(got) != 2 {
		t.Errorf("GET /report: %d, refunds %q", w.Code, got)
	}
}

// Method- and URL-override headers are refused on every route, free ones
// too: the proxy sends them on to its upstream, which coinop cannot stop.
func TestOverrideHeaders(t *testing.T) {
	h := fwdauth.New(fwdauth.Config{Check: refusing})
	for _, k := range []string{"X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override", "X_Original_URL", "X-Method-Override"} {
		r := checkRequest("X-Original-Method", "GET", "X-Original-URI", "/free")
		r.Header[k] = []string{"/paid"}
		w := serve(h, r)
		var p struct{ Reason string }
		json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != 400 || p.Reason != "override_header_refused" {
			t.Errorf("%s on a free route: %d %s", k, w.Code, w.Body)
		}
	}
	if w := serve(h, checkRequest("X-Original-Method", "GET", "X-Original-URI", "/free")); w.Code != 200 {
		t.Errorf("without an override header: %d", w.Code)
	}
}
