package lnd_test

import (
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/bolt11"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/lightning/lnd"
)

// devServer is a development node behind lnd's REST API: the same calls a
// real lnd answers (the regtest test runs them against one).
func devServer(t *testing.T) (*devnode.Node, *devnode.Server) {
	t.Helper()
	n, err := devnode.New(devnode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := n.Listen("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return n, s
}

func TestInvoiceLifecycle(t *testing.T) {
	_, s := devServer(t)
	c, err := lnd.New(lnd.Config{URL: s.URL, MacaroonFile: s.MacaroonFile, TLSCertFile: s.TLSCertFile})
	if err != nil {
		t.Fatal(err)
	}
	checkInvoiceLifecycle(t, c, c)
}

// checkInvoiceLifecycle: a seller's invoice is OPEN, the buyer pays it, the
// preimage hashes to it, and the seller sees it SETTLED for its amount.
func checkInvoiceLifecycle(t *testing.T, seller lightning.Invoicer, buyer lightning.Payer) {
	t.Helper()
	ctx := t.Context()
	before, err := buyer.Balance(ctx)
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	inv, err := seller.AddInvoice(ctx, lightning.InvoiceRequest{AmountMsat: 21_000, Memo: "GET /weather", Expiry: 10 * time.Minute})
	if err != nil {
		t.Fatalf("AddInvoice: %v", err)
	}
	dec, err := bolt11.Decode(inv.PaymentRequest)
	if err != nil {
		t.Fatalf("the node's invoice does not decode: %v", err)
	}
	if dec.AmountMsat != 21_000 || dec.Hash != inv.Hash || dec.Description != "GET /weather" {
		t.Errorf("decoded invoice %+v, want 21000 msat for %s", dec, inv.Hash)
	}
	got, err := seller.LookupInvoice(ctx, inv.Hash)
	if err != nil || got.State != lightning.InvoiceOpen || got.PaidMsat != 0 {
		t.Fatalf("before paying: %+v, %v; want OPEN, unpaid", got, err)
	}
	p, err := buyer.PayInvoice(ctx, inv.PaymentRequest, 1000)
	if err != nil {
		t.Fatalf("PayInvoice: %v", err)
	}
	if sha256.Sum256(p.Preimage[:]) != inv.Hash {
		t.Fatal("the preimage does not hash to the invoice's payment hash")
	}
	got, err = seller.LookupInvoice(ctx, inv.Hash)
	if err != nil || got.State != lightning.InvoiceSettled || got.PaidMsat != 21_000 {
		t.Fatalf("after paying: %+v, %v; want SETTLED for 21000 msat", got, err)
	}
	after, err := buyer.Balance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if spent := before.LocalMsat - after.LocalMsat; spent < 21_000 || spent > 21_000+1000 {
		t.Errorf("the buyer's balance went down by %d msat, want 21000 (+ fees ≤ 1000)", spent)
	}
	if _, err := buyer.PayInvoice(ctx, inv.PaymentRequest, 1000); err == nil {
		t.Error("an invoice was paid twice")
	}
	var unknown lightning.Hash
	unknown[0] = 1
	if _, err := seller.LookupInvoice(ctx, unknown); !errors.Is(err, lightning.ErrNotFound) {
		t.Errorf("unknown invoice: %v, want ErrNotFound", err)
	}
}

func TestRefusals(t *testing.T) {
	_, s := devServer(t)
	ctx := t.Context()
	t.Run("wrong macaroon is unavailable", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.macaroon")
		os.WriteFile(bad, []byte("not the macaroon"), 0o600)
		c, err := lnd.New(lnd.Config{URL: s.URL, MacaroonFile: bad, TLSCertFile: s.TLSCertFile})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddInvoice(ctx, lightning.InvoiceRequest{AmountMsat: 1000}); !errors.Is(err, lightning.ErrUnavailable) {
			t.Errorf("AddInvoice: %v, want ErrUnavailable", err)
		}
	})
	t.Run("another certificate is refused", func(t *testing.T) {
		_, other := devServer(t)
		c, err := lnd.New(lnd.Config{URL: s.URL, MacaroonFile: s.MacaroonFile, TLSCertFile: other.TLSCertFile})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetInfo(ctx); !errors.Is(err, lightning.ErrUnavailable) {
			t.Errorf("GetInfo: %v, want a refused connection (unavailable)", err)
		}
	})
	t.Run("node down is unavailable", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c, err := lnd.New(lnd.Config{URL: "https://" + addr, MacaroonFile: s.MacaroonFile, TLSCertFile: s.TLSCertFile, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.LookupInvoice(ctx, lightning.Hash{}); !errors.Is(err, lightning.ErrUnavailable) {
			t.Errorf("LookupInvoice: %v, want ErrUnavailable", err)
		}
	})
	t.Run("config errors", func(t *testing.T) {
		for _, cfg := range []lnd.Config{
			{URL: "ftp://x"},
			{URL: s.URL, MacaroonFile: s.MacaroonFile},                              // https without a cert
			{URL: s.URL, MacaroonFile: "/nonexistent", TLSCertFile: s.TLSCertFile},  // no macaroon
			{URL: s.URL, MacaroonFile: s.MacaroonFile, TLSCertFile: s.MacaroonFile}, // not PEM
		} {
			if _, err := lnd.New(cfg); err == nil {
				t.Errorf("New(%+v) succeeded", cfg)
			}
		}
	})
}

// TestPayNotSent: a payment that never reached a node is a failed one
// (nothing spent, another way to pay may be tried), not one whose outcome
// is unknown.
func TestPayNotSent(t *testing.T) {
	_, s := devServer(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c, err := lnd.New(lnd.Config{URL: "https://" + addr, MacaroonFile: s.MacaroonFile, TLSCertFile: s.TLSCertFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PayInvoice(t.Context(), "lnbcrt1", 0); !errors.Is(err, lightning.ErrPaymentFailed) {
		t.Errorf("node down: %v, want ErrPaymentFailed", err)
	}
	_, other := devServer(t)
	c, err = lnd.New(lnd.Config{URL: s.URL, MacaroonFile: s.MacaroonFile, TLSCertFile: other.TLSCertFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PayInvoice(t.Context(), "lnbcrt1", 0); !errors.Is(err, lightning.ErrPaymentFailed) {
		t.Errorf("another certificate: %v, want ErrPaymentFailed", err)
	}
}
