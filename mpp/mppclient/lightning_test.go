package mppclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

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

// fakePayer is a buyer's node that reports a payment with a preimage of
// its choosing.
type fakePayer struct{ pre lightning.Preimage }

func (f fakePayer) PayInvoice(context.Context, string, int64) (*lightning.Payment, error) {
	return &lightning.Payment{Preimage: f.pre}, nil
}
func (f fakePayer) Balance(context.Context) (lightning.Balance, error) {
	return lightning.Balance{}, nil
}

// TestLightningOptions: a challenge whose invoice has expired is not
// offered, nor one whose request disagrees with its invoice; a node that
// answers with a preimage that is not the invoice's is a payment that may
// have been spent, and no credential is made of it.
func TestLightningOptions(t *testing.T) {
	now := time.Now()
	node, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := &lightningcharge.Method{Node: node, Network: "regtest", Expiry: time.Minute}
	req, err := m.Issue(context.Background(), coinop.Charge{Price: coinop.Price{Amount: big.NewInt(3000)}})
	if err != nil {
		t.Fatal(err)
	}
	offers := func(at time.Time, req map[string]any, payer lightning.Payer) []client.Option {
		h := http.Header{}
		enc, _ := mpp.EncodeRequest(req)
		c := mpp.Challenge{Realm: "r", Method: "lightning", Intent: "charge", Request: enc, Expires: now.Add(time.Minute).UTC().Format(time.RFC3339)}
		c.ID = mpp.ID([]byte("s"), &c)
		h.Add("WWW-Authenticate", c.String())
		b := &mppclient.Method{Lightning: func() (lightning.Payer, error) { return payer, nil }, Now: func() time.Time { return at }}
		opts, err := b.Options(context.Background(), &client.Challenge{Response: &http.Response{StatusCode: 402, Header: h}})
		if err != nil {
			t.Fatal(err)
		}
		return opts
	}
	got := offers(now, req, node)
	if len(got) != 1 || got[0].Price.Unit != client.UnitMsat || got[0].Price.Amount.Int64() != 3000 || got[0].Network != "lightning:regtest" {
		t.Fatalf("options %+v", got)
	}
	if got := offers(now.Add(2*time.Minute), req, node); len(got) != 0 {
		t.Errorf("an expired challenge is offered: %+v", got)
	}
	bad := map[string]any{}
	for k, v := range req {
		bad[k] = v
	}
	bad["amount"] = "2"
	if got := offers(now, bad, node); len(got) != 0 {
		t.Errorf("a request asking 2 sat for a 3 sat invoice is offered: %+v", got)
	}
	got = offers(now, req, fakePayer{pre: lightning.Preimage{7}})
	if len(got) != 1 {
		t.Fatalf("options %+v", got)
	}
	if cred, err := got[0].Pay(context.Background()); err == nil || !errors.Is(err, client.ErrMaybeSpent) {
		t.Errorf("a wrong preimage from the node: credential %v, error %v", cred, err)
	}
}
