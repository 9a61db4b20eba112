package l402_test

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// A handler sold for 100 sat per request through the paywall, and a
// client that pays it: the development node plays both Lightning sides
// here; in production the rail's Node is an lnd (lightning/lnd) and the
// buyer pays through its own.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "l402-example")
	defer os.RemoveAll(dir)
	node, _ := devnode.New(devnode.Config{})
	journal, _ := sqlite.Open(filepath.Join(dir, "journal.db"))
	defer journal.Close()

	rail, err := l402.New(ctx, l402.Config{Name: "sats", Node: node, Store: journal, Network: "regtest"})
	if err != nil {
		fmt.Println(err)
		return
	}
	pw, _ := paywall.New(paywall.Config{Journal: journal, Routes: []paywall.Route{{
		Pattern: "GET /weather",
		Accept:  []paywall.Accept{{Rail: rail, Price: coinop.Price{Amount: big.NewInt(100_000), Symbol: "sat", Decimals: 3}}},
	}}})
	srv := httptest.NewServer(pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sunny")
	})))
	defer srv.Close()

	resp, _ := http.Get(srv.URL + "/weather")
	resp.Body.Close()
	ch := l402.ParseChallenges(resp.Header.Values("WWW-Authenticate"))[0]
	fmt.Println(resp.StatusCode, ch.Scheme, ch.Version)

	buyer := &http.Client{Transport: &client.Transport{
		Methods: []client.Method{&l402.Method{Payer: func() (lightning.Payer, error) { return node, nil }}},
		Policy:  client.Policy{Limits: map[string]client.Limit{client.UnitMsat: {Max: big.NewInt(100_000)}}},
	}}
	resp, _ = buyer.Get(srv.URL + "/weather")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 402 L402 0
	// 200 sunny
}
