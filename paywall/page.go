package paywall

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop"
)

// The page's script and styles are embedded in the binary: the page makes
// no request to anywhere but its own origin, and works offline.
var (
	//go:embed page/pay.js
	payScript string
	//go:embed page/page.css
	pageStyle string
)

// pageCSP is the 402 page's Content Security Policy. The one script that
// may run is the embedded one, by hash, so nothing a seller's description
// or an upstream's bytes put on the page can run as script; the script may
// talk to its own origin only (connect-src 'self'), so the payment it signs
// goes nowhere else; and no other site may frame the page
// (frame-ancestors), so the Pay button cannot be dressed up as something
// else by a page around it. Inline styles stay allowed for the paid HTML
// shown in a sandboxed frame, which inherits this policy and can run no
// script either way.
var pageCSP = "default-src 'none'; script-src 'sha256-" + scriptHash(payScript) + "'; " +
	"style-src 'unsafe-inline'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// scriptHash is the CSP source hash of an inline script's text.
func scriptHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// writePage answers a browser with the HTML 402 page for ch, and reports
// whether it did; when the page cannot be rendered the caller answers with
// the JSON problem instead. The page carries the same headers as the JSON
// answer, and a few of its own that only concern a document.
func writePage(w http.ResponseWriter, r *http.Request, status int, detail string, ch *challengeView) bool {
	var buf bytes.Buffer
	if err := paywallPage.Execute(&buf, newPageData(r, status, detail, ch)); err != nil {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
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
	// Description is the route's, as the x402 terms state it.
	Description string
	// URL is the resource as the client addressed it, quoted for a shell
	// when needed, for the commands.
	URL string
	// SignHeader is the header `coinop sign`'s output goes in.
	SignHeader string
	Offers     []offerView
	// Plans are the plans a credits rail sells (the JSON body's "plans").
	Plans []planView
	// Lightning is the Lightning section, when an L402 offer has an
	// invoice to show.
	Lightning *lightningView
	// Pay is what the page's script pays with; nil when no offer can be
	// paid from the page (a browser wallet, WebLN or a pasted preimage),
	// and then the page has no script.
	Pay    *payTerms
	Style  template.CSS
	Script template.JS
}

// offerView is one offer as the page lists it.
type offerView struct {
	coinop.Offer
	// NetworkName is the network's name for people ("Base Sepolia").
	NetworkName string
}

// planView is one plan as the page lists it.
type planView struct {
	Name, What, URL string
	Prices          string
}

// plansOf reads the "plans" member a credits rail adds to the body, by
// its JSON form (the engine does not know the rail's types).
func plansOf(body map[string]any) []planView {
	v, ok := body["plans"]
	if !ok {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var ps []struct {
		Name        string         `json:"name"`
		Credits     int64          `json:"credits"`
		PassSeconds int64          `json:"passSeconds"`
		Requests    int64          `json:"requests"`
		URL         string         `json:"url"`
		Offers      []coinop.Offer `json:"offers"`
	}
	if json.Unmarshal(raw, &ps) != nil {
		return nil
	}
	var out []planView
	for _, p := range ps {
		var what []string
		if p.Credits > 0 {
			what = append(what, strconv.FormatInt(p.Credits, 10)+" credits")
		}
		if p.PassSeconds > 0 {
			pass := "a " + (time.Duration(p.PassSeconds) * time.Second).String() + " pass"
			if p.Requests > 0 {
				pass += " of " + strconv.FormatInt(p.Requests, 10) + " requests"
			}
			what = append(what, pass)
		}
		var prices []string
		for _, o := range p.Offers {
			prices = append(prices, o.Price+" on "+networkName(o.Network))
		}
		out = append(out, planView{Name: p.Name, What: strings.Join(what, " and "), URL: p.URL, Prices: strings.Join(prices, ", or ")})
	}
	return out
}

// payTerms is the data the page's script reads (as JSON, from the page
// itself) to pay with a browser wallet.
type payTerms struct {
	// Method is the request's method (GET): the script repeats the request
	// with a payment, to the page's own URL.
	Method string `json:"method"`
	// Header is the request header the payment goes in.
	Header string `json:"header"`
	// Required is the decoded PAYMENT-REQUIRED header, x402 v2: the script
	// echoes one of its accepts and its resource in the payment.
	Required json.RawMessage `json:"paymentRequired,omitempty"`
	// Offers are the x402 offers a browser wallet can pay; none when only
	// Lightning can be paid from the page.
	Offers []payOffer `json:"offers,omitempty"`
	// Networks names the chains coinop knows, by 0x-hex chain id, to tell
	// people which chain their wallet is on.
	Networks map[string]string `json:"networks,omitempty"`
	// Lightning is the L402 invoice and token, when the page can pay it.
	Lightning *lightningTerms `json:"lightning,omitempty"`
}

// payOffer is one offer the script can pay: x402 exact on an EVM chain,
// with the token's EIP-712 domain.
type payOffer struct {
	// Accept is the offer's index in Required's accepts.
	Accept int    `json:"accept"`
	Price  string `json:"price"`
	Symbol string `json:"symbol"`
	// Decimals turn atomic units into Symbol; -1 when the price does not
	// tell, and balances are then shown in atomic units.
	Decimals    int       `json:"decimals"`
	Network     string    `json:"network"`
	NetworkName string    `json:"networkName"`
	ChainID     string    `json:"chainId"` // 0x-hex, as wallets take it
	AddChain    *addChain `json:"addChain,omitempty"`
	Explorer    string    `json:"explorer,omitempty"`
}

// addChain is the parameter of EIP-3085 wallet_addEthereumChain.
type addChain struct {
	ChainID        string `json:"chainId"`
	ChainName      string `json:"chainName"`
	NativeCurrency struct {
		Name     string `json:"name"`
		Symbol   string `json:"symbol"`
		Decimals int    `json:"decimals"`
	} `json:"nativeCurrency"`
	RPCURLs           []string `json:"rpcUrls"`
	BlockExplorerURLs []string `json:"blockExplorerUrls,omitempty"`
}

func newPageData(r *http.Request, status int, detail string, ch *challengeView) pageData {
	d := pageData{
		Status: status, Title: http.StatusText(status), Detail: detail, Price: ch.Price.String(),
		Path: r.URL.Path, URL: shellWord(resourceURL(r)), SignHeader: "PAYMENT-SIGNATURE",
	}
	if len(ch.Offers) > 0 && ch.Offers[0].Header != "" {
		d.SignHeader = ch.Offers[0].Header
	}
	for _, o := range ch.Offers {
		d.Offers = append(d.Offers, offerView{Offer: o, NetworkName: networkName(o.Network)})
	}
	d.Plans = plansOf(ch.Body)
	raw, pr := paymentRequired(ch.Header.Get("PAYMENT-REQUIRED"))
	if pr.Resource != nil {
		d.Description = pr.Resource.Description
	}
	// The script repeats the request with a payment, and a page cannot
	// repeat a request's body: it pays for GETs only, rather than buy a
	// request that lost its input.
	var offers []payOffer
	for _, o := range ch.Offers {
		if r.Method != http.MethodGet {
			break
		}
		if p, ok := payable(o, pr); ok {
			offers = append(offers, p)
		}
	}
	d.Lightning = lightningOf(ch.Offers, r.Method == http.MethodGet)
	d.Style = template.CSS(pageStyle)
	if len(offers) > 0 || d.Lightning != nil && d.Lightning.Terms != nil {
		d.Pay = &payTerms{Method: r.Method, Header: "PAYMENT-SIGNATURE"}
		d.Script = template.JS(payScript)
	}
	if len(offers) > 0 {
		names := make(map[string]string, len(networks))
		for id, n := range networks {
			names["0x"+strconv.FormatUint(id, 16)] = n.Name
		}
		d.Pay.Required, d.Pay.Offers, d.Pay.Networks = raw, offers, names
	}
	if d.Lightning != nil && d.Lightning.Terms != nil {
		d.Pay.Lightning = d.Lightning.Terms
	}
	return d
}

// x402Terms is what the page reads of a PAYMENT-REQUIRED header.
type x402Terms struct {
	Resource *struct {
		Description string `json:"description"`
	} `json:"resource"`
	Accepts []struct {
		Scheme  string         `json:"scheme"`
		Network string         `json:"network"`
		Asset   string         `json:"asset"`
		PayTo   string         `json:"payTo"`
		Amount  string         `json:"amount"`
		Extra   map[string]any `json:"extra"`
	} `json:"accepts"`
}

// paymentRequired decodes an x402 v2 PAYMENT-REQUIRED header (standard
// base64 of JSON): the JSON itself, for the script, and what the page
// reads of it. Both are empty when the header is absent or not x402.
func paymentRequired(h string) (json.RawMessage, x402Terms) {
	var t x402Terms
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil || h == "" || json.Unmarshal(b, &t) != nil {
		return nil, x402Terms{}
	}
	return b, t
}

// payable reports whether the page's script can pay o, from the x402 terms
// pr: an x402 exact offer on an EVM chain whose accepts entry (same scheme,
// network, asset, recipient and amount) names the token's EIP-712 domain.
func payable(o coinop.Offer, pr x402Terms) (payOffer, bool) {
	chainID := evmChainID(o.Network)
	if o.Protocol != "x402" || o.Scheme != "exact" || chainID == 0 {
		return payOffer{}, false
	}
	for i, q := range pr.Accepts {
		name, _ := q.Extra["name"].(string)
		version, _ := q.Extra["version"].(string)
		if q.Scheme != o.Scheme || q.Network != o.Network || !strings.EqualFold(q.Asset, o.Asset) ||
			!strings.EqualFold(q.PayTo, o.PayTo) || q.Amount != o.Amount || name == "" || version == "" {
			continue
		}
		symbol, decimals := priceUnits(o.Price, o.Amount)
		p := payOffer{
			Accept: i, Price: o.Price, Symbol: symbol, Decimals: decimals,
			Network: o.Network, NetworkName: networkName(o.Network), ChainID: "0x" + strconv.FormatUint(chainID, 16),
		}
		if n, ok := networks[chainID]; ok {
			p.Explorer = n.Explorer
			if n.RPC != "" {
				a := &addChain{ChainID: p.ChainID, ChainName: n.Name, RPCURLs: []string{n.RPC}}
				a.NativeCurrency.Name, a.NativeCurrency.Symbol, a.NativeCurrency.Decimals = n.Currency, n.Currency, 18
				if n.Explorer != "" {
					a.BlockExplorerURLs = []string{n.Explorer}
				}
				p.AddChain = a
			}
		}
		return p, true
	}
	return payOffer{}, false
}

// priceUnits reads the asset's symbol and decimals from an offer's price
// for people ("0.001 USDC") and its amount in atomic units ("1000"): 0.001
// is 1000 atomic units when there are 6 decimals. Decimals is -1 when the
// two do not tell (no symbol, or amounts that are not a power of ten apart).
func priceUnits(price, amount string) (symbol string, decimals int) {
	value, symbol, ok := strings.Cut(price, " ")
	if !ok {
		return "", -1
	}
	whole, frac, _ := strings.Cut(value, ".")
	units, ok1 := new(big.Int).SetString(whole+frac, 10)
	atomic, ok2 := new(big.Int).SetString(amount, 10)
	if !ok1 || !ok2 || units.Sign() <= 0 {
		return symbol, -1
	}
	q, m := new(big.Int).QuoRem(atomic, units, new(big.Int))
	if m.Sign() != 0 {
		return symbol, -1
	}
	s := q.String()
	if strings.Trim(s, "0") != "1" || s[0] != '1' {
		return symbol, -1
	}
	return symbol, len(frac) + len(s) - 1
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

// paywallPage is the 402 for browsers, with the same facts as the JSON:
// self-contained (styles and script embedded, no external assets), readable
// without CSS and on a phone's width. Without JavaScript it shows the price,
// the offers and the terminal commands; with it, a Pay button pays with the
// browser's wallet (page/pay.js), the result announced in a live region.
var paywallPage = template.Must(template.New("402").Funcs(template.FuncMap{"code": codeSpans}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Status}} {{.Title}} — {{.Price}}</title><link rel="icon" href="data:,">
<style>{{.Style}}</style></head>
<body><main><header><h1>{{.Status}} {{.Title}}</h1>
<p class="price" id="price">{{.Price}}</p>{{with .Description}}
<p class="what" id="description">{{.}}</p>{{end}}</header>
<p id="detail">{{code .Detail}}</p>
{{with .Pay}}{{with .Offers}}<section id="pay" aria-labelledby="pay-title" hidden>
<h2 id="pay-title">Pay with a browser wallet</h2>
<fieldset id="choose-offer" hidden><legend>Pay with</legend></fieldset>
<p id="choose-wallet" hidden><label for="wallet">Wallet</label> <select id="wallet"></select></p>
<button type="button" id="pay-button">Pay {{(index . 0).Price}}</button>
<p id="status" role="status" aria-live="polite" aria-atomic="true"></p>
</section>
{{end}}{{end}}{{with .Lightning}}<section id="lightning" aria-labelledby="ln-title">
<h2 id="ln-title">Pay {{.Price}} with Lightning</h2>
<div class="ln"><a class="qr" id="ln-qr" href="{{.URI}}" aria-label="Open the invoice in a Lightning wallet">{{.QR}}</a>
<div class="ln-text"><p>Scan the code with a Lightning wallet, or <a id="ln-link" href="{{.URI}}">open the invoice in one</a>. The invoice:</p>
<p class="invoice"><code id="ln-invoice">{{.Invoice}}</code></p>
<p><button type="button" id="ln-copy" class="secondary" hidden>Copy the invoice</button></p>
<p>It asks {{.Price}} and can be paid until <time id="ln-expires" datetime="{{.Expires.Format "2006-01-02T15:04:05Z07:00"}}">{{.Expires.Format "15:04:05 MST, 2 January 2006"}}</time><span id="ln-left"></span>.</p></div></div>
{{if .Terms}}<p id="ln-webln-row" hidden><button type="button" id="ln-webln">Pay with a Lightning wallet</button></p>
<form id="ln-paste" hidden><label for="ln-preimage">Paid from a wallet on another device? Paste the payment's preimage (64 hexadecimal characters):</label>
<span class="row"><input id="ln-preimage" name="preimage" autocomplete="off" autocapitalize="off" spellcheck="false" maxlength="200"> <button type="submit" id="ln-send" class="secondary">Send the preimage</button></span></form>
<p id="ln-status" role="status" aria-live="polite" aria-atomic="true"></p>
{{end}}<details><summary>Pay from another device without this page</summary>
<p>{{code .HowTo}} The token:</p>
<pre id="ln-token">{{.Token}}</pre></details>
{{if .Others}}<p class="note">This route also takes Lightning through the Payment scheme (<code>Authorization: Payment</code>), with an invoice of its own in the 402's <code>WWW-Authenticate: Payment</code> challenge; <code>coinop curl --prefer mpp</code> pays it.</p>
{{end}}</section>
{{end}}{{with .Pay}}<section id="paid" aria-labelledby="paid-title" hidden><h2 id="paid-title" tabindex="-1">Paid content</h2><p id="receipt"></p><div id="content"></div></section>
{{end}}<h2>Pay from a terminal</h2>
<p><code>coinop curl</code> pays and fetches in one step; <code>coinop sign</code> prints the payment header for any HTTP client:</p>
<pre id="commands">coinop curl {{.URL}}
curl -H "{{.SignHeader}}: $(coinop sign {{.URL}})" {{.URL}}{{if .Lightning}}
coinop curl --prefer l402 {{.URL}}{{end}}</pre>
{{range .Offers}}<section class="offer"><h2>{{.Price}} on {{.NetworkName}}</h2>
<table><caption>{{.Protocol}} ({{.Scheme}})</caption>
<tr><th scope="row">price</th><td>{{.Price}}</td></tr>
<tr><th scope="row">network</th><td>{{.NetworkName}} <code>{{.Network}}</code></td></tr>
<tr><th scope="row">asset</th><td><code>{{.Asset}}</code></td></tr>
<tr><th scope="row">pay to</th><td><code>{{.PayTo}}</code></td></tr>
<tr><th scope="row">amount</th><td><code>{{.Amount}}</code> atomic units</td></tr>
<tr><th scope="row">header</th><td><code>{{.Header}}</code></td></tr></table>
<p>{{code .HowTo}}</p></section>
{{end}}{{with .Plans}}<section id="plans" class="offer"><h2>Plans</h2>
<p>Buy a plan once, then send its token (<code>Authorization: Bearer …</code>) and pay each request from its balance; <code>coinop curl</code> buys and uses plans by itself.</p>
<ul>{{range .}}<li><strong>{{.Name}}</strong>: {{.What}}, for {{.Prices}}: <code>{{.URL}}</code></li>
{{end}}</ul></section>
{{end}}<p class="note">The machine-readable terms are in the <code>PAYMENT-REQUIRED</code> response header (base64 JSON, x402 v2); ask with <code>Accept: application/json</code> for them as a JSON problem document.</p>
</main>{{with .Pay}}
<script type="application/json" id="coinop-pay">{{.}}</script>
<script>{{$.Script}}</script>{{end}}
</body></html>
`))
