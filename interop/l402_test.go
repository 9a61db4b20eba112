//go:build linux

package interop_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/evm/anvil"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/bolt11"
	"github.com/coinop/coinop/lightning/devnode"
)

// l402Outcome is what l402.mjs printed.
type l402Outcome struct {
	Status      int    `json:"status"`
	Body        string `json:"body"`
	PaymentHash string `json:"paymentHash"`
	Satisfied   bool   `json:"satisfied"`
	Invoice     struct {
		Network       string `json:"network"`
		Millisatoshis string `json:"millisatoshis"`
		Payee         string `json:"payee"`
		Timestamp     int64  `json:"timestamp"`
		Expiry        int64  `json:"expiry"`
		Description   string `json:"description"`
	} `json:"invoice"`
}

// TestOneRouteX402AndL402: a gateway route that accepts USDC (x402) and
// sats (L402, through the gateway's development Lightning node) answers
// one 402 carrying both challenges; the official x402 client pays it with
// x402, and an lsat-js client pays it with L402: lsat-js parses the
// challenge, bolt11 decodes the development node's invoice, and the
// preimage lsat-js checks against the token's hash buys the response.
func TestOneRouteX402AndL402(t *testing.T) {
	w := newWorld(t, anvil.DefaultChainID)
	for _, f := range []string{"node_modules/lsat-js/package.json", "node_modules/bolt11/package.json"} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("COINOP_CI") == "1" {
				t.Fatalf("%s missing; run scripts/deps/interop.sh", f)
			}
			t.Skipf("%s missing; run scripts/deps/interop.sh", f)
		}
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, `{"city":"Lisbon","sky":"clear"}`)
	}))
	t.Cleanup(upstream.Close)
	data := t.TempDir()
	_, base := w.serveGateway(upstream.URL, "", data, fmt.Sprintf(`rails:
  - name: usdc
    kind: x402
  - name: sats
    kind: l402
    dev: true
routes:
  - match: GET /weather
    description: Lisbon weather
    accept:
      - rail: usdc
        price: "%d"
      - rail: sats
        price: 21 sat
`, price))
	url := base + "/weather"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	chs := l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if resp.StatusCode != 402 || resp.Header.Get("PAYMENT-REQUIRED") == "" || len(chs) != 2 {
		t.Fatalf("one 402 with both challenges: %d, PAYMENT-REQUIRED %q, L402 %d", resp.StatusCode, resp.Header.Get("PAYMENT-REQUIRED"), len(chs))
	}

	o := w.node("pay.mjs", "URL="+url, "PAYER_KEY="+hexKey(w.payer), "NETWORK="+w.network,
		"TOKEN="+w.c.Token.Hex(), fmt.Sprint("MAX_AMOUNT=", price))
	if o.Status != 200 || !strings.Contains(o.Body, "Lisbon") || o.Settlement == nil || !o.Settlement.Success {
		t.Fatalf("official x402 client: %+v", o)
	}
	w.paid(1)

	b, err := os.ReadFile(gateway.DevNodeFile(data, "sats"))
	if err != nil {
		t.Fatal(err)
	}
	var dev gateway.DevNode
	if err := json.Unmarshal(b, &dev); err != nil {
		t.Fatal(err)
	}
	lo := runL402(t, "URL="+url, "LND_URL="+dev.URL, "LND_MACAROON="+dev.MacaroonFile, "LND_CERT="+dev.TLSCertFile)
	if lo.Status != 200 || !strings.Contains(lo.Body, "Lisbon") || !lo.Satisfied {
		t.Fatalf("lsat-js client: %+v", lo)
	}
	// bolt11 read the development node's invoice as we wrote it.
	inv := lo.Invoice
	if inv.Network != "bcrt" || inv.Millisatoshis != "21000" || inv.Description != "Lisbon weather" || inv.Expiry != 600 {
		t.Errorf("bolt11 decoded %+v; want bcrt, 21000 msat, the route's description, 600 s", inv)
	}
	ours, err := bolt11.Decode(chs[0].Invoice)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Payee != hex.EncodeToString(ours.Payee[:]) {
		t.Errorf("bolt11 recovered payee %s, we signed as %x", inv.Payee, ours.Payee)
	}
	w.paid(1) // the L402 payment moved no USDC
}

func runL402(t *testing.T, env ...string) l402Outcome {
	t.Helper()
	w := &world{t: t}
	var o l402Outcome
	raw := w.nodeRaw("l402.mjs", env...)
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		t.Fatalf("l402.mjs printed %q: %v", raw, err)
	}
	return o
}

// TestBolt11DecodesDevInvoices: npm bolt11 reads the development node's
// invoices, every amount multiplier included, as lightning/bolt11 wrote
// them.
func TestBolt11DecodesDevInvoices(t *testing.T) {
	peers(t)
	if _, err := os.Stat("node_modules/bolt11/package.json"); err != nil {
		if os.Getenv("COINOP_CI") == "1" {
			t.Fatal("bolt11 missing; run scripts/deps/interop.sh")
		}
		t.Skip("bolt11 missing; run scripts/deps/interop.sh")
	}
	n, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	amounts := []int64{1, 999, 1000, 21_000, 150_000, 100_000_000, 250_000_000_000}
	var invs []*lightning.Invoice
	var prs []string
	for i, a := range amounts {
		inv, err := n.AddInvoice(t.Context(), lightning.InvoiceRequest{AmountMsat: a, Memo: fmt.Sprintf("GET /item/%d ünïcode", i), Expiry: time.Duration(i+1) * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		invs, prs = append(invs, inv), append(prs, inv.PaymentRequest)
	}
	w := &world{t: t}
	raw := w.nodeRaw("bolt11.mjs", "INVOICES="+strings.Join(prs, ","))
	var got []struct {
		Network, Millisatoshis, PaymentHash, Description, Payee string
		Expiry                                                  int64
		MinFinalCltv                                            int64
		Complete                                                bool
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil || len(got) != len(amounts) {
		t.Fatalf("bolt11.mjs printed %q: %v", raw, err)
	}
	for i, g := range got {
		want := invs[i]
		if g.Network != "bcrt" || g.Millisatoshis != fmt.Sprint(amounts[i]) || g.PaymentHash != want.Hash.String() ||
			g.Description != fmt.Sprintf("GET /item/%d ünïcode", i) || g.Expiry != int64(i+1)*60 || g.MinFinalCltv != 80 ||
			g.Payee != hex.EncodeToString(n.Pubkey()) || !g.Complete {
			t.Errorf("invoice %d (%d msat, %s): bolt11 read %+v", i, amounts[i], want.PaymentRequest, g)
		}
	}
}
