package credits

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/siwx"
	"github.com/coinop/coinop/x402"
)

// Reasons of refused sign-in proofs.
const (
	ReasonSignInMalformed = "credits_signin_malformed"
	ReasonSignInInvalid   = "credits_signin_invalid"
)

// SignIn lets a wallet reach the account it bought with x402's
// sign-in-with-x (@x402/extensions): the 402 of a credits route declares
// the extension in its PAYMENT-REQUIRED header (beside the x402 offers: the
// official client signs in on the chain of the first offer), the client
// signs the EIP-4361 message it describes and sends it in SIGN-IN-WITH-X,
// and the rail charges the account of the wallet that signed.
//
// Claims: a proof is bound to the origin and resource it was issued for
// (domain and uri), to this rail's nonce (an HMAC of its issue time and uri
// under Secret, so any instance sharing the secret can check it without
// state), to a window (MaxAge after issue), and it is single-use: its
// nonce is the charge's replay key, so the journal refuses a second use.
type SignIn struct {
	// Secret keys the nonces; instances that share a journal share it.
	Secret []byte
	// MaxAge is how long a proof stays usable after its issue; 5 minutes
	// (the official default) if zero.
	MaxAge time.Duration
	// Statement is the sentence the wallet is asked to sign.
	Statement string
}

func (s *SignIn) maxAge() time.Duration {
	if s.MaxAge <= 0 {
		return 5 * time.Minute
	}
	return s.MaxAge
}

// issuedFormat is how issue times are written: JavaScript's ISO form.
const issuedFormat = "2006-01-02T15:04:05.000Z"

func (s *SignIn) nonce(issuedAt, uri string) string {
	m := hmac.New(sha256.New, s.Secret)
	m.Write([]byte(issuedAt + "\x00" + uri))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// declare adds the sign-in-with-x extension to the route's x402 terms,
// for the EVM chains the plans are sold on.
func (s *SignIn) declare(c *coinop.Challenge, ch coinop.Charge, plans []Offered, now time.Time) {
	u, err := url.Parse(ch.Resource.URL)
	if err != nil || u.Host == "" {
		return
	}
	var chains []string
	for _, p := range plans {
		for _, o := range p.Offers {
			if strings.HasPrefix(o.Network, "eip155:") && !slices.Contains(chains, o.Network) {
				chains = append(chains, o.Network)
			}
		}
	}
	if len(chains) == 0 {
		return
	}
	issued := now.UTC().Format(issuedFormat)
	info := siwx.Info{Domain: u.Host, URI: ch.Resource.URL, Statement: s.Statement, IssuedAt: issued,
		Nonce: s.nonce(issued, ch.Resource.URL), ExpirationTime: now.Add(s.maxAge()).UTC().Format(issuedFormat), Chains: chains}
	var pr x402.PaymentRequired
	if h := c.Header.Get(x402.HeaderPaymentRequired); h == "" || x402.DecodeHeader(h, &pr) != nil {
		pr = x402.PaymentRequired{X402Version: 2, Error: "PAYMENT-SIGNATURE header is required",
			Resource: &x402.ResourceInfo{URL: ch.Resource.URL, Description: ch.Resource.Description, MimeType: ch.Resource.MimeType},
			Accepts:  []x402.PaymentRequirements{}}
	}
	if pr.Extensions == nil {
		pr.Extensions = map[string]any{}
	}
	pr.Extensions[siwx.Extension] = info.Declaration()
	if h, err := x402.EncodeHeader(pr); err == nil {
		c.Header.Set(x402.HeaderPaymentRequired, h)
	}
}

// inspect reads a sign-in proof (no cryptography: see verify) and makes it
// a single-use charge of the wallet's account.
func (s *SignIn) inspect(r *Rail, req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	p, err := siwx.Parse(req.Header.Get(siwx.Header))
	if err != nil {
		return nil, coinop.Errorf(coinop.KindMalformed, ReasonSignInMalformed, "%s: %v", siwx.Header, err)
	}
	if ch.Price.Amount == nil || !ch.Price.Amount.IsInt64() || ch.Price.Amount.Sign() < 0 {
		return nil, coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "credits: price %v is not a count of credits", ch.Price.Amount)
	}
	wallet := strings.ToLower(p.Address)
	return &coinop.Payment{
		// The nonce is single-use: the same proof lands on the same
		// journal entry, which the engine serves once.
		ID: r.ID + ":signin:" + wallet + ":" + p.Nonce, ReplayKey: p.Nonce,
		Network: Network, Asset: Asset, PayTo: r.ID, Payer: wallet,
		Amount: bigInt(ch.Price.Amount.Int64()), Resource: ch.Resource.URL,
		Credential: presented{holder: Holder{Wallet: wallet}, proof: p},
	}, nil
}

// verify checks a proof against the resource it is presented for, this
// rail's nonce, its window, and its signature.
func (s *SignIn) verify(p *siwx.Payload, resource string, now time.Time) error {
	bad := func(why string) error {
		return coinop.Errorf(coinop.KindRejected, ReasonSignInInvalid, "sign-in-with-x: %s", why)
	}
	u, err := url.Parse(resource)
	if err != nil {
		return bad("the resource cannot be read")
	}
	pu, err := url.Parse(p.URI)
	switch {
	case p.Domain != u.Host:
		return bad("the proof was issued for another domain")
	case err != nil || pu.Scheme != u.Scheme || pu.Host != u.Host || p.URI != resource:
		return bad("the proof was issued for another resource")
	case p.Version != "1":
		return bad("the proof's version is not 1")
	case !hmac.Equal([]byte(p.Nonce), []byte(s.nonce(p.IssuedAt, p.URI))):
		return bad("the proof's nonce was not issued here")
	}
	issued, err := time.Parse(time.RFC3339Nano, p.IssuedAt)
	if err != nil {
		return bad("the proof's issue time cannot be read")
	}
	if age := now.Sub(issued); age > s.maxAge() || age < -30*time.Second {
		return bad("the proof is too old or from the future: ask for a new one")
	}
	if p.ExpirationTime != "" {
		if exp, err := time.Parse(time.RFC3339Nano, p.ExpirationTime); err != nil || !now.Before(exp) {
			return bad("the proof expired")
		}
	}
	if p.NotBefore != "" {
		if nb, err := time.Parse(time.RFC3339Nano, p.NotBefore); err != nil || now.Before(nb) {
			return bad("the proof is not valid yet")
		}
	}
	if _, err := p.Signer(); err != nil {
		return bad(err.Error())
	}
	return nil
}
