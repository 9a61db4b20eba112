package mppclient_test

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/lightningcharge"
	"github.com/coinop/coinop/mpp/mppclient"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// TestLightning: the method pays a lightning challenge through its node
// within the Policy's msat limit, and refuses one above it with nothing
// spent.
func TestLightning(t *testing.T) {
	node, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := sqlite.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	rail := &mpp.Rail{Method: &lightningcharge.Method{Node: node, Network: "regtest"}, Secret: []byte("0123456789abcdef0123456789abcdef")}
	pw, err := paywall.New(paywall.Config{Journal: j, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: []paywall.Route{{Pattern: "GET /a", Accept: []paywall.Accept{{Rail: rail, Price: coinop.Price{Amount: big.NewInt(20_000), Symbol: "sat", Decimals: 3}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	t.Cleanup(srv.Close)

	get := func(t *testing.T, maxMsat int64) (*http.Response, error) {
		t.Helper()
		m := &mppclient.Method{Lightning: func() (lightning.Payer, error) { return node, nil }}
		tr := &client.Transport{Methods: []client.Method{m}, Policy: client.Policy{Limits: map[string]client.Limit{client.UnitMsat: {Max: big.NewInt(maxMsat)}}}}
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/a")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	before, _ := node.Balance(context.Background())
	if resp, err := get(t, 19_999); err == nil && resp.StatusCode == 200 {
		t.Error("paid 20 sat with a limit of 19.999 sat")
	}
	if b, _ := node.Balance(context.Background()); b.LocalMsat != before.LocalMsat {
		t.Errorf("spent %d msat over the limit", before.LocalMsat-b.LocalMsat)
	}
	resp, err := get(t, 20_000)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("within the limit: %v %v", resp, err)
	}
	rc := mppclient.ReceiptOf(resp)
	if rc == nil || rc.Method != "lightning" {
		t.Errorf("receipt %+v", rc)
	}
	if b, _ := node.Balance(context.Background()); before.LocalMsat-b.LocalMsat != 20_000 {
		t.Errorf("spent %d msat, want 20000", before.LocalMsat-b.LocalMsat)
	}
}
