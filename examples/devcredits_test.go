//go:build unix

package examples_test

import (
	"path/filepath"
	"strings"
	"testing"

	domain "github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/store/sqlite"
)

// TestDevCreditsQuote is issue 10's done-when on `coinop dev` itself: the
// first `coinop curl` of /quote (a credits route: 1 credit, or x402 per
// request) buys the pack with one on-chain transfer; the next 100 calls
// move nothing on chain, and the balance header falls by exactly the
// route's cost, 1 credit, each time. Transfers are counted twice: by the
// payee's balance and by the journal's settled on-chain payments.
func TestDevCreditsQuote(t *testing.T) {
	d := startDev(t)
	quote := d.gateway + "/quote"
	var pack, cost int64
	for _, r := range d.cfg.AllRails() {
		if cr, ok := r.Settings.(*config.CreditsRail); ok {
			for _, p := range cr.Plans {
				if p.Name == "pack" {
					pack = p.Credits
				}
			}
		}
	}
	for _, rt := range d.cfg.Routes {
		if rt.Match == "GET /quote" {
			for _, a := range rt.Resolved.Accept {
				if a.Rail.Kind == config.KindCredits {
					cost = a.Price.Amount.Int64()
				}
			}
		}
	}
	if pack == 0 || cost == 0 {
		t.Fatalf("coinop dev's config: pack %d credits, /quote costs %d credits", pack, cost)
	}

	var out string
	var balance int64
	if gain := d.payeeGain(t, func() { out, balance = d.curlCredits(t, quote) }); gain != 50000 {
		t.Errorf("the first call moved %d to the payee, want the pack's price, 50000\n%s", gain, out)
	}
	if !strings.Contains(out, " 200 OK") || balance != pack-cost || !strings.Contains(out, "credits plan pack") {
		t.Fatalf("the first call: balance %d, want %d\n%s", balance, pack-cost, out)
	}
	onChain := d.settledOnChain(t)
	gain := d.payeeGain(t, func() {
		for i := range 100 {
			out, got := d.curlCredits(t, quote)
			if want := balance - cost; !strings.Contains(out, " 200 OK") || got != want {
				t.Fatalf("call %d: balance %d, want %d\n%s", i+2, got, want, out)
			}
			balance -= cost
		}
	})
	if gain != 0 {
		t.Errorf("100 calls moved %d to the payee, want no transfer", gain)
	}
	if n := d.settledOnChain(t); n != onChain || n != 1 {
		t.Errorf("the journal has %d settled on-chain payments after the 100 calls, %d after the purchase; want 1", n, onChain)
	}
	h, ok := (&client.CreditStore{Path: filepath.Join(d.data, "credits.json")}).Get(d.gateway)
	if !ok || h.Balance != pack-101*cost || h.Plan != "pack" {
		t.Errorf("the buyer holds %+v, want the pack at %d", h, pack-101*cost)
	}
}

// settledOnChain counts the dev journal's settled payments on an EVM
// network (not credits charges).
func (d *dev) settledOnChain(t *testing.T) int {
	t.Helper()
	st, err := sqlite.Open(d.cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ps, err := st.List(t.Context(), domain.StateSettled, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range ps {
		if strings.HasPrefix(p.Network, "eip155:") {
			n++
		}
	}
	return n
}
