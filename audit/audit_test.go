package audit_test

import (
	"context"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/store/sqlite"
)

// A served payment that did not settle is a discrepancy, but for a credits
// charge given back because the proxy's upstream failed (a forward-auth
// report): the audit accepts exactly that one, on a real journal.
func TestServedReleased(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	served := func(id, network string, bearer bool, reason string) {
		t.Helper()
		p := &coinop.Payment{ID: id, Rail: "r", Network: network, Asset: "a", Payer: "payer", PayTo: "payee",
			Amount: big.NewInt(3), Bearer: bearer, Mode: coinop.ModeSync}
		if !bearer {
			p.ReplayKey = "replay:" + id
		}
		if err := st.Reserve(ctx, p); err != nil {
			t.Fatal(err)
		}
		for _, step := range [][2]coinop.State{{coinop.StateVerified, coinop.StateSettling}, {coinop.StateSettling, coinop.StateSettled}} {
			if err := st.Transition(ctx, id, step[0], step[1], "debit:"+id, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.MarkServed(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := st.Transition(ctx, id, coinop.StateSettled, coinop.StateReleased, "", reason); err != nil {
			t.Fatal(err)
		}
	}
	served("given-back", credits.Network, true, coinop.ReasonUpstreamStatus(502))
	served("x402-released", "eip155:1", false, coinop.ReasonUpstreamStatus(502)) // money moved on chain: never "given back"
	served("credits-other", credits.Network, true, "operator_released")
	rep, err := audit.Run(ctx, st, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rep.Problems, "\n")
	for id, want := range map[string]bool{"given-back": false, "x402-released": true, "credits-other": true} {
		if strings.Contains(got, "payment "+id+" ") != want {
			t.Errorf("payment %s reported: %v, want %v\n%s", id, !want, want, got)
		}
	}
}
