package lnd_test

import (
	"os"
	"testing"

	"github.com/coinop/coinop/lightning/lnd"
	"github.com/coinop/coinop/lightning/regtest"
)

func TestMain(m *testing.M) { os.Exit(regtest.Main(m)) }

// TestRegtest runs the invoice lifecycle on a real network: bob sells
// with his invoice macaroon, alice pays over the channel.
func TestRegtest(t *testing.T) {
	net := regtest.Shared(t)
	bob, err := lnd.New(lnd.Config{URL: net.Bob.RESTURL, MacaroonFile: net.Bob.InvoiceMacaroon, TLSCertFile: net.Bob.TLSCert})
	if err != nil {
		t.Fatal(err)
	}
	checkInvoiceLifecycle(t, bob, net.Alice.Client)
}
