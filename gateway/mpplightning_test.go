package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning/lnd"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/lightningcharge"
)

// TestMPPLightningGateway: an l402 rail and the Payment scheme's lightning
// method, both dev: true, share one development node (one node.json), so
// one buyer node pays either; one 402 carries both challenges, and the
// lightning credential buys the response with a receipt of method
// lightning.
func TestMPPLightningGateway(t *testing.T) {
	ctx := t.Context()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sunny")
	}))
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	cfg, err := config.Parse("coinop.yaml", fmt.Appendf(nil, `
upstream: %s
store: %s
data_dir: %s
rails:
  - name: sats
    kind: l402
    dev: true
  - name: sats-mpp
    kind: mpp
    method: lightning
    dev: true
routes:
  - match: GET /weather
    accept:
      - rail: sats
        price: 10 sat
      - rail: sats-mpp
        price: 10 sat
`, upstream.URL, filepath.Join(dir, "gateway.db"), dir))
	if err != nil {
		t.Fatal(err)
	}
	_, srv := startGateway(t, ctx, cfg, gateway.Options{})
	files, _ := filepath.Glob(gateway.DevNodeFile(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("node files %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var dev gateway.DevNode
	if err := json.Unmarshal(b, &dev); err != nil {
		t.Fatal(err)
	}
	payer, err := lnd.New(lnd.Config{URL: dev.URL, MacaroonFile: dev.MacaroonFile, TLSCertFile: dev.TLSCertFile})
	if err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(srv.URL + "/weather")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs, err := mpp.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if resp.StatusCode != 402 || err != nil || len(cs) != 1 || cs[0].Method != "lightning" || len(l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))) == 0 {
		t.Fatalf("402 %d, Payment challenges %+v (%v), headers %v", resp.StatusCode, cs, err, resp.Header.Values("WWW-Authenticate"))
	}
	o, err := lightningcharge.DecodeRequest(cs[0].Request)
	if err != nil || o.Network != "regtest" || o.Invoice.AmountMsat != 10_000 {
		t.Fatalf("request %+v: %v", o, err)
	}
	p, err := payer.PayInvoice(ctx, o.MethodDetails.Invoice, 0)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := (&mpp.Credential{Challenge: cs[0], Payload: lightningcharge.EncodePayload(p.Preimage)}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/weather", nil)
	req.Header.Set("Authorization", cred)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rc, err := mpp.ParseReceipt(resp.Header.Get("Payment-Receipt"))
	if resp.StatusCode != 200 || string(body) != "sunny" || err != nil || rc.Method != "lightning" || rc.Reference != p.Hash.String() {
		t.Fatalf("paid: %d %s, receipt %+v (%v)", resp.StatusCode, body, rc, err)
	}
}
