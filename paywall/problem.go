package paywall

import (
	"bytes"
	"encoding/json"
	"html/template"
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

// exposedHeaders are the payment headers a browser script may read.
const exposedHeaders = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE, WWW-Authenticate"

func exposeHeaders(h http.Header) {
	h.Set("Access-Control-Expose-Headers", exposedHeaders)
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
	body := []member{
		{"type", "about:blank"}, {"title", http.StatusText(status)}, {"status", status},
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
	if ch != nil && wantsHTML(r) {
		var buf bytes.Buffer
		if err := paywallPage.Execute(&buf, pageData{Status: status, Title: http.StatusText(status), Detail: detailText, Price: ch.Price.String(), Offers: ch.Offers, Path: r.URL.Path}); err == nil {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Length", strconv.Itoa(buf.Len()))
			w.WriteHeader(status)
			w.Write(buf.Bytes())
			return
		}
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
	for i, m := range ms {
		k, _ := json.Marshal(m.key)
		v, err := json.MarshalIndent(m.value, "  ", "  ")
		if err != nil {
			v = []byte("null")
		}
		buf.WriteString("  ")
		buf.Write(k)
		buf.WriteString(": ")
		buf.Write(v)
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

// wantsHTML reports whether r comes from a browser: it asks for text/html
// ahead of JSON.
func wantsHTML(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	html := strings.Index(accept, "text/html")
	if html < 0 {
		return false
	}
	js := strings.Index(accept, "json")
	return js < 0 || html < js
}

type pageData struct {
	Status int
	Title  string
	Detail string
	Price  string
	Path   string
	Offers []coinop.Offer
}

var paywallPage = template.Must(template.New("402").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Status}} {{.Title}} — {{.Price}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}.price{font-size:2rem;font-weight:700}code,pre{background:#f3f3f3;border-radius:4px;padding:.1rem .3rem}
pre{padding:.8rem;overflow-x:auto}table{border-collapse:collapse}td{padding:.2rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}</style></head>
<body><h1>{{.Status}} {{.Title}}</h1>
<p class="price" id="price">{{.Price}}</p>
<p id="detail">{{.Detail}}</p>
{{range .Offers}}<h2>Pay with {{.Protocol}} ({{.Scheme}})</h2>
<table><tr><td>network</td><td><code>{{.Network}}</code></td></tr>
<tr><td>asset</td><td><code>{{.Asset}}</code></td></tr>
<tr><td>pay to</td><td><code>{{.PayTo}}</code></td></tr>
<tr><td>amount</td><td><code>{{.Amount}}</code> atomic units ({{.Price}})</td></tr>
<tr><td>header</td><td><code>{{.Header}}</code></td></tr></table>
<p>{{.HowTo}}</p>{{end}}
<p>The machine-readable terms are in the <code>PAYMENT-REQUIRED</code> response header.</p>
</body></html>
`))
