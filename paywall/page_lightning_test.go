package paywall_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/bolt11"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

// sats is the L402 routes' price: 20 sat, in millisatoshis.
var sats = coinop.Price{Amount: big.NewInt(20_000), Symbol: "sat", Decimals: 3}

// lightningPage serves GET and POST /item, described as description,
// behind a paywall whose accepts
// the test builds on the journal (an L402 rail needs it for its tokens);
// it returns the URL and the development node the rails' invoices are
// issued by.
func lightningPage(t testing.TB, description string, accepts func(j *sqlite.Store, node *devnode.Node) []paywall.Accept) (string, *devnode.Node) {
	t.Helper()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	node, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	acc := accepts(j, node)
	pw, err := paywall.New(paywall.Config{Journal: j, Routes: []paywall.Route{
		{Pattern: "/item", Description: description, MimeType: "application/json", Accept: acc},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})))
	t.Cleanup(srv.Close)
	return srv.URL + "/item", node
}

func l402Rail(t testing.TB, j *sqlite.Store, node lightning.Invoicer) *l402.Rail {
	t.Helper()
	r, err := l402.New(t.Context(), l402.Config{Name: "sats", Node: node, Store: j, Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// offerRail offers what offer says, whatever is asked: a rail whose terms
// the page must not take at their word.
type offerRail struct {
	*fakeRail
	offer coinop.Offer
}

func (r *offerRail) Challenge(_ context.Context, c *coinop.Challenge, _ coinop.Charge) error {
	c.Offers = append(c.Offers, r.offer)
	return nil
}

var (
	lnSection  = regexp.MustCompile(`(?s)<section id="lightning".*?</section>`)
	lnInvoice  = regexp.MustCompile(`<code id="ln-invoice">([^<]*)</code>`)
	lnExpires  = regexp.MustCompile(`<time id="ln-expires" datetime="([^"]*)">`)
	lnToken    = regexp.MustCompile(`<pre id="ln-token">([^<]*)</pre>`)
	svgElement = regexp.MustCompile(`(?s)<svg [^>]*>.*?</svg>`)
)

// svgModules reads the QR code's modules back from the page's SVG: its
// viewBox is n×n modules and its one path draws each row's runs of dark
// modules as horizontal strokes at y+0.5 ("M x y.5" starts a row, "m dx 0"
// skips to the next run, "h w" draws w modules).
func svgModules(t *testing.T, svg string) [][]bool {
	t.Helper()
	m := regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`).FindStringSubmatch(svg)
	if m == nil || m[1] != m[2] {
		t.Fatalf("viewBox of %.200s", svg)
	}
	n, _ := strconv.Atoi(m[1])
	paths := regexp.MustCompile(`<path [^>]*d="([^"]*)"`).FindAllStringSubmatch(svg, -1)
	if len(paths) != 1 {
		t.Fatalf("%d paths, want one", len(paths))
	}
	bm := make([][]bool, n)
	for i := range bm {
		bm[i] = make([]bool, n)
	}
	x, y := 0, -1
	for _, c := range regexp.MustCompile(`([Mmh])([0-9.]+)(?: ([0-9.]+))?`).FindAllStringSubmatch(paths[0][1], -1) {
		a, err := strconv.Atoi(c[2])
		if err != nil {
			t.Fatalf("path command %q", c[0])
		}
		switch c[1] {
		case "M":
			yy, err := strconv.ParseFloat(c[3], 64)
			if err != nil || yy != float64(int(yy))+0.5 {
				t.Fatalf("path command %q: a row is drawn at y+0.5", c[0])
			}
			x, y = a, int(yy)
		case "m":
			if c[3] != "0" {
				t.Fatalf("path command %q moves off its row", c[0])
			}
			x += a
		case "h":
			if y < 0 || y >= n || x < 0 || x+a > n {
				t.Fatalf("path command %q at (%d,%d) leaves the %d×%d code", c[0], x, y, n, n)
			}
			for i := x; i < x+a; i++ {
				bm[y][i] = true
			}
			x += a
		}
	}
	return bm
}

// TestPageLightning: a route with an L402 rail gets a Lightning section
// on its page: the price in sats, a QR code of `lightning:` and the
// invoice of this very 402's challenge (upper-cased), the invoice as text
// and as a lightning: link, its expiry, and for the script the token and
// payment hash of the same challenge.
func TestPageLightning(t *testing.T) {
	url, node := lightningPage(t, "A week's forecast", func(j *sqlite.Store, node *devnode.Node) []paywall.Accept {
		return []paywall.Accept{
			{Rail: &x402.Rail{Schemes: []x402.Scheme{exactOn(t, 1337, "0x2E70c03A5f9D31980b9b2E3a54cdC0bFc6f9D2E5", "USDC")}},
				Price: coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6}},
			{Rail: l402Rail(t, j, node), Price: sats},
			{Rail: &offerRail{newFakeRail("sats-mpp"), coinop.Offer{Rail: "sats-mpp", Protocol: "mpp", Scheme: "lightning/charge",
				Network: "lightning:regtest", Asset: "msat", Amount: "20000", Price: "20 sat", Header: "Authorization", HowTo: "Pay the invoice."}}, Price: sats},
		}
	})
	resp, page := fetchPage(t, url, "text/html")
	chs := l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if resp.StatusCode != http.StatusPaymentRequired || len(chs) == 0 {
		t.Fatalf("%s, challenges %v", resp.Status, chs)
	}
	invoice := chs[0].Invoice
	inv, err := bolt11.Decode(invoice)
	if err != nil {
		t.Fatal(err)
	}
	sec := lnSection.FindString(page)
	if sec == "" || strings.Count(page, `<section id="lightning"`) != 1 {
		t.Fatalf("one Lightning section wanted:\n%s", page)
	}
	if !strings.Contains(sec, `<h2 id="ln-title">Pay 20 sat with Lightning</h2>`) {
		t.Error("the section does not state the price in sats")
	}
	if m := lnInvoice.FindStringSubmatch(sec); m == nil || m[1] != invoice {
		t.Errorf("the invoice on the page is %q, the challenge's %q", m, invoice)
	}
	if strings.Count(sec, `href="lightning:`+invoice+`"`) != 2 { // the QR code and the link
		t.Errorf("no lightning: link to the challenge's invoice:\n%s", sec)
	}
	want := inv.Timestamp.Add(inv.Expiry)
	if m := lnExpires.FindStringSubmatch(sec); m == nil || m[1] != want.UTC().Format(time.RFC3339) {
		t.Errorf("expiry %q, want %s", m, want.UTC().Format(time.RFC3339))
	}
	if m := lnToken.FindStringSubmatch(sec); m == nil || html.UnescapeString(m[1]) != b64(chs[0].Token) {
		t.Errorf("the token shown is not the challenge's")
	}
	if !strings.Contains(sec, "through the Payment scheme") {
		t.Error("the Payment scheme's Lightning offer is not mentioned")
	}

	// The QR code: one path, with the quiet zone, labelled, of exactly the
	// modules of LIGHTNING:<INVOICE>.
	svg := svgElement.FindString(sec)
	for _, want := range []string{`role="img"`, `aria-label="QR code of the Lightning invoice for 20 sat"`, `fill="#fff"`, `stroke="#000"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("the SVG lacks %s", want)
		}
	}
	got := svgModules(t, svg)
	q, err := qrcode.New("LIGHTNING:"+strings.ToUpper(invoice), qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	wantBM := q.Bitmap()
	if len(got) != len(wantBM) {
		t.Fatalf("the code is %d modules wide, want %d", len(got), len(wantBM))
	}
	for y := range wantBM {
		for x := range wantBM[y] {
			if got[y][x] != wantBM[y][x] {
				t.Fatalf("module (%d,%d) is %v, want %v", x, y, got[y][x], wantBM[y][x])
			}
		}
	}
	n := len(got)
	for i := 0; i < n; i++ {
		for k := 0; k < 4; k++ {
			if got[k][i] || got[n-1-k][i] || got[i][k] || got[i][n-1-k] {
				t.Fatalf("a dark module in the quiet zone at %d,%d", i, k)
			}
		}
	}
	// Finder patterns in three corners: a dark 7×7 ring with a 3×3 core.
	for _, c := range [][2]int{{4, 4}, {n - 11, 4}, {4, n - 11}} {
		for dy := 0; dy < 7; dy++ {
			for dx := 0; dx < 7; dx++ {
				ring := dx == 0 || dy == 0 || dx == 6 || dy == 6
				core := dx >= 2 && dx <= 4 && dy >= 2 && dy <= 4
				if got[c[1]+dy][c[0]+dx] != (ring || core) {
					t.Fatalf("no finder pattern at %v", c)
				}
			}
		}
	}
	// Alphanumeric mode: the upper-cased invoice fits a smaller code than
	// the same text in byte mode would.
	if q.VersionNumber > 10 {
		t.Errorf("QR version %d for %d characters: not alphanumeric mode", q.VersionNumber, len(invoice)+10)
	}
	t.Logf("invoice of %d characters: QR version %d, %d modules with the quiet zone, SVG %d bytes; page %d bytes",
		len(invoice), q.VersionNumber, n, len(svg), len(page))

	// The script's terms: the same invoice, token and hash.
	pt, ok := lightningTermsOf(t, page)
	if !ok {
		t.Fatal("no Lightning terms for the script")
	}
	if pt.Invoice != invoice || pt.Token != b64(chs[0].Token) || pt.PaymentHash != hex.EncodeToString(inv.Hash[:]) ||
		pt.AmountMsat != 20_000 || pt.Price != "20 sat" || pt.Issued != inv.Timestamp.Unix() || pt.Expires != want.Unix() {
		t.Errorf("terms %+v for invoice %s", pt, invoice)
	}
	// The invoice is the node's, open, for the price.
	if got, err := node.LookupInvoice(t.Context(), inv.Hash); err != nil || got.AmountMsat != 20_000 || got.State != lightning.InvoiceOpen {
		t.Errorf("the node's invoice: %+v %v", got, err)
	}
	// The page is still small: a bound on its size.
	if len(page) > 64<<10 {
		t.Errorf("the page is %d bytes", len(page))
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// lnPageTerms is the "lightning" member of the script's terms.
type lnPageTerms struct {
	Invoice     string `json:"invoice"`
	Token       string `json:"token"`
	PaymentHash string `json:"paymentHash"`
	Price       string `json:"price"`
	AmountMsat  int64  `json:"amountMsat"`
	Issued      int64  `json:"issued"`
	Expires     int64  `json:"expires"`
}

func lightningTermsOf(t *testing.T, page string) (*lnPageTerms, bool) {
	t.Helper()
	pt, ok := terms(t, page)
	return pt.Lightning, ok && pt.Lightning != nil
}

// TestPageLightningOnly: a route paid over Lightning alone gets the
// script for its Lightning section and no browser-wallet section; a
// request other than a GET gets the code and the invoice, but no script,
// since the page could not send its body again.
func TestPageLightningOnly(t *testing.T) {
	url, _ := lightningPage(t, "A week's forecast", func(j *sqlite.Store, node *devnode.Node) []paywall.Accept {
		return []paywall.Accept{{Rail: l402Rail(t, j, node), Price: sats}}
	})
	_, page := fetchPage(t, url, "text/html")
	st, ok := terms(t, page)
	if !ok || st.Lightning == nil || len(st.Offers) != 0 || st.Method != "GET" {
		t.Fatalf("terms %+v", st)
	}
	if strings.Contains(page, `id="pay"`) || !strings.Contains(page, `<form id="ln-paste" hidden>`) ||
		!strings.Contains(page, `<p id="ln-webln-row" hidden>`) || strings.Count(page, "<script") != 2 {
		t.Errorf("a Lightning-only page:\n%s", page)
	}
	if strings.Contains(page, "through the Payment scheme") {
		t.Error("a Payment scheme offer is mentioned where there is none")
	}
	if !strings.Contains(page, `<p class="price" id="price">20 sat</p>`) {
		t.Error("the headline price is not the route's 20 sat")
	}

	resp, page := fetchPageWith(t, "POST", url, "text/html")
	sec := lnSection.FindString(page)
	if resp.StatusCode != http.StatusPaymentRequired || sec == "" || !strings.Contains(sec, "<svg ") || lnInvoice.FindString(sec) == "" {
		t.Fatalf("%s: a POST's page has no code or invoice:\n%s", resp.Status, page)
	}
	if strings.Contains(page, "<script") || strings.Contains(page, `id="ln-paste"`) || strings.Contains(page, `id="ln-webln`) {
		t.Errorf("a POST's page can pay from the page:\n%s", page)
	}
}

// TestPageWithoutLightning: the Lightning section is there exactly when an
// L402 offer carries an invoice that is what the offer says; otherwise the
// offer is only listed.
func TestPageWithoutLightning(t *testing.T) {
	other, err := devnode.New(devnode.Config{Network: bolt11.Mainnet})
	if err != nil {
		t.Fatal(err)
	}
	invoiceOf := func(node *devnode.Node, msat int64) (string, string) {
		inv, err := node.AddInvoice(t.Context(), lightning.InvoiceRequest{AmountMsat: msat, Memo: "x", Expiry: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return inv.PaymentRequest, inv.Hash.String()
	}
	token := b64([]byte("a macaroon"))
	offer := func(terms map[string]any) coinop.Offer {
		return coinop.Offer{Rail: "sats", Protocol: "l402", Scheme: "l402", Network: "lightning:regtest", Asset: "msat",
			Amount: "20000", Price: "20 sat", Header: "Authorization", HowTo: "Pay.", Terms: terms}
	}
	usdc := exactOn(t, 1337, "0x2E70c03A5f9D31980b9b2E3a54cdC0bFc6f9D2E5", "USDC")
	for _, tc := range []struct {
		name  string
		terms func(node *devnode.Node) map[string]any
		x402  bool
	}{
		{"x402 only", nil, true},
		{"no terms", func(*devnode.Node) map[string]any { return nil }, false},
		{"no token", func(n *devnode.Node) map[string]any {
			i, _ := invoiceOf(n, 20_000)
			return map[string]any{"invoice": i}
		}, false},
		{"another amount", func(n *devnode.Node) map[string]any {
			i, h := invoiceOf(n, 21_000)
			return map[string]any{"invoice": i, "token": token, "paymentHash": h}
		}, false},
		{"another network", func(*devnode.Node) map[string]any {
			i, h := invoiceOf(other, 20_000)
			return map[string]any{"invoice": i, "token": token, "paymentHash": h}
		}, false},
		{"another payment hash", func(n *devnode.Node) map[string]any {
			i, _ := invoiceOf(n, 20_000)
			return map[string]any{"invoice": i, "token": token, "paymentHash": strings.Repeat("ab", 32)}
		}, false},
		{"a corrupted invoice", func(n *devnode.Node) map[string]any {
			i, h := invoiceOf(n, 20_000)
			b := []byte(i)
			b[len(b)-10] ^= 1 // still bech32 letters, no longer the node's invoice
			if b[len(b)-10] == '1' || b[len(b)-10] == 'b' || b[len(b)-10] == 'i' || b[len(b)-10] == 'o' {
				b[len(b)-10] = 'q'
			}
			return map[string]any{"invoice": string(b), "token": token, "paymentHash": h}
		}, false},
		{"markup for an invoice", func(*devnode.Node) map[string]any {
			return map[string]any{"invoice": `"><script>alert(1)</script>`, "token": token}
		}, false},
		{"markup for a token", func(n *devnode.Node) map[string]any {
			i, h := invoiceOf(n, 20_000)
			return map[string]any{"invoice": i, "token": `</pre><script>alert(1)</script>`, "paymentHash": h}
		}, false},
		{"an upper-case invoice", func(n *devnode.Node) map[string]any {
			i, h := invoiceOf(n, 20_000)
			return map[string]any{"invoice": strings.ToUpper(i), "token": token, "paymentHash": h}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, _ := lightningPage(t, "A week's forecast", func(j *sqlite.Store, node *devnode.Node) []paywall.Accept {
				if tc.x402 {
					return []paywall.Accept{{Rail: &x402.Rail{Schemes: []x402.Scheme{usdc}}, Price: coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6}}}
				}
				return []paywall.Accept{{Rail: &offerRail{newFakeRail("sats"), offer(tc.terms(node))}, Price: sats}}
			})
			_, page := fetchPage(t, url, "text/html")
			if strings.Contains(page, `id="lightning"`) || strings.Contains(page, `"lightning":`) || strings.Contains(page, "<svg") {
				t.Errorf("a Lightning section:\n%s", page)
			}
			if strings.Contains(page, "<script>alert") || strings.Contains(page, "</pre><script") {
				t.Errorf("markup from the terms reached the page:\n%s", page)
			}
			if !tc.x402 && (strings.Contains(page, "<script") || !strings.Contains(page, "<h2>20 sat on lightning:regtest</h2>")) {
				t.Errorf("the offer is not listed, or the page has a script:\n%s", page)
			}
		})
	}
}

// TestPageLightningEscapes: what the seller writes (description, price,
// how-to) reaches the Lightning section as text; the invoice's memo is
// inside the bech32 invoice and cannot break out of it.
func TestPageLightningEscapes(t *testing.T) {
	hostile := `</script><script>alert(1)</script><img src=x onerror=alert(1)>"'&`
	url, _ := lightningPage(t, hostile, func(j *sqlite.Store, node *devnode.Node) []paywall.Accept {
		return []paywall.Accept{{Rail: &renamed{Rail: l402Rail(t, j, node), price: hostile, howTo: hostile}, Price: sats}}
	})
	_, page := fetchPage(t, url, "text/html")
	sec := lnSection.FindString(page)
	if sec == "" {
		t.Fatalf("no Lightning section:\n%s", page)
	}
	if strings.Count(page, "<script") != 2 || strings.Contains(page, "<img") || strings.Contains(sec, hostile) {
		t.Errorf("hostile text became markup:\n%s", page)
	}
	if !strings.Contains(sec, "Pay &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the price is not shown as text:\n%s", sec)
	}
	st, ok := terms(t, page)
	if !ok || st.Lightning == nil || st.Lightning.Price != hostile {
		t.Errorf("the script's terms do not keep the price's text intact: %+v", st.Lightning)
	}
}

// renamed is a rail whose offers carry another price text and how-to.
type renamed struct {
	coinop.Rail
	price, howTo string
}

func (r *renamed) Challenge(ctx context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	n := len(c.Offers)
	if err := r.Rail.Challenge(ctx, c, ch); err != nil {
		return err
	}
	for i := n; i < len(c.Offers); i++ {
		c.Offers[i].Price, c.Offers[i].HowTo = r.price, r.howTo
	}
	return nil
}

// fuzzRail offers the offer its pointer holds.
type fuzzRail struct {
	*fakeRail
	offer atomic.Pointer[coinop.Offer]
}

func (r *fuzzRail) Challenge(_ context.Context, c *coinop.Challenge, _ coinop.Charge) error {
	c.Offers = append(c.Offers, *r.offer.Load())
	return nil
}

var pageTag = regexp.MustCompile(`<(/?[a-zA-Z!][a-zA-Z0-9-]*)`)

// tagsOf is the sequence of the page's tags, but for the <code> spans
// that how-to sentences may hold any number of.
func tagsOf(page string) string {
	var out []string
	for _, m := range pageTag.FindAllStringSubmatch(page, -1) {
		if m[1] != "code" && m[1] != "/code" {
			out = append(out, m[1])
		}
	}
	return strings.Join(out, " ")
}

// FuzzPageLightning: whatever an L402 offer's invoice, token, payment
// hash, price and how-to hold, the page has the very tags of a page with
// plain values (nothing becomes markup), a Lightning section exactly when
// the invoice is a valid one for the offer's amount (then showing that
// invoice, the same in the script's terms), and its terms stay JSON.
func FuzzPageLightning(f *testing.F) {
	node, err := devnode.New(devnode.Config{})
	if err != nil {
		f.Fatal(err)
	}
	inv, err := node.AddInvoice(context.Background(), lightning.InvoiceRequest{AmountMsat: 20_000, Memo: "m", Expiry: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	good, hash := inv.PaymentRequest, inv.Hash.String()
	f.Add(good, "dG9rZW4=", hash, "20 sat", "Pay.")
	f.Add(good, "dG9rZW4=", "", "<b>20</b> sat", "Pay `</code><script>alert(1)</script>`")
	f.Add(`"><script>alert(1)</script>`, `</pre><script>`, hash, "\u2028", "<!--")
	f.Add(strings.ToUpper(good), "dG9rZW4=", hash, "20 sat", "")
	f.Add("lightning:"+good, "dG9rZW4=", hash, `"}]}</script>`, "x")

	j, err := sqlite.Open(filepath.Join(f.TempDir(), "j.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { j.Close() })
	rail := &fuzzRail{fakeRail: newFakeRail("sats")}
	pw, err := paywall.New(paywall.Config{Journal: j, Routes: []paywall.Route{
		{Pattern: "GET /item", Description: "d", Accept: []paywall.Accept{{Rail: rail, Price: sats}}},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pw.Close(context.Background()) })
	h := pw.Wrap(http.NotFoundHandler())
	render := func(invoice, token, hash, price, howTo string) string {
		rail.offer.Store(&coinop.Offer{Rail: "sats", Protocol: "l402", Scheme: "l402", Network: "lightning:regtest", Asset: "msat",
			Amount: "20000", Price: price, Header: "Authorization", HowTo: howTo,
			Terms: map[string]any{"invoice": invoice, "token": token, "paymentHash": hash}})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/item", nil)
		req.Header.Set("Accept", "text/html")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusPaymentRequired || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			f.Fatalf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
		}
		return rec.Body.String()
	}
	with, without := tagsOf(render(good, "dG9rZW4=", hash, "20 sat", "Pay.")), tagsOf(render("x", "dG9rZW4=", hash, "20 sat", "Pay."))
	if with == without {
		f.Fatal("the plain pages with and without a Lightning section have the same tags")
	}

	f.Fuzz(func(t *testing.T, invoice, token, hash, price, howTo string) {
		page := render(invoice, token, hash, price, howTo)
		dec, err := bolt11.Decode(invoice)
		valid := err == nil && invoice == strings.ToLower(invoice) && !strings.Contains(invoice, ":") &&
			dec.AmountMsat == 20_000 && dec.Network == bolt11.Regtest && token != "" &&
			strings.Trim(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == "" &&
			(hash == "" || strings.EqualFold(hash, hex.EncodeToString(dec.Hash[:])))
		want := without
		if valid {
			want = with
		}
		if got := tagsOf(page); got != want {
			t.Fatalf("the page's tags (section wanted: %v):\n%s\nwant\n%s", valid, got, want)
		}
		st, ok := terms(t, page)
		if valid != ok || valid != (st.Lightning != nil) {
			t.Fatalf("terms %v %+v for a valid invoice: %v", ok, st.Lightning, valid)
		}
		if valid {
			// The terms are JSON, which carries text as UTF-8: invalid
			// bytes of the seller's price arrive as U+FFFD, as
			// encoding/json writes them.
			wantPrice := price
			if b, err := json.Marshal(price); err == nil {
				json.Unmarshal(b, &wantPrice)
			}
			m := lnInvoice.FindStringSubmatch(page)
			if m == nil || m[1] != invoice || st.Lightning.Invoice != invoice || st.Lightning.Token != token || st.Lightning.Price != wantPrice {
				t.Fatalf("the section shows %q, the terms %+v; the offer's invoice is %q", m, st.Lightning, invoice)
			}
		}
	})
}

// BenchmarkPageLightning is the 402 of a route with an L402 offer on the
// development node, as JSON and as the HTML page with its QR code: what
// the Lightning section costs a request that asks for HTML.
func BenchmarkPageLightning(b *testing.B) {
	url, _ := lightningPage(b, "A week's forecast", func(j *sqlite.Store, node *devnode.Node) []paywall.Accept {
		return []paywall.Accept{{Rail: l402Rail(b, j, node), Price: sats}}
	})
	for _, accept := range []string{"application/json", "text/html"} {
		b.Run("accept="+accept, func(b *testing.B) {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Accept", accept)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusPaymentRequired {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}
