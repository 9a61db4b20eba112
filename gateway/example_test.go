package gateway_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/paywall"
)

// A Go program sells its own handlers: the prices, the chain, the rails and
// the journal come from coinop.yaml (which needs no upstream), and the
// handlers run only once paid. TestOpenWrapsHandlers runs this on the
// embedded chain.
func ExampleOpen() {
	g, err := gateway.Open(context.Background(), "coinop.yaml", gateway.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /weather", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sunny, paid by %s\n", paywall.PaymentFrom(r.Context()).Payer)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", g.Wrap(mux)))
}
