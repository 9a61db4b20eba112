package paywall

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/coinop/coinop"
)

// challengeView is what a 402 (or a 400/409 about a payment) tells the client
// besides the problem itself.
type challengeView struct {
	*coinop.Challenge
	Price coinop.Price
}

// exposedHeaders lists, for Access-Control-Expose-Headers, the payment
// headers a browser script may read: every rail's, and WWW-Authenticate.
func exposedHeaders(rails map[string]coinop.Rail) string {
	names := []string{}
	seen := map[string]bool{}
	add := func(h string) {
		if k := http.CanonicalHeaderKey(h); !seen[k] {
			seen[k] = true
			names = append(names, h)
		}
	}
	keys := make([]string, 0, len(rails))
	for k := range rails {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, h := range rails[k].Headers().Expose {
			add(h)
		}
	}
	add("WWW-Authenticate")
	return strings.Join(names, ", ")
}

// resourceURL is the absolute URL of r as the client addressed it.
func resourceURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// WriteError answers with err as an RFC 9457 problem document: the status of
// its kind, its reason code and its client-safe message (anything but a
// *coinop.Error is an internal error, whose detail goes nowhere). It is the
// one problem writer, for what the gateway refuses around the engine too
// (an oversized body, an upstream that timed out).
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, r, coinop.AsError(err), nil)
}

// writeProblem answers with an RFC 9457 problem document. For payment
// problems ch adds the challenge headers, the offers and the x402 v1 body
// members, and browsers get an HTML page with the same facts.
func writeProblem(w http.ResponseWriter, r *http.Request, e *coinop.Error, ch *challengeView) {
	status := e.Kind.Status()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	detailText := e.Message
	if detailText == "" {
		detailText = http.StatusText(status)
	}
	if ch != nil {
		detailText = detail(e, r, ch)
	}
	// Problem members first, then the terms, then the rails' members, so a
	// person reading `curl -i` sees the verdict before the details.
	typ := e.Type
	if typ == "" {
		typ = "about:blank"
	}
	body := []member{
		{"type", typ}, {"title", http.StatusText(status)}, {"status", status},
		{"detail", detailText}, {"reason", e.Reason},
	}
	if ch != nil {
		body = append(body, member{"price", ch.Price.String()}, member{"offers", ch.Offers})
		keys := make([]string, 0, len(ch.Body))
		for k := range ch.Body {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			body = append(body, member{k, ch.Body[k]})
		}
	}
	if ch != nil && wantsHTML(r) && writePage(w, r, status, detailText, ch) {
		return
	}
	b := marshalMembers(body)
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// member is one top-level member of a JSON object written in order.
type member struct {
	key   string
	value any
}

// marshalMembers writes members as an indented JSON object, in order.
func marshalMembers(ms []member) []byte {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	// One encoder for every value: it reuses its buffers, where
	// json.MarshalIndent allocates two per member. Same bytes.
	enc := json.NewEncoder(&buf)
	enc.SetIndent("  ", "  ")
	for i, m := range ms {
		k, _ := json.Marshal(m.key)
		buf.WriteString("  ")
		buf.Write(k)
		buf.WriteString(": ")
		if err := enc.Encode(m.value); err != nil {
			buf.WriteString("null")
		} else {
			buf.Truncate(buf.Len() - 1) // Encode's newline
		}
		if i < len(ms)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("}\n")
	return buf.Bytes()
}

func detail(e *coinop.Error, r *http.Request, ch *challengeView) string {
	if e.Kind == coinop.KindPaymentRequired {
		return r.Method + " " + r.URL.Path + " costs " + ch.Price.String() + ". Pay with one of the offers below; `coinop curl " + resourceURL(r) + "` pays automatically."
	}
	return e.Message
}
