package paywall_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop/paywall"
)

// tokenPaywall protects h on /paid/ with a fakeRail and a real journal.
func tokenPaywall(t *testing.T, h http.Handler) (*fakeRail, http.Handler) {
	t.Helper()
	rail := newFakeRail("fake")
	pw, err := paywall.New(paywall.Config{Journal: openJournal(t, filepath.Join(t.TempDir(), "j.db")),
		Routes: []paywall.Route{priced("/paid/", rail, 5)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	return rail, pw.Wrap(h)
}

// A handler that takes the connection without writing a status is paid for
// first: the engine cannot see what it sends. A failed settlement keeps the
// connection from it and the client gets the 402.
func TestHijackIsACommitPoint(t *testing.T) {
	for _, c := range []struct {
		name   string
		fail   bool
		status int
	}{{"settled", false, http.StatusOK}, {"settlement fails", true, http.StatusPaymentRequired}} {
		t.Run(c.name, func(t *testing.T) {
			var rail *fakeRail
			var settledAtHijack int32 = -1
			rail, h := tokenPaywall(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				settledAtHijack = rail.settles.Load()
				brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nraw ok")
				brw.Flush()
			}))
			if c.fail {
				rail.set(func(r *fakeRail) { r.outcome = settleRefused })
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/paid/x", nil)
			req.Header.Set(fakePayHeader, fakeCred("fake", "payer", "n1"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, c.status)
			}
			if !c.fail && settledAtHijack != 1 {
				t.Errorf("the handler had the connection with %d settlements, want 1", settledAtHijack)
			}
			if c.fail && settledAtHijack != -1 {
				t.Error("the handler got the connection although the settlement failed")
			}
		})
	}
}

// On a writer that cannot hand its connection over (HTTP/2, a recorder),
// Hijack fails before anything is settled, so the handler's fallback answer
// is not charged.
func TestHijackUnsupportedChargesNothing(t *testing.T) {
	var hijackErr error
	rail, h := tokenPaywall(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, hijackErr = http.NewResponseController(w).Hijack()
		http.Error(w, "cannot switch", http.StatusBadGateway)
	}))
	req := httptest.NewRequest("GET", "/paid/x", nil)
	req.Header.Set(fakePayHeader, fakeCred("fake", "payer", "n2"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if !errors.Is(hijackErr, http.ErrNotSupported) {
		t.Errorf("Hijack: %v, want ErrNotSupported", hijackErr)
	}
	if rec.Code != http.StatusBadGateway || rail.settles.Load() != 0 {
		t.Errorf("got %d with %d settlements, want 502 and none", rec.Code, rail.settles.Load())
	}
}

// Informational responses before the commit are dropped (they would carry
// the handler's headers before the money moved); the final response carries
// the handler's headers and the engine's receipt, which the handler cannot
// replace.
func TestHeadersBeforeTheCommit(t *testing.T) {
	_, h := tokenPaywall(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</paid/big.js>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set(fakeReceiptHeader, "forged")
		w.Header().Set("X-Upstream", "yes")
		io.WriteString(w, "goods")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	var informational []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		informational = append(informational, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", srv.URL+"/paid/x", nil)
	req.Header.Set(fakePayHeader, fakeCred("fake", "payer", "n3"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(bufio.NewReader(resp.Body))
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "goods" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	if len(informational) != 0 {
		t.Errorf("informational responses before the payment settled: %v", informational)
	}
	if got := resp.Header.Values(fakeReceiptHeader); strings.Join(got, ",") != "fake-ref:fake:payer:n3" {
		t.Errorf("receipt %q, want the engine's alone", got)
	}
	if resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("Link") == "" {
		t.Errorf("the handler's headers are missing from the released response: %v", resp.Header)
	}
}

// An offer to switch to cleartext HTTP/2 (curl --http2 on an http URL) is
// ignored on a priced route, never refused or passed on; a WebSocket
// upgrade on a route that does not allow upgrades is refused before any
// payment check.
func TestUpgradeOffers(t *testing.T) {
	var seen http.Header
	rail, h := tokenPaywall(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		io.WriteString(w, "goods")
	}))
	for _, c := range []struct {
		name    string
		header  http.Header
		status  int
		settled int32
	}{
		{"h2c", http.Header{"Upgrade": {"h2c"}, "Connection": {"Upgrade, HTTP2-Settings"}, "Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}}, 200, 1},
		{"websocket", http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}, 403, 1},
		{"connection upgrade alone", http.Header{"Connection": {"keep-alive, Upgrade"}}, 403, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			req := httptest.NewRequest("GET", "/paid/"+strings.ReplaceAll(c.name, " ", "-"), nil)
			req.Header = c.header
			req.Header.Set(fakePayHeader, fakeCred("fake", "payer", c.name))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.status || rail.settles.Load() != c.settled {
				t.Fatalf("got %d with %d settlements, want %d and %d\n%s", rec.Code, rail.settles.Load(), c.status, c.settled, rec.Body)
			}
			if seen != nil && (seen.Get("Upgrade") != "" || seen.Get("Http2-Settings") != "" || seen.Get("Connection") != "") {
				t.Errorf("the handler saw the upgrade offer: %v", seen)
			}
		})
	}
}
