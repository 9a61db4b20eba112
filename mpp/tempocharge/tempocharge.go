// Package tempocharge is the Payment scheme's "tempo" method, intent
// "charge", in push mode: the payer sends the token transfer itself
// (TIP-20 transferWithMemo, the memo bound to the challenge as mppx binds
// it) and presents the transaction's hash (credential payload
// {"type":"hash"}). The gateway checks the mined receipt: the token, the
// recipient, the exact amount, the memo; the hash is the replay key, so a
// transaction pays once.
//
// Money moves before the request is served. When the upstream fails the
// payment is released, and the same hash may be presented again: it has
// paid for one response and gets one.
package tempocharge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/mpp"
)

// Name is the method's name on the wire.
const Name = "tempo"

// Receipts reads mined transactions from the chain.
type Receipts interface {
	// Receipt returns the receipt of the mined transaction hash; found is
	// false when the node knows no mined transaction by that hash. An error
	// means the node could not answer.
	Receipt(ctx context.Context, hash [32]byte) (rc *Receipt, found bool, err error)
}

// Receipt is what the method reads of a transaction receipt.
type Receipt struct {
	Success bool
	Logs    []Log
}

// Log is one event log of a receipt.
type Log struct {
	Address eip3009.Address
	Topics  [][32]byte
	Data    []byte
}

// Event topics of TIP-20 tokens.
var (
	TransferWithMemoTopic = eip3009.Keccak256([]byte("TransferWithMemo(address,address,uint256,bytes32)"))
)

// Method takes push-mode tempo charges of one token to one recipient.
type Method struct {
	Receipts  Receipts
	ChainID   uint64
	Currency  eip3009.Address // the TIP-20 token
	Recipient eip3009.Address
	Decimals  int
	Symbol    string
}

var _ mpp.Method = (*Method)(nil)

// Name implements mpp.Method.
func (m *Method) Name() string { return Name }

// Intent implements mpp.Method.
func (m *Method) Intent() string { return mpp.IntentCharge }

func (m *Method) network() string { return "eip155:" + strconv.FormatUint(m.ChainID, 10) }

// Request is mppx's tempo charge request in push mode: the atomic amount,
// the token (currency), the recipient, and methodDetails with the chain
// id and supportedModes ["push"].
func (m *Method) Request(ch coinop.Charge) (map[string]any, error) {
	return map[string]any{
		"amount":    ch.Price.Amount.String(),
		"currency":  m.Currency.Hex(),
		"recipient": m.Recipient.Hex(),
		"methodDetails": map[string]any{
			"chainId":        m.ChainID,
			"supportedModes": []any{"push"},
		},
	}, nil
}

// Offer implements mpp.Method.
func (m *Method) Offer(ch coinop.Charge) coinop.Offer {
	return coinop.Offer{
		Scheme: "tempo/charge", Network: m.network(), Asset: m.Currency.Hex(), PayTo: m.Recipient.Hex(),
		Amount: ch.Price.Amount.String(), Price: ch.Price.String(),
		HowTo: "Send transferWithMemo(recipient, " + ch.Price.Amount.String() + ", memo) on token currency on " + m.network() +
			", the memo bound to the challenge (mppx's attribution memo), and present the mined transaction's hash as an Authorization: Payment credential with payload {\"type\":\"hash\",\"hash\":\"0x…\"}. `coinop curl --prefer mpp URL` does this.",
	}
}

// Payload is the push-mode credential payload.
type Payload struct {
	Type string `json:"type"`
	Hash string `json:"hash"`
}

// Reason codes of the tempo method.
const (
	ReasonPayloadType = "mpp_tempo_payload_type"
	ReasonNotMined    = "mpp_tempo_transaction_not_found"
	ReasonReverted    = "mpp_tempo_transaction_failed"
	ReasonNoTransfer  = "mpp_tempo_no_matching_transfer"
	ReasonUnavailable = "mpp_tempo_chain_unavailable"
)

func reject(reason, format string, args ...any) error {
	return &coinop.Error{Kind: coinop.KindRejected, Type: mpp.ProblemVerificationFailed, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

type state struct{ hash [32]byte }

// PaymentID is the journal ID of the payment a transaction made on network.
func PaymentID(network, hash string) string {
	h := sha256.Sum256([]byte(network + "|" + strings.ToLower(hash)))
	return "mpp-tempo-" + hex.EncodeToString(h[:16])
}

// Check decodes the hash credential. Its ID derives from the transaction
// hash on this chain: one transaction, one journal entry.
func (m *Method) Check(c *mpp.Checked) (*coinop.Payment, error) {
	dec := json.NewDecoder(bytes.NewReader(c.Credential.Payload))
	dec.DisallowUnknownFields()
	var pl Payload
	if err := dec.Decode(&pl); err != nil {
		return nil, &coinop.Error{Kind: coinop.KindMalformed, Type: mpp.ProblemInvalidPayload, Reason: mpp.ReasonInvalidPayload, Message: "the tempo payload is not a hash object: " + err.Error()}
	}
	if pl.Type != "hash" {
		return nil, reject(ReasonPayloadType, "payload type %q is not accepted; this challenge takes push mode, \"hash\"", pl.Type)
	}
	h, err := eip3009.ParseBytes32(pl.Hash)
	if err != nil {
		return nil, &coinop.Error{Kind: coinop.KindMalformed, Type: mpp.ProblemInvalidPayload, Reason: mpp.ReasonInvalidPayload, Message: "hash: " + err.Error()}
	}
	key := "0x" + hex.EncodeToString(h[:])
	c.State = &state{hash: h}
	return &coinop.Payment{
		ID: PaymentID(m.network(), key), ReplayKey: key,
		Network: m.network(), Asset: strings.ToLower(m.Currency.Hex()), PayTo: strings.ToLower(m.Recipient.Hex()),
		Amount: new(big.Int).Set(c.Charge.Price.Amount),
	}, nil
}

// Memo is the attribution memo a push transfer for challenge c carries, as
// mppx writes it: keccak256("mpp")[:4], version 1, keccak256(realm)[:10],
// a client fingerprint (zero: anonymous), keccak256(id)[:7].
func Memo(c *mpp.Challenge) [32]byte {
	var memo [32]byte
	tag := eip3009.Keccak256([]byte("mpp"))
	copy(memo[0:4], tag[:4])
	memo[4] = 1
	server := eip3009.Keccak256([]byte(c.Realm))
	copy(memo[5:15], server[:10])
	nonce := eip3009.Keccak256([]byte(c.ID))
	copy(memo[25:32], nonce[:7])
	return memo
}

// boundMemo reports whether memo binds to challenge c: mppx's tag and
// version, c's realm and id (the client fingerprint is not checked).
func boundMemo(memo [32]byte, c *mpp.Challenge) bool {
	want := Memo(c)
	return bytes.Equal(memo[:15], want[:15]) && bytes.Equal(memo[25:], want[25:])
}

// Verify reads the mined receipt and finds the token's TransferWithMemo of
// exactly the price to the recipient with the challenge's memo; its from
// is the payer. A node that cannot answer fails closed.
func (m *Method) Verify(ctx context.Context, p *coinop.Payment, c *mpp.Checked) error {
	s, ok := c.State.(*state)
	if !ok {
		return coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "credential was not checked")
	}
	rc, found, err := m.Receipts.Receipt(ctx, s.hash)
	if err != nil {
		return &coinop.Error{Kind: coinop.KindUnavailable, Reason: ReasonUnavailable, Message: "the chain cannot be reached to check the transaction; try again shortly", Err: err}
	}
	if !found {
		return reject(ReasonNotMined, "no mined transaction %s on %s; present the hash once its receipt exists", p.ReplayKey, m.network())
	}
	if !rc.Success {
		return reject(ReasonReverted, "transaction %s failed", p.ReplayKey)
	}
	var recipient [32]byte
	copy(recipient[12:], m.Recipient[:])
	for _, l := range rc.Logs {
		if l.Address != m.Currency || len(l.Topics) != 4 || l.Topics[0] != TransferWithMemoTopic || l.Topics[2] != recipient {
			continue
		}
		if new(big.Int).SetBytes(l.Data).Cmp(p.Amount) != 0 || !boundMemo(l.Topics[3], &c.Credential.Challenge) {
			continue
		}
		var from eip3009.Address
		copy(from[:], l.Topics[1][12:])
		p.Payer = strings.ToLower(from.Hex())
		return nil
	}
	return reject(ReasonNoTransfer, "transaction %s has no transferWithMemo of exactly %s %s to %s with this challenge's memo", p.ReplayKey, p.Amount, m.Currency.Hex(), m.Recipient.Hex())
}

// Settle records the transaction as the settlement: the money moved when
// it was mined.
func (m *Method) Settle(ctx context.Context, p *coinop.Payment, c *mpp.Checked, rec coinop.Recorder) (*coinop.Receipt, error) {
	if rec != nil {
		if err := rec.Record(ctx, p.ReplayKey, ""); err != nil {
			return nil, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the payment could not be journaled")
		}
	}
	return &coinop.Receipt{Success: true, Reference: p.ReplayKey, Network: m.network(), Payer: p.Payer}, nil
}

var _ coinop.Reconciler = (*Method)(nil)

// Reconcile tells recovery what became of a journaled tempo payment. One
// still verified was never settled, so its response never left: released
// (the same hash may pay again). One settling was checked mined before its
// settlement began (the money moved when it was mined): settled, once the
// node still shows the successful receipt; a node that cannot answer leaves
// it for the next pass.
func (m *Method) Reconcile(ctx context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	switch p.State {
	case coinop.StateVerified:
		return coinop.Outcome{State: coinop.StateReleased, Reason: "recovered_before_settlement"}, nil
	case coinop.StateSettling:
	default:
		return coinop.Outcome{State: p.State, Reference: p.Reference}, nil
	}
	h, err := eip3009.ParseBytes32(p.ReplayKey)
	if err != nil {
		return coinop.Outcome{}, fmt.Errorf("payment %s: hash: %w", p.ID, err)
	}
	rc, found, err := m.Receipts.Receipt(ctx, h)
	switch {
	case err != nil:
		return coinop.Outcome{}, fmt.Errorf("receipt of %s: %w", p.ReplayKey, err)
	case !found || !rc.Success:
		return coinop.Outcome{State: coinop.StateFailed, Reason: ReasonNotMined}, nil
	}
	return coinop.Outcome{State: coinop.StateSettled, Reference: p.ReplayKey}, nil
}
