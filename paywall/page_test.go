package paywall_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

// exactOn is the x402 exact scheme for an asset on a chain that is never
// dialed: the page tests end at the 402.
func exactOn(t *testing.T, chainID uint64, asset, name string) x402.Scheme {
	t.Helper()
	rpc, err := ethclient.Dial("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rpc.Close)
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: chainID, Backend: rpc})
	if err != nil {
		t.Fatal(err)
	}
	s, err := evm.NewExact(chain, evm.ExactConfig{
		Asset: common.HexToAddress(asset), Name: name, Version: "2",
		PayTo: common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// invoiceRail offers a way to pay of another protocol than x402, which
// the page lists but its script cannot pay.
type invoiceRail struct{ *fakeRail }

func (r *invoiceRail) Challenge(_ context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	c.Offers = append(c.Offers, coinop.Offer{Rail: "invoice", Protocol: "l402", Scheme: "invoice", Network: "lightning",
		Amount: ch.Price.Amount.String(), Price: ch.Price.String(), Header: "Authorization", HowTo: "Pay the invoice."})
	return nil
}

// pageServer serves GET /item behind a paywall that accepts rails at
// 0.001 USDC (a TOK price for any rail but x402), described as description.
func pageServer(t *testing.T, description string, rails ...coinop.Rail) string {
	t.Helper()
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	var accept []paywall.Accept
	for _, r := range rails {
		price := coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6}
		if _, ok := r.(*x402.Rail); !ok {
			price = coinop.Price{Amount: big.NewInt(5), Symbol: "TOK"}
		}
		accept = append(accept, paywall.Accept{Rail: r, Price: price})
	}
	pw, err := paywall.New(paywall.Config{Journal: j, Routes: []paywall.Route{
		{Pattern: "/item", Description: description, MimeType: "application/json", Accept: accept},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ok":true}`))
	})))
	t.Cleanup(srv.Close)
	return srv.URL + "/item"
}

func fetchPage(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	return fetchPageWith(t, "GET", url, accept)
}

func fetchPageWith(t *testing.T, method, url, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// pageTerms is what the page hands its script.
type pageTerms struct {
	Method          string               `json:"method"`
	Header          string               `json:"header"`
	PaymentRequired x402.PaymentRequired `json:"paymentRequired"`
	Offers          []struct {
		Accept      int    `json:"accept"`
		Price       string `json:"price"`
		Symbol      string `json:"symbol"`
		Decimals    int    `json:"decimals"`
		NetworkName string `json:"networkName"`
		ChainID     string `json:"chainId"`
		AddChain    *struct {
			RPCURLs []string `json:"rpcUrls"`
		} `json:"addChain"`
	} `json:"offers"`
	Networks map[string]string `json:"networks"`
	// Lightning is the L402 invoice and token the script pays with.
	Lightning *lnPageTerms `json:"lightning"`
}

var termsBlock = regexp.MustCompile(`(?s)<script type="application/json" id="coinop-pay">(.*?)</script>`)

func terms(t *testing.T, page string) (pageTerms, bool) {
	t.Helper()
	m := termsBlock.FindStringSubmatch(page)
	if m == nil {
		return pageTerms{}, false
	}
	var pt pageTerms
	if err := json.Unmarshal([]byte(m[1]), &pt); err != nil {
		t.Fatalf("the page's terms are not JSON: %v\n%s", err, m[1])
	}
	return pt, true
}

// TestPagePaymentOptions: the page lists every offer with the route's
// description, the price in the asset's symbol and the network's name, and
// hands its script the x402 terms it pays with, the same as the header's.
func TestPagePaymentOptions(t *testing.T) {
	baseUSDC := exactOn(t, 84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC")
	devUSDC := exactOn(t, 1337, "0x2E70c03A5f9D31980b9b2E3a54cdC0bFc6f9D2E5", "USDC")
	unknown := exactOn(t, 999999, "0x2E70c03A5f9D31980b9b2E3a54cdC0bFc6f9D2E5", "USDC")
	for _, tc := range []struct {
		name     string
		rails    []coinop.Rail
		headings []string
		networks []string // of the payable offers, in order
		rpc      []bool   // whether the wallet may be asked to add the chain
	}{
		{"one offer", []coinop.Rail{&x402.Rail{Schemes: []x402.Scheme{baseUSDC}}},
			[]string{"0.001 USDC on Base Sepolia"}, []string{"Base Sepolia"}, []bool{true}},
		{"two chains", []coinop.Rail{&x402.Rail{Schemes: []x402.Scheme{baseUSDC, devUSDC}}},
			[]string{"0.001 USDC on Base Sepolia", "0.001 USDC on Local dev chain"}, []string{"Base Sepolia", "Local dev chain"}, []bool{true, false}},
		{"a chain without a name", []coinop.Rail{&x402.Rail{Schemes: []x402.Scheme{unknown}}},
			[]string{"0.001 USDC on eip155:999999"}, []string{"eip155:999999"}, []bool{false}},
		{"a rail the script cannot pay", []coinop.Rail{&invoiceRail{newFakeRail("invoice")}, &x402.Rail{Schemes: []x402.Scheme{devUSDC}}},
			[]string{"5 TOK on lightning", "0.001 USDC on Local dev chain"}, []string{"Local dev chain"}, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pageServer(t, "Current weather", tc.rails...)
			resp, page := fetchPage(t, url, "text/html,application/xhtml+xml,*/*;q=0.8")
			if resp.StatusCode != http.StatusPaymentRequired || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
			}
			if !strings.Contains(page, `<p class="what" id="description">Current weather</p>`) {
				t.Error("the page does not show the route's description")
			}
			got := regexp.MustCompile(`<section class="offer"><h2>([^<]*)</h2>`).FindAllStringSubmatch(page, -1)
			if len(got) != len(tc.headings) {
				t.Fatalf("offers %q, want %q", got, tc.headings)
			}
			for i, h := range tc.headings {
				if got[i][1] != h {
					t.Errorf("offer %d is %q, want %q", i, got[i][1], h)
				}
			}
			pt, ok := terms(t, page)
			if !ok {
				t.Fatal("the page has no terms for its script")
			}
			var header x402.PaymentRequired
			if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &header); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(header)
			b, _ := json.Marshal(pt.PaymentRequired)
			if string(a) != string(b) {
				t.Errorf("the page's terms differ from PAYMENT-REQUIRED:\n%s\n%s", b, a)
			}
			if pt.Method != "GET" || pt.Header != x402.HeaderPaymentSignature || len(pt.Offers) != len(tc.networks) {
				t.Fatalf("terms %+v", pt)
			}
			for i, o := range pt.Offers {
				q := pt.PaymentRequired.Accepts[o.Accept]
				id, _ := x402.ChainID(q.Network)
				if o.NetworkName != tc.networks[i] || o.Symbol != "USDC" || o.Decimals != 6 || o.Price != "0.001 USDC" ||
					o.ChainID != "0x"+big.NewInt(int64(id)).Text(16) || q.Amount != "1000" {
					t.Errorf("offer %d: %+v for %+v", i, o, q)
				}
				if (o.AddChain != nil) != tc.rpc[i] {
					t.Errorf("offer %d: add-chain parameters %+v", i, o.AddChain)
				}
			}
			if pt.Networks["0x539"] != "Local dev chain" || pt.Networks["0x2105"] != "Base" {
				t.Errorf("network names %v", pt.Networks)
			}
		})
	}
}

// TestPageScriptIsTheOnlyScript: the page runs one script, its own, allowed
// by hash, and nothing a seller's description says becomes markup or
// script; the terms block keeps the text intact for the script.
func TestPageScriptIsTheOnlyScript(t *testing.T) {
	usdc := exactOn(t, 1337, "0x2E70c03A5f9D31980b9b2E3a54cdC0bFc6f9D2E5", "USDC")
	for _, description := range []string{
		"plain",
		`</script><script>alert(1)</script>`,
		`<img src=x onerror=alert(1)>`,
		`"}]};alert(1);//`,
		"<!--<script>",
		"\u2028line\u2029separators & ampersands",
	} {
		t.Run(description, func(t *testing.T) {
			resp, page := fetchPage(t, pageServer(t, description, &x402.Rail{Schemes: []x402.Scheme{usdc}}), "text/html")
			scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(page, -1)
			if len(scripts) != 1 || strings.Count(page, "<script") != 2 || strings.Contains(page, "<img") {
				t.Fatalf("%d scripts, %d script tags:\n%s", len(scripts), strings.Count(page, "<script"), page)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			sum := sha256.Sum256([]byte(scripts[0][1]))
			for _, want := range []string{
				"default-src 'none'", "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';",
				"connect-src 'self'", "frame-ancestors 'none'",
			} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			pt, ok := terms(t, page)
			if !ok || pt.PaymentRequired.Resource == nil || pt.PaymentRequired.Resource.Description != description {
				t.Errorf("the terms do not carry the description %q: %+v", description, pt.PaymentRequired.Resource)
			}
		})
	}
}

// TestPageWithoutWalletOffers: when no offer can be paid from a browser
// wallet, or the request had a body the page could not send again, the
// page is the script-free page: price, offers and commands.
func TestPageWithoutWalletOffers(t *testing.T) {
	usdc := exactOn(t, 1337, "0x2E70c03A5f9D31980b9b2E3a54cdC0bFc6f9D2E5", "USDC")
	for _, tc := range []struct {
		name, method, price string
		rail                coinop.Rail
	}{
		{"another protocol", "GET", "5 TOK", &invoiceRail{newFakeRail("invoice")}},
		{"a POST", "POST", "0.001 USDC", &x402.Rail{Schemes: []x402.Scheme{usdc}}},
		{"a PUT", "PUT", "0.001 USDC", &x402.Rail{Schemes: []x402.Scheme{usdc}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, page := fetchPageWith(t, tc.method, pageServer(t, "", tc.rail), "text/html")
			if resp.StatusCode != http.StatusPaymentRequired || strings.Contains(page, "<script") || strings.Contains(page, `id="pay"`) {
				t.Errorf("%s: the page has a script or a Pay section:\n%s", resp.Status, page)
			}
			if !strings.Contains(page, `<p class="price" id="price">`+tc.price+`</p>`) || !strings.Contains(page, `<pre id="commands">coinop curl `) {
				t.Errorf("the page lacks the price or the commands:\n%s", page)
			}
		})
	}
}

// TestPageBrowsersAndAgentsAgree: a browser's 402 carries the same payment
// headers as anyone else's, and whoever does not ask for HTML first gets
// the JSON problem, without the page's headers.
func TestPageBrowsersAndAgentsAgree(t *testing.T) {
	usdc := exactOn(t, 84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC")
	url := pageServer(t, "Current weather", &x402.Rail{Schemes: []x402.Scheme{usdc}})
	browser, _ := fetchPage(t, url, "text/html,application/xhtml+xml,*/*;q=0.8")
	pageOnly := map[string]bool{"Content-Type": true, "Content-Length": true, "Content-Security-Policy": true,
		"X-Content-Type-Options": true, "Referrer-Policy": true, "Date": true}
	for _, accept := range []string{"", "*/*", "application/json", "application/json, text/html", "application/problem+json"} {
		t.Run("Accept "+accept, func(t *testing.T) {
			agent, body := fetchPage(t, url, accept)
			if agent.StatusCode != browser.StatusCode || agent.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%s %s", agent.Status, agent.Header.Get("Content-Type"))
			}
			var problem struct {
				Reason string          `json:"reason"`
				Price  string          `json:"price"`
				Offers []coinop.Offer  `json:"offers"`
				V1     json.RawMessage `json:"accepts"`
			}
			if err := json.Unmarshal([]byte(body), &problem); err != nil || problem.Reason != "payment_required" ||
				problem.Price != "0.001 USDC" || len(problem.Offers) != 1 || len(problem.V1) == 0 {
				t.Errorf("problem %+v %v", problem, err)
			}
			for k := range agent.Header {
				if pageOnly[k] {
					continue
				}
				if got, want := browser.Header.Values(k), agent.Header.Values(k); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s: the browser got %q, the agent %q", k, got, want)
				}
			}
			for k := range browser.Header {
				if !pageOnly[k] && agent.Header.Values(k) == nil {
					t.Errorf("only the browser got %s", k)
				}
			}
			if agent.Header.Get("Content-Security-Policy") != "" {
				t.Error("the JSON answer has the page's CSP")
			}
		})
	}
}
