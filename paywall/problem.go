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
		if err := paywallPage.Execute(&buf, newPageData(r, status, detailText, ch)); err == nil {
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
	// URL is the resource as the client addressed it, quoted for a shell
	// when needed, for the commands.
	URL string
	// SignHeader is the header `coinop sign`'s output goes in.
	SignHeader string
	Offers     []coinop.Offer
}

func newPageData(r *http.Request, status int, detail string, ch *challengeView) pageData {
	d := pageData{
		Status: status, Title: http.StatusText(status), Detail: detail, Price: ch.Price.String(),
		Path: r.URL.Path, URL: shellWord(resourceURL(r)), SignHeader: "PAYMENT-SIGNATURE", Offers: ch.Offers,
	}
	if len(ch.Offers) > 0 && ch.Offers[0].Header != "" {
		d.SignHeader = ch.Offers[0].Header
	}
	return d
}

// codeSpans escapes s for HTML and sets its `backquoted` spans as code, as
// the detail and how-to sentences quote commands that way.
func codeSpans(s string) template.HTML {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i%2 == 0:
			b.WriteString(template.HTMLEscapeString(p))
		case i == len(parts)-1: // an unpaired backquote
			b.WriteString("`" + template.HTMLEscapeString(p))
		default:
			b.WriteString("<code>" + template.HTMLEscapeString(p) + "</code>")
		}
	}
	return template.HTML(b.String())
}

// shellWord quotes s for a POSIX shell when it holds anything but the
// characters of a plain URL, so a pasted command keeps ? and & intact.
func shellWord(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~:/%+=@,", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// paywallPage is the 402 for browsers: self-contained (no scripts, no
// external assets), readable without CSS, with the same facts as the JSON.
var paywallPage = template.Must(template.New("402").Funcs(template.FuncMap{"code": codeSpans}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Status}} {{.Title}} — {{.Price}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2.5rem auto;padding:0 1rem;color:#1d1d1f;background:#fff}
header{border-left:6px solid #c77700;padding:.2rem 0 .2rem 1rem;margin-bottom:1.5rem}
h1{font-size:1.1rem;font-weight:600;color:#8a5300;margin:0}.price{font-size:2.4rem;font-weight:700;margin:.1rem 0}
h2{font-size:1.2rem;margin-top:2rem}code,pre{font:14px/1.45 ui-monospace,monospace;background:#f2f2f4;border-radius:4px}
code{padding:.1rem .3rem}pre{padding:.8rem 1rem;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}td{padding:.3rem .6rem;border-bottom:1px solid #e2e2e6;vertical-align:top}
td:first-child{color:#555;white-space:nowrap;width:1%}td code{word-break:break-all}.note{color:#555;font-size:.9rem}</style></head>
<body><header><h1>{{.Status}} {{.Title}}</h1>
<p class="price" id="price">{{.Price}}</p></header>
<p id="detail">{{code .Detail}}</p>
<h2>Pay from a terminal</h2>
<p><code>coinop curl</code> pays and fetches in one step; <code>coinop sign</code> prints the payment header for any HTTP client:</p>
<pre id="commands">coinop curl {{.URL}}
curl -H "{{.SignHeader}}: $(coinop sign {{.URL}})" {{.URL}}</pre>
{{range .Offers}}<h2>Pay with {{.Protocol}} ({{.Scheme}})</h2>
<table class="offer"><tr><td>price</td><td>{{.Price}}</td></tr>
<tr><td>network</td><td><code>{{.Network}}</code></td></tr>
<tr><td>asset</td><td><code>{{.Asset}}</code></td></tr>
<tr><td>pay to</td><td><code>{{.PayTo}}</code></td></tr>
<tr><td>amount</td><td><code>{{.Amount}}</code> atomic units</td></tr>
<tr><td>header</td><td><code>{{.Header}}</code></td></tr></table>
<p>{{code .HowTo}}</p>{{end}}
<p class="note">The machine-readable terms are in the <code>PAYMENT-REQUIRED</code> response header (base64 JSON, x402 v2); ask with <code>Accept: application/json</code> for them as a JSON problem document.</p>
</body></html>
`))
