package devchain_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/coinop/coinop/contracts"
	"github.com/coinop/coinop/evm/devchain"
)

// mineTimeout is how long a sent transaction may take to be mined. Blocks are
// sealed on arrival, or within about a second when the chain's clock is
// MaxClockLead ahead; the rest absorbs a slow machine.
const mineTimeout = 5 * time.Second

// secp256k1N is the order of the secp256k1 group.
var secp256k1N = crypto.S256().Params().N

func TestPaymentSettles(t *testing.T) {
	ctx := testContext(t)
	c, client := startChain(t, devchain.Config{})

	id, err := client.ChainID(ctx)
	if err != nil {
		t.Fatalf("eth_chainId: %v", err)
	}
	if id.Uint64() != devchain.DefaultChainID || c.ChainID != devchain.DefaultChainID {
		t.Fatalf("chain id: RPC %s, Chain.ChainID %d, want %d", id, c.ChainID, devchain.DefaultChainID)
	}
	if !strings.HasPrefix(c.RPCURL, "http://127.0.0.1:") || strings.HasSuffix(c.RPCURL, ":0") {
		t.Errorf("RPCURL = %q, want the bound loopback port", c.RPCURL)
	}
	payer, payee, settler := address(c.Payer), address(c.Payee), address(c.Settler)

	if got := call(t, client, c.Token, "name"); got[0] != devchain.TokenName {
		t.Errorf("name() = %v", got[0])
	}
	if got := call(t, client, c.Token, "version"); got[0] != devchain.TokenVersion {
		t.Errorf("version() = %v", got[0])
	}
	if got := call(t, client, c.Token, "decimals"); got[0] != uint8(devchain.TokenDecimals) {
		t.Errorf("decimals() = %v", got[0])
	}
	domain := typedData(c.Token, c.ChainID, "TransferWithAuthorization", nil)
	wantSeparator, err := domain.HashStruct("EIP712Domain", domain.Domain.Map())
	if err != nil {
		t.Fatal(err)
	}
	if got := call(t, client, c.Token, "DOMAIN_SEPARATOR")[0].([32]byte); common.Hash(got) != common.BytesToHash(wantSeparator) {
		t.Errorf("DOMAIN_SEPARATOR() = %x, want %x (apitypes)", got, wantSeparator)
	}
	for _, who := range []common.Address{payer, settler, address(c.Owner)} {
		if eth, err := client.BalanceAt(ctx, who, nil); err != nil || eth.Sign() == 0 {
			t.Errorf("ether of %s = %v, %v; want some", who, eth, err)
		}
	}
	payerBefore, payeeBefore := balance(t, client, c.Token, payer), balance(t, client, c.Token, payee)
	if payerBefore.Cmp(big.NewInt(devchain.DefaultPayerFunds)) != 0 || payeeBefore.Sign() != 0 {
		t.Fatalf("token balances: payer %s, payee %s; want %d and 0", payerBefore, payeeBefore, devchain.DefaultPayerFunds)
	}

	a := newAuth(c, big.NewInt(1_000_000))
	sig := sign(t, c.Payer, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message()))
	data := pack(t, transferVRS, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
	if _, err := client.CallContract(ctx, ethereum.CallMsg{From: settler, To: &c.Token, Data: data}, nil); err != nil {
		t.Fatalf("simulate transferWithAuthorization: %v", err)
	}

	start := time.Now()
	rc := send(t, client, c, c.Settler, c.Token, data)
	t.Logf("transferWithAuthorization mined in %v, gas used %d", time.Since(start), rc.GasUsed)
	if !hasTransferLog(rc, c.Token, payer, payee, a.value) {
		t.Errorf("receipt lacks Transfer(%s, %s, %s) from the token", payer, payee, a.value)
	}
	block, err := client.HeaderByHash(ctx, rc.BlockHash)
	if err != nil {
		t.Fatalf("block: %v", err)
	}
	if skew := time.Since(time.Unix(int64(block.Time), 0)); skew < -3*time.Second || skew > 3*time.Second {
		t.Errorf("block timestamp %d is %v off the wall clock", block.Time, skew)
	}

	if got, want := balance(t, client, c.Token, payer), new(big.Int).Sub(payerBefore, a.value); got.Cmp(want) != 0 {
		t.Errorf("payer balance %s, want %s", got, want)
	}
	if got := balance(t, client, c.Token, payee); got.Cmp(a.value) != 0 {
		t.Errorf("payee balance %s, want %s", got, a.value)
	}
	if used := call(t, client, c.Token, "authorizationState", payer, a.nonce)[0]; used != true {
		t.Error("authorizationState = false after settlement")
	}

	_, err = client.CallContract(ctx, ethereum.CallMsg{From: settler, To: &c.Token, Data: data}, nil)
	if err == nil || !strings.Contains(err.Error(), "FiatTokenV2: authorization is used or canceled") {
		t.Errorf("replay simulation: err = %v, want authorization is used or canceled", err)
	}
}

// TestAuthorizationRejected runs the token's checks through eth_call, the way
// a verifier simulates a payment before accepting it.
func TestAuthorizationRejected(t *testing.T) {
	ctx := testContext(t)
	c, client := startChain(t, devchain.Config{ChainID: 84532})
	settler, payee := address(c.Settler), address(c.Payee)

	// valid returns a fresh authorization and its signature.
	valid := func(value int64) (auth, []byte) {
		a := newAuth(c, big.NewInt(value))
		return a, sign(t, c.Payer, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message()))
	}
	vrs := func(a auth, sig []byte) []byte {
		return pack(t, transferVRS, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
	}
	bytesSig := func(a auth, sig []byte) []byte {
		return pack(t, transferBytes, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig)
	}

	tests := []struct {
		name string
		from common.Address
		data func() []byte
		want string // "" means success
	}{
		{"valid v r s", settler, func() []byte { return vrs(valid(1)) }, ""},
		{"valid bytes signature", settler, func() []byte { return bytesSig(valid(1)) }, ""},
		{"high s", settler, func() []byte {
			a, sig := valid(1)
			high := highS(sig)
			// The malleated signature still recovers the payer off-chain;
			// only the low-s rule rejects it.
			if pub, err := crypto.SigToPub(digest(t, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message())), withRawV(high)); err != nil || crypto.PubkeyToAddress(*pub) != a.from {
				t.Errorf("high-s signature does not recover the payer off-chain: %v", err)
			}
			return vrs(a, high)
		}, "FiatTokenV2: invalid signature"},
		{"high s bytes", settler, func() []byte { a, sig := valid(1); return bytesSig(a, highS(sig)) }, "FiatTokenV2: invalid signature"},
		{"v 0 or 1", settler, func() []byte { a, sig := valid(1); return vrs(a, withRawV(sig)) }, "FiatTokenV2: invalid signature"},
		{"64-byte signature", settler, func() []byte { a, sig := valid(1); return bytesSig(a, sig[:64]) }, "FiatTokenV2: invalid signature"},
		{"zeroed signature", settler, func() []byte { a, _ := valid(1); sig := make([]byte, 65); sig[64] = 27; return vrs(a, sig) }, "FiatTokenV2: invalid signature"},
		{"signed by another key", settler, func() []byte {
			a := newAuth(c, big.NewInt(1))
			return vrs(a, sign(t, c.Payee, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message())))
		}, "FiatTokenV2: invalid signature"},
		{"other chain id", settler, func() []byte {
			a := newAuth(c, big.NewInt(1))
			return vrs(a, sign(t, c.Payer, typedData(c.Token, c.ChainID+1, "TransferWithAuthorization", a.message())))
		}, "FiatTokenV2: invalid signature"},
		{"value changed after signing", settler, func() []byte {
			a, sig := valid(1)
			a.value = big.NewInt(2)
			return vrs(a, sig)
		}, "FiatTokenV2: invalid signature"},
		{"expired", settler, func() []byte {
			a := newAuth(c, big.NewInt(1))
			a.validBefore = big.NewInt(1)
			return vrs(a, sign(t, c.Payer, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message())))
		}, "FiatTokenV2: authorization is expired"},
		{"not yet valid", settler, func() []byte {
			a := newAuth(c, big.NewInt(1))
			a.validAfter = big.NewInt(time.Now().Add(time.Hour).Unix())
			return vrs(a, sign(t, c.Payer, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message())))
		}, "FiatTokenV2: authorization is not yet valid"},
		{"exceeds balance", settler, func() []byte { return vrs(valid(devchain.DefaultPayerFunds + 1)) }, "ERC20: transfer amount exceeds balance"},
		{"receive by payee", payee, func() []byte {
			a := newAuth(c, big.NewInt(1))
			sig := sign(t, c.Payer, typedData(c.Token, c.ChainID, "ReceiveWithAuthorization", a.message()))
			return pack(t, receiveVRS, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
		}, ""},
		{"receive by someone else", settler, func() []byte {
			a := newAuth(c, big.NewInt(1))
			sig := sign(t, c.Payer, typedData(c.Token, c.ChainID, "ReceiveWithAuthorization", a.message()))
			return pack(t, receiveVRS, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
		}, "FiatTokenV2: caller must be the payee"},
		{"transfer signature used to receive", payee, func() []byte {
			a, sig := valid(1)
			return pack(t, receiveVRS, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
		}, "FiatTokenV2: invalid signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.CallContract(ctx, ethereum.CallMsg{From: tt.from, To: &c.Token, Data: tt.data()}, nil)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("simulation failed: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("simulation: err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCancelAuthorization(t *testing.T) {
	ctx := testContext(t)
	c, client := startChain(t, devchain.Config{})
	payer := address(c.Payer)

	a := newAuth(c, big.NewInt(5))
	cancel := sign(t, c.Payer, typedData(c.Token, c.ChainID, "CancelAuthorization", apitypes.TypedDataMessage{
		"authorizer": payer.Hex(),
		"nonce":      a.nonce[:],
	}))
	data := pack(t, cancelVRS, payer, a.nonce, cancel[64], [32]byte(cancel[:32]), [32]byte(cancel[32:64]))
	send(t, client, c, c.Settler, c.Token, data)
	if used := call(t, client, c.Token, "authorizationState", payer, a.nonce)[0]; used != true {
		t.Fatal("authorizationState = false after cancelAuthorization")
	}

	sig := sign(t, c.Payer, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message()))
	for name, data := range map[string][]byte{
		"transfer": pack(t, transferVRS, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64])),
		"cancel":   data,
	} {
		_, err := client.CallContract(ctx, ethereum.CallMsg{From: address(c.Settler), To: &c.Token, Data: data}, nil)
		if err == nil || !strings.Contains(err.Error(), "FiatTokenV2: authorization is used or canceled") {
			t.Errorf("%s after cancel: err = %v, want authorization is used or canceled", name, err)
		}
	}
}

// TestTwoChains runs two chains at once from the same deterministic keys: the
// token lands at the same address on both, and only the chain id in the
// EIP-712 domain keeps a signature for one from paying on the other.
func TestTwoChains(t *testing.T) {
	ctx := testContext(t)
	ids := []uint64{1337, 31337}
	chains := make([]*devchain.Chain, len(ids))
	clients := make([]*ethclient.Client, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			chains[i], errs[i] = devchain.Start(ctx, devchain.Config{ChainID: id, Rand: mrand.NewChaCha8([32]byte{1})})
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("start chain %d: %v", ids[i], errs[i])
		}
		t.Cleanup(func() { chains[i].Close() })
		client, err := ethclient.DialContext(ctx, chains[i].RPCURL)
		if err != nil {
			t.Fatalf("dial %s: %v", chains[i].RPCURL, err)
		}
		t.Cleanup(client.Close)
		clients[i] = client
		if got, err := client.ChainID(ctx); err != nil || got.Uint64() != ids[i] {
			t.Errorf("%s: chain id %v, %v; want %d", chains[i].RPCURL, got, err, ids[i])
		}
	}
	a, b := chains[0], chains[1]
	if a.RPCURL == b.RPCURL {
		t.Fatalf("both chains at %s", a.RPCURL)
	}
	if a.Token != b.Token || address(a.Payer) != address(b.Payer) {
		t.Fatalf("same Rand, different accounts: token %s vs %s, payer %s vs %s", a.Token, b.Token, address(a.Payer), address(b.Payer))
	}
	if a.BatchSettler != b.BatchSettler {
		t.Errorf("same Rand, different batch settlers: %s vs %s", a.BatchSettler, b.BatchSettler)
	}

	auth := newAuth(a, big.NewInt(1))
	sig := sign(t, a.Payer, typedData(a.Token, a.ChainID, "TransferWithAuthorization", auth.message()))
	data := pack(t, transferVRS, auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
	msg := ethereum.CallMsg{From: address(a.Settler), To: &a.Token, Data: data}
	if _, err := clients[0].CallContract(ctx, msg, nil); err != nil {
		t.Errorf("on its own chain: %v", err)
	}
	if _, err := clients[1].CallContract(ctx, msg, nil); err == nil || !strings.Contains(err.Error(), "FiatTokenV2: invalid signature") {
		t.Errorf("on the other chain: err = %v, want invalid signature", err)
	}

	if err := a.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := clients[1].BlockNumber(ctx); err != nil {
		t.Errorf("other chain after close: %v", err)
	}
}

func TestListenMustBeLoopback(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8545", "example.com:0", "127.0.0.1", "127.0.0.1:http"} {
		if c, err := devchain.Start(t.Context(), devchain.Config{Listen: listen}); err == nil {
			c.Close()
			t.Errorf("Start with Listen %q succeeded", listen)
		}
	}
}

// TestBurst sends many settlements back to back without waiting, as a busy
// facilitator does: all are mined without anyone sealing blocks by hand and,
// unless disabled, the chain's clock stays within MaxClockLead of the wall
// clock.
func TestBurst(t *testing.T) {
	for _, tt := range []struct {
		name    string
		maxLead time.Duration
	}{
		{"default clock lead", 0},
		{"unbounded", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 30
			ctx := testContext(t)
			c, client := startChain(t, devchain.Config{MaxClockLead: tt.maxLead})
			settler := address(c.Settler)

			nonce, err := client.PendingNonceAt(ctx, settler)
			if err != nil {
				t.Fatal(err)
			}
			var gas uint64
			hashes := make([]common.Hash, n)
			start := time.Now()
			for i := range n {
				a := newAuth(c, big.NewInt(1000))
				sig := sign(t, c.Payer, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message()))
				data := pack(t, transferVRS, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
				if gas == 0 {
					est, err := client.EstimateGas(ctx, ethereum.CallMsg{From: settler, To: &c.Token, Data: data})
					if err != nil {
						t.Fatalf("estimate gas: %v", err)
					}
					gas = est * 3 / 2
				}
				hashes[i] = sendAsync(t, client, c, c.Settler, nonce+uint64(i), gas, c.Token, data)
				time.Sleep(time.Millisecond) // let some arrive while others are sealed
			}
			blocks := map[uint64]bool{}
			var newest uint64
			for _, h := range hashes {
				rc := waitMined(t, client, h)
				blocks[rc.BlockNumber.Uint64()] = true
				newest = max(newest, rc.BlockNumber.Uint64())
			}
			head, err := client.HeaderByNumber(ctx, new(big.Int).SetUint64(newest))
			if err != nil {
				t.Fatal(err)
			}
			lead := time.Until(time.Unix(int64(head.Time), 0))
			t.Logf("%d transactions mined in %v over %d blocks; newest block %v ahead of the wall clock",
				n, time.Since(start).Round(time.Millisecond), len(blocks), lead.Round(time.Millisecond))
			if tt.maxLead == 0 && lead > devchain.DefaultMaxClockLead {
				t.Errorf("chain clock %v ahead, want at most %v", lead, devchain.DefaultMaxClockLead)
			}
			if got := balance(t, client, c.Token, address(c.Payee)); got.Cmp(big.NewInt(n*1000)) != 0 {
				t.Errorf("payee balance %s, want %d", got, n*1000)
			}
		})
	}
}

func TestListenPortInUse(t *testing.T) {
	c, _ := startChain(t, devchain.Config{})
	taken := strings.TrimPrefix(c.RPCURL, "http://")
	if other, err := devchain.Start(testContext(t), devchain.Config{Listen: taken}); err == nil {
		other.Close()
		t.Fatalf("second chain started on %s", taken)
	}

	// An explicit free port is used as given.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := l.Addr().String()
	l.Close()
	c2, _ := startChain(t, devchain.Config{Listen: free})
	if c2.RPCURL != "http://"+free {
		t.Errorf("RPCURL = %s, want http://%s", c2.RPCURL, free)
	}
}

// TestLogger checks that a Logger receives go-ethereum's logs and that the
// standard library's default logger is left alone.
func TestLogger(t *testing.T) {
	before, root := slog.Default(), log.Root()
	// Restore go-ethereum's root logger without log.SetDefault's side
	// effect on slog (see rootLogger in devchain.go).
	t.Cleanup(func() { log.SetDefault(struct{ log.Logger }{root}) })

	var h countingHandler
	startChain(t, devchain.Config{Logger: slog.New(&h)})
	if h.n.Load() == 0 {
		t.Error("Logger received nothing")
	}
	if slog.Default() != before {
		t.Error("Start replaced slog.Default")
	}
}

type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h *countingHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h *countingHandler) WithGroup(string) slog.Handler             { return h }

// TestBatchSettler settles through the batch settler Start deployed: the
// same authorization twice in one batch moves the money once, and the
// transaction succeeds with one ItemSettled and one ItemFailed carrying the
// token's reason. DeployBatchSettler also works on its own.
func TestBatchSettler(t *testing.T) {
	ctx := testContext(t)
	c, client := startChain(t, devchain.Config{})
	if code, err := client.CodeAt(ctx, c.BatchSettler, nil); err != nil || len(code) == 0 {
		t.Fatalf("no code at BatchSettler %s: %v", c.BatchSettler, err)
	}
	batcher, err := abi.JSON(strings.NewReader(contracts.BatchSettlerABI))
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		From, To                       common.Address
		Value, ValidAfter, ValidBefore *big.Int
		Nonce                          [32]byte
		V                              uint8
		R, S                           [32]byte
	}
	a := newAuth(c, big.NewInt(1000))
	sig := sign(t, c.Payer, typedData(c.Token, c.ChainID, "TransferWithAuthorization", a.message()))
	it := item{a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64])}
	data, err := batcher.Pack("settle", c.Token, []item{it, it})
	if err != nil {
		t.Fatal(err)
	}
	rc := send(t, client, c, c.Settler, c.BatchSettler, data)
	var settled, failed []string
	for _, l := range rc.Logs {
		if l.Address != c.BatchSettler {
			continue
		}
		switch l.Topics[0] {
		case batcher.Events["ItemSettled"].ID:
			v, err := batcher.Unpack("ItemSettled", l.Data)
			if err != nil {
				t.Fatal(err)
			}
			settled = append(settled, fmt.Sprint(v[0]))
		case batcher.Events["ItemFailed"].ID:
			v, err := batcher.Unpack("ItemFailed", l.Data)
			if err != nil {
				t.Fatal(err)
			}
			reason, _ := abi.UnpackRevert(v[3].([]byte))
			failed = append(failed, fmt.Sprint(v[0], " ", reason))
		}
	}
	if fmt.Sprint(settled) != "[0]" || fmt.Sprint(failed) != "[1 FiatTokenV2: authorization is used or canceled]" {
		t.Errorf("settled %q, failed %q", settled, failed)
	}
	if got := balance(t, client, c.Token, a.to); got.Cmp(a.value) != 0 {
		t.Errorf("payee balance %s, want %s", got, a.value)
	}

	again, err := devchain.DeployBatchSettler(ctx, client, c.Settler)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := client.CodeAt(ctx, again, nil); err != nil || again == c.BatchSettler || len(code) == 0 {
		t.Errorf("second deployment at %s (first %s): %d bytes of code, %v", again, c.BatchSettler, len(code), err)
	}
}

// ---- helpers ----

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startChain(t *testing.T, cfg devchain.Config) (*devchain.Chain, *ethclient.Client) {
	t.Helper()
	start := time.Now()
	c, err := devchain.Start(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("chain %d up at %s in %v", c.ChainID, c.RPCURL, time.Since(start))
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	client, err := ethclient.DialContext(testContext(t), c.RPCURL)
	if err != nil {
		t.Fatalf("dial %s: %v", c.RPCURL, err)
	}
	t.Cleanup(client.Close)
	return c, client
}

var tokenABI = func() abi.ABI {
	a, err := abi.JSON(strings.NewReader(contracts.TokenABI))
	if err != nil {
		panic(err)
	}
	return a
}()

// Full signatures of the overloaded EIP-3009 methods.
const (
	transferVRS   = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
	transferBytes = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"
	receiveVRS    = "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
	cancelVRS     = "cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)"
)

// pack encodes a call. method is a name, or a full signature for overloaded
// methods (go-ethereum names overloads by ABI order, which we do not rely on).
func pack(t *testing.T, method string, args ...any) []byte {
	t.Helper()
	if !strings.Contains(method, "(") {
		data, err := tokenABI.Pack(method, args...)
		if err != nil {
			t.Fatalf("pack %s: %v", method, err)
		}
		return data
	}
	for _, m := range tokenABI.Methods {
		if m.Sig != method {
			continue
		}
		data, err := m.Inputs.Pack(args...)
		if err != nil {
			t.Fatalf("pack %s: %v", method, err)
		}
		return append(m.ID, data...)
	}
	t.Fatalf("ABI has no %s", method)
	return nil
}

// call runs a view method with eth_call and returns its outputs.
func call(t *testing.T, client *ethclient.Client, token common.Address, method string, args ...any) []any {
	t.Helper()
	out, err := client.CallContract(testContext(t), ethereum.CallMsg{To: &token, Data: pack(t, method, args...)}, nil)
	if err != nil {
		t.Fatalf("eth_call %s: %v", method, err)
	}
	values, err := tokenABI.Unpack(method, out)
	if err != nil {
		t.Fatalf("unpack %s: %v", method, err)
	}
	return values
}

func balance(t *testing.T, client *ethclient.Client, token, who common.Address) *big.Int {
	t.Helper()
	return call(t, client, token, "balanceOf", who)[0].(*big.Int)
}

// send signs and sends an EIP-1559 transaction, then waits for it to be
// mined: nobody seals blocks by hand, so a receipt must appear by itself.
func send(t *testing.T, client *ethclient.Client, c *devchain.Chain, key *ecdsa.PrivateKey, to common.Address, data []byte) *types.Receipt {
	t.Helper()
	ctx := testContext(t)
	nonce, err := client.PendingNonceAt(ctx, address(key))
	if err != nil {
		t.Fatalf("nonce: %v", err)
	}
	gas, err := client.EstimateGas(ctx, ethereum.CallMsg{From: address(key), To: &to, Data: data})
	if err != nil {
		t.Fatalf("estimate gas: %v", err)
	}
	return waitMined(t, client, sendAsync(t, client, c, key, nonce, gas, to, data))
}

// sendAsync signs and sends a transaction without waiting for it.
func sendAsync(t *testing.T, client *ethclient.Client, c *devchain.Chain, key *ecdsa.PrivateKey, nonce, gas uint64, to common.Address, data []byte) common.Hash {
	t.Helper()
	ctx := testContext(t)
	head, err := client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	tip, err := client.SuggestGasTipCap(ctx)
	if err != nil {
		t.Fatalf("tip: %v", err)
	}
	chainID := new(big.Int).SetUint64(c.ChainID)
	tx := types.MustSignNewTx(key, types.LatestSignerForChainID(chainID), &types.DynamicFeeTx{
		ChainID:   chainID,
		Nonce:     nonce,
		GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip),
		Gas:       gas,
		To:        &to,
		Data:      data,
	})
	if err := client.SendTransaction(ctx, tx); err != nil {
		t.Fatalf("send: %v", err)
	}
	return tx.Hash()
}

// waitMined polls for a successful receipt for up to mineTimeout.
func waitMined(t *testing.T, client *ethclient.Client, hash common.Hash) *types.Receipt {
	t.Helper()
	deadline := time.Now().Add(mineTimeout)
	for {
		rc, err := client.TransactionReceipt(testContext(t), hash)
		if err == nil {
			if rc.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("transaction %s reverted", hash)
			}
			return rc
		}
		// go-ethereum indexes transactions in the background after each
		// block and answers "indexing in progress" for unknown hashes until
		// it has caught up: like "not found", that means "not yet".
		if !errors.Is(err, ethereum.NotFound) && !strings.Contains(err.Error(), "transaction indexing is in progress") {
			t.Fatalf("receipt: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %s not mined within %v", hash, mineTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type auth struct {
	from, to                       common.Address
	value, validAfter, validBefore *big.Int
	nonce                          [32]byte
}

// newAuth is a payment from the chain's payer to its payee, valid from now
// for a minute, with a random nonce.
func newAuth(c *devchain.Chain, value *big.Int) auth {
	a := auth{
		from:        address(c.Payer),
		to:          address(c.Payee),
		value:       value,
		validAfter:  big.NewInt(0),
		validBefore: big.NewInt(time.Now().Add(time.Minute).Unix()),
	}
	rand.Read(a.nonce[:])
	return a
}

func (a auth) message() apitypes.TypedDataMessage {
	return apitypes.TypedDataMessage{
		"from":        a.from.Hex(),
		"to":          a.to.Hex(),
		"value":       a.value,
		"validAfter":  a.validAfter,
		"validBefore": a.validBefore,
		"nonce":       a.nonce[:],
	}
}

func typedData(token common.Address, chainID uint64, primaryType string, msg apitypes.TypedDataMessage) apitypes.TypedData {
	authFields := []apitypes.Type{
		{Name: "from", Type: "address"},
		{Name: "to", Type: "address"},
		{Name: "value", Type: "uint256"},
		{Name: "validAfter", Type: "uint256"},
		{Name: "validBefore", Type: "uint256"},
		{Name: "nonce", Type: "bytes32"},
	}
	return apitypes.TypedData{
		Types: apitypes.Types{
			"EIP712Domain": {
				{Name: "name", Type: "string"},
				{Name: "version", Type: "string"},
				{Name: "chainId", Type: "uint256"},
				{Name: "verifyingContract", Type: "address"},
			},
			"TransferWithAuthorization": authFields,
			"ReceiveWithAuthorization":  authFields,
			"CancelAuthorization":       {{Name: "authorizer", Type: "address"}, {Name: "nonce", Type: "bytes32"}},
		},
		PrimaryType: primaryType,
		Domain: apitypes.TypedDataDomain{
			Name:              devchain.TokenName,
			Version:           devchain.TokenVersion,
			ChainId:           math.NewHexOrDecimal256(int64(chainID)),
			VerifyingContract: token.Hex(),
		},
		Message: msg,
	}
}

func digest(t *testing.T, td apitypes.TypedData) []byte {
	t.Helper()
	h, _, err := apitypes.TypedDataAndHash(td)
	if err != nil {
		t.Fatalf("EIP-712 hash: %v", err)
	}
	return h
}

// sign returns the 65-byte r||s||v signature with v in {27, 28}, as wallets
// and contracts expect.
func sign(t *testing.T, key *ecdsa.PrivateKey, td apitypes.TypedData) []byte {
	t.Helper()
	sig, err := crypto.Sign(digest(t, td), key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	sig[64] += 27
	return sig
}

// highS returns the other valid signature of the same message: (r, n-s) with
// the recovery id flipped.
func highS(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	s := new(big.Int).SetBytes(sig[32:64])
	new(big.Int).Sub(secp256k1N, s).FillBytes(out[32:64])
	out[64] = 55 - sig[64] // 27 <-> 28
	return out
}

// withRawV returns sig with v as go-ethereum's recovery id, 0 or 1.
func withRawV(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	out[64] -= 27
	return out
}

func hasTransferLog(rc *types.Receipt, token, from, to common.Address, value *big.Int) bool {
	topic := tokenABI.Events["Transfer"].ID
	for _, l := range rc.Logs {
		if l.Address == token && len(l.Topics) == 3 && l.Topics[0] == topic &&
			common.BytesToAddress(l.Topics[1].Bytes()) == from && common.BytesToAddress(l.Topics[2].Bytes()) == to &&
			new(big.Int).SetBytes(l.Data).Cmp(value) == 0 {
			return true
		}
	}
	return false
}

func address(key *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(key.PublicKey) }
