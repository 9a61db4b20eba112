package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// payFlags are the flags shared by curl and sign.
type payFlags struct {
	wallet, data, maxAmount string
	decimals                int
	silent                  bool
}

func (p *payFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.wallet, "wallet", "", "file holding the payer's hex private key (read only when a 402 asks for payment)")
	fs.StringVar(&p.data, "data-dir", "", "coinop data dir (for the dev payer key); default $COINOP_DATA or ./.coinop")
	fs.StringVar(&p.maxAmount, "max-amount", "0.05", "most one request may cost, in whole tokens (e.g. 0.01 for 0.01 USDC); 0 refuses to pay")
	fs.IntVar(&p.decimals, "decimals", 6, "decimals of the token --max-amount is written in")
	fs.BoolVar(&p.silent, "s", false, "silent: no progress, payment or error lines on stderr")
}

// maxUnits is --max-amount in atomic units of a token with --decimals.
func (p *payFlags) maxUnits() (*big.Int, error) {
	max, err := coinop.ParseUnits(p.maxAmount, p.decimals)
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("--max-amount: %w", err)}
	}
	return max, nil
}

// wallet loads the payer's key and tells the user which wallet pays.
func (p *payFlags) loadKey(env Env) (*eip3009.Key, error) {
	key, source, err := loadWallet(p.wallet, dataDir(p.data, env), env)
	if err != nil {
		return nil, err
	}
	if !p.silent {
		fmt.Fprintf(env.Stderr, "* wallet %s (%s)\n", key.Address().Hex(), source)
	}
	return key, nil
}

// terms are a 402's offers, with what its problem body says the price is,
// to name amounts the way a person reads them.
type terms struct {
	offers []x402.PaymentRequirements
	// price is the body's "price" member ("0.001 USDC"), split.
	priceAmount, priceSymbol string
}

// readTerms reads the x402 offers of a 402 and peeks at its problem body
// (which stays readable in resp.Body).
func readTerms(resp *http.Response) (*terms, error) {
	offers, _, _, err := client.Offers(resp)
	if err != nil {
		return nil, err
	}
	t := &terms{offers: offers}
	head, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil {
		return t, nil
	}
	var body struct {
		Price string `json:"price"`
	}
	if json.Unmarshal(head, &body) == nil {
		t.priceAmount, t.priceSymbol, _ = strings.Cut(body.Price, " ")
	}
	return t, nil
}

// label is an offer's amount in whole tokens of --decimals with the asset's
// symbol: "0.001 USDC". The symbol is the 402 body's when its price is the
// same amount, else the token's EIP-712 name, else its address. The
// decimals are always the user's, never the server's: a server that could
// choose them could make a large amount read small.
func (t *terms) label(q x402.PaymentRequirements, decimals int) string {
	amount, ok := new(big.Int).SetString(q.Amount, 10)
	if !ok {
		return fmt.Sprintf("%q atomic units", q.Amount)
	}
	whole := coinop.FormatUnits(amount, decimals)
	return whole + " " + t.symbol(q, whole)
}

func (t *terms) symbol(q x402.PaymentRequirements, whole string) string {
	if t.priceSymbol != "" && t.priceAmount == whole {
		return t.priceSymbol
	}
	if name, _ := q.Extra["name"].(string); name != "" {
		return name
	}
	return "of token " + q.Asset
}

// allow refuses the 402 when every offer costs more than max, naming each
// in whole tokens ("0.001 USDC exceeds --max-amount 0.0001 USDC"). The
// client's policy checks again, in atomic units, before it signs.
func (t *terms) allow(max *big.Int, decimals int) error {
	var refusals []string
	for _, q := range t.offers {
		amount, ok := new(big.Int).SetString(q.Amount, 10)
		if ok && amount.Sign() >= 0 && amount.Cmp(max) <= 0 {
			return nil
		}
		whole := coinop.FormatUnits(amount, decimals)
		if !ok {
			whole = q.Amount
		}
		sym := t.symbol(q, whole)
		refusals = append(refusals, fmt.Sprintf("%s %s exceeds --max-amount %s %s", whole, sym, coinop.FormatUnits(max, decimals), sym))
	}
	if len(refusals) == 0 {
		return coinop.Errorf(coinop.KindPolicy, "policy_refused", "the 402 offers no way to pay")
	}
	return coinop.Errorf(coinop.KindPolicy, "policy_refused", "%s", strings.Join(refusals, "; "))
}

// describe names one payment for a person: amount, token, payee, network.
func (t *terms) describe(q x402.PaymentRequirements, decimals int) string {
	return fmt.Sprintf("%s (token %s) to %s on %s", t.label(q, decimals), q.Asset, q.PayTo, q.Network)
}

// payer answers a 402 with a payment. Until a 402 asks for one, no wallet
// is read: free URLs work without a key. A request that already carries
// a payment header is never paid again; with never set (curl -I), no 402
// is paid.
type payer struct {
	base  http.RoundTripper
	flags *payFlags
	max   *big.Int
	env   Env
	never bool
	key   *eip3009.Key
}

func (p *payer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusPaymentRequired || p.never ||
		req.Header.Get(x402.HeaderPaymentSignature) != "" || req.Header.Get(x402.HeaderXPayment) != "" {
		return resp, err
	}
	t, err := readTerms(resp)
	if err != nil {
		// Not an x402 402: written out like any other response.
		if !p.flags.silent {
			fmt.Fprintf(p.env.Stderr, "* not paying: %v\n", err)
		}
		return resp, nil
	}
	if err := t.allow(p.max, p.flags.decimals); err != nil {
		resp.Body.Close()
		return nil, err
	}
	if p.key == nil {
		if p.key, err = p.flags.loadKey(p.env); err != nil {
			resp.Body.Close()
			return nil, err
		}
	}
	tr := &client.Transport{Base: &replayFirst{resp: resp, base: p.base}, Key: p.key, Policy: client.Policy{MaxAmount: p.max}}
	if !p.flags.silent {
		tr.OnPayment = func(pay client.Payment) {
			fmt.Fprintf(p.env.Stderr, "* paying %s\n", t.describe(pay.Requirement, p.flags.decimals))
		}
	}
	return tr.RoundTrip(req)
}

// replayFirst answers its first round trip with a response already
// received (the 402 the payer read), then sends requests on to base.
type replayFirst struct {
	resp *http.Response
	base http.RoundTripper
}

func (r *replayFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp := r.resp; resp != nil {
		r.resp = nil
		if req.Body != nil {
			req.Body.Close()
		}
		return resp, nil
	}
	return r.base.RoundTrip(req)
}

// verboseTransport writes each request's and response's head to w, as
// curl -v does ("> " sent, "< " received).
type verboseTransport struct {
	base http.RoundTripper
	w    io.Writer
}

func (v *verboseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	fmt.Fprintf(v.w, "> %s %s HTTP/1.1\n> Host: %s\n", req.Method, req.URL.RequestURI(), cmpHost(req))
	writeHeaders(v.w, "> ", "\n", req.Header)
	fmt.Fprintln(v.w, ">")
	resp, err := v.base.RoundTrip(req)
	if err != nil {
		fmt.Fprintf(v.w, "* %v\n", err)
		return nil, err
	}
	fmt.Fprintf(v.w, "< %s %s\n", resp.Proto, resp.Status)
	writeHeaders(v.w, "< ", "\n", resp.Header)
	fmt.Fprintln(v.w, "<")
	return resp, nil
}

func cmpHost(req *http.Request) string {
	if req.Host != "" {
		return req.Host
	}
	return req.URL.Host
}

// writeHeaders writes h sorted by name, one "prefix Name: value eol" each.
func writeHeaders(w io.Writer, prefix, eol string, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s%s: %s%s", prefix, k, v, eol)
		}
	}
}

// transferError turns a failed request into curl's exit code and message.
func transferError(err error, maxTime time.Duration) error {
	var ce *curlError
	if errors.As(err, &ce) {
		return ce
	}
	var ne net.Error
	var dns *net.DNSError
	var op *net.OpError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var badCert x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return &curlError{28, fmt.Sprintf("Operation timed out after %d milliseconds", maxTime.Milliseconds())}
	case errors.As(err, &dns):
		return &curlError{6, "Could not resolve host: " + dns.Name}
	case errors.As(err, &op) && op.Op == "dial":
		return &curlError{7, fmt.Sprintf("Failed to connect to %s: %v", op.Addr, op.Err)}
	case errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &badCert), errors.As(err, &verify):
		return &curlError{60, "SSL certificate problem: " + err.Error()}
	case errors.As(err, &record):
		return &curlError{35, "SSL connect error: " + err.Error()}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &curlError{18, "transfer closed with outstanding read data remaining"}
	case errors.Is(err, io.EOF):
		return &curlError{52, "Empty reply from server"}
	case errors.Is(err, syscall.ECONNRESET):
		return &curlError{56, "Recv failure: Connection reset by peer"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// reportSettlement prints what the payment response header says.
func reportSettlement(w io.Writer, resp *http.Response) {
	h := resp.Header.Get(x402.HeaderPaymentResponse)
	if h == "" {
		h = resp.Header.Get(x402.HeaderXPaymentResponse)
	}
	if h == "" {
		return
	}
	var sr x402.SettleResponse
	if err := x402.DecodeHeader(h, &sr); err != nil {
		fmt.Fprintf(w, "* payment response header is unreadable: %v\n", err)
		return
	}
	switch {
	case sr.Success:
		fmt.Fprintf(w, "* settled on %s in transaction %s\n", sr.Network, sr.Transaction)
	case sr.Pending:
		fmt.Fprintf(w, "* settlement pending on %s: transaction %s\n", sr.Network, sr.Transaction)
	default:
		fmt.Fprintf(w, "* settlement failed: %s\n", sr.ErrorReason)
	}
}
