package evm_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/contracts"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/evm/anvil"
	"github.com/coinop/coinop/evm/devchain"
	"github.com/coinop/coinop/x402"
)

func (r *rig) batchItem(t *testing.T, p *payment) evm.BatchItem {
	t.Helper()
	if p.sig == nil {
		p.sign()
	}
	it, err := evm.NewBatchItem(r.chain.Token, p.auth, p.sig)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func (r *rig) used(t *testing.T, p *payment) bool {
	t.Helper()
	used, err := r.evm.AuthorizationUsed(context.Background(), r.chain.Token, common.Address(p.auth.From), p.auth.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	return used
}

func TestSettleBatch(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	payer := common.Address(r.payer.Address())
	payerBefore, payeeBefore := r.balance(t, payer), r.balance(t, r.payee)

	const n = 20
	pays := make([]*payment, n)
	items := make([]evm.BatchItem, n)
	for i := range items {
		pays[i] = r.newPayment(t)
		pays[i].auth.Nonce[31] = byte(i)
		items[i] = r.batchItem(t, pays[i])
	}
	var recorded string
	tx, results, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, items, func(tx, raw string) error {
		recorded = tx
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if recorded != tx {
		t.Errorf("recorded %q before sending, settled in %q", recorded, tx)
	}
	if len(results) != n {
		t.Fatalf("%d results for %d items", len(results), n)
	}
	for i, res := range results {
		if !res.Settled || res.Reason != "" || !r.used(t, pays[i]) {
			t.Errorf("item %d: %+v, authorization used: %v", i, res, r.used(t, pays[i]))
		}
	}
	if d := new(big.Int).Sub(payerBefore, r.balance(t, payer)); d.Int64() != n*price {
		t.Errorf("payer paid %s, want %d", d, n*price)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), payeeBefore); d.Int64() != n*price {
		t.Errorf("payee got %s, want %d", d, n*price)
	}
	rc, err := r.client.TransactionReceipt(ctx, common.HexToHash(tx))
	if err != nil || rc.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("receipt %v %v", rc, err)
	}
	t.Logf("%d payments in one transaction: %d gas, %d per payment", n, rc.GasUsed, rc.GasUsed/n)
	// Every transfer is audit-visible as an ordinary token Transfer.
	if err := r.evm.TransferCheck(ctx, tx, r.chain.Token, payer, r.payee, big.NewInt(price)); err != nil {
		t.Error(err)
	}
}

// TestSettleBatchMixed settles one batch of good and bad authorizations:
// each bad one fails alone with the token's reason, the good ones move the
// money, and the transaction itself succeeds.
func TestSettleBatchMixed(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	stranger, _ := crypto.GenerateKey()
	strangerKey := key(t, stranger)

	// Already used: settled alone through the paywall first.
	replayed := r.newPayment(t)
	if a := r.get(t, "/paid/x", x402.HeaderPaymentSignature, replayed.header(t)); a.status != 200 {
		t.Fatalf("settling alone: %d %s", a.status, a.body)
	}
	payer := common.Address(r.payer.Address())
	payerBefore, payeeBefore := r.balance(t, payer), r.balance(t, r.payee)

	nonce := byte(0)
	pay := func(change func(p *payment)) *payment {
		p := r.newPayment(t)
		nonce++
		p.auth.Nonce[31] = nonce
		if change != nil {
			change(p)
		}
		return p
	}
	now := time.Now().Unix()
	valid := []*payment{pay(nil), pay(nil), pay(nil)}
	cases := []struct {
		name   string
		p      *payment
		reason string // "" for settled
	}{
		{"valid", valid[0], ""},
		{"replayed", replayed, "FiatTokenV2: authorization is used or canceled"},
		{"expired", pay(func(p *payment) { p.auth.ValidBefore = big.NewInt(now - 10) }), "FiatTokenV2: authorization is expired"},
		{"valid", valid[1], ""},
		{"signed by someone else", pay(func(p *payment) { p.signer = strangerKey }), "FiatTokenV2: invalid signature"},
		{"not yet valid", pay(func(p *payment) { p.auth.ValidAfter = big.NewInt(now + 3600) }), "FiatTokenV2: authorization is not yet valid"},
		{"value changed after signing", pay(func(p *payment) { p.sign(); p.auth.Value = big.NewInt(100 * price) }), "FiatTokenV2: invalid signature"},
		{"unfunded payer", pay(func(p *payment) { p.signer = strangerKey; p.auth.From = strangerKey.Address() }), "ERC20: transfer amount exceeds balance"},
		{"valid", valid[2], ""},
		{"duplicate in the batch", valid[0], "FiatTokenV2: authorization is used or canceled"},
	}
	items := make([]evm.BatchItem, len(cases))
	for i, c := range cases {
		items[i] = r.batchItem(t, c.p)
	}
	tx, results, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, items, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		want := evm.BatchResult{Settled: c.reason == "", Reason: c.reason}
		if results[i] != want {
			t.Errorf("item %d (%s): %+v, want %+v", i, c.name, results[i], want)
		}
	}
	for _, c := range cases {
		if c.reason != "" && c.p != replayed && c.p != valid[0] && r.used(t, c.p) {
			t.Errorf("%s: authorization is used", c.name)
		}
	}
	if d := new(big.Int).Sub(payerBefore, r.balance(t, payer)); d.Int64() != 3*price {
		t.Errorf("payer paid %s, want %d", d, 3*price)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), payeeBefore); d.Int64() != 3*price {
		t.Errorf("payee got %s, want %d", d, 3*price)
	}
	if b := r.balance(t, common.Address(strangerKey.Address())); b.Sign() != 0 {
		t.Errorf("stranger holds %s", b)
	}
	rc, err := r.client.TransactionReceipt(ctx, common.HexToHash(tx))
	if err != nil || rc.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("the batch transaction did not succeed: %v %v", rc, err)
	}
}

// TestBatchItemFromCredential batches payments the exact scheme inspected
// and verified, as a gateway that defers settlement would.
func TestBatchItemFromCredential(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	exact, err := evm.NewExact(r.evm, evm.ExactConfig{Asset: r.chain.Token, Name: devchain.TokenName, Version: devchain.TokenVersion, PayTo: r.payee})
	if err != nil {
		t.Fatal(err)
	}
	rail := &x402.Rail{Schemes: []x402.Scheme{exact}}
	charge := coinop.Charge{Price: coinop.Price{Amount: big.NewInt(price), Symbol: "USDC", Decimals: 6}}
	before := r.balance(t, r.payee)
	var items []evm.BatchItem
	for range 3 {
		req, _ := http.NewRequest("GET", "http://127.0.0.1/paid", nil)
		req.Header.Set(x402.HeaderPaymentSignature, r.newPayment(t).header(t))
		p, err := rail.Inspect(req, charge)
		if err != nil {
			t.Fatal(err)
		}
		if err := rail.Verify(ctx, p); err != nil {
			t.Fatal(err)
		}
		it, err := exact.BatchItem(p.Credential.(*x402.Credential))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	if _, results, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, items, nil); err != nil || len(results) != 3 || !results[0].Settled || !results[1].Settled || !results[2].Settled {
		t.Fatalf("results %+v, %v", results, err)
	}
	if d := new(big.Int).Sub(r.balance(t, r.payee), before); d.Int64() != 3*price {
		t.Errorf("payee got %s, want %d", d, 3*price)
	}

	if _, err := exact.BatchItem(&x402.Credential{}); err == nil {
		t.Error("an unchecked credential became a batch item")
	}
	other, err := evm.NewExact(r.evm, evm.ExactConfig{Asset: r.payee, Name: "x", Version: "1", PayTo: r.payee})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1/paid", nil)
	req.Header.Set(x402.HeaderPaymentSignature, r.newPayment(t).header(t))
	p, err := rail.Inspect(req, charge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.BatchItem(p.Credential.(*x402.Credential)); err == nil {
		t.Error("a credential for another asset became a batch item of this one")
	}
}

// TestSettleBatchRefuses covers batches that must not be reported settled:
// refused before sending, sent to something that is not a batch settler, and
// a receipt whose "settled" events the token's logs do not back.
func TestSettleBatchRefuses(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	p := r.newPayment(t)
	good := r.batchItem(t, p)
	before := r.balance(t, r.payee)

	t.Run("empty", func(t *testing.T) {
		if tx, _, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, nil, nil); err == nil || tx != "" {
			t.Fatalf("tx %q, err %v", tx, err)
		}
	})
	t.Run("two tokens", func(t *testing.T) {
		other := good
		other.Token = r.payee
		if tx, _, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, []evm.BatchItem{good, other}, nil); err == nil || tx != "" {
			t.Fatalf("tx %q, err %v", tx, err)
		}
	})
	t.Run("journal fails", func(t *testing.T) {
		boom := errors.New("disk full")
		tx, _, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, []evm.BatchItem{good}, func(string, string) error { return boom })
		if !errors.Is(err, boom) || tx != "" || coinop.KindOf(err) != coinop.KindUnavailable {
			t.Fatalf("tx %q, err %v", tx, err)
		}
	})
	t.Run("not a batch settler", func(t *testing.T) {
		tx, results, err := r.evm.SettleBatch(ctx, r.payee, []evm.BatchItem{good}, nil)
		if err == nil || results != nil || tx == "" || coinop.KindOf(err) != coinop.KindSettleFailed {
			t.Fatalf("tx %q, results %v, err %v", tx, results, err)
		}
	})
	t.Run("token that does nothing", func(t *testing.T) {
		// Runtime code 0x00 (STOP): every call succeeds and logs nothing,
		// so the settler reports the item settled though nothing moved.
		fake := deploy(t, r.client, r.chain.Owner, r.chain.ChainID, common.FromHex("0x600060005360016000f3"))
		forged := good
		forged.Token = fake
		tx, results, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, []evm.BatchItem{forged}, nil)
		if err == nil || results != nil || tx == "" || !strings.Contains(err.Error(), "no AuthorizationUsed and Transfer") {
			t.Fatalf("tx %q, results %v, err %v", tx, results, err)
		}
	})
	if r.used(t, p) || r.balance(t, r.payee).Cmp(before) != 0 {
		t.Fatal("money moved")
	}
	// The refusals left the settlement key's nonces in order.
	if _, results, err := r.evm.SettleBatch(ctx, r.chain.BatchSettler, []evm.BatchItem{good}, nil); err != nil || !results[0].Settled {
		t.Fatalf("after the refusals: %v %v", results, err)
	}
}

// deploy creates a contract from raw creation code and waits for it.
func deploy(t *testing.T, cl *ethclient.Client, key *ecdsa.PrivateKey, chainID uint64, code []byte) common.Address {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hash := sendRaw(t, ctx, cl, key, chainID, pendingNonce(t, ctx, cl, key), nil, code, 200_000)
	rc := receipt(t, ctx, cl, hash)
	if rc.Status != types.ReceiptStatusSuccessful {
		t.Fatal("deployment reverted")
	}
	return rc.ContractAddress
}

func pendingNonce(t *testing.T, ctx context.Context, cl *ethclient.Client, key *ecdsa.PrivateKey) uint64 {
	t.Helper()
	n, err := cl.PendingNonceAt(ctx, crypto.PubkeyToAddress(key.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sendRaw signs and sends a transaction without waiting for it.
func sendRaw(t *testing.T, ctx context.Context, cl *ethclient.Client, key *ecdsa.PrivateKey, chainID, nonce uint64, to *common.Address, data []byte, gas uint64) common.Hash {
	t.Helper()
	head, err := cl.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := new(big.Int).SetUint64(chainID)
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(id), &types.DynamicFeeTx{
		ChainID: id, Nonce: nonce, GasTipCap: big.NewInt(1e9),
		GasFeeCap: new(big.Int).Add(big.NewInt(1e9), new(big.Int).Mul(head.BaseFee, big.NewInt(2))),
		Gas:       gas, To: to, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	return tx.Hash()
}

// receipt polls for a transaction's receipt.
func receipt(t *testing.T, ctx context.Context, cl *ethclient.Client, hash common.Hash) *types.Receipt {
	t.Helper()
	for {
		rc, err := cl.TransactionReceipt(ctx, hash)
		if err == nil {
			return rc
		}
		if !errors.Is(err, ethereum.NotFound) && !strings.Contains(err.Error(), "indexing is in progress") {
			t.Fatalf("receipt %s: %v", hash, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("receipt %s: %v", hash, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestBatchGas measures the gas of settling N payments in one batch against
// N transferWithAuthorization transactions, on the devchain and on anvil (if
// installed), and logs a table per chain. docs/settlement.md has the
// figures and the command.
//
// The mix is a gateway's: N different payers, each with a balance before and
// after, paying one payee that already holds tokens; every authorization has
// a fresh nonce. So per payment the token writes one new nonce slot and
// updates two balances whatever the path, and only the payee's balance is
// shared across a batch.
func TestBatchGas(t *testing.T) {
	if testing.Short() {
		t.Skip("sends a few hundred transactions")
	}
	sizes := []int{1, 10, 50}
	t.Run("devchain", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// No clock bound: a block per transaction at once, and chain time
		// runs ahead of the wall clock (authorizations are valid an hour).
		c, err := devchain.Start(ctx, devchain.Config{MaxClockLead: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, err := ethclient.DialContext(ctx, c.RPCURL)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		t.Log("rules: go-ethereum dev mode, params.AllDevChainProtocolChanges (every fork at genesis, Osaka and Bogota included)")
		measureGas(t, ctx, gasTarget{client: cl, chainID: c.ChainID, token: c.Token, batcher: c.BatchSettler,
			owner: c.Owner, settler: c.Settler, payee: crypto.PubkeyToAddress(c.Payee.PublicKey)}, sizes)
	})
	t.Run("anvil", func(t *testing.T) {
		bin := anvilBinary(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := anvil.Start(ctx, anvil.Config{Binary: bin})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, err := ethclient.DialContext(ctx, c.RPCURL)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var info struct{ HardFork string }
		if err := cl.Client().CallContext(ctx, &info, "anvil_nodeInfo"); err != nil {
			t.Fatal(err)
		}
		t.Logf("rules: anvil's default hardfork %q", info.HardFork)
		batcher, err := devchain.DeployBatchSettler(ctx, cl, c.Owner)
		if err != nil {
			t.Fatal(err)
		}
		measureGas(t, ctx, gasTarget{client: cl, chainID: c.ChainID, token: c.Token, batcher: batcher,
			owner: c.Owner, settler: c.Settler, payee: crypto.PubkeyToAddress(c.Payee.PublicKey)}, sizes)
	})
}

// anvilBinary finds the anvil that scripts/deps/interop.sh installs, or
// skips (fails under COINOP_CI=1).
func anvilBinary(t *testing.T) string {
	t.Helper()
	p, _ := filepath.Abs("../interop/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("COINOP_CI") == "1" {
			t.Fatalf("anvil is not installed (%v); run scripts/deps/interop.sh", err)
		}
		t.Skipf("anvil is not installed (%v); run scripts/deps/interop.sh", err)
	}
	return p
}

// gasTarget is a chain with the token and the batch settler deployed; owner
// may mint and pays for the single transactions, settler sends the batches.
type gasTarget struct {
	client         *ethclient.Client
	chainID        uint64
	token, batcher common.Address
	owner, settler *ecdsa.PrivateKey
	payee          common.Address
}

func measureGas(t *testing.T, ctx context.Context, g gasTarget, sizes []int) {
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: g.chainID, Backend: g.client, SettlementKey: g.settler, ReceiptTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	payers := make([]*eip3009.Key, slices.Max(sizes))
	for i := range payers {
		k, _ := crypto.GenerateKey()
		payers[i] = key(t, k)
		if err := devchain.Mint(ctx, g.client, g.owner, g.token, common.Address(payers[i].Address()), big.NewInt(1_000_000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := devchain.Mint(ctx, g.client, g.owner, g.token, g.payee, big.NewInt(1)); err != nil {
		t.Fatal(err)
	}
	domain := eip3009.Domain{Name: devchain.TokenName, Version: devchain.TokenVersion, ChainID: g.chainID, VerifyingContract: eip3009.Address(g.token)}
	round := 0
	sign := func(payer *eip3009.Key) (eip3009.Authorization, [65]byte) {
		round++
		a := eip3009.Authorization{From: payer.Address(), To: eip3009.Address(g.payee), Value: big.NewInt(price),
			ValidAfter: new(big.Int), ValidBefore: big.NewInt(time.Now().Unix() + 3600)}
		new(big.Int).SetInt64(int64(round)).FillBytes(a.Nonce[:])
		return a, payer.Sign(a.Digest(domain.Separator()))
	}
	payeeBefore, err := chain.BalanceOf(ctx, g.token, g.payee)
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("| N | single: gas per payment | batch: gas per payment | batch / single |")
	t.Logf("|---:|---:|---:|---:|")
	paid := 0
	for _, n := range sizes {
		// N single transactions, sent back to back and mined as they come.
		first := pendingNonce(t, ctx, g.client, g.owner)
		hashes := make([]common.Hash, n)
		for i := range n {
			a, sig := sign(payers[i])
			data, err := tokenABI.Pack("transferWithAuthorization", common.Address(a.From), common.Address(a.To),
				a.Value, a.ValidAfter, a.ValidBefore, a.Nonce, sig[64], [32]byte(sig[:32]), [32]byte(sig[32:64]))
			if err != nil {
				t.Fatal(err)
			}
			hashes[i] = sendRaw(t, ctx, g.client, g.owner, g.chainID, first+uint64(i), &g.token, data, 1_000_000)
		}
		var single uint64
		for _, h := range hashes {
			rc := receipt(t, ctx, g.client, h)
			if rc.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("single transfer %s reverted", h)
			}
			single += rc.GasUsed
		}

		// The same N payers again, in one batch.
		items := make([]evm.BatchItem, n)
		for i := range n {
			a, sig := sign(payers[i])
			if items[i], err = evm.NewBatchItem(g.token, a, sig[:]); err != nil {
				t.Fatal(err)
			}
		}
		tx, results, err := chain.SettleBatch(ctx, g.batcher, items, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, res := range results {
			if !res.Settled {
				t.Fatalf("batch of %d: item %d: %s", n, i, res.Reason)
			}
		}
		rc := receipt(t, ctx, g.client, common.HexToHash(tx))
		paid += 2 * n

		perSingle, perBatch := float64(single)/float64(n), float64(rc.GasUsed)/float64(n)
		t.Logf("| %d | %.0f | %.0f | %.2f |", n, perSingle, perBatch, perBatch/perSingle)
		if n >= 10 && perBatch >= perSingle {
			t.Errorf("a batch of %d costs %.0f gas per payment, singles %.0f", n, perBatch, perSingle)
		}
	}
	payeeAfter, err := chain.BalanceOf(ctx, g.token, g.payee)
	if err != nil {
		t.Fatal(err)
	}
	if d := new(big.Int).Sub(payeeAfter, payeeBefore); d.Cmp(big.NewInt(int64(paid*price))) != 0 {
		t.Errorf("payee got %s, want %d", d, paid*price)
	}
}

// TestBatchOutOfGasRevertsWhole runs one batch under every gas limit from
// half of the estimate up: below what it needs the whole call reverts, and
// never does it report an item failed because the token was starved of gas.
// A failed item always means the token refused it.
func TestBatchOutOfGasRevertsWhole(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	items := make([]evm.BatchItem, 3)
	for i := range items {
		p := r.newPayment(t)
		p.auth.Nonce[31] = byte(i)
		items[i] = r.batchItem(t, p)
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
	tuples := make([]item, len(items))
	for i, it := range items {
		a := it.Auth
		tuples[i] = item{common.Address(a.From), common.Address(a.To), a.Value, a.ValidAfter, a.ValidBefore, a.Nonce,
			it.Sig[64], [32]byte(it.Sig[:32]), [32]byte(it.Sig[32:64])}
	}
	data, err := batcher.Pack("settle", r.chain.Token, tuples)
	if err != nil {
		t.Fatal(err)
	}
	msg := ethereum.CallMsg{From: r.evm.SettlementAddress(), To: &r.chain.BatchSettler, Data: data}
	estimate, err := r.client.EstimateGas(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	outOfGas := batcher.Errors["OutOfGas"].ID.Bytes()[:4]
	var guarded, reverted, settled int
	for msg.Gas = estimate / 2; msg.Gas <= estimate; msg.Gas += estimate / 400 {
		out, err := r.client.CallContract(ctx, msg, nil)
		if err != nil {
			reverted++
			var de rpc.DataError
			if errors.As(err, &de) {
				if s, ok := de.ErrorData().(string); ok && bytes.HasPrefix(common.FromHex(s), outOfGas) {
					guarded++
				}
			}
			continue
		}
		v, err := batcher.Unpack("settle", out)
		if err != nil {
			t.Fatal(err)
		}
		if ok := v[0].([]bool); !ok[0] || !ok[1] || !ok[2] {
			t.Fatalf("with %d gas (estimate %d) the batch reported %v", msg.Gas, estimate, ok)
		}
		settled++
	}
	t.Logf("estimate %d: %d limits reverted (%d by the settler's OutOfGas), %d settled all", estimate, reverted, guarded, settled)
	if guarded == 0 || settled == 0 {
		t.Error("the sweep did not reach both outcomes")
	}
}
