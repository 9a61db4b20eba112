package evm_test

import (
	"context"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/x402"
)

// TestValidBeforeWindow: an authorization may be valid no longer than the
// offer's maxTimeoutSeconds plus x402.ValidBeforeSkew for the payer's
// clock; beyond, it is refused before any cryptography or chain call.
func TestValidBeforeWindow(t *testing.T) {
	clock := &shiftedClock{}
	dev, cl := startDev(t, devchain.Config{})
	ex, reqs := exactOn(t, dev, cl, clock.now)
	window := time.Duration(reqs.MaxTimeoutSeconds) * time.Second
	for _, c := range []struct {
		name   string
		until  time.Duration // validBefore - now
		reason string        // "" when accepted
	}{
		{"the window", window, ""},
		{"within the skew", window + x402.ValidBeforeSkew - time.Second, ""},
		{"at the skew", window + x402.ValidBeforeSkew, ""},
		{"just beyond the skew", window + x402.ValidBeforeSkew + time.Second, x402.ReasonValidBefore},
		{"an hour", time.Hour, x402.ReasonValidBefore},
		{"ten years", 10 * 365 * 24 * time.Hour, x402.ReasonValidBefore},
		{"within the settlement buffer", x402.ValidBeforeBuffer - time.Second, x402.ReasonValidBefore},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := clock.now()
			cred := credential(t, dev, reqs, 0, now.Add(c.until).Unix())
			_, err := ex.Check(cred)
			if got := reasonOf(err); got != c.reason {
				t.Fatalf("check: %v; want reason %q", err, c.reason)
			}
		})
	}
}

// TestSettleRefusesExpiringAuthorization: when the upstream took so long
// that the authorization would expire before its settlement could be
// mined, nothing is sent: a sync route answers 402 authorization_expiring
// (the upstream's response withheld), an async route's payment ends failed
// with that reason, and on chain the authorization stays unused and the
// settlement key's nonce unmoved. With time to spare, the same path settles.
func TestSettleRefusesExpiringAuthorization(t *testing.T) {
	t.Run("one transaction per payment", func(t *testing.T) { testSettleRefusesExpiring(t, false) })
	t.Run("batched", func(t *testing.T) { testSettleRefusesExpiring(t, true) })
}

func testSettleRefusesExpiring(t *testing.T, batched bool) {
	r := newRig(t)
	if batched {
		r.batcher = r.chain.BatchSettler
	}
	clock := &shiftedClock{}
	backend := &slowToSign{Client: r.client, clock: clock}
	ch := r.serveOn(t, backend, clock.now)
	window := time.Duration(r.reqs.MaxTimeoutSeconds) * time.Second
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		path     string
		upstream time.Duration // how much the clock moves while the upstream works
		// turn is how much it moves while the settlement waits for its
		// turn to be signed (behind the key's other settlements, under
		// load): after the first expiry check, before the last.
		turn   time.Duration
		status int
		reason string
		state  coinop.State
	}{
		{"sync, time to spare", "/paid/", window / 2, 0, 200, "", coinop.StateSettled},
		{"sync, time to spare after its turn came", "/paid/", 0, window / 4, 200, "", coinop.StateSettled},
		{"sync, expiring", "/paid/", window - evm.DefaultInclusionMargin, 0, 402, x402.ReasonAuthorizationExpiring, coinop.StateFailed},
		{"sync, expired while it waited its turn", "/paid/", 0, window - evm.DefaultInclusionMargin, 402, x402.ReasonAuthorizationExpiring, coinop.StateFailed},
		{"async, expiring", "/async/", window - evm.DefaultInclusionMargin, 0, 200, "", coinop.StateFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			backend.wait.Store(int64(c.turn))
			r.mu.Lock()
			r.onUpstream = func(*http.Request) { clock.advance(c.upstream) }
			r.mu.Unlock()
			nonceBefore, err := r.client.PendingNonceAt(ctx, ch.SettlementAddress())
			if err != nil {
				t.Fatal(err)
			}
			p := r.newPayment(t)
			p.auth.ValidBefore = big.NewInt(clock.now().Add(window).Unix())
			a := r.get(t, c.path+t.Name(), x402.HeaderPaymentSignature, p.header(t))
			if a.status != c.status || a.reason != c.reason {
				t.Fatalf("got %d %q, want %d %q\n%s", a.status, a.reason, c.status, c.reason, a.body)
			}
			id := x402.ExactEVMPaymentID(r.reqs.Network, lower(r.chain.Token), lower(common.Address(p.auth.From)), "0x"+common.Bytes2Hex(p.auth.Nonce[:]))
			jp := waitState(t, r, id, c.state)
			used, err := ch.AuthorizationUsed(ctx, r.chain.Token, common.Address(p.auth.From), p.auth.Nonce)
			if err != nil {
				t.Fatal(err)
			}
			nonceAfter, err := r.client.PendingNonceAt(ctx, ch.SettlementAddress())
			if err != nil {
				t.Fatal(err)
			}
			if c.state == coinop.StateSettled {
				if !used || nonceAfter != nonceBefore+1 {
					t.Errorf("settled: authorization used %v, nonce %d → %d", used, nonceBefore, nonceAfter)
				}
				return
			}
			if jp.Reason != x402.ReasonAuthorizationExpiring || jp.Reference != "" {
				t.Errorf("journal: %s reason %q tx %q, want reason %s and no transaction", jp.State, jp.Reason, jp.Reference, x402.ReasonAuthorizationExpiring)
			}
			if used || nonceAfter != nonceBefore {
				t.Errorf("something was sent: authorization used %v, nonce %d → %d", used, nonceBefore, nonceAfter)
			}
		})
	}
}

// waitState waits, bounded, for the journal to hold payment id in state
// (an async settlement finishes after its response).
func waitState(t *testing.T, r *rig, id string, state coinop.State) *coinop.Payment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		p, err := r.store.Get(ctx, id)
		if err == nil && p.State == state {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("payment %s: %+v %v; want state %s", id, p, err, state)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lower(a common.Address) string { return strings.ToLower(a.Hex()) }

// reasonOf is err's reason code, "" for no error.
func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	return coinop.AsError(err).Reason
}

// serveOn points the rig's server at a paywall whose chain reaches the dev
// chain through backend and tells time by now, and returns that chain.
func (r *rig) serveOn(t *testing.T, backend evm.Backend, now func() time.Time) *evm.Chain {
	t.Helper()
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: r.chain.ChainID, Backend: backend, SettlementKey: r.chain.Settler, ReceiptTimeout: 15 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.handler(t, ch))
	t.Cleanup(srv.Close)
	r.srv = srv
	return ch
}

// slowToSign is a Backend on which time passes while a settlement's gas is
// estimated: the stand-in for a settlement that waits, under load, behind
// the settlement key's other transactions.
type slowToSign struct {
	*ethclient.Client
	clock *shiftedClock
	wait  atomic.Int64 // how far the clock moves per estimate
}

func (b *slowToSign) EstimateGas(ctx context.Context, msg ethereum.CallMsg) (uint64, error) {
	b.clock.advance(time.Duration(b.wait.Load()))
	return b.Client.EstimateGas(ctx, msg)
}
