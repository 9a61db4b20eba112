package admin

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// The dashboard is one document with its script and styles inside, all
// embedded in the binary: it loads nothing from anywhere, and works
// offline and behind any firewall.
var (
	//go:embed dashboard/dashboard.html
	dashboardHTML string
	//go:embed dashboard/dashboard.js
	dashboardScript string
	//go:embed dashboard/dashboard.css
	dashboardStyle string
)

// dashboardPage is the document served at / and /dashboard.
var dashboardPage = []byte(strings.NewReplacer("{{STYLE}}", dashboardStyle, "{{SCRIPT}}", dashboardScript).Replace(dashboardHTML))

// dashboardCSP lets the page run its own script and styles only, by hash,
// and talk to its own origin only (connect-src 'self'): nothing a payment's
// fields put on the page can run, and the figures and the token go nowhere
// else. No site may frame it (frame-ancestors), and links to block
// explorers carry no referrer.
var dashboardCSP = "default-src 'none'; script-src " + sourceHash(dashboardScript) + "; style-src " + sourceHash(dashboardStyle) +
	"; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// sourceHash is the CSP source expression of an inline script or style.
func sourceHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// isPage reports whether r asks for the dashboard document. The document
// holds no figures (its script reads them from the API, with the token),
// so it is served without one: a browser cannot send a bearer token when
// it opens a URL, and the page asks for it instead.
func isPage(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == "/" || r.URL.Path == "/dashboard")
}

func serveDashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(dashboardPage)))
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(dashboardPage)
	}
}
