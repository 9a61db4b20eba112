package evm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/x402"
)

// idleFor is how long the tests pretend the chain has made no block:
// longer than the ten minutes standard clients backdate validAfter by.
const idleFor = 20 * time.Minute

// shiftedClock is the wall clock plus an offset a test moves forward, for
// "time passed" without waiting.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *shiftedClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// hiddenRPC is a Backend that does not expose its JSON-RPC client, so the
// chain cannot override the simulated block's time.
type hiddenRPC struct{ evm.Backend }

// standardCredential signs what the official x402 clients sign at now:
// validAfter = now - 600, validBefore = now + maxTimeoutSeconds.
func standardCredential(t *testing.T, dev *devchain.Chain, reqs x402.PaymentRequirements, now time.Time) *x402.Credential {
	t.Helper()
	return credential(t, dev, reqs, now.Unix()-600, now.Unix()+int64(reqs.MaxTimeoutSeconds))
}

// credential signs a payment of reqs by the dev chain's payer, valid from
// validAfter until validBefore (unix seconds).
func credential(t *testing.T, dev *devchain.Chain, reqs x402.PaymentRequirements, validAfter, validBefore int64) *x402.Credential {
	t.Helper()
	payer := key(t, dev.Payer)
	p := &payment{accepted: reqs, signer: payer,
		domain: eip3009.Domain{Name: devchain.TokenName, Version: devchain.TokenVersion, ChainID: dev.ChainID, VerifyingContract: eip3009.Address(dev.Token)}}
	p.auth = eip3009.Authorization{
		From: payer.Address(), To: eip3009.Address(crypto.PubkeyToAddress(dev.Payee.PublicKey)), Value: big.NewInt(price),
		ValidAfter: big.NewInt(validAfter), ValidBefore: big.NewInt(validBefore),
	}
	copy(p.auth.Nonce[:], crypto.Keccak256([]byte(t.Name()), []byte(time.Now().String())))
	var pl x402.PaymentPayload
	if err := x402.DecodeHeader(p.header(t), &pl); err != nil {
		t.Fatal(err)
	}
	return &x402.Credential{Version: 2, Requirements: reqs, Payload: pl}
}

// exactOn is the exact scheme for the dev chain's token through backend,
// with the clock now.
func exactOn(t *testing.T, dev *devchain.Chain, backend evm.Backend, now func() time.Time) (*evm.Exact, x402.PaymentRequirements) {
	t.Helper()
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: dev.ChainID, Backend: backend, SettlementKey: dev.Settler, ReceiptTimeout: 15 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := evm.NewExact(ch, evm.ExactConfig{Asset: dev.Token, Name: devchain.TokenName, Version: devchain.TokenVersion, PayTo: crypto.PubkeyToAddress(dev.Payee.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	return ex, ex.Requirements(coinop.Charge{Price: coinop.Price{Amount: big.NewInt(price), Symbol: "USDC", Decimals: 6}})
}

func startDev(t *testing.T, cfg devchain.Config) (*devchain.Chain, *ethclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev, err := devchain.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	cl, err := ethclient.DialContext(ctx, dev.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return dev, cl
}

// TestVerifyJudgesTimeAtInclusion: on a chain whose newest block is far
// older than the clock (a dev chain that makes no idle blocks, a quiet
// chain), an authorization valid from ten minutes ago verifies, because
// the simulation runs at the time the settlement would be mined, not at the
// old block's. The control, a backend that cannot override the block's
// time, is refused as not yet valid: the old behaviour.
func TestVerifyJudgesTimeAtInclusion(t *testing.T) {
	dev, cl := startDev(t, devchain.Config{IdleBlock: -1})
	clock := &shiftedClock{}
	clock.advance(idleFor)
	for _, c := range []struct {
		name    string
		backend evm.Backend
		reason  string // "" to verify
	}{
		{"block time overridden", cl, ""},
		{"no overrides", hiddenRPC{cl}, x402.ReasonValidAfter},
	} {
		t.Run(c.name, func(t *testing.T) {
			ex, reqs := exactOn(t, dev, c.backend, clock.now)
			cred := standardCredential(t, dev, reqs, clock.now())
			p, err := ex.Check(cred)
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			err = ex.Verify(context.Background(), p, cred)
			switch {
			case c.reason == "" && err != nil:
				t.Fatalf("verify: %v", err)
			case c.reason != "" && coinop.AsError(err).Reason != c.reason:
				t.Fatalf("verify: %v, want reason %s", err, c.reason)
			}
		})
	}
}

// TestIdleDevChainSettlesStandardAuthorization: a dev chain left idle for
// twenty minutes (its clock moved on, no transaction sent) makes an empty
// block stamped with its clock, and a standard client's authorization
// (validAfter = now - 600) then verifies and settles, its transfer on
// chain.
func TestIdleDevChainSettlesStandardAuthorization(t *testing.T) {
	clock := &shiftedClock{}
	dev, cl := startDev(t, devchain.Config{Now: clock.now})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := cl.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(idleFor)

	// The idle block is due at once (the head is twenty minutes old by the
	// chain's clock); wait for it, bounded by ctx.
	head := before
	for head.Time < uint64(clock.now().Add(-devchain.DefaultIdleBlock).Unix()) {
		select {
		case <-ctx.Done():
			t.Fatalf("no idle block: head %d at %d, clock at %d", head.Number, head.Time, clock.now().Unix())
		case <-time.After(50 * time.Millisecond):
		}
		if head, err = cl.HeaderByNumber(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if head.Number.Uint64() <= before.Number.Uint64() {
		t.Fatalf("head %d, was %d: no new block", head.Number, before.Number)
	}
	blk, err := cl.BlockByNumber(ctx, head.Number)
	if err != nil || len(blk.Transactions()) != 0 {
		t.Fatalf("idle block %d: %v, %d transactions", head.Number, err, len(blk.Transactions()))
	}

	ex, reqs := exactOn(t, dev, cl, clock.now)
	cred := standardCredential(t, dev, reqs, clock.now())
	p, err := ex.Check(cred)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := ex.Verify(ctx, p, cred); err != nil {
		t.Fatalf("verify: %v", err)
	}
	resp, err := ex.Settle(ctx, p, cred, nil)
	if err != nil || !resp.Success {
		t.Fatalf("settle: %+v %v", resp, err)
	}
	rc, err := cl.TransactionReceipt(ctx, common.HexToHash(resp.Transaction))
	if err != nil || rc.Status != 1 {
		t.Fatalf("receipt: %+v %v", rc, err)
	}
}

// refusingNode is a JSON-RPC proxy to a real node that answers an eth_call
// carrying overrides (more than two parameters) with an error, as nodes
// that do not take them do, and counts those refusals.
func refusingNode(t *testing.T, upstream string, code int, message string) (url string, refusals *atomic.Int32) {
	t.Helper()
	refusals = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req struct {
			ID     json.RawMessage   `json:"id"`
			Method string            `json:"method"`
			Params []json.RawMessage `json:"params"`
		}
		if json.Unmarshal(body, &req) == nil && req.Method == "eth_call" && len(req.Params) > 2 {
			refusals.Add(1)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": code, "message": message}})
			return
		}
		resp, err := http.Post(upstream, "application/json", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, refusals
}

// TestNodeWithoutBlockOverrides: a node that refuses eth_call's block
// overrides is simulated at its newest block's time instead, and asked
// with overrides only once: payments still verify. A revert is not taken
// for a refusal.
func TestNodeWithoutBlockOverrides(t *testing.T) {
	dev, _ := startDev(t, devchain.Config{})
	for _, c := range []struct {
		name    string
		code    int
		message string
		refusal bool // the answer means "no overrides here"
	}{
		{"invalid params", -32602, "invalid params", true},
		{"too many arguments", -32000, "too many arguments, want at most 2", true},
		{"a revert", 3, "execution reverted: FiatTokenV2: invalid signature", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, refusals := refusingNode(t, dev.RPCURL, c.code, c.message)
			cl, err := ethclient.Dial(url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			ex, reqs := exactOn(t, dev, cl, time.Now)
			for i := range 2 {
				cred := credential(t, dev, reqs, 0, time.Now().Unix()+60)
				p, err := ex.Check(cred)
				if err != nil {
					t.Fatal(err)
				}
				err = ex.Verify(context.Background(), p, cred)
				if c.refusal && err != nil || !c.refusal && reasonOf(err) != x402.ReasonInvalidSignature {
					t.Fatalf("payment %d: %v", i, err)
				}
			}
			want := int32(2) // a revert is the call's answer, each time
			if c.refusal {
				want = 1 // then never again
			}
			if n := refusals.Load(); n != want {
				t.Errorf("asked with overrides %d times, want %d", n, want)
			}
		})
	}
}
