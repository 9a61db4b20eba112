package evm_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/recovery"
	"github.com/coinop/coinop/x402"
)

const methodSendRaw = "eth_sendRawTransaction"

// broadcastAttempts is the fault rig's ChainConfig.BroadcastAttempts.
const broadcastAttempts = 3

// newFaultRig is a rig whose paywall reaches the dev chain through a
// fault-injecting JSON-RPC proxy. The returned chain is the paywall's, for
// recovery.
func newFaultRig(t *testing.T) (*rig, *faultRPC, *evm.Chain) {
	t.Helper()
	return newFaultRigWith(t, func(*rig) {})
}

// newFaultRigWith is newFaultRig with the rig's settings changed by set
// before its paywall is built.
func newFaultRigWith(t *testing.T, set func(r *rig)) (*rig, *faultRPC, *evm.Chain) {
	t.Helper()
	r := newRig(t)
	set(r)
	f := newFaultRPC(t, r.chain.RPCURL)
	cl, err := ethclient.Dial(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	receiptTimeout := r.receiptTimeout
	if receiptTimeout == 0 {
		receiptTimeout = 15 * time.Second
	}
	ch, err := evm.NewChain(evm.ChainConfig{
		ChainID: r.chain.ChainID, Backend: cl, SettlementKey: r.chain.Settler, ReceiptTimeout: receiptTimeout,
		BroadcastAttempts: broadcastAttempts, BroadcastBackoff: 5 * time.Millisecond, BroadcastTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.handler(t, ch))
	t.Cleanup(srv.Close)
	r.srv = srv
	return r, f, ch
}

// only returns the rig's one journaled payment.
func (r *rig) only(t *testing.T) *coinop.Payment {
	t.Helper()
	ps, err := r.store.List(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("%d payments journaled, want 1", len(ps))
	}
	return ps[0]
}

// eventually polls the journal (the only signal a background settlement
// leaves) until cond holds for the rig's payment.
func (r *rig) eventually(t *testing.T, what string, cond func(p *coinop.Payment) bool) *coinop.Payment {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := r.only(t)
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment never %s: %+v", what, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recoverUntil runs recovery passes through ch until the rig's payment is
// final: the first pass may only have broadcast its transaction again.
func (r *rig) recoverUntil(t *testing.T, ch *evm.Chain, log *slog.Logger) *coinop.Payment {
	t.Helper()
	rec := map[string]coinop.Reconciler{r.reqs.Network: ch}
	return r.eventually(t, "final after recovery", func(p *coinop.Payment) bool {
		if p.State.Final() {
			return true
		}
		if _, err := recovery.Run(context.Background(), r.store, rec, time.Now().Add(time.Second), log); err != nil {
			t.Logf("recovery: %v", err)
		}
		return false
	})
}

// audit runs the audit of the rig's journal and chain.
func (r *rig) audit(t *testing.T) *audit.Report {
	t.Helper()
	rep, err := audit.Run(context.Background(), r.store, map[string]*evm.Chain{r.reqs.Network: r.evm},
		[]audit.Payee{{Network: r.reqs.Network, Asset: r.chain.Token, PayTo: r.payee}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Audit findings about one payment.
const (
	unpaidServed = "was served" // served, not (or not yet) paid
	notFinal     = "is not final"
)

// wantProblem checks that an audit reports exactly one problem, about
// payment id and containing what, or (id "") is clean.
func wantProblem(t *testing.T, rep *audit.Report, id, what string) {
	t.Helper()
	if id == "" {
		if !rep.Clean() {
			t.Errorf("audit: %q, want clean", rep.Problems)
		}
		return
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], id) || !strings.Contains(rep.Problems[0], what) {
		t.Errorf("audit: %q, want one problem: %s %s", rep.Problems, id, what)
	}
}

// A settlement broadcast that fails is never served as pending on a sync
// route: it is sent again, byte for byte, until a node holds it, or the
// response is withheld and the payment stays owed for recovery, which
// finishes it once the node is back. Each case runs through the whole
// paywall, on a sync and on an async route, against a fault-injecting
// proxy in front of the dev chain.
func TestBroadcastFaults(t *testing.T) {
	type outcome struct {
		status int    // the client's answer
		reason string // its problem's reason
		// state once the settlement attempt ended; final after the faults
		// healed and recovery ran.
		state, final coinop.State
		paid         bool // one transfer to the payee, else none
		// during is what the audit reports about the payment during the
		// fault ("": nothing); unpaidAfter: it reports it served and
		// unpaid after recovery too.
		during      string
		unpaidAfter bool
	}
	settledAtOnce := outcome{status: 200, state: coinop.StateSettled, final: coinop.StateSettled, paid: true}
	tests := []struct {
		name  string
		fault func(f *faultRPC)
		sends int // eth_sendRawTransaction calls the paywall made
		sync  outcome
		async outcome
	}{
		{
			name:  "429 then accepted",
			fault: func(f *faultRPC) { f.script(methodSendRaw, tooMany) },
			sends: 2, sync: settledAtOnce, async: settledAtOnce,
		},
		{
			name:  "timeout then accepted",
			fault: func(f *faultRPC) { f.script(methodSendRaw, stall) },
			sends: 2, sync: settledAtOnce, async: settledAtOnce,
		},
		{
			name:  "dropped after the node got it",
			fault: func(f *faultRPC) { f.script(methodSendRaw, dropAfter) },
			sends: 2, sync: settledAtOnce, async: settledAtOnce,
		},
		{
			name:  "429 every time",
			fault: func(f *faultRPC) { f.always(methodSendRaw, tooMany) },
			sends: broadcastAttempts,
			sync:  outcome{status: 503, reason: x402.ReasonSettlementNotSent, state: coinop.StateSettling, final: coinop.StateSettled, paid: true, during: notFinal},
			async: outcome{status: 200, state: coinop.StateSettling, final: coinop.StateSettled, paid: true, during: unpaidServed},
		},
		{
			name:  "dropped before forwarding every time",
			fault: func(f *faultRPC) { f.always(methodSendRaw, dropBefore) },
			sends: broadcastAttempts,
			sync:  outcome{status: 503, reason: x402.ReasonSettlementNotSent, state: coinop.StateSettling, final: coinop.StateSettled, paid: true, during: notFinal},
			async: outcome{status: 200, state: coinop.StateSettling, final: coinop.StateSettled, paid: true, during: unpaidServed},
		},
		{
			name: "rejected",
			fault: func(f *faultRPC) {
				f.reject = "insufficient funds for gas * price + value"
				f.always(methodSendRaw, reject)
			},
			sends: 1,
			sync:  outcome{status: 402, reason: x402.ReasonSettlementRejected, state: coinop.StateFailed, final: coinop.StateFailed},
			async: outcome{status: 200, state: coinop.StateFailed, final: coinop.StateFailed, during: unpaidServed, unpaidAfter: true},
		},
	}
	for _, tt := range tests {
		for _, mode := range []string{coinop.ModeSync, coinop.ModeAsync} {
			want, path := tt.sync, "/paid/x"
			if mode == coinop.ModeAsync {
				want, path = tt.async, "/async/x"
			}
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				r, f, ch := newFaultRig(t)
				before := r.balance(t, r.payee)
				tt.fault(f)
				h := r.newPayment(t).header(t)
				a := r.get(t, path, x402.HeaderPaymentSignature, h)
				if a.status != want.status || a.reason != want.reason {
					t.Fatalf("answer %d %q, want %d %q: %s", a.status, a.reason, want.status, want.reason, a.body)
				}
				if a.status != 200 && strings.Contains(a.body, "upstream says") {
					t.Fatalf("the withheld response leaked: %s", a.body)
				}
				if mode == coinop.ModeSync && a.status == 200 && (a.settled.Pending || !a.settled.Success) {
					t.Fatalf("served as %+v, want settled", a.settled)
				}
				p := r.eventually(t, "done with its settlement attempt", func(p *coinop.Payment) bool {
					return p.State == want.state && (p.State != coinop.StateSettling || f.count(methodSendRaw) >= tt.sends)
				})
				// The background goes on broadcasting an async payment's
				// transaction again, with backoff, until a node takes it.
				if got := f.count(methodSendRaw); got != tt.sends && !(mode == coinop.ModeAsync && got > tt.sends) {
					t.Errorf("%d broadcasts, want %d", got, tt.sends)
				}
				if p.State == coinop.StateSettling && (p.Reference == "" || p.Prepared == "") {
					t.Errorf("owed payment without its transaction journaled: %+v", p)
				}
				sent := p.Reference
				if mode == coinop.ModeSync && a.status != 200 && !p.Served.IsZero() {
					t.Error("journaled as served, though withheld")
				}
				id := ""
				if want.during != "" {
					id = p.ID
				}
				wantProblem(t, r.audit(t), id, want.during)

				f.heal()
				if mode == coinop.ModeAsync && want.state == coinop.StateSettling {
					// Still owed and in the background's hands: it settles by
					// itself, from the same transaction, once the node is back.
					r.eventually(t, "settled by the background", func(p *coinop.Payment) bool { return p.State == coinop.StateSettled })
				}
				var logged bytes.Buffer
				p = r.recoverUntil(t, ch, slog.New(slog.NewTextHandler(&logged, nil)))
				if p.State != want.final {
					t.Errorf("after recovery %s (%s), want %s", p.State, p.Reason, want.final)
				}
				if p.State == coinop.StateSettled && !strings.EqualFold(p.Reference, sent) {
					t.Errorf("settled by %s, want the journaled %s: never signed anew", p.Reference, sent)
				}
				if mode == coinop.ModeSync && want.status == 503 {
					// The payer retries the same payment: it settled, so it
					// is served now, once.
					if a := r.get(t, path, x402.HeaderPaymentSignature, h); a.status != 200 {
						t.Errorf("retry after recovery: %d %s", a.status, a.body)
					}
					if a := r.get(t, path, x402.HeaderPaymentSignature, h); a.status != 402 || a.reason != "payment_replayed" {
						t.Errorf("second retry: %d %s", a.status, a.body)
					}
				}
				wantPaid := int64(0)
				if want.paid {
					wantPaid = price
				}
				if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != wantPaid {
					t.Errorf("payee got %s, want %d", d, wantPaid)
				}
				id = ""
				if want.unpaidAfter {
					id = p.ID
				}
				rep := r.audit(t)
				wantProblem(t, rep, id, unpaidServed)
				if want.paid && rep.Transfers != 1 {
					t.Errorf("audit found %d transfers, want 1", rep.Transfers)
				}
			})
		}
	}
}

// journalSigned journals p as a settling payment whose signed settlement
// transaction (from the settlement key, at its next nonce) was recorded but
// never broadcast, as a failed broadcast or a crash would leave it.
func (r *rig) journalSigned(t *testing.T, p *payment, mode string) (pm *coinop.Payment, tx string) {
	t.Helper()
	signed := signTx(t, r.client, r.chain.Settler, r.chain.ChainID, r.chain.Token, transferCalldata(t, p))
	raw, err := signed.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	pm = r.journalAs(t, p, coinop.StateSettling, "", mode)
	if mode == coinop.ModeAsync {
		// Async payments are served before they settle.
		if err := r.store.MarkServed(context.Background(), pm.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.store.RecordTx(context.Background(), pm.ID, signed.Hash().Hex(), hexutil.Encode(raw)); err != nil {
		t.Fatal(err)
	}
	return pm, signed.Hash().Hex()
}

// laggingNode answers as a node a block or two behind the chain would,
// once: the first authorizationState says unused, and no transaction is
// found by hash. Everything else comes from the chain itself.
type laggingNode struct {
	*ethclient.Client
	calls atomic.Int32
}

func (n *laggingNode) CallContract(ctx context.Context, msg ethereum.CallMsg, block *big.Int) ([]byte, error) {
	if n.calls.Add(1) == 1 {
		return make([]byte, 32), nil // false
	}
	return n.Client.CallContract(ctx, msg, block)
}

func (n *laggingNode) TransactionByHash(context.Context, common.Hash) (*types.Transaction, bool, error) {
	return nil, false, ethereum.NotFound
}

// mine broadcasts pm's journaled transaction and waits for its receipt.
func (r *rig) mine(t *testing.T, pm *coinop.Payment) {
	t.Helper()
	ctx := context.Background()
	got, err := r.store.Get(ctx, pm.ID)
	if err != nil {
		t.Fatal(err)
	}
	tx := new(types.Transaction)
	if err := tx.UnmarshalBinary(hexutil.MustDecode(got.Prepared)); err != nil {
		t.Fatal(err)
	}
	if err := r.client.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if _, err := bind.WaitMined(ctx, r.client, tx.Hash()); err != nil {
		t.Fatal(err)
	}
}

// chainOn is the rig's chain reached through backend.
func (r *rig) chainOn(t *testing.T, backend evm.Backend) *evm.Chain {
	t.Helper()
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: r.chain.ChainID, Backend: backend, SettlementKey: r.chain.Settler, ReceiptTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// Recovery broadcasts a journaled transaction the node does not know again
// before it declares anything failed, and fails it only when it can no
// longer land: its authorization expired, or another transaction of the
// settlement key took its nonce. A served payment failing is an error in
// the log and a discrepancy in the audit.
func TestRecoveryRebroadcasts(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		expire bool // the authorization's validBefore is long past
		// takeNonce sends another transaction from the settlement key first.
		takeNonce bool
		// lag mines the journaled transaction, then reconciles through a
		// node that lags: it has not seen the authorization used nor the
		// transaction, though the nonce it used is (a node ahead answered).
		lag      bool
		state    coinop.State
		reason   string
		resettle bool
		paid     bool
	}{
		{name: "unknown to the node", state: coinop.StateSettled, paid: true},
		{name: "nonce taken", takeNonce: true, state: coinop.StateFailed, reason: "settlement_nonce_taken"},
		{name: "mined, seen late by a lagging node", lag: true, state: coinop.StateSettled, paid: true},
		{name: "nonce taken/async", mode: coinop.ModeAsync, takeNonce: true, state: coinop.StateSettling, resettle: true},
		{name: "expired", expire: true, state: coinop.StateFailed, reason: "authorization_expired_unsent"},
		{name: "expired/served", mode: coinop.ModeAsync, expire: true, state: coinop.StateFailed, reason: "authorization_expired_unsent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			before := r.balance(t, r.payee)
			p := r.newPayment(t)
			if tt.expire {
				p.auth.ValidBefore = big.NewInt(1)
			}
			pm, tx := r.journalSigned(t, p, tt.mode)
			if tt.takeNonce {
				sendTx(t, r.client, r.chain.Settler, r.chain.ChainID, r.payee, nil)
			}
			rec := map[string]coinop.Reconciler{r.reqs.Network: r.evm}
			if tt.lag {
				r.mine(t, pm)
				rec[r.reqs.Network] = r.chainOn(t, &laggingNode{Client: r.client})
			}
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			var got *coinop.Payment
			for pass := 0; pass < 100; pass++ {
				rep, err := recovery.Run(context.Background(), r.store, rec, time.Now().Add(time.Second), log)
				if err != nil {
					t.Fatal(err)
				}
				if tt.resettle {
					if len(rep.Resettle) != 1 || rep.Resettle[0].ID != pm.ID {
						t.Fatalf("report %+v, want the payment to settle again", rep)
					}
				}
				if got = r.only(t); got.State.Final() || tt.resettle {
					break
				}
				time.Sleep(20 * time.Millisecond) // the rebroadcast transaction is being mined
			}
			if got.State != tt.state || got.Reason != tt.reason && tt.reason != "" {
				t.Fatalf("%s (%s), want %s (%s)", got.State, got.Reason, tt.state, tt.reason)
			}
			if got.State == coinop.StateSettled && !strings.EqualFold(got.Reference, tx) {
				t.Errorf("settled by %s, want the journaled %s sent again", got.Reference, tx)
			}
			wantPaid := int64(0)
			if tt.paid {
				wantPaid = price
			}
			if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != wantPaid {
				t.Errorf("payee got %s, want %d", d, wantPaid)
			}
			served := tt.mode == coinop.ModeAsync
			loud := strings.Contains(logged.String(), "level=ERROR")
			if loud != (served && got.State == coinop.StateFailed) {
				t.Errorf("error logged = %v for a %s payment served=%v: %s", loud, got.State, served, logged.String())
			}
			id := ""
			if served {
				id = pm.ID // served and (still or for good) unpaid
			}
			wantProblem(t, r.audit(t), id, unpaidServed)
		})
	}
}

// Batched async settlements follow the same rule: a batch no node accepted
// stays owed, each member with the batch's journaled transaction, and the
// background broadcasts that same transaction again until the node takes
// it. Settlements signed during the outage reuse the settlement key's next
// nonce (the node never saw the earlier one), so once the node is back one
// of them lands and the others can never be mined: only those are signed
// anew. Every payment ends settled, once.
func TestBatchBroadcastFaults(t *testing.T) {
	r, f, _ := newFaultRigWith(t, func(r *rig) {
		r.batcher = r.chain.BatchSettler
		r.exposure = big.NewInt(100 * price)
		r.batchWindow = time.Second // the concurrent payments below share batches
	})
	before := r.balance(t, r.payee)
	f.always(methodSendRaw, tooMany)
	const n = 6
	var wg sync.WaitGroup
	for range n {
		h := r.newPayment(t).header(t)
		wg.Go(func() {
			if a := r.get(t, "/async/x", x402.HeaderPaymentSignature, h); a.status != 200 {
				t.Errorf("%d %s", a.status, a.body)
			}
		})
	}
	wg.Wait()
	journaled := map[string]string{} // payment → its transaction before the node was back
	r.eventuallyAll(t, n, "journaled with their unsent transactions", func(ps []*coinop.Payment) bool {
		for _, p := range ps {
			if p.State != coinop.StateSettling || p.Prepared == "" {
				return false
			}
			journaled[p.ID] = p.Reference
		}
		return true
	})
	shared := map[string]bool{}
	for _, tx := range journaled {
		shared[tx] = true
	}
	if len(shared) >= n {
		t.Errorf("%d payments journaled %d transactions: none was batched", n, len(shared))
	}
	if rep := r.audit(t); len(rep.Problems) != n {
		t.Errorf("audit during the fault: %q, want %d served unpaid", rep.Problems, n)
	}
	f.heal()
	r.eventuallyAll(t, n, "settled", func(ps []*coinop.Payment) bool {
		for _, p := range ps {
			if p.State != coinop.StateSettled {
				return false
			}
		}
		return true
	})
	ps, _ := r.store.List(context.Background(), "", 0)
	for _, p := range ps {
		if strings.EqualFold(p.Reference, journaled[p.ID]) {
			continue
		}
		// Settled anew: only because its journaled transaction shared its
		// nonce with one that landed, and so never will.
		if _, err := r.client.TransactionReceipt(context.Background(), common.HexToHash(journaled[p.ID])); err == nil {
			t.Errorf("%s settled by %s, and its journaled %s was mined too", p.ID, p.Reference, journaled[p.ID])
		}
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != n*price {
		t.Errorf("payee got %s, want %d prices", d, n)
	}
	wantProblem(t, r.audit(t), "", "")
}

// eventuallyAll polls the journal until it holds n payments and cond holds
// for them.
func (r *rig) eventuallyAll(t *testing.T, n int, what string, cond func(ps []*coinop.Payment) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps, err := r.store.List(context.Background(), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == n && cond(ps) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d payments, never all %s", len(ps), what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
