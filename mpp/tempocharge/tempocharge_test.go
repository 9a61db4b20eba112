package tempocharge_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/tempocharge"
)

// receipts is a chain of the tests' own: one receipt, or an error.
type receipts struct {
	rc  *tempocharge.Receipt
	err error
}

func (r receipts) Receipt(context.Context, [32]byte) (*tempocharge.Receipt, bool, error) {
	return r.rc, r.rc != nil, r.err
}

var (
	token     = eip3009.Address{0x20, 0xc0}
	recipient = eip3009.Address{0xaa}
	payer     = eip3009.Address{0xbb}
)

func topic(a eip3009.Address) (t [32]byte) { copy(t[12:], a[:]); return }

func transfer(tok, to eip3009.Address, amount int64, memo [32]byte) tempocharge.Log {
	return tempocharge.Log{Address: tok, Topics: [][32]byte{tempocharge.TransferWithMemoTopic, topic(payer), topic(to), memo},
		Data: big.NewInt(amount).FillBytes(make([]byte, 32))}
}

// TestVerify: only a mined, successful transferWithMemo of the token, to
// the recipient, of exactly the price, whose memo binds this challenge,
// pays; a node that cannot answer is unavailable, never a pass.
func TestVerify(t *testing.T) {
	c := mpp.Challenge{ID: "the-id", Realm: "api.example.com", Method: "tempo", Intent: "charge", Request: "e30"}
	other := c
	other.ID = "another-id"
	memo, otherMemo := tempocharge.Memo(&c), tempocharge.Memo(&other)
	otherRealm := c
	otherRealm.Realm = "evil.example"
	for _, tc := range []struct {
		name   string
		chain  receipts
		reason string
		kind   coinop.Kind
	}{
		{"pays", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(token, recipient, 1000, memo)}}}, "", 0},
		{"among other logs", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{
			transfer(token, recipient, 999, memo), transfer(eip3009.Address{1}, recipient, 1000, memo), transfer(token, recipient, 1000, memo)}}}, "", 0},
		{"not mined", receipts{}, tempocharge.ReasonNotMined, coinop.KindRejected},
		{"node down", receipts{err: errors.New("connection refused")}, tempocharge.ReasonUnavailable, coinop.KindUnavailable},
		{"reverted", receipts{rc: &tempocharge.Receipt{Success: false, Logs: []tempocharge.Log{transfer(token, recipient, 1000, memo)}}}, tempocharge.ReasonReverted, coinop.KindRejected},
		{"another token", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(eip3009.Address{1}, recipient, 1000, memo)}}}, tempocharge.ReasonNoTransfer, coinop.KindRejected},
		{"another recipient", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(token, payer, 1000, memo)}}}, tempocharge.ReasonNoTransfer, coinop.KindRejected},
		{"less", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(token, recipient, 999, memo)}}}, tempocharge.ReasonNoTransfer, coinop.KindRejected},
		{"more", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(token, recipient, 1001, memo)}}}, tempocharge.ReasonNoTransfer, coinop.KindRejected},
		{"another challenge's memo", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(token, recipient, 1000, otherMemo)}}}, tempocharge.ReasonNoTransfer, coinop.KindRejected},
		{"another realm's memo", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(token, recipient, 1000, tempocharge.Memo(&otherRealm))}}}, tempocharge.ReasonNoTransfer, coinop.KindRejected},
		{"no memo", receipts{rc: &tempocharge.Receipt{Success: true, Logs: []tempocharge.Log{transfer(token, recipient, 1000, [32]byte{})}}}, tempocharge.ReasonNoTransfer, coinop.KindRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &tempocharge.Method{Receipts: tc.chain, ChainID: 1337, Currency: token, Recipient: recipient}
			payload, _ := json.Marshal(tempocharge.Payload{Type: "hash", Hash: "0xab000000000000000000000000000000000000000000000000000000000000cd"})
			ch := &mpp.Checked{Credential: &mpp.Credential{Challenge: c, Payload: payload}, Charge: coinop.Charge{Price: coinop.Price{Amount: big.NewInt(1000)}}}
			p, err := m.Check(ch)
			if err != nil {
				t.Fatal(err)
			}
			err = m.Verify(context.Background(), p, ch)
			if tc.reason == "" {
				if err != nil || p.Payer != "0xbb00000000000000000000000000000000000000" {
					t.Fatalf("Verify: %v, payer %q", err, p.Payer)
				}
				return
			}
			if e := coinop.AsError(err); err == nil || e.Reason != tc.reason || e.Kind != tc.kind {
				t.Fatalf("Verify: %v, want %s (%s)", err, tc.reason, tc.kind)
			}
		})
	}
}

// TestCheck refuses payloads other than a hash, and derives one ID per
// transaction and chain.
func TestCheck(t *testing.T) {
	m := &tempocharge.Method{ChainID: 1337, Currency: token, Recipient: recipient}
	check := func(payload string) (*coinop.Payment, error) {
		return m.Check(&mpp.Checked{Credential: &mpp.Credential{Payload: json.RawMessage(payload)}, Charge: coinop.Charge{Price: coinop.Price{Amount: big.NewInt(1)}}})
	}
	hash := `"0x00000000000000000000000000000000000000000000000000000000000000ff"`
	for _, bad := range []string{`{"type":"transaction","signature":"0x1"}`, `{"type":"hash"}`, `{"type":"hash","hash":"0x1"}`,
		`{"type":"hash","hash":` + hash + `,"extra":1}`, `[]`} {
		if _, err := check(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	a, err := check(`{"type":"hash","hash":` + hash + `}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := check(`{"type":"hash","hash":"0x00000000000000000000000000000000000000000000000000000000000000FF"}`)
	if a.ID != b.ID || a.ReplayKey != b.ReplayKey || a.ID != tempocharge.PaymentID("eip155:1337", a.ReplayKey) {
		t.Errorf("one transaction, two IDs: %s %s", a.ID, b.ID)
	}
	if tempocharge.PaymentID("eip155:1", a.ReplayKey) == a.ID {
		t.Error("two chains share an ID")
	}
}

// TestReconcile: recovery releases a payment never settled, settles one
// whose mined transfer the node still shows, fails one it no longer shows,
// and waits while the node cannot answer.
func TestReconcile(t *testing.T) {
	hash := "0x00000000000000000000000000000000000000000000000000000000000000ff"
	mined := receipts{rc: &tempocharge.Receipt{Success: true}}
	for _, tc := range []struct {
		name  string
		state coinop.State
		chain receipts
		want  coinop.State
		err   bool
	}{
		{"never settled", coinop.StateVerified, mined, coinop.StateReleased, false},
		{"settling, mined", coinop.StateSettling, mined, coinop.StateSettled, false},
		{"settling, gone", coinop.StateSettling, receipts{}, coinop.StateFailed, false},
		{"settling, node down", coinop.StateSettling, receipts{err: errors.New("down")}, "", true},
	} {
		m := &tempocharge.Method{Receipts: tc.chain, ChainID: 1337}
		out, err := m.Reconcile(context.Background(), &coinop.Payment{ID: "p", State: tc.state, ReplayKey: hash})
		if (err != nil) != tc.err || out.State != tc.want {
			t.Errorf("%s: %+v (%v), want %s", tc.name, out, err, tc.want)
		}
	}
}

// FuzzCheck: whatever payload Check accepts is a hash credential whose
// replay key is the hash in canonical form (0x and 64 lower-case hex
// digits) and whose ID is PaymentID of it: one transaction, one entry,
// however it is written.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(`{"type":"hash","hash":"0x00000000000000000000000000000000000000000000000000000000000000ff"}`))
	f.Add([]byte(`{"type":"hash","hash":"0xAB"}`))
	f.Add([]byte(`{"type":"transaction","signature":"0x"}`))
	m := &tempocharge.Method{ChainID: 1337}
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := m.Check(&mpp.Checked{Credential: &mpp.Credential{Payload: payload}, Charge: coinop.Charge{Price: coinop.Price{Amount: big.NewInt(1)}}})
		if err != nil {
			return
		}
		k := p.ReplayKey
		if len(k) != 66 || k[:2] != "0x" || strings.ToLower(k) != k || p.ID != tempocharge.PaymentID("eip155:1337", k) || p.Bearer {
			t.Fatalf("payload %q: payment %+v", payload, p)
		}
	})
}
