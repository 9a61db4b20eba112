package paywall

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/coinop/coinop"
)

// writePage answers a browser with the HTML 402 page for ch, and reports
// whether it did; when the page cannot be rendered the caller answers with
// the JSON problem instead.
func writePage(w http.ResponseWriter, r *http.Request, status int, detail string, ch *challengeView) bool {
	var buf bytes.Buffer
	if err := paywallPage.Execute(&buf, newPageData(r, status, detail, ch)); err != nil {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return true
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
