package client

import (
	"context"
	"errors"
	"math/big"
	"net/http"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/x402"
)

// A Method pays one dialect of 402 answer: x402, L402, the Payment scheme,
// a credits plan. A Transport asks each of its methods what a 402 offers,
// lets its Policy choose, and has the chosen option pay.
type Method interface {
	// Name is the dialect's name, what Transport.Prefer (and `coinop curl
	// --prefer`) lists: "x402", "l402", "mpp", "credits".
	Name() string
	// Options lists the ways the 402 ch offers to pay in this dialect,
	// best first; none (nil, nil) when it speaks another. It must not pay:
	// only an Option's Pay may spend.
	Options(ctx context.Context, ch *Challenge) ([]Option, error)
}

// A Reuser is a Method that holds credentials from earlier payments (an
// L402 token, a credits bearer token) and presents one before a 402 asks.
type Reuser interface {
	Method
	// Reuse adds a held credential to req, which the Transport owns and
	// will send, and reports whether it did. It is called only for
	// requests that carry no Authorization header and no payment header.
	Reuse(req *http.Request) bool
	// Forget drops the credential Reuse put on req: the server answered
	// resp, a 402, so it no longer honours it (spent, expired, revoked).
	Forget(req *http.Request, resp *http.Response)
}

// An Observer is a Method that reads the response to a request it paid or
// presented a credential for: a receipt, a balance header, a token to keep.
type Observer interface {
	Method
	// Observe sees resp, the answer to req. c is the credential the
	// Transport paid for req, nil when Reuse presented a held one. It must
	// not consume resp.Body.
	Observe(req *http.Request, resp *http.Response, c *Credential)
}

// Challenge is a 402 answer as methods see it.
type Challenge struct {
	// Request is the request that was answered with a 402. Its body, if
	// any, must not be read: use GetBody.
	Request *http.Request
	// Response is the 402 itself; its Body has been read into Body.
	Response *http.Response
	// Body is the 402's body, at most 1 MiB of it.
	Body []byte
}

// Option is one way a 402 can be paid.
type Option struct {
	// Method is the Name of the Method that offers it.
	Method string
	// Price is what paying costs. The Transport's Policy allows it, and
	// books it against the budget, before Pay runs.
	Price Price
	// Network, Asset and PayTo are where the money goes, as the Policy's
	// allow-lists name them: a CAIP-2 network, a token address, a payee;
	// "" when the dialect has none.
	Network, Asset, PayTo string
	// Header is the request header the credential sets ("PAYMENT-SIGNATURE",
	// "Authorization"): an option whose header the request already carries
	// is never paid, so a caller's own credential is never replaced.
	Header string
	// About says what is paid, for a person: "0.01 USDC (token 0x…) to
	// 0x… on eip155:1337".
	About string
	// Pay pays and returns the credential the retried request carries. The
	// Transport calls it at most once. An error means nothing was spent,
	// unless it wraps ErrMaybeSpent.
	Pay func(ctx context.Context) (*Credential, error)
}

// ErrMaybeSpent is wrapped by a Pay error after which money may have moved
// (a Lightning payment whose outcome is unknown): the Transport keeps the
// amount booked against the budget and tries no other option.
var ErrMaybeSpent = errors.New("the payment may have been made")

// Price is an amount in one unit of account.
type Price struct {
	// Amount is in the unit's smallest denomination (atomic token units,
	// millisatoshi).
	Amount *big.Int
	// Unit names what Amount counts, and so which Policy limit applies:
	// "<CAIP-2 network>/<token address, lower case>" for an EVM token,
	// UnitMsat for Lightning.
	Unit string
	// Decimals and Symbol write Amount for a person: Amount / 10^Decimals
	// Symbol ("0.001 USDC").
	Decimals int
	Symbol   string
}

// UnitMsat is the Unit of Lightning prices: millisatoshi.
const UnitMsat = "msat"

// TokenUnit is the Unit of an EVM token's atomic units.
func TokenUnit(network, asset string) string { return network + "/" + lower(asset) }

// String writes p's amount the way a person reads it.
func (p Price) String() string { return p.format(p.Amount) }

func (p Price) format(v *big.Int) string {
	if v == nil {
		v = new(big.Int)
	}
	s := coinop.FormatUnits(v, p.Decimals)
	if p.Symbol == "" {
		return s + " " + p.Unit
	}
	return s + " " + p.Symbol
}

// Credential is what a paid request carries.
type Credential struct {
	// Header is set on the retried request (each name replacing any value
	// the request had).
	Header http.Header
	// Payment describes what was paid, for OnPayment; the Transport fills
	// in what the option says (URL, Method, Price, About, Header, Value).
	Payment Payment
}

// Payment describes one payment a Transport made.
type Payment struct {
	URL    string
	Method string // the dialect: "x402", …
	Price  Price
	About  string
	// Header and Value are the first header the credential sets.
	Header string
	Value  string
	// Requirement and Version are the x402 offer paid and the wire version
	// used; zero for other dialects.
	Requirement x402.PaymentRequirements
	Version     int
}
