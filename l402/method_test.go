package l402_test

import (
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
)

func buyer(rg *rig, tokens *l402.Tokens, maxMsat int64) *http.Client {
	m := &l402.Method{Payer: func() (lightning.Payer, error) { return rg.node, nil }, Tokens: tokens}
	return &http.Client{Timeout: 10 * time.Second, Transport: &client.Transport{
		Methods: []client.Method{m},
		Policy:  client.Policy{Limits: map[string]client.Limit{client.UnitMsat: {Max: big.NewInt(maxMsat)}}},
	}}
}

func fetch(t *testing.T, hc *http.Client, url string) int {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestMethodPays(t *testing.T) {
	rg := newRig(t, 0)
	dir := t.TempDir()
	hc := buyer(rg, &l402.Tokens{Dir: dir}, 100_000)
	before, _ := rg.node.Balance(t.Context())
	for i := 0; i < 2; i++ {
		if code := fetch(t, hc, rg.srv.URL+"/weather"); code != 200 {
			t.Fatalf("request %d: %d, want 200", i, code)
		}
	}
	after, _ := rg.node.Balance(t.Context())
	// Per request: the kept token is refused the second time (a replay),
	// and the fresh invoice in that 402 is paid.
	if spent := before.LocalMsat - after.LocalMsat; spent != 2*100_000 {
		t.Errorf("spent %d msat, want 2 × 100000", spent)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("token files %v, want one for the origin", files)
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestMethodReusesPass(t *testing.T) {
	rg := newRig(t, time.Hour)
	dir := t.TempDir()
	hc := buyer(rg, &l402.Tokens{Dir: dir}, 100_000)
	if code := fetch(t, hc, rg.srv.URL+"/weather"); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	adds := rg.node.adds.Load()
	// A new client with the same token directory: the pass is kept on disk.
	hc = buyer(rg, &l402.Tokens{Dir: dir}, 100_000)
	for i := 0; i < 3; i++ {
		if code := fetch(t, hc, rg.srv.URL+"/weather"); code != 200 {
			t.Fatalf("reuse %d: %d", i, code)
		}
	}
	if n := rg.node.adds.Load() - adds; n != 0 {
		t.Errorf("%d invoices issued while the pass was reused, want none", n)
	}
	if b, _ := rg.node.Balance(t.Context()); b.RemoteMsat != 100_000 {
		t.Errorf("the seller received %d msat, want one price", b.RemoteMsat)
	}
}

func TestMethodHonoursMax(t *testing.T) {
	rg := newRig(t, 0)
	hc := buyer(rg, nil, 99_999)
	resp, err := hc.Get(rg.srv.URL + "/weather")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("paid above the maximum")
		}
	}
	if b, _ := rg.node.Balance(t.Context()); b.RemoteMsat != 0 {
		t.Errorf("spent %d msat above the limit", b.RemoteMsat)
	}
}
