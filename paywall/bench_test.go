package paywall_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/x402"
)

// instantChain is a node that answers at once: every simulation succeeds and
// every settlement transaction is mined with the token's Transfer event. The
// benchmarks measure the engine, the rail and the journal; the bench in
// bench/ measures the node too.
type instantChain struct {
	evm.Backend // methods the paths measured here never call
	token       common.Address
	mu          sync.Mutex
	receipts    map[common.Hash]*types.Receipt
}

var transferTopic = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))

func (c *instantChain) CallContract(context.Context, ethereum.CallMsg, *big.Int) ([]byte, error) {
	return nil, nil
}
func (c *instantChain) EstimateGas(context.Context, ethereum.CallMsg) (uint64, error) {
	return 80_000, nil
}
func (c *instantChain) PendingNonceAt(context.Context, common.Address) (uint64, error) { return 0, nil }
func (c *instantChain) SuggestGasTipCap(context.Context) (*big.Int, error)             { return big.NewInt(1), nil }
func (c *instantChain) HeaderByNumber(context.Context, *big.Int) (*types.Header, error) {
	return &types.Header{BaseFee: big.NewInt(1)}, nil
}
func (c *instantChain) NonceAt(context.Context, common.Address, *big.Int) (uint64, error) {
	return 0, nil
}

// SendTransaction mines tx: transferWithAuthorization(from, to, value, …)
// moves value from from to to.
func (c *instantChain) SendTransaction(_ context.Context, tx *types.Transaction) error {
	d := tx.Data()
	log := &types.Log{Address: c.token, Topics: []common.Hash{transferTopic,
		common.BytesToHash(d[4:36]), common.BytesToHash(d[36:68])}, Data: common.CopyBytes(d[68:100])}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.receipts[tx.Hash()] = &types.Receipt{Status: types.ReceiptStatusSuccessful, TxHash: tx.Hash(), Logs: []*types.Log{log}}
	return nil
}

func (c *instantChain) TransactionReceipt(_ context.Context, h common.Hash) (*types.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc, ok := c.receipts[h]; ok {
		return rc, nil
	}
	return nil, ethereum.NotFound
}

// benchEngine is the paywall with the x402 rail and the exact scheme on an
// instantChain, the SQLite journal in dir, and GET /paid priced at 1000
// atomic units in front of a handler that writes 1 KiB.
type benchEngine struct {
	handler http.Handler
	reqs    x402.PaymentRequirements
	payer   *eip3009.Key
	nonce   uint64
}

const benchChainID = 84532

func newBenchEngine(b *testing.B, dir string) *benchEngine {
	b.Helper()
	return newBenchEngineRoute(b, dir, coinop.ModeSync, nil)
}

// newBenchEngineRoute is newBenchEngine with GET /paid settled in mode
// settlement, within cap (see paywall.Accept.AsyncExposure).
func newBenchEngineRoute(b *testing.B, dir, settlement string, cap *big.Int) *benchEngine {
	b.Helper()
	token := common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
	settler, _ := crypto.HexToECDSA("8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63")
	ch, err := evm.NewChain(evm.ChainConfig{ChainID: benchChainID, SettlementKey: settler, PollInterval: time.Millisecond,
		Backend: &instantChain{token: token, receipts: map[common.Hash]*types.Receipt{}}})
	if err != nil {
		b.Fatal(err)
	}
	exact, err := evm.NewExact(ch, evm.ExactConfig{Asset: token, Name: "USDC", Version: "2",
		PayTo: common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C"), MaxTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	journal, err := sqlite.Open(filepath.Join(dir, "journal.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { journal.Close() })
	price := coinop.Price{Amount: big.NewInt(1000), Symbol: "USDC", Decimals: 6}
	pw, err := paywall.New(paywall.Config{
		Journal: journal,
		Logger:  slog.New(slog.DiscardHandler),
		Routes: []paywall.Route{{Pattern: "GET /paid", Description: "bench document", MimeType: "application/json", Settlement: settlement,
			Accept: []paywall.Accept{{Rail: &x402.Rail{Schemes: []x402.Scheme{exact}}, Price: price, AsyncExposure: cap}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pw.Close(context.Background()) })
	doc := make([]byte, 1024)
	payerKey, _ := crypto.HexToECDSA("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	return &benchEngine{
		handler: pw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) })),
		reqs:    exact.Requirements(coinop.Charge{Price: price}),
		payer:   mustKey(b, payerKey),
	}
}

func mustKey(b *testing.B, k *ecdsa.PrivateKey) *eip3009.Key {
	key, err := eip3009.NewKey(crypto.FromECDSA(k))
	if err != nil {
		b.Fatal(err)
	}
	return key
}

// pay signs a new payment (its own nonce) for GET /paid.
func (e *benchEngine) pay(b *testing.B) string {
	e.nonce++
	asset, _ := eip3009.ParseAddress(e.reqs.Asset)
	payTo, _ := eip3009.ParseAddress(e.reqs.PayTo)
	a := eip3009.Authorization{From: e.payer.Address(), To: payTo, Value: big.NewInt(1000),
		ValidAfter: new(big.Int), ValidBefore: big.NewInt(time.Now().Unix() + 3600)}
	new(big.Int).SetUint64(e.nonce).FillBytes(a.Nonce[:])
	sig := e.payer.Sign(a.Digest(eip3009.Domain{Name: "USDC", Version: "2", ChainID: benchChainID, VerifyingContract: asset}.Separator()))
	pl, _ := json.Marshal(x402.ExactEVMPayload{Signature: "0x" + hex.EncodeToString(sig[:]),
		Authorization: x402.ExactAuthorization{From: a.From.Hex(), To: a.To.Hex(), Value: "1000", ValidAfter: "0",
			ValidBefore: a.ValidBefore.String(), Nonce: "0x" + hex.EncodeToString(a.Nonce[:])}})
	h, err := x402.EncodeHeader(x402.PaymentPayload{X402Version: 2, Accepted: e.reqs, Payload: pl})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// paid times one paid request per iteration, each with a payment signed
// outside the timer.
func (e *benchEngine) paid(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		payment := e.pay(b)
		b.StartTimer()
		e.get(b, payment, http.StatusOK)
	}
}

func (e *benchEngine) get(b *testing.B, payment string, want int) {
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/paid", nil)
	if payment != "" {
		req.Header.Set(x402.HeaderPaymentSignature, payment)
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("status %d, want %d: %s", w.Code, want, w.Body)
	}
}

// BenchmarkChallenge is the 402 answer to a request without payment: the
// PAYMENT-REQUIRED header, the problem body with the offers, the v1 members.
func BenchmarkChallenge(b *testing.B) {
	e := newBenchEngine(b, b.TempDir())
	b.ReportAllocs()
	for b.Loop() {
		e.get(b, "", http.StatusPaymentRequired)
	}
}

// BenchmarkPaid is one paid request through the middleware: decode, checks,
// signature recovery, simulation (instant), reservation in the journal, the
// handler, settlement (instant chain, real transaction signing) and its
// journal transitions. The payer's signature is made outside the timer.
// journal=disk fsyncs every journal write, as in production; journal=tmpfs
// keeps the journal in memory to show the engine's own cost.
func BenchmarkPaid(b *testing.B) {
	bases := benchBases(b)
	for _, name := range []string{"disk", "tmpfs"} {
		base, ok := bases[name]
		if !ok {
			continue
		}
		b.Run("journal="+name, func(b *testing.B) {
			// A journal per run: the testing package runs this function
			// more than once, and each run's payments start at nonce 1.
			dir, err := os.MkdirTemp(base, "run-")
			if err != nil {
				b.Fatal(err)
			}
			newBenchEngine(b, dir).paid(b)
		})
	}
}

// BenchmarkPaidAsync is BenchmarkPaid on an async route: cap=room serves
// every payment before it settles (the journal counts the payer's exposure,
// and finds room, at each request; settlements run in the background
// meanwhile), cap=full has a cap below the price, so each payment is
// counted and then settled synchronously. journal= as in BenchmarkPaid.
func BenchmarkPaidAsync(b *testing.B) {
	bases := benchBases(b)
	for _, c := range []struct {
		name string
		cap  *big.Int
	}{
		{"room", new(big.Int).Lsh(big.NewInt(1), 128)},
		{"full", big.NewInt(999)},
	} {
		for _, name := range []string{"disk", "tmpfs"} {
			base, ok := bases[name]
			if !ok {
				continue
			}
			b.Run("cap="+c.name+"/journal="+name, func(b *testing.B) {
				dir, err := os.MkdirTemp(base, "run-")
				if err != nil {
					b.Fatal(err)
				}
				newBenchEngineRoute(b, dir, coinop.ModeAsync, c.cap).paid(b)
			})
		}
	}
}

// benchBases are the directories journals are kept in: "disk", and "tmpfs"
// where /dev/shm exists.
func benchBases(b *testing.B) map[string]string {
	bases := map[string]string{"disk": b.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "coinop-bench-"); err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			bases["tmpfs"] = d
		}
	}
	return bases
}
