package paywall_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store/sqlite"
)

// fakeRail is a rail of the tests' own, of no payment protocol: it proves
// the engine needs none. It takes single-use credentials in X-Fake-Pay
// ("<rail>;<payer>;<nonce>", see fakeCred) or, when bearer is set, bearer
// tokens in X-Fake-Token, charged against an in-memory balance.
//
// Its knobs (set through set) make each step fail or stall the way a real
// network would, and it counts every call, so a test can tell what the
// engine asked of it.
type fakeRail struct {
	name, network, asset, payTo string
	bearer                      bool

	mu           sync.Mutex
	verifyErr    error         // Verify's answer, when set
	challengeErr error         // Challenge's answer, when set
	outcome      settleOutcome // what Settle does
	gate         chan struct{} // when set, async settlements wait until it is closed
	balances     map[string]*big.Int
	mangle       func(p *coinop.Payment) // when set, breaks the contract on what Inspect returns
	payers       map[string]string       // bearer token → payer identity; "" for none

	inspects, verifies, settles, challenges, reverifies, restores atomic.Int32
}

// settleOutcome is what fakeRail.Settle does.
type settleOutcome int

const (
	settleOK          settleOutcome = iota // records, sends, money moved
	settleRefused                          // refused before anything was recorded: money did not move
	settlePending                          // recorded and sent; outcome not known yet
	settleNotSent                          // recorded; no node accepted it
	settleUnavailable                      // the network is down; nothing recorded or sent
)

const (
	fakePayHeader     = "X-Fake-Pay"
	fakeTokenHeader   = "X-Fake-Token"
	fakeReceiptHeader = "X-Fake-Receipt"
	fakeOfferHeader   = "X-Fake-Offer"
)

var _ interface {
	coinop.Rail
	coinop.Restorer
	coinop.Reverifier
	coinop.Reconciler
} = (*fakeRail)(nil)

func newFakeRail(name string) *fakeRail {
	return &fakeRail{name: name, network: "fake-net", asset: "fake-coin", payTo: "seller",
		balances: map[string]*big.Int{}, payers: map[string]string{}}
}

// newBearerRail is a fakeRail over prepaid balances.
func newBearerRail(name string) *fakeRail {
	r := newFakeRail(name)
	r.bearer = true
	r.network = "fake-ledger"
	return r
}

// set changes the rail's knobs under its lock.
func (r *fakeRail) set(f func(r *fakeRail)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// fund gives a bearer token a balance and, when payer is not "", an identity.
func (r *fakeRail) fund(token string, amount int64, payer string) {
	r.set(func(r *fakeRail) {
		r.balances[token] = big.NewInt(amount)
		r.payers[token] = payer
	})
}

func (r *fakeRail) balance(token string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.balances[token].Int64()
}

// fakeCred is a single-use credential for rail, by payer, with nonce.
func fakeCred(rail, payer, nonce string) string { return rail + ";" + payer + ";" + nonce }

func (r *fakeRail) Name() string { return r.name }

func (r *fakeRail) Headers() coinop.Headers {
	return coinop.Headers{Request: []string{fakePayHeader, fakeTokenHeader}, Expose: []string{fakeReceiptHeader, fakeOfferHeader}}
}

func (r *fakeRail) Challenge(_ context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	r.challenges.Add(1)
	r.mu.Lock()
	err := r.challengeErr
	r.mu.Unlock()
	if err != nil {
		return err
	}
	// Rails of one kind share a header: add, never replace.
	c.Header.Add(fakeOfferHeader, r.name+"="+ch.Price.Amount.String())
	header := fakePayHeader
	if r.bearer {
		header = fakeTokenHeader
	}
	c.Offers = append(c.Offers, coinop.Offer{
		Rail: r.name, Protocol: "fake", Scheme: "test", Network: r.network, Asset: r.asset, PayTo: r.payTo,
		Amount: ch.Price.Amount.String(), Price: ch.Price.String(), Header: header,
		HowTo: "Send `" + header + "`.", Terms: map[string]any{"route": ch.Route},
	})
	return nil
}

func (r *fakeRail) Inspect(req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	r.inspects.Add(1)
	p, err := r.inspect(req, ch)
	r.mu.Lock()
	mangle := r.mangle
	r.mu.Unlock()
	if p != nil && mangle != nil {
		mangle(p)
	}
	return p, err
}

func (r *fakeRail) inspect(req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	if r.bearer {
		return r.inspectBearer(req, ch)
	}
	v := req.Header.Get(fakePayHeader)
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ";")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return nil, coinop.Errorf(coinop.KindMalformed, "fake_malformed", "the %s header is not rail;payer;nonce", fakePayHeader)
	}
	if parts[0] != r.name {
		return nil, &coinop.Error{Kind: coinop.KindRejected, Reason: "fake_other_offer", Message: "this credential is for rail " + parts[0], OtherOffer: true}
	}
	payer, nonce := parts[1], parts[2]
	return &coinop.Payment{
		// The ID derives from the replay key, so the same credential
		// always lands on the same journal entry.
		ID: r.name + ":" + payer + ":" + nonce, ReplayKey: nonce,
		Network: r.network, Asset: r.asset, Payer: payer, PayTo: r.payTo,
		Amount: new(big.Int).Set(ch.Price.Amount), Resource: ch.Resource.URL,
		Payload: v, Credential: v,
	}, nil
}

// inspectBearer takes a bearer token. The token is the credential itself, so
// it is never journaled (Payload stays empty): a journal reader could spend it.
func (r *fakeRail) inspectBearer(req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	token := req.Header.Get(fakeTokenHeader)
	if token == "" {
		return nil, nil
	}
	r.mu.Lock()
	payer := r.payers[token]
	r.mu.Unlock()
	return &coinop.Payment{
		Bearer: true, Network: r.network, Asset: r.asset, Payer: payer, PayTo: r.payTo,
		Amount: new(big.Int).Set(ch.Price.Amount), Resource: ch.Resource.URL, Credential: token,
	}, nil
}

func (r *fakeRail) Verify(_ context.Context, p *coinop.Payment) error {
	r.verifies.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.verifyErr != nil {
		return r.verifyErr
	}
	if r.bearer {
		if bal := r.balances[p.Credential.(string)]; bal == nil || bal.Cmp(p.Amount) < 0 {
			return coinop.Errorf(coinop.KindInsufficientFunds, "fake_balance_too_low", "the token's balance does not cover %s", p.Amount)
		}
	}
	return nil
}

func (r *fakeRail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	r.settles.Add(1)
	r.mu.Lock()
	gate, outcome := r.gate, r.outcome
	r.mu.Unlock()
	if gate != nil && p.Mode == coinop.ModeAsync {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, coinop.Wrap(coinop.KindUnavailable, "fake_network_down", ctx.Err(), "the network did not answer")
		}
	}
	switch outcome {
	case settleRefused:
		return &coinop.Receipt{Header: http.Header{fakeReceiptHeader: {"refused"}}},
			coinop.Errorf(coinop.KindSettleFailed, "fake_settle_refused", "the network refused the settlement")
	case settleUnavailable:
		return nil, coinop.Errorf(coinop.KindUnavailable, "fake_network_down", "the network is down")
	}
	ref := "fake-ref:" + p.ID
	prepared := "fake-prepared:" + p.ID
	if r.bearer {
		prepared = "" // a ledger entry: nothing to send again
	}
	// Money rule: journal what will be sent before sending it.
	if err := rec.Record(ctx, ref, prepared); err != nil {
		return nil, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the settlement could not be journaled; nothing was sent")
	}
	switch outcome {
	case settleNotSent:
		return nil, coinop.Errorf(coinop.KindUnavailable, coinop.ReasonSettlementNotSent, "no node accepted the settlement")
	case settlePending:
		rec.Step("tx_sent")
		return &coinop.Receipt{Pending: true, Reference: ref, Network: r.network, Payer: p.Payer},
			coinop.Errorf(coinop.KindUnavailable, "fake_pending", "the settlement was sent; its outcome is not known yet")
	}
	if r.bearer {
		r.mu.Lock()
		bal := r.balances[p.Credential.(string)]
		ok := bal != nil && bal.Cmp(p.Amount) >= 0
		if ok {
			bal.Sub(bal, p.Amount)
		}
		r.mu.Unlock()
		if !ok {
			return nil, coinop.Errorf(coinop.KindSettleFailed, "fake_balance_too_low", "the token's balance no longer covers %s", p.Amount)
		}
	}
	rec.Step("tx_sent")
	return &coinop.Receipt{Success: true, Reference: ref, Network: r.network, Payer: p.Payer,
		Header: http.Header{fakeReceiptHeader: {ref}}}, nil
}

// Restore rebuilds a journaled single-use credential, for this rail's terms
// only, as a real rail checks that the payload answers one of its offers.
func (r *fakeRail) Restore(p *coinop.Payment) error {
	r.restores.Add(1)
	parts := strings.Split(p.Payload, ";")
	if r.bearer || len(parts) != 3 || p.Network != r.network || p.Asset != r.asset || p.PayTo != r.payTo ||
		p.ID != parts[0]+":"+parts[1]+":"+parts[2] {
		return coinop.Errorf(coinop.KindInternal, "fake_not_mine", "payment %s is not one of this rail's", p.ID)
	}
	p.Credential = p.Payload
	return nil
}

// Reverify proves a credential presented again is the journaled one. The
// fake's credential is its own proof; a real rail checks a signature.
func (r *fakeRail) Reverify(p, prev *coinop.Payment) error {
	r.reverifies.Add(1)
	if p.Payload != prev.Payload {
		return coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "another credential under this payment's ID")
	}
	return nil
}

// Reconcile asks the fake network what became of p: a settlement with a
// reference landed; one without never reached the network.
func (r *fakeRail) Reconcile(_ context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	switch {
	case p.State == coinop.StateVerified:
		return coinop.Outcome{State: coinop.StateReleased, Reason: "never_settled"}, nil
	case p.Reference != "":
		return coinop.Outcome{State: coinop.StateSettled, Reference: p.Reference}, nil
	case !p.Served.IsZero():
		return coinop.Outcome{Resettle: true}, nil
	}
	return coinop.Outcome{State: coinop.StateFailed, Reason: "never_sent"}, nil
}

// steps records the engine's step hook, so a test waits for a step of a
// payment (a background settlement) instead of sleeping.
type steps struct {
	mu   sync.Mutex
	seen map[string]bool // step + "\x00" + payment ID
	more chan struct{}   // closed and replaced on each step
}

func newSteps() *steps { return &steps{seen: map[string]bool{}, more: make(chan struct{})} }

func (s *steps) hook(step string, p *coinop.Payment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[step+"\x00"+p.ID] = true
	close(s.more)
	s.more = make(chan struct{})
}

// wait blocks until payment id reached step, failing the test after a
// generous bound (a hang, not a slow machine).
func (s *steps) wait(t *testing.T, step, id string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		done, more := s.seen[step+"\x00"+id], s.more
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("payment %s never reached step %q", id, step)
		}
	}
}

// openJournal opens a real SQLite journal at path, closed by t.Cleanup.
func openJournal(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	j, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// fakeEngine is a Paywall over fake rails and a real journal, behind a
// real loopback server.
type fakeEngine struct {
	pw    *paywall.Paywall
	j     *sqlite.Store
	srv   *httptest.Server
	steps *steps
}

// newFakeEngine builds cfg over a fresh journal (unless cfg has one) and
// serves h behind it. The step hook is the engine's.
func newFakeEngine(t *testing.T, cfg paywall.Config, h http.Handler) *fakeEngine {
	t.Helper()
	e := &fakeEngine{steps: newSteps()}
	if cfg.Journal == nil {
		e.j = openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
		cfg.Journal = e.j
	} else if j, ok := cfg.Journal.(*sqlite.Store); ok {
		e.j = j
	} else if j, ok := cfg.Journal.(bearerJournal); ok {
		e.j = j.Store
	}
	cfg.OnStep = e.steps.hook
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pw, err := paywall.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.pw = pw
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pw.Close(ctx)
	})
	e.srv = httptest.NewServer(pw.Wrap(h))
	t.Cleanup(e.srv.Close)
	return e
}

// priced is a route on pattern that takes rail at amount.
func priced(pattern string, rail coinop.Rail, amount int64) paywall.Route {
	return paywall.Route{Pattern: pattern, Accept: []paywall.Accept{{Rail: rail, Price: fakePrice(amount)}}}
}

func fakePrice(amount int64) coinop.Price {
	return coinop.Price{Amount: big.NewInt(amount), Symbol: "FAKE"}
}

// answer is a response as a test reads it.
type answer struct {
	status int // 0: the connection broke
	header http.Header
	body   string
	// problem is the JSON problem document, when the answer is one.
	problem struct {
		Reason string         `json:"reason"`
		Price  string         `json:"price"`
		Offers []coinop.Offer `json:"offers"`
	}
}

// do sends method path with header to e and reads the answer.
func (e *fakeEngine) do(t *testing.T, method, path string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(b, &a.problem); err != nil {
			t.Fatalf("a problem document that is not JSON: %v\n%s", err, b)
		}
	}
	return a
}

// pay is the header that carries a single-use credential.
func pay(cred string) http.Header { return http.Header{fakePayHeader: {cred}} }

// payment returns the journaled payment id, or nil when there is none.
func (e *fakeEngine) payment(t *testing.T, id string) *coinop.Payment {
	t.Helper()
	p, err := e.j.Get(context.Background(), id)
	if err != nil {
		return nil
	}
	return p
}

// goods is the protected handler of most tests: it counts its calls.
type goods struct{ calls atomic.Int32 }

func (g *goods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.calls.Add(1)
	w.Header().Set("X-Upstream", "yes")
	io.WriteString(w, "goods")
}
