//go:build unix

package examples_test

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	domain "github.com/coinop/coinop"
	"github.com/coinop/coinop/cli/clitest"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/lightning/bolt11"
)

// lightningRun is what interop/browser-lightning.mjs saw in the page.
type lightningRun struct {
	PageStatus        int      `json:"pageStatus"`
	Price             string   `json:"price"`
	Commands          string   `json:"commands"`
	Title             string   `json:"title"`
	Invoice           string   `json:"invoice"`
	Link              string   `json:"link"`
	Expires           string   `json:"expires"`
	QR                string   `json:"qr"`
	QRVisible         bool     `json:"qrVisible"`
	WeblnVisible      bool     `json:"weblnVisible"`
	PasteVisible      bool     `json:"pasteVisible"`
	CopyVisible       bool     `json:"copyVisible"`
	Overflow          bool     `json:"overflow"`
	State             string   `json:"state"`
	Status            string   `json:"status"`
	Statuses          []string `json:"statuses"`
	PaidContent       string   `json:"paidContent"`
	Receipt           string   `json:"receipt"`
	PaidFocused       string   `json:"paidFocused"`
	WeblnVisibleAfter bool     `json:"weblnVisibleAfter"`
	PasteVisibleAfter bool     `json:"pasteVisibleAfter"`
	WeblnDisabled     bool     `json:"weblnDisabled"`
	Copied            string   `json:"copied"`
	Selected          string   `json:"selected"`
	Elsewhere         int      `json:"elsewhere"`
	Asked             []string `json:"asked"`
	Paid              []string `json:"paid"`
	Authorized        int      `json:"authorized"`
	Foreign           []string `json:"foreign"`
	Errors            []string `json:"errors"`
}

// settledPayment is a payment as the admin API lists it.
type settledPayment struct{ ID, Amount, Asset, Reference string }

// settledSats is the dev journal's settled payments of the L402 rail
// "sats", read through the dev admin API.
func (d *dev) settledSats(t *testing.T) []settledPayment {
	t.Helper()
	resp, body := get(t, "http://"+d.cfg.Admin.Listen+"/payments?rail=sats&state="+string(domain.StateSettled), "")
	var out struct {
		Payments []settledPayment
	}
	if err := json.Unmarshal(body, &out); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /payments: %s %v\n%s", resp.Status, err, body)
	}
	return out.Payments
}

// TestBrowserPaysLightning pays the L402 offer of `coinop dev`'s
// /forecast from its HTML 402 page in Chromium: the QR code read off a
// screenshot is the invoice on the page, which asks the route's 20 sat; a
// WebLN wallet pays it, or a preimage paid elsewhere is pasted; and the
// ways that goes wrong are said, with nothing paid or served. Exactly one
// L402 payment of 20 sat is settled in the journal for each paid scenario,
// none for the others.
func TestBrowserPaysLightning(t *testing.T) {
	if _, err := os.Stat("../interop/node_modules/jsqr/package.json"); err != nil {
		clitest.Missing(t, "jsqr is not installed (scripts/deps/interop.sh installs it)")
	}
	d := startDev(t)
	url := d.gateway + "/forecast"
	nodeFile := gateway.DevNodeFile(d.cfg.DataDir, "sats")
	out := t.ArtifactDir()
	t.Logf("screenshots in %s", out)

	for _, tc := range []struct {
		scenario string
		settled  int    // L402 payments settled in the journal by the scenario
		says     string // in the status region, last
		state    string
	}{
		{"webln", 1, "Paid 20 sat. The content is below.", "done"},
		{"paste", 1, "Paid 20 sat. The content is below.", "done"},
		{"webln-refused", 0, "Your Lightning wallet did not pay (User rejected the payment). Nothing was paid", "error"},
		{"webln-locked", 0, "Your Lightning wallet declined to connect (The wallet is locked). Nothing was paid.", "error"},
		{"wrong-preimage", 0, "This preimage does not pay this invoice: its SHA-256 is not the invoice\u2019s payment hash. Nothing was sent", "error"},
		// The preimage's token was used by another client first: one
		// payment, settled once, and the page gives the seller's reason.
		{"replayed", 1, "The seller refused the proof of payment: ", "error"},
		{"expired", 0, "This invoice expired at ", "error"},
		{"no-js", 0, "", ""},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			before := d.settledSats(t)
			var run lightningRun
			playwright(t, "browser-lightning.mjs", &run, "URL="+url, "NODE_FILE="+nodeFile, "OUT="+out, "SCENARIO="+tc.scenario)
			after := d.settledSats(t)

			// The page, JavaScript or not: the code is the invoice shown,
			// which asks the route's price.
			if run.PageStatus != 402 || run.Title != "Pay 20 sat with Lightning" || !strings.Contains(run.Commands, "coinop curl "+url) {
				t.Errorf("the page (status %d) shows %q, commands %q", run.PageStatus, run.Title, run.Commands)
			}
			if !run.QRVisible || run.QR == "" || !strings.EqualFold(run.QR, "lightning:"+run.Invoice) || run.QR != "LIGHTNING:"+strings.ToUpper(run.Invoice) {
				t.Errorf("the QR code reads %q; the invoice on the page is %q", run.QR, run.Invoice)
			}
			inv, err := bolt11.Decode(run.Invoice)
			if err != nil || inv.AmountMsat != 20_000 || inv.Network != bolt11.Regtest {
				t.Fatalf("the invoice on the page: %+v %v", inv, err)
			}
			if run.Link != "lightning:"+run.Invoice || run.Expires == "" {
				t.Errorf("link %q, expiry %q", run.Link, run.Expires)
			}
			if len(run.Foreign) > 0 || len(run.Errors) > 0 {
				t.Errorf("the page reached %q; console errors %q", run.Foreign, run.Errors)
			}
			if run.Overflow {
				t.Error("the page is wider than the window")
			}
			seen := map[string]bool{}
			for _, p := range before {
				seen[p.ID] = true
			}
			var settled []settledPayment
			for _, p := range after {
				if !seen[p.ID] {
					settled = append(settled, p)
				}
			}
			if len(settled) != tc.settled {
				t.Errorf("%d L402 payments settled, want %d: %+v", len(settled), tc.settled, settled)
			}
			for _, p := range settled {
				if p.Amount != "20000" || p.Asset != "msat" || p.Reference != strings.ToLower(p.Reference) || len(p.Reference) != 64 {
					t.Errorf("settled %+v, want 20000 msat with its payment hash", p)
				}
			}

			if tc.scenario == "no-js" {
				if run.WeblnVisible || run.PasteVisible || run.CopyVisible || run.State != "" || run.Price != "0.002 USDC" {
					t.Errorf("with JavaScript off: WebLN %v, paste %v, copy %v, state %q, price %q",
						run.WeblnVisible, run.PasteVisible, run.CopyVisible, run.State, run.Price)
				}
				return
			}
			if !run.PasteVisible || !run.CopyVisible {
				t.Errorf("paste form %v, copy button %v", run.PasteVisible, run.CopyVisible)
			}
			if webln := strings.HasPrefix(tc.scenario, "webln") || tc.scenario == "expired"; run.WeblnVisible != webln {
				t.Errorf("the WebLN button is shown: %v, want %v", run.WeblnVisible, webln)
			}
			if run.State != tc.state || !strings.Contains(run.Status, tc.says) {
				t.Errorf("status %s %q, want %s %q", run.State, run.Status, tc.state, tc.says)
			}
			switch tc.scenario {
			case "webln", "paste":
				var forecast struct{ City string }
				if err := json.Unmarshal([]byte(run.PaidContent), &forecast); err != nil || forecast.City == "" {
					t.Errorf("paid content %q: %v", run.PaidContent, err)
				}
				if len(run.Paid) != 1 || !strings.Contains(run.Receipt, run.Paid[0]) || len(settled) != 1 || settled[0].Reference != run.Paid[0] {
					t.Errorf("receipt %q, paid %v, journal %+v", run.Receipt, run.Paid, settled)
				}
				if run.Authorized != 1 || run.PaidFocused != "paid-title" || run.WeblnVisibleAfter || run.PasteVisibleAfter {
					t.Errorf("%d requests with Authorization, focus on %q, ways to pay still shown: %v %v",
						run.Authorized, run.PaidFocused, run.WeblnVisibleAfter, run.PasteVisibleAfter)
				}
				// Copy puts the invoice on the clipboard, or selects it where
				// the browser gives no clipboard.
				if tc.scenario == "paste" && !strings.Contains(run.Copied, "The invoice is copied") &&
					!(strings.Contains(run.Copied, "The invoice is selected") && run.Selected == run.Invoice) {
					t.Errorf("Copy said %q, with %q selected", run.Copied, run.Selected)
				}
				if tc.scenario == "paste" {
					t.Logf("Copy: %s", run.Copied)
				}
				if tc.scenario == "webln" && strings.Join(run.Asked, ",") != "enable,sendPayment" {
					t.Errorf("the WebLN wallet was asked %v", run.Asked)
				}
				before, after := pngFile(t, out, "lightning-"+tc.scenario+".png"), pngFile(t, out, "lightning-"+tc.scenario+"-after.png")
				if bytes.Equal(before, after) {
					t.Error("the screenshots before and after paying are the same")
				}
			case "webln-refused", "webln-locked":
				want := "enable,sendPayment"
				if tc.scenario == "webln-locked" {
					want = "enable"
				}
				if strings.Join(run.Asked, ",") != want {
					t.Errorf("the WebLN wallet was asked %v, want %s", run.Asked, want)
				}
				if len(run.Paid) != 0 || run.Authorized != 0 || run.PaidContent != "" {
					t.Errorf("paid %v, sent %d credentials", run.Paid, run.Authorized)
				}
			case "wrong-preimage":
				if len(run.Statuses) != 2 || !strings.Contains(run.Statuses[0], "That is not a preimage: a preimage is 64 hexadecimal characters") {
					t.Errorf("statuses %q", run.Statuses)
				}
				if run.Authorized != 0 || len(run.Paid) != 0 {
					t.Errorf("sent %d credentials, paid %v", run.Authorized, run.Paid)
				}
			case "replayed":
				if run.Elsewhere != 200 || run.Authorized != 1 || !strings.Contains(run.Status, "("+domain.ReasonReplayed+")") {
					t.Errorf("the first use answered %d; %d credentials sent from the page; status %q", run.Elsewhere, run.Authorized, run.Status)
				}
			case "expired":
				if !run.WeblnDisabled || len(run.Asked) != 0 || len(run.Paid) != 0 || run.Authorized != 0 {
					t.Errorf("WebLN button disabled %v; the wallet was asked %v; paid %v", run.WeblnDisabled, run.Asked, run.Paid)
				}
			}
		})
	}
}

// pngFile reads the screenshot name in dir, which must be a PNG at least a
// phone's width.
func pngFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if s := img.Bounds().Size(); s.X < 390 || s.Y < 800 {
		t.Errorf("%s is %v", name, s)
	}
	return b
}
