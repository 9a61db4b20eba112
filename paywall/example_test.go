package paywall_test

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

// A Go server prices one route at 0.001 USDC on Base Sepolia. The EVM rail
// and the journal are injected; the paywall itself knows neither.
func Example() {
	rpc, _ := ethclient.Dial("http://127.0.0.1:8545") // dialed lazily, at the first payment
	chain, _ := evm.NewChain(evm.ChainConfig{ChainID: 84532, Backend: rpc})
	usdc, _ := evm.NewExact(chain, evm.ExactConfig{
		Asset: common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e"), Name: "USDC", Version: "2",
		PayTo: common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
	})
	dir, _ := os.MkdirTemp("", "paywall-example")
	defer os.RemoveAll(dir)
	journal, _ := sqlite.Open(filepath.Join(dir, "coinop.db"))
	defer journal.Close()

	protect, closeEngine, err := paywall.Middleware(paywall.Config{
		Journal: journal,
		Routes: []paywall.Route{
			{Pattern: "GET /{$}", Free: true},
			{
				Pattern: "GET /weather", Description: "Current weather",
				Accept: []paywall.Accept{{
					Rail:  &x402.Rail{Schemes: []x402.Scheme{usdc}},
					Price: coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6},
				}},
			},
		},
	})
	if err != nil {
		panic(err)
	}
	defer closeEngine(context.Background()) // lets settlements in flight finish
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	mux.HandleFunc("GET /weather", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sunny, paid by %s\n", paywall.PaymentFrom(r.Context()).Payer)
	})
	srv := httptest.NewServer(protect(mux))
	defer srv.Close()

	resp, _ := http.Get(srv.URL + "/weather")
	resp.Body.Close()
	var pr x402.PaymentRequired
	x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr)
	fmt.Println(resp.StatusCode, pr.Accepts[0].Scheme, pr.Accepts[0].Network, pr.Accepts[0].Amount, pr.Accepts[0].PayTo)
	// Output:
	// 402 exact eip155:84532 1000 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
}
