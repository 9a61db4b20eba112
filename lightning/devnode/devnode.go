// Package devnode is an in-process Lightning node for development and
// tests: it issues real BOLT11 invoices, signed with its own key, and
// settles them when its own buyer pays them. One node plays both sides, so
// `coinop dev` sells for sats with no lnd, no chain and no channel.
//
// It is reachable two ways: in process (Node implements
// lightning.Invoicer and lightning.Payer) and over the subset of lnd's
// REST API that package lightning/lnd speaks (Listen), with a pinned TLS
// certificate and a macaroon file, so a buyer in another process (coinop
// curl) pays it exactly as it would pay through a real lnd.
//
// Nothing it holds is money: its buyer's balance is a number it starts
// with. It is not for production.
package devnode

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/bolt11"
)

// Config configures a Node.
type Config struct {
	// Key is the node key invoices are signed with. If nil, one is made
	// from Rand.
	Key *secp256k1.PrivateKey
	// Network is the invoices' network prefix. If empty, bolt11.Regtest.
	Network string
	// BalanceMsat is what the node's buyer starts with. If zero,
	// 1,000,000 sat.
	BalanceMsat int64
	// Rand is the source of preimages, payment secrets and keys. If nil,
	// crypto/rand.
	Rand io.Reader
	// Now is the clock for invoice timestamps and expiry. If nil, time.Now.
	Now func() time.Time
}

// Node is the development node. It is safe for concurrent use.
type Node struct {
	cfg Config

	mu       sync.Mutex
	invoices map[lightning.Hash]*invoice
	balance  int64 // the buyer's, msat
	received int64 // the seller's, msat
}

type invoice struct {
	lightning.Invoice
	preimage lightning.Preimage
}

var (
	_ lightning.Invoicer = (*Node)(nil)
	_ lightning.Payer    = (*Node)(nil)
)

// New returns a node with no invoices.
func New(cfg Config) (*Node, error) {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Network == "" {
		cfg.Network = bolt11.Regtest
	}
	if cfg.BalanceMsat == 0 {
		cfg.BalanceMsat = 1_000_000_000
	}
	if cfg.Key == nil {
		var b [32]byte
		if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
			return nil, err
		}
		cfg.Key = secp256k1.PrivKeyFromBytes(b[:])
	}
	return &Node{cfg: cfg, invoices: map[lightning.Hash]*invoice{}, balance: cfg.BalanceMsat}, nil
}

// Pubkey is the node's public key, compressed.
func (n *Node) Pubkey() []byte { return n.cfg.Key.PubKey().SerializeCompressed() }

// Network is the prefix of the node's invoices (bolt11.Regtest).
func (n *Node) Network() string { return n.cfg.Network }

// AddInvoice implements lightning.Invoicer: a fresh preimage, a signed
// BOLT11 invoice for it.
func (n *Node) AddInvoice(_ context.Context, req lightning.InvoiceRequest) (*lightning.Invoice, error) {
	if req.AmountMsat <= 0 {
		return nil, errors.New("devnode: an invoice needs a positive amount")
	}
	if req.Expiry <= 0 {
		req.Expiry = bolt11.DefaultExpiry
	}
	inv := &invoice{}
	var secret [32]byte
	if _, err := io.ReadFull(n.cfg.Rand, inv.preimage[:]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(n.cfg.Rand, secret[:]); err != nil {
		return nil, err
	}
	now := n.cfg.Now().Truncate(time.Second)
	inv.Hash = sha256.Sum256(inv.preimage[:])
	pr, err := bolt11.Encode(&bolt11.Invoice{
		Network: n.cfg.Network, AmountMsat: req.AmountMsat, Timestamp: now, Hash: inv.Hash,
		PaymentSecret: secret, Description: req.Memo, Expiry: req.Expiry, MinFinalCLTV: 80,
	}, n.cfg.Key)
	if err != nil {
		return nil, err
	}
	inv.PaymentRequest, inv.AmountMsat, inv.State, inv.Created, inv.Expiry = pr, req.AmountMsat, lightning.InvoiceOpen, now, req.Expiry
	n.mu.Lock()
	n.invoices[inv.Hash] = inv
	n.mu.Unlock()
	out := inv.Invoice
	return &out, nil
}

// LookupInvoice implements lightning.Invoicer.
func (n *Node) LookupInvoice(_ context.Context, h lightning.Hash) (*lightning.Invoice, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	inv, ok := n.invoices[h]
	if !ok {
		return nil, fmt.Errorf("devnode: %w: %s", lightning.ErrNotFound, h)
	}
	if inv.State == lightning.InvoiceOpen && !n.cfg.Now().Before(inv.Created.Add(inv.Expiry)) {
		inv.State = lightning.InvoiceCanceled // lnd cancels an expired invoice
	}
	out := inv.Invoice
	return &out, nil
}

// PayInvoice implements lightning.Payer for the node's own invoices: it
// settles one from the buyer's balance and returns its preimage. An
// invoice of another node, an expired, settled or canceled one, or one the
// balance cannot cover is lightning.ErrPaymentFailed, with nothing spent.
func (n *Node) PayInvoice(_ context.Context, pr string, _ int64) (*lightning.Payment, error) {
	dec, err := bolt11.Decode(pr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", lightning.ErrPaymentFailed, err)
	}
	if string(dec.Payee[:]) != string(n.Pubkey()) {
		return nil, fmt.Errorf("%w: no route: the development node pays only its own invoices", lightning.ErrPaymentFailed)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	inv, ok := n.invoices[dec.Hash]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: unknown invoice", lightning.ErrPaymentFailed)
	case inv.State == lightning.InvoiceSettled:
		return nil, fmt.Errorf("%w: invoice is already paid", lightning.ErrPaymentFailed)
	case inv.State != lightning.InvoiceOpen || !n.cfg.Now().Before(inv.Created.Add(inv.Expiry)):
		return nil, fmt.Errorf("%w: invoice expired or canceled", lightning.ErrPaymentFailed)
	case n.balance < inv.AmountMsat:
		return nil, fmt.Errorf("%w: insufficient balance", lightning.ErrPaymentFailed)
	}
	n.balance -= inv.AmountMsat
	n.received += inv.AmountMsat
	inv.State, inv.PaidMsat = lightning.InvoiceSettled, inv.AmountMsat
	return &lightning.Payment{Hash: inv.Hash, Preimage: inv.preimage, AmountMsat: inv.AmountMsat}, nil
}

// Balance implements lightning.Payer: the buyer's balance is local, what
// the node's invoices received is remote.
func (n *Node) Balance(context.Context) (lightning.Balance, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return lightning.Balance{LocalMsat: n.balance, RemoteMsat: n.received}, nil
}
