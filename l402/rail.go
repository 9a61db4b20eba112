// Package l402 is the L402 rail: HTTP 402 paid with Lightning. A 402
// carries a macaroon (the token) and a BOLT11 invoice whose payment hash
// the token commits to; the client pays the invoice and retries with
// `Authorization: L402 <token>:<preimage>`.
//
// A preimage proves that the invoice was paid, not that this is the
// first time it is shown: anyone who saw the header can send it again. So
// the journal accounts for each token. A token priced per request is
// single use (its replay key is the payment hash: a second request with it
// is a replay and gets a fresh 402); a pass (Config.Pass) is a bearer
// credential, good for any number of requests until its valid_until
// caveat, whose first request served journals the price and the others
// nothing.
// Before anything is served the invoice's state is checked with the node
// (SETTLED, for at least the price): a preimage alone could come from a
// node that revealed it without being paid (a held invoice).
//
// Tokens are V2 macaroons (gopkg.in/macaroon.v2) with identifier
// version ‖ payment hash ‖ token ID, each under a root key of its own kept
// in the journal's store (Store: a table of this package's, migrated on
// New), so that a token can be verified by any gateway sharing the
// journal, and revoked by deleting its key.
package l402

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/bolt11"
	"github.com/coinop/coinop/store"
)

// Store is what the rail needs of the journal's store: a table of its own
// for root keys and passes. store/sqlite and store/postgres implement it.
type Store interface {
	Migrate(ctx context.Context, name, ddl string) error
	Atomically(ctx context.Context, fn func(tx store.Tx) error) error
}

// migration is the rail's table, in SQL both journal backends run.
const (
	migrationName = "l402-0001"
	migrationDDL  = `CREATE TABLE IF NOT EXISTS l402_root_keys (
  id TEXT PRIMARY KEY,
  root_key TEXT NOT NULL,
  expires BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS l402_root_keys_expires ON l402_root_keys (expires);
CREATE TABLE IF NOT EXISTS l402_passes (
  payment_hash TEXT PRIMARY KEY,
  token_id TEXT NOT NULL,
  rail TEXT NOT NULL,
  paid_msat BIGINT NOT NULL,
  first_used BIGINT NOT NULL
)`
)

// Config configures a Rail.
type Config struct {
	// Name is the rail's name (coinop.Rail.Name).
	Name string
	// Service names the service in the tokens' caveats
	// (services=<Service>:0, <Service>_route=…). If empty, Name.
	Service string
	// Node issues and looks up the invoices: lnd (lightning/lnd) or the
	// development node (lightning/devnode).
	Node lightning.Invoicer
	// Store keeps the root keys and the passes; required.
	Store Store
	// Network is the Lightning network, for offers and the journal
	// ("regtest", "mainnet"): payments are journaled on network
	// "lightning:<Network>". If empty, "mainnet".
	Network string
	// InvoiceExpiry is how long an invoice may be paid. If zero, 10 minutes.
	InvoiceExpiry time.Duration
	// TokenTTL is how long a token priced per request may be redeemed
	// after it was minted. If zero, one hour.
	TokenTTL time.Duration
	// Pass, when positive, makes tokens bearer passes: valid for any
	// number of requests to the route for Pass after they were minted.
	Pass time.Duration
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// Rand is the source of root keys and token IDs. If nil, crypto/rand.
	Rand io.Reader
}

// Rail is the L402 rail. It is safe for concurrent use.
type Rail struct {
	cfg     Config
	network string
}

var (
	_ coinop.Rail       = (*Rail)(nil)
	_ coinop.Restorer   = (*Rail)(nil)
	_ coinop.Reverifier = (*Rail)(nil)
	_ coinop.Reconciler = (*Rail)(nil)
)

// New checks cfg, migrates the rail's table and returns the rail.
func New(ctx context.Context, cfg Config) (*Rail, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("l402: Config.Name is required")
	case cfg.Node == nil:
		return nil, errors.New("l402: Config.Node is required")
	case cfg.Store == nil:
		return nil, errors.New("l402: Config.Store is required")
	}
	if cfg.Service == "" {
		cfg.Service = cfg.Name
	}
	if strings.ContainsAny(cfg.Service, "=,: \t") {
		return nil, fmt.Errorf("l402: service %q: no '=', ',', ':' or spaces", cfg.Service)
	}
	if cfg.Network == "" {
		cfg.Network = "mainnet"
	}
	if _, ok := bolt11.Prefixes[cfg.Network]; !ok {
		return nil, fmt.Errorf("l402: network %q: want mainnet, testnet, signet or regtest", cfg.Network)
	}
	if cfg.InvoiceExpiry == 0 {
		cfg.InvoiceExpiry = 10 * time.Minute
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if err := cfg.Store.Migrate(ctx, migrationName, migrationDDL); err != nil {
		return nil, fmt.Errorf("l402: %w", err)
	}
	return &Rail{cfg: cfg, network: "lightning:" + cfg.Network}, nil
}

// Name implements coinop.Rail.
func (r *Rail) Name() string { return r.cfg.Name }

// Headers implements coinop.Rail: the credential travels in
// Authorization, which therefore never reaches an upstream.
func (r *Rail) Headers() coinop.Headers {
	return coinop.Headers{Request: []string{"Authorization"}, Expose: []string{"WWW-Authenticate"}}
}

// Network is where the rail's payments are journaled: "lightning:<net>".
func (r *Rail) Network() string { return r.network }

// Asset is the unit of the rail's amounts.
const Asset = "msat"

// msat is a price in millisatoshis, or an error for one no invoice can ask.
func msat(p coinop.Price) (int64, error) {
	if p.Amount == nil || p.Amount.Sign() <= 0 || !p.Amount.IsInt64() {
		return 0, fmt.Errorf("l402: price %v is not a positive number of millisatoshis", p.Amount)
	}
	return p.Amount.Int64(), nil
}

// Challenge implements coinop.Rail: an invoice from the node, a token
// committing to its payment hash, both in WWW-Authenticate.
func (r *Rail) Challenge(ctx context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	amount, err := msat(ch.Price)
	if err != nil {
		return err
	}
	memo := ch.Resource.Description
	if memo == "" {
		memo = ch.Route
	}
	inv, err := r.cfg.Node.AddInvoice(ctx, lightning.InvoiceRequest{AmountMsat: amount, Memo: memo, Expiry: r.cfg.InvoiceExpiry})
	if err != nil {
		return coinop.Wrap(coinop.KindUnavailable, ReasonNodeUnavailable, err, "the Lightning node could not issue an invoice")
	}
	// A node on another network issues invoices no buyer of this one can
	// pay: offer none.
	if n, err := bolt11.NetworkOf(inv.PaymentRequest); err != nil || n != bolt11.Prefixes[r.cfg.Network] {
		return coinop.Wrap(coinop.KindUnavailable, ReasonNodeUnavailable,
			fmt.Errorf("l402: the node's invoice %.12s… is not for %s", inv.PaymentRequest, r.cfg.Network), "the Lightning node could not issue an invoice")
	}
	id := Identifier{PaymentHash: inv.Hash}
	rootKey := make([]byte, 32)
	if _, err := io.ReadFull(r.cfg.Rand, id.TokenID[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(r.cfg.Rand, rootKey); err != nil {
		return err
	}
	now := r.cfg.Now()
	until := now.Add(r.cfg.TokenTTL)
	if r.cfg.Pass > 0 {
		until = now.Add(r.cfg.Pass)
	}
	tok, err := mint(rootKey, id, caveatList(r.cfg.Service, ch.Route, ch.Resource.Method, amount, until))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(id.MarshalBinary())
	err = r.cfg.Store.Atomically(ctx, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO l402_root_keys (id, root_key, expires) VALUES (?, ?, ?)`,
			hex.EncodeToString(sum[:]), hex.EncodeToString(rootKey), until.Unix()); err != nil {
			return err
		}
		// Keys of tokens past their valid_until verify nothing any more.
		_, err := tx.Exec(ctx, `DELETE FROM l402_root_keys WHERE expires < ?`, now.Unix()-60)
		return err
	})
	if err != nil {
		return coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the token could not be stored")
	}
	for _, v := range ChallengeHeaders(tok, inv.PaymentRequest) {
		c.Header.Add("WWW-Authenticate", v)
	}
	token := base64.StdEncoding.EncodeToString(tok)
	how := "Pay the invoice, then send `Authorization: L402 <token>:<preimage hex>`"
	if r.cfg.Pass > 0 {
		how += "; the token is good for every request to this route for " + r.cfg.Pass.String() + "."
	} else {
		how += "; the token pays for one request."
	}
	c.Offers = append(c.Offers, coinop.Offer{
		Rail: r.cfg.Name, Protocol: "l402", Scheme: "l402", Network: r.network, Asset: Asset,
		Amount: ch.Price.Amount.String(), Price: ch.Price.String(), Header: "Authorization", HowTo: how,
		Expires: int(r.cfg.InvoiceExpiry / time.Second),
		Terms:   map[string]any{"invoice": inv.PaymentRequest, "token": token, "paymentHash": inv.Hash.String(), "validUntil": until.Unix()},
	})
	return nil
}

// presented is what Inspect decoded: the rail's coinop.Payment.Credential.
type presented struct {
	tokens   []*token
	preimage lightning.Preimage
	hash     lightning.Hash
	price    int64 // msat: the token's amount caveat
}

func malformed(reason, msg string) *coinop.Error {
	return coinop.Errorf(coinop.KindMalformed, reason, "%s", msg)
}

func rejected(reason, msg string) *coinop.Error {
	return coinop.Errorf(coinop.KindRejected, reason, "%s", msg)
}

// Inspect implements coinop.Rail: the header's form, the tokens'
// identifiers and caveats (not yet their signatures), and the preimage
// against the payment hash (one SHA-256).
func (r *Rail) Inspect(req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	cred, err := ParseAuthorization(req.Header)
	switch {
	case errors.Is(err, errAmbiguous):
		return nil, malformed(ReasonAmbiguous, "several Authorization headers carry different L402 credentials; send one")
	case err != nil:
		return nil, malformed(ReasonMalformed, "Authorization must be `L402 <token>[,<token>…]:<64 hex digits of preimage>`")
	case cred == nil:
		return nil, nil
	}
	price, err := msat(ch.Price)
	if err != nil {
		return nil, coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
	}
	pr := &presented{preimage: cred.Preimage}
	for i, b := range cred.Macaroons {
		t, err := decodeToken(b, r.cfg.Service)
		switch {
		case errors.Is(err, errUnknownVersion):
			return nil, rejected(ReasonUnknownVersion, "the token's identifier is of a version this server does not mint")
		case errors.Is(err, errBadCaveat):
			return nil, rejected(ReasonBadCaveat, "a caveat of the token is not condition=value")
		case err != nil:
			return nil, malformed(ReasonBadMacaroon, "the token is not a macaroon")
		}
		if i > 0 && t.id.PaymentHash != pr.hash {
			return nil, rejected(ReasonTokensDisagree, "the tokens name different payments")
		}
		pr.hash = t.id.PaymentHash
		if err := r.checkTerms(&t.terms, ch, price); err != nil {
			return nil, err
		}
		if n := len(t.terms.amountMsat); n > 0 {
			pr.price = t.terms.amountMsat[n-1]
		}
		pr.tokens = append(pr.tokens, t)
	}
	if sha256.Sum256(pr.preimage[:]) != pr.hash {
		return nil, rejected(ReasonPreimageMismatch, "the preimage does not pay the token's invoice")
	}
	id := pr.tokens[0].id
	p := &coinop.Payment{
		Network: r.network, Asset: Asset, Payer: "l402:" + hex.EncodeToString(id.TokenID[:]),
		Amount: big.NewInt(price), Resource: ch.Resource.URL, Credential: pr,
		Details: map[string]string{"payment_hash": pr.hash.String()},
	}
	if r.cfg.Pass > 0 {
		p.Bearer = true
		return p, nil
	}
	p.ID, p.ReplayKey = r.cfg.Name+":"+pr.hash.String(), pr.hash.String()
	p.Payload = payload(cred.Macaroons)
	return p, nil
}

// payload is the tokens as journaled: never the preimage, which is what
// proves payment.
func payload(macs [][]byte) string {
	parts := make([]string, len(macs))
	for i, m := range macs {
		parts[i] = base64.StdEncoding.EncodeToString(m)
	}
	return strings.Join(parts, ",")
}

// checkTerms checks a token's caveats against the charge: every
// occurrence of a condition must hold (each attenuation only narrows).
func (r *Rail) checkTerms(tm *terms, ch coinop.Charge, price int64) error {
	if len(tm.services) == 0 || len(tm.validUntil) == 0 || len(tm.amountMsat) == 0 {
		return rejected(ReasonWrongService, "the token was not minted for this service")
	}
	if !tm.servesService(r.cfg.Service) {
		e := rejected(ReasonWrongService, "the token is for another service")
		e.OtherOffer = true
		return e
	}
	for _, v := range tm.route {
		if v != ch.Route {
			return rejected(ReasonWrongRoute, "the token pays for another route")
		}
	}
	for _, v := range tm.method {
		if v != ch.Resource.Method {
			return rejected(ReasonWrongMethod, "the token pays for another method")
		}
	}
	now := r.cfg.Now().Unix()
	for _, v := range tm.validUntil {
		if now >= v {
			return rejected(ReasonExpired, "the token has expired; pay a fresh invoice")
		}
	}
	for _, v := range tm.amountMsat {
		if v < price {
			// Minted at another price (a configuration since changed):
			// the engine asks whether an offer of that price takes it.
			e := rejected(ReasonUnderpaid, "the token paid less than this route costs")
			e.OtherOffer = true
			return e
		}
	}
	return nil
}

// Verify implements coinop.Rail: each token's signature under its root
// key, then the invoice's state on the node; for a pass, whether this is
// its first request.
func (r *Rail) Verify(ctx context.Context, p *coinop.Payment) error {
	pr, ok := p.Credential.(*presented)
	if !ok {
		return coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "l402: payment without its credential")
	}
	if err := r.verifyTokens(ctx, pr); err != nil {
		return err
	}
	inv, err := r.cfg.Node.LookupInvoice(ctx, pr.hash)
	switch {
	case errors.Is(err, lightning.ErrNotFound):
		return rejected(ReasonInvoiceUnknown, "the Lightning node does not know the token's invoice")
	case err != nil:
		return coinop.Wrap(coinop.KindUnavailable, ReasonNodeUnavailable, err, "the Lightning node cannot confirm the payment right now; try again shortly")
	case inv.State != lightning.InvoiceSettled:
		return rejected(ReasonInvoiceNotSettled, "the token's invoice is not paid")
	case inv.PaidMsat < pr.price:
		return rejected(ReasonUnderpaid, "the token's invoice was paid less than its price")
	}
	if !p.Bearer {
		return nil
	}
	// A pass journals its price with the first request served through
	// it, nothing with the others: a pass already collected (a row in
	// l402_passes) costs this request nothing. Settle makes the claim.
	var hash string
	err = r.cfg.Store.Atomically(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT payment_hash FROM l402_passes WHERE payment_hash = ?`, []any{pr.hash.String()}, &hash)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.Details["pass_collects"] = strconv.FormatInt(inv.PaidMsat, 10)
	case err != nil:
		return coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the pass could not be accounted for")
	default:
		p.Amount = new(big.Int)
	}
	return nil
}

// verifyTokens checks each token's signature under its root key.
func (r *Rail) verifyTokens(ctx context.Context, pr *presented) error {
	for _, t := range pr.tokens {
		var keyHex string
		err := r.cfg.Store.Atomically(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, `SELECT root_key FROM l402_root_keys WHERE id = ?`, []any{t.keyID()}, &keyHex)
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			return rejected(ReasonUnknownToken, "the token was not minted here, or has expired")
		case err != nil:
			return coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the token cannot be checked right now")
		}
		key, err := hex.DecodeString(keyHex)
		if err != nil {
			return coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
		}
		if err := t.verifySignature(key); err != nil {
			return rejected(ReasonBadSignature, "the token's signature does not verify")
		}
	}
	return nil
}

// Settle implements coinop.Rail. The money moved when the invoice
// settled (Verify saw it): settling journals the payment hash as the
// reference.
func (r *Rail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	ref := p.Details["payment_hash"]
	if ref == "" {
		return nil, coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "l402: payment without its payment hash")
	}
	if paid, ok := p.Details["pass_collects"]; ok {
		// The first request of a pass collects its price, once: of two
		// first requests at once, one claims the pass and the other
		// journals nothing and asks the client to try again (it then
		// costs nothing).
		var claimed int64
		err := r.cfg.Store.Atomically(ctx, func(tx store.Tx) error {
			n, err := tx.Exec(ctx, `INSERT INTO l402_passes (payment_hash, token_id, rail, paid_msat, first_used) VALUES (?, ?, ?, ?, ?) ON CONFLICT (payment_hash) DO NOTHING`,
				ref, strings.TrimPrefix(p.Payer, "l402:"), r.cfg.Name, paid, r.cfg.Now().Unix())
			claimed = n
			return err
		})
		switch {
		case err != nil:
			return nil, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the pass could not be accounted for")
		case claimed == 0:
			return nil, coinop.Errorf(coinop.KindUnavailable, ReasonPassCollected, "another request collected this pass at the same moment; try again")
		}
	}
	if err := rec.Record(ctx, ref, ""); err != nil {
		return nil, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the payment could not be journaled")
	}
	return &coinop.Receipt{Success: true, Reference: ref, Network: r.network, Payer: p.Payer}, nil
}

// Restore implements coinop.Restorer: a single-use payment needs nothing
// but its payment hash to settle, which its ID names.
func (r *Rail) Restore(p *coinop.Payment) error {
	h := p.Details["payment_hash"]
	if p.Bearer || h == "" || p.ID != r.cfg.Name+":"+h || p.ReplayKey != h {
		return coinop.Errorf(coinop.KindRejected, "cannot_restore_credential", "not a payment of this rail")
	}
	return nil
}

// Reverify implements coinop.Reverifier: a token presented again for a
// payment collected but never served proves what it proved the first
// time when its preimage pays the same hash (Inspect checked it; the ID
// names the hash) and its signature verifies.
func (r *Rail) Reverify(p, prev *coinop.Payment) error {
	pr, ok := p.Credential.(*presented)
	if !ok || prev.ReplayKey != pr.hash.String() {
		return coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this token was already used")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.verifyTokens(ctx, pr); err != nil {
		e := coinop.AsError(err)
		if e.Kind == coinop.KindUnavailable {
			return e
		}
		return coinop.Errorf(coinop.KindRejected, e.Reason, "%s", e.Message)
	}
	return nil
}

// Reconcile implements coinop.Reconciler, for a payment of this rail that
// a crash left unfinished. The money moved (or not) when the invoice
// settled, before anything was served:
//
//   - verified: its response never left (sync), released; served already
//     (async), owed: Resettle, which journals it.
//   - settling: settled once the node says the invoice is, else failed.
func (r *Rail) Reconcile(ctx context.Context, p *coinop.Payment) (coinop.Outcome, error) {
	switch {
	case p.State == coinop.StateVerified && p.Served.IsZero():
		return coinop.Outcome{State: coinop.StateReleased, Reason: "recovered_before_settlement"}, nil
	case p.State == coinop.StateVerified:
		return coinop.Outcome{Resettle: true}, nil
	case p.State != coinop.StateSettling:
		return coinop.Outcome{State: p.State, Reference: p.Reference}, nil
	}
	h, err := lightning.ParseHash(p.Details["payment_hash"])
	if err != nil {
		return coinop.Outcome{State: coinop.StateFailed, Reason: ReasonInvoiceUnknown}, nil
	}
	inv, err := r.cfg.Node.LookupInvoice(ctx, h)
	switch {
	case errors.Is(err, lightning.ErrNotFound):
		return coinop.Outcome{State: coinop.StateFailed, Reason: ReasonInvoiceUnknown}, nil
	case err != nil:
		return coinop.Outcome{}, err
	case inv.State == lightning.InvoiceSettled:
		return coinop.Outcome{State: coinop.StateSettled, Reference: h.String()}, nil
	}
	return coinop.Outcome{State: coinop.StateFailed, Reason: ReasonInvoiceNotSettled}, nil
}
