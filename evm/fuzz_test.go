package evm_test

import (
	"encoding/base64"
	"math/big"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/x402"
)

// FuzzInspect runs arbitrary PAYMENT-SIGNATURE and X-PAYMENT values through
// the x402 rail and the exact EVM checks. Inspect does no I/O, so the
// (unreachable) chain is never called. Every outcome must be a payment or a
// client-facing *coinop.Error, never a panic or an internal error.
func FuzzInspect(f *testing.F) {
	for _, file := range []string{"../x402/testdata/payment_payload_v2.json", "../x402/testdata/payment_payload_v1.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(base64.StdEncoding.EncodeToString(b), file[len(file)-7:] == "v1.json")
	}
	f.Add("e30=", false)
	cl, err := ethclient.Dial("http://127.0.0.1:1")
	if err != nil {
		f.Fatal(err)
	}
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: 84532, Backend: cl, Now: func() time.Time { return time.Unix(1740672100, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	exact, err := evm.NewExact(ch, evm.ExactConfig{
		Asset: common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e"), Name: "USDC", Version: "2",
		PayTo: common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
	})
	if err != nil {
		f.Fatal(err)
	}
	rail := &x402.Rail{Schemes: []x402.Scheme{exact}}
	charge := coinop.Charge{Price: coinop.Price{Amount: big.NewInt(10000), Symbol: "USDC", Decimals: 6}}
	f.Fuzz(func(t *testing.T, header string, v1 bool) {
		req, _ := http.NewRequest("GET", "http://example.test/x", nil)
		name := x402.HeaderPaymentSignature
		if v1 {
			name = x402.HeaderXPayment
		}
		req.Header.Set(name, header)
		p, err := rail.Inspect(req, charge)
		if err != nil {
			if k := coinop.KindOf(err); k == coinop.KindInternal {
				t.Fatalf("internal error for client input: %v", err)
			}
			return
		}
		if p == nil {
			return
		}
		if p.ID == "" || p.Amount == nil || p.Amount.Cmp(big.NewInt(10000)) != 0 {
			t.Fatalf("accepted payment with wrong fields: %+v", p)
		}
	})
}
