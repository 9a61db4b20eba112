package evm_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

const (
	price     = 1000   // 0.001 USDC
	dearPrice = 10_000 // 0.01 USDC, on /dear/
)

// rig is a paywalled upstream on the embedded chain with real parts only:
// the devchain, the EVM exact scheme, the x402 rail, the SQLite journal.
type rig struct {
	chain   *devchain.Chain
	evm     *evm.Chain
	client  *ethclient.Client
	store   *sqlite.Store
	srv     *httptest.Server
	payer   *eip3009.Key
	payee   common.Address
	calls   sync.Map // path → count of upstream calls
	reqs    x402.PaymentRequirements
	upCalls int
	mu      sync.Mutex
	// onUpstream, if set, runs inside the upstream handler before it answers.
	onUpstream func(req *http.Request)
	// ws, if set, serves the upstream's /ws/ paths.
	ws http.Handler
	// upHeader, if set, is the upstream's response headers.
	upHeader http.Header
	// onHeader, if set, runs inside the upstream handler once its status
	// line is written, before the body.
	onHeader func()
	// answer, if set, answers in the upstream handler's place.
	answer http.HandlerFunc
	// onStep, if set, sees every payment step boundary.
	onStep func(step string, p *coinop.Payment)
	pw     *paywall.Paywall
	// batcher, when set before handler is built, batches async settlements.
	batcher common.Address
	// exposure is the async routes' cap; 2 prices unless set.
	exposure *big.Int
	// batchWindow, when set before handler is built, is the paywall's
	// BatchWindow.
	batchWindow time.Duration
	// receiptTimeout, when set before newFaultRigWith builds its chain, is
	// that chain's ReceiptTimeout; 15 s unless set.
	receiptTimeout time.Duration
}

func newRig(t *testing.T) *rig {
	t.Helper()
	chain, cl := startDev(t, devchain.Config{})
	var err error
	r := &rig{chain: chain, client: cl, payee: crypto.PubkeyToAddress(chain.Payee.PublicKey)}
	if r.evm, err = evm.NewChain(evm.ChainConfig{ChainID: chain.ChainID, Backend: cl, SettlementKey: chain.Settler, ReceiptTimeout: 15 * time.Second}); err != nil {
		t.Fatal(err)
	}
	r.payer = key(t, chain.Payer)
	if r.store, err = sqlite.Open(filepath.Join(t.TempDir(), "j.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	r.srv = httptest.NewServer(r.handler(t, r.evm))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rig) handler(t *testing.T, ch *evm.Chain) http.Handler {
	exact, err := evm.NewExact(ch, evm.ExactConfig{Asset: r.chain.Token, Name: devchain.TokenName, Version: devchain.TokenVersion, PayTo: r.payee, BatchSettler: r.batcher})
	if err != nil {
		t.Fatal(err)
	}
	r.reqs = exact.Requirements(coinop.Charge{Price: coinop.Price{Amount: big.NewInt(price), Symbol: "USDC", Decimals: 6}})
	rail := &x402.Rail{Schemes: []x402.Scheme{exact}}
	usdc := coinop.Price{Amount: big.NewInt(price), Symbol: "USDC", Decimals: 6}
	pw, err := paywall.New(paywall.Config{
		Journal:     r.store,
		BatchWindow: r.batchWindow,
		Routes: []paywall.Route{
			{Pattern: "/paid/", Accept: []paywall.Accept{{Rail: rail, Price: usdc}}},
			{Pattern: "/async/", Accept: []paywall.Accept{{Rail: rail, Price: usdc, AsyncExposure: r.exposureCap()}}, Settlement: coinop.ModeAsync},
			{Pattern: "/ws/", Accept: []paywall.Accept{{Rail: rail, Price: usdc}}, Upgrade: true},
			{Pattern: "/dear/", Accept: []paywall.Accept{{Rail: rail, Price: coinop.Price{Amount: big.NewInt(dearPrice), Symbol: "USDC", Decimals: 6}}}},
		},
		OnStep: func(step string, p *coinop.Payment) {
			r.mu.Lock()
			hook := r.onStep
			r.mu.Unlock()
			if hook != nil {
				hook(step, p)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(context.Background()) })
	r.pw = pw
	return pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.upCalls++
		hook, header, ws, answer := r.onUpstream, r.upHeader, r.ws, r.answer
		r.mu.Unlock()
		if hook != nil {
			hook(req)
		}
		if ws != nil && strings.HasPrefix(req.URL.Path, "/ws/") {
			ws.ServeHTTP(w, req)
			return
		}
		if answer != nil {
			answer(w, req)
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		status, _ := strconv.Atoi(req.URL.Query().Get("status"))
		if status == 0 {
			status = 200
		}
		w.WriteHeader(status)
		r.mu.Lock()
		after := r.onHeader
		r.mu.Unlock()
		if after != nil {
			after()
		}
		fmt.Fprintf(w, "upstream says %d\n", status)
	}))
}

func (r *rig) exposureCap() *big.Int {
	if r.exposure != nil {
		return r.exposure
	}
	return big.NewInt(2 * price)
}

func key(t *testing.T, k *ecdsa.PrivateKey) *eip3009.Key {
	t.Helper()
	ek, err := eip3009.NewKey(crypto.FromECDSA(k))
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

// payment is a payment under construction: tests change fields before
// signing (or after, to break the signature).
type payment struct {
	accepted x402.PaymentRequirements
	auth     eip3009.Authorization
	signer   *eip3009.Key
	domain   eip3009.Domain
	sig      []byte
}

func (r *rig) newPayment(t *testing.T) *payment {
	p := &payment{accepted: r.reqs, signer: r.payer,
		domain: eip3009.Domain{Name: devchain.TokenName, Version: devchain.TokenVersion, ChainID: r.chain.ChainID, VerifyingContract: eip3009.Address(r.chain.Token)}}
	p.auth = eip3009.Authorization{
		From: r.payer.Address(), To: eip3009.Address(r.payee), Value: big.NewInt(price),
		ValidAfter: big.NewInt(0), ValidBefore: big.NewInt(time.Now().Unix() + 60),
	}
	copy(p.auth.Nonce[:], crypto.Keccak256([]byte(t.Name()), []byte(time.Now().String())))
	return p
}

func (p *payment) sign() {
	s := p.signer.Sign(p.auth.Digest(p.domain.Separator()))
	p.sig = s[:]
}

func (p *payment) header(t *testing.T) string {
	if p.sig == nil {
		p.sign()
	}
	pl, _ := json.Marshal(x402.ExactEVMPayload{
		Signature: "0x" + hex.EncodeToString(p.sig),
		Authorization: x402.ExactAuthorization{
			From: p.auth.From.Hex(), To: p.auth.To.Hex(), Value: p.auth.Value.String(),
			ValidAfter: p.auth.ValidAfter.String(), ValidBefore: p.auth.ValidBefore.String(),
			Nonce: "0x" + hex.EncodeToString(p.auth.Nonce[:]),
		},
	})
	h, err := x402.EncodeHeader(x402.PaymentPayload{X402Version: 2, Accepted: p.accepted, Payload: pl})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type answer struct {
	status  int
	reason  string
	body    string
	settled x402.SettleResponse
	header  http.Header
}

func (r *rig) get(t *testing.T, path, name, value string) answer {
	t.Helper()
	h := http.Header{}
	if name != "" {
		h.Set(name, value)
	}
	a, err := r.fetch(t, path, h)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fetch GETs path with headers h; the error is the connection's.
func (r *rig) fetch(t *testing.T, path string, h http.Header) (answer, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(b), header: resp.Header}
	var prob struct{ Reason string }
	if json.Unmarshal(b, &prob) == nil {
		a.reason = prob.Reason
	}
	if h := resp.Header.Get(x402.HeaderPaymentResponse); h != "" {
		if err := x402.DecodeHeader(h, &a.settled); err != nil {
			t.Fatal(err)
		}
	}
	return a, nil
}

func (r *rig) balance(t *testing.T, who common.Address) *big.Int {
	t.Helper()
	b, err := r.evm.BalanceOf(context.Background(), r.chain.Token, who)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPayAndSettle(t *testing.T) {
	r := newRig(t)
	payer := common.Address(r.payer.Address())
	payerBefore, payeeBefore := r.balance(t, payer), r.balance(t, r.payee)

	a := r.get(t, "/paid/x", "", "")
	if a.status != 402 || a.header.Get(x402.HeaderPaymentRequired) == "" || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("unpaid: %d %v", a.status, a.header)
	}
	p := r.newPayment(t)
	h := p.header(t)
	a = r.get(t, "/paid/x", x402.HeaderPaymentSignature, h)
	if a.status != 200 || !a.settled.Success || a.settled.Transaction == "" {
		t.Fatalf("paid: %d %q %+v", a.status, a.body, a.settled)
	}
	if d := new(big.Int).Sub(payerBefore, r.balance(t, payer)); d.Int64() != price {
		t.Errorf("payer paid %s, want %d", d, price)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), payeeBefore); d.Int64() != price {
		t.Errorf("payee got %s, want %d", d, price)
	}
	rc, err := r.client.TransactionReceipt(context.Background(), common.HexToHash(a.settled.Transaction))
	if err != nil || rc.Status != 1 {
		t.Fatalf("receipt %v %v", rc, err)
	}

	// The same header again: refused, and no second transfer.
	a = r.get(t, "/paid/x", x402.HeaderPaymentSignature, h)
	if a.status != 402 || a.reason != "payment_replayed" {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), payeeBefore); d.Int64() != price {
		t.Errorf("after replay payee got %s in all, want %d", d, price)
	}
	pm, err := r.store.List(context.Background(), coinop.StateSettled, 10)
	if err != nil || len(pm) != 1 || pm[0].Reference != a.settled.Transaction && pm[0].Reference == "" {
		t.Fatalf("journal: %v %v", pm, err)
	}
}

func TestVerifierRejects(t *testing.T) {
	r := newRig(t)
	other, _ := crypto.GenerateKey()
	otherKey := key(t, other)
	n := new(big.Int).Set(crypto.S256().Params().N)
	cases := []struct {
		name   string
		change func(p *payment)
		status int
		reason string
	}{
		{"wrong amount", func(p *payment) { p.auth.Value = big.NewInt(price - 1) }, 402, x402.ReasonValueMismatch},
		{"wrong payTo", func(p *payment) { p.auth.To = otherKey.Address() }, 402, x402.ReasonRecipientMismatch},
		{"wrong asset", func(p *payment) { p.accepted.Asset = otherKey.Address().Hex() }, 402, x402.ReasonAssetMismatch},
		{"wrong chain", func(p *payment) { p.accepted.Network = "eip155:1" }, 402, x402.ReasonNetworkMismatch},
		{"wrong scheme", func(p *payment) { p.accepted.Scheme = "upto" }, 402, x402.ReasonUnsupportedScheme},
		{"expired", func(p *payment) { p.auth.ValidBefore = big.NewInt(time.Now().Unix() - 1) }, 402, x402.ReasonValidBefore},
		{"within the settlement buffer", func(p *payment) { p.auth.ValidBefore = big.NewInt(time.Now().Unix() + 3) }, 402, x402.ReasonValidBefore},
		{"not yet valid", func(p *payment) { p.auth.ValidAfter = big.NewInt(time.Now().Unix() + 120) }, 402, x402.ReasonValidAfter},
		{"signed by someone else", func(p *payment) { p.signer = otherKey }, 402, x402.ReasonInvalidSignature},
		{"signed for another domain", func(p *payment) { p.domain.Version = "1" }, 402, x402.ReasonInvalidSignature},
		{"high-S signature", func(p *payment) {
			p.sign()
			s := new(big.Int).SetBytes(p.sig[32:64])
			new(big.Int).Sub(n, s).FillBytes(p.sig[32:64])
			p.sig[64] = 55 - p.sig[64] // 27 <-> 28
		}, 402, x402.ReasonSignatureFormat},
		{"short signature", func(p *payment) { p.sign(); p.sig = p.sig[:64] }, 402, x402.ReasonSignatureFormat},
		{"unfunded payer", func(p *payment) { p.signer = otherKey; p.auth.From = otherKey.Address() }, 402, x402.ReasonInsufficientFunds},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := r.newPayment(t)
			c.change(p)
			a := r.get(t, "/paid/"+t.Name(), x402.HeaderPaymentSignature, p.header(t))
			if a.status != c.status || a.reason != c.reason {
				t.Fatalf("got %d %q, want %d %q\n%s", a.status, a.reason, c.status, c.reason, a.body)
			}
			if a.header.Get(x402.HeaderPaymentRequired) == "" {
				t.Error("a refused payment must come with a fresh offer")
			}
		})
	}
	if r.upCalls != 0 {
		t.Errorf("the upstream was called %d times for refused payments", r.upCalls)
	}
}

func TestMalformedHeader(t *testing.T) {
	r := newRig(t)
	for name, v := range map[string]string{
		"not base64":    "%%%",
		"not json":      base64.StdEncoding.EncodeToString([]byte("{nope")),
		"wrong shape":   base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2,"accepted":[],"payload":{}}`)),
		"no payload":    base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2,"accepted":{"scheme":"exact"}}`)),
		"payload shape": base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2,"accepted":{"scheme":"exact","network":"eip155:1337","asset":"` + r.reqs.Asset + `"},"payload":{"signature":5}}`)),
	} {
		t.Run(name, func(t *testing.T) {
			a := r.get(t, "/paid/m", x402.HeaderPaymentSignature, v)
			if a.status != 400 || a.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %s %s", a.status, a.header.Get("Content-Type"), a.body)
			}
			if a.reason == "" {
				t.Fatalf("no reason in %s", a.body)
			}
		})
	}
}

func TestUpstreamFailureIsNotCharged(t *testing.T) {
	r := newRig(t)
	before := r.balance(t, r.payee)
	p := r.newPayment(t)
	h := p.header(t)
	a := r.get(t, "/paid/x?status=500", x402.HeaderPaymentSignature, h)
	if a.status != 500 || a.settled.Transaction != "" {
		t.Fatalf("got %d %+v", a.status, a.settled)
	}
	if got := r.balance(t, r.payee); got.Cmp(before) != 0 {
		t.Fatalf("payee balance moved from %s to %s on a failed upstream", before, got)
	}
	// Nothing was charged, so the same payment may be used again.
	a = r.get(t, "/paid/x", x402.HeaderPaymentSignature, h)
	if a.status != 200 || !a.settled.Success {
		t.Fatalf("retry: %d %s", a.status, a.body)
	}
}

func TestNonceUsedOnChain(t *testing.T) {
	r := newRig(t)
	p := r.newPayment(t)
	h := p.header(t)
	if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, h); a.status != 200 {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	// A second gateway with its own, empty journal must still refuse it.
	r2 := &rig{chain: r.chain, payee: r.payee, payer: r.payer}
	var err error
	if r2.store, err = sqlite.Open(filepath.Join(t.TempDir(), "j2.db")); err != nil {
		t.Fatal(err)
	}
	defer r2.store.Close()
	srv := httptest.NewServer(r2.handler(t, r.evm))
	defer srv.Close()
	r2.srv = srv
	if a := r2.get(t, "/paid/x", x402.HeaderPaymentSignature, h); a.status != 402 || a.reason != x402.ReasonNonceUsed {
		t.Fatalf("second gateway: %d %s", a.status, a.body)
	}
}

func TestConcurrentDuplicatesServedOnce(t *testing.T) {
	r := newRig(t)
	before := r.balance(t, r.payee)
	h := r.newPayment(t).header(t)
	const n = 20
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- r.get(t, "/paid/x", x402.HeaderPaymentSignature, h).status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[200] != 1 || counts[402]+counts[409] != n-1 {
		t.Fatalf("statuses %v, want one 200 and the rest 402/409", counts)
	}
	if r.upCalls != 1 {
		t.Fatalf("upstream served %d times", r.upCalls)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != price {
		t.Fatalf("payee got %s, want %d", d, price)
	}
}

func TestChainDownFailsClosed(t *testing.T) {
	r := newRig(t)
	dead, err := ethclient.Dial("http://127.0.0.1:1") // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: r.chain.ChainID, Backend: dead, SettlementKey: r.chain.Settler})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.handler(t, ch))
	defer srv.Close()
	r.srv = srv
	a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, r.newPayment(t).header(t))
	if a.status != 503 || a.header.Get("Retry-After") == "" || a.reason != x402.ReasonChainUnavailable {
		t.Fatalf("got %d %v %s", a.status, a.header, a.body)
	}
	if r.upCalls != 0 {
		t.Fatal("the upstream was called while the chain was down")
	}
}

// TestSettleFailureWithholdsResponse front-runs the payer's authorization
// on chain while the upstream runs, so settlement fails: the client must get
// a 402 with a failed PAYMENT-RESPONSE and never the upstream's body.
func TestSettleFailureWithholdsResponse(t *testing.T) {
	r := newRig(t)
	p := r.newPayment(t)
	h := p.header(t)
	r.onUpstream = func(*http.Request) { r.sendAuthorization(t, p) }
	a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, h)
	if a.status != 402 || a.settled.Success || a.settled.ErrorReason == "" || strings.Contains(a.body, "upstream says") {
		t.Fatalf("got %d %+v\n%s", a.status, a.settled, a.body)
	}
	pm, err := r.store.List(context.Background(), coinop.StateFailed, 10)
	if err != nil || len(pm) != 1 {
		t.Fatalf("journal failed entries: %v %v", pm, err)
	}
}

var tokenABI = func() abi.ABI {
	a, err := abi.JSON(strings.NewReader(`[{"type":"function","name":"transferWithAuthorization","stateMutability":"nonpayable","inputs":[
  {"name":"from","type":"address"},{"name":"to","type":"address"},{"name":"value","type":"uint256"},
  {"name":"validAfter","type":"uint256"},{"name":"validBefore","type":"uint256"},{"name":"nonce","type":"bytes32"},
  {"name":"v","type":"uint8"},{"name":"r","type":"bytes32"},{"name":"s","type":"bytes32"}],"outputs":[]}]`))
	if err != nil {
		panic(err)
	}
	return a
}()

// sendTx sends a transaction from key and waits for its successful receipt.
func sendTx(t *testing.T, cl *ethclient.Client, key *ecdsa.PrivateKey, chainID uint64, to common.Address, data []byte) common.Hash {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx := signTx(t, cl, key, chainID, to, data)
	if err := cl.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	for {
		if rc, err := cl.TransactionReceipt(ctx, tx.Hash()); err == nil {
			if rc.Status != 1 {
				t.Fatalf("transaction reverted")
			}
			return tx.Hash()
		}
		select {
		case <-ctx.Done():
			t.Fatal("no receipt")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// signTx signs, without sending, a transaction from key at its account's
// pending nonce.
func signTx(t *testing.T, cl *ethclient.Client, key *ecdsa.PrivateKey, chainID uint64, to common.Address, data []byte) *types.Transaction {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := cl.PendingNonceAt(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	head, err := cl.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(new(big.Int).SetUint64(chainID)), &types.DynamicFeeTx{
		ChainID: new(big.Int).SetUint64(chainID), Nonce: nonce, GasTipCap: big.NewInt(1e9),
		GasFeeCap: new(big.Int).Add(big.NewInt(1e9), new(big.Int).Mul(head.BaseFee, big.NewInt(2))), Gas: 500000, To: &to, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tx
}
