package evm_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/recovery"
)

// journalAs reserves p's payment in the rig's journal in mode ("" is sync)
// and moves it to state, as a crash at that point would have left it.
func (r *rig) journalAs(t *testing.T, p *payment, state coinop.State, tx, mode string) *coinop.Payment {
	t.Helper()
	pm := &coinop.Payment{
		ID: "test-" + hex.EncodeToString(p.auth.Nonce[:8]), Rail: "x402-exact-evm", Network: r.reqs.Network, Mode: mode,
		Asset: strings.ToLower(r.chain.Token.Hex()), Payer: strings.ToLower(p.auth.From.Hex()),
		PayTo: strings.ToLower(r.payee.Hex()), ReplayKey: "0x" + hex.EncodeToString(p.auth.Nonce[:]), Amount: p.auth.Value,
	}
	ctx := context.Background()
	if err := r.store.Reserve(ctx, pm); err != nil {
		t.Fatal(err)
	}
	if state != coinop.StateVerified {
		if err := r.store.Transition(ctx, pm.ID, coinop.StateVerified, coinop.StateSettling, tx, ""); err != nil {
			t.Fatal(err)
		}
	}
	return pm
}

// sendAuthorization submits p's signed authorization on chain from the
// token owner's account (a stand-in for "our settlement landed before the
// crash" or "someone else submitted it") and returns the transaction hash.
func (r *rig) sendAuthorization(t *testing.T, p *payment) string {
	t.Helper()
	return sendTx(t, r.client, r.chain.Owner, r.chain.ChainID, r.chain.Token, transferCalldata(t, p)).Hex()
}

// transferCalldata is the token's transferWithAuthorization call for p,
// signed first if need be.
func transferCalldata(t *testing.T, p *payment) []byte {
	t.Helper()
	if p.sig == nil {
		p.sign()
	}
	var rr, ss [32]byte
	copy(rr[:], p.sig[:32])
	copy(ss[:], p.sig[32:64])
	data, err := tokenABI.Pack("transferWithAuthorization", common.Address(p.auth.From), common.Address(p.auth.To),
		p.auth.Value, p.auth.ValidAfter, p.auth.ValidBefore, p.auth.Nonce, p.sig[64], rr, ss)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRecovery(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()

	beforeSettle := r.journalAs(t, r.newPayment(t), coinop.StateVerified, "", "")

	landed := r.newPayment(t)
	landedTx := r.sendAuthorization(t, landed)
	sentAndLanded := r.journalAs(t, landed, coinop.StateSettling, landedTx, "")

	other := r.newPayment(t)
	otherTx := r.sendAuthorization(t, other)
	usedElsewhere := r.journalAs(t, other, coinop.StateSettling, "", "")

	neverSent := r.journalAs(t, r.newPayment(t), coinop.StateSettling, "", "")

	lost := r.newPayment(t)
	lostTx := "0x" + strings.Repeat("ab", 32) // recorded, never reached the node
	lostPayment := r.journalAs(t, lost, coinop.StateSettling, lostTx, "")

	rep, err := recovery.Run(ctx, r.store, map[string]coinop.Reconciler{r.reqs.Network: r.evm}, time.Now().Add(time.Second), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 5 || rep.Settled != 2 || rep.Released != 1 || rep.Failed != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, c := range []struct {
		p     *coinop.Payment
		state coinop.State
		tx    string
	}{
		{beforeSettle, coinop.StateReleased, ""},
		{sentAndLanded, coinop.StateSettled, landedTx},
		{usedElsewhere, coinop.StateSettled, otherTx},
		{neverSent, coinop.StateFailed, ""},
		{lostPayment, coinop.StateFailed, lostTx},
	} {
		got, err := r.store.Get(ctx, c.p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != c.state || !strings.EqualFold(got.Reference, c.tx) {
			t.Errorf("%s: %s %s, want %s %s", c.p.ID, got.State, got.Reference, c.state, c.tx)
		}
	}
	// A second pass finds nothing to do: recovery is exactly once.
	rep, err = recovery.Run(ctx, r.store, map[string]coinop.Reconciler{r.reqs.Network: r.evm}, time.Now().Add(time.Second), slog.Default())
	if err != nil || rep.Checked != 0 {
		t.Fatalf("second pass %+v %v", rep, err)
	}
}
