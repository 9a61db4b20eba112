package cli

import (
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
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/lightning/lnd"
	"github.com/coinop/coinop/mpp"
	"github.com/coinop/coinop/mpp/mppclient"
	"github.com/coinop/coinop/x402"
)

// dialects are the ways of paying coinop's buyer speaks, as --prefer names
// them.
var dialects = []string{"x402", "credits", "l402", "mpp"}

// payFlags are the flags shared by curl and sign.
type payFlags struct {
	wallet, data, maxAmount string
	decimals                int
	silent                  bool
	prefer                  []string
	plan                    string
	// The buyer's Lightning node, for L402: lnd's REST URL and files.
	lnd, lndMacaroon, lndTLSCert string
	maxSats                      string
	// rpc are the nodes the mpp method's tempo pushes are sent to, by
	// chain id (--rpc eip155:ID=URL).
	rpc map[uint64]string

	keyOnce sync.Once
	key     *eip3009.Key
	keyErr  error
}

func (p *payFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.wallet, "wallet", "", "file holding the payer's hex private key (read only when a 402 asks for payment)")
	fs.StringVar(&p.data, "data-dir", "", "coinop data dir (for the dev payer key); default $COINOP_DATA or ./.coinop")
	fs.StringVar(&p.maxAmount, "max-amount", "0.05", "most one request may cost, in whole tokens (e.g. 0.01 for 0.01 USDC); 0 refuses to pay")
	fs.IntVar(&p.decimals, "decimals", 6, "decimals of the token --max-amount is written in")
	fs.StringVar(&p.maxSats, "max-sats", "1000", "most one request may cost over Lightning (L402), in sats (decimals down to msat allowed); 0 refuses; --max-amount \"N sat\" sets it too")
	fs.StringVar(&p.lnd, "lnd", "", "the buyer's lnd REST URL (https://host:8080) that pays L402 invoices; default: the running coinop dev node")
	fs.StringVar(&p.lndMacaroon, "lnd-macaroon", "", "a macaroon of that lnd that may pay (admin.macaroon)")
	fs.StringVar(&p.lndTLSCert, "lnd-tlscert", "", "that lnd's tls.cert; the connection is pinned to it")
	fs.BoolVar(&p.silent, "s", false, "silent: no progress, payment or error lines on stderr")
	fs.StringVar(&p.plan, "plan", "", "buy only this credits plan when a 402 offers plans (default: the cheapest that covers the request)")
	fs.Func("prefer", "dialects to pay in first, comma-separated, best first ("+strings.Join(dialects, ", ")+")", func(v string) error {
		for _, name := range strings.Split(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if !slices.Contains(dialects, name) {
				return fmt.Errorf("unknown dialect %q (known: %s)", name, strings.Join(dialects, ", "))
			}
			p.prefer = append(p.prefer, name)
		}
		return nil
	})
	fs.Func("rpc", "node of a chain the payer sends transfers on, eip155:ID=URL (repeatable): the Payment scheme's tempo method pays by sending one", func(v string) error {
		network, u, ok := strings.Cut(v, "=")
		id, err := x402.ChainID(network)
		if !ok || err != nil || u == "" {
			return fmt.Errorf("want eip155:ID=URL, got %q", v)
		}
		if p.rpc == nil {
			p.rpc = map[uint64]string{}
		}
		p.rpc[id] = u
		return nil
	})
}

// maxUnits is --max-amount in atomic units of a token with --decimals.
// A --max-amount in sats ("100 sat", "1500 msat") is --max-sats instead,
// and leaves the token maximum at its default.
func (p *payFlags) maxUnits() (*big.Int, error) {
	if f := strings.Fields(p.maxAmount); len(f) == 2 {
		switch strings.ToLower(f[1]) {
		case "sat", "sats":
			p.maxSats, p.maxAmount = f[0], "0.05"
		case "msat":
			v, err := coinop.ParseUnits(f[0], 0)
			if err != nil {
				return nil, &exitError{2, fmt.Errorf("--max-amount: %w", err)}
			}
			p.maxSats, p.maxAmount = coinop.FormatUnits(v, 3), "0.05"
		default:
			return nil, &exitError{2, fmt.Errorf("--max-amount %q: want whole tokens (0.01) or sats (\"100 sat\")", p.maxAmount)}
		}
	}
	if _, err := p.maxMsat(); err != nil {
		return nil, err
	}
	max, err := coinop.ParseUnits(p.maxAmount, p.decimals)
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("--max-amount: %w", err)}
	}
	return max, nil
}

// wallet loads the payer's key, once for every method, and tells the user
// which wallet pays.
func (p *payFlags) loadKey(env Env) (*eip3009.Key, error) {
	p.keyOnce.Do(func() {
		key, source, err := loadWallet(p.wallet, dataDir(p.data, env), env)
		if err != nil {
			p.keyErr = err
			return
		}
		if !p.silent {
			fmt.Fprintf(env.Stderr, "* wallet %s (%s)\n", key.Address().Hex(), source)
		}
		p.key = key
	})
	return p.key, p.keyErr
}

// maxMsat is --max-sats in millisatoshis.
func (p *payFlags) maxMsat() (*big.Int, error) {
	v, err := coinop.ParseUnits(p.maxSats, 3)
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("--max-sats: %w", err)}
	}
	return v, nil
}

// methods are the dialects the buyer pays in, with their keys (and
// Lightning node) loaded only when a payment needs one: a free or refused
// request reads no wallet.
func (p *payFlags) methods(env Env) []client.Method {
	x := p.x402(env)
	return []client.Method{p.creditsMethod(env, x), x, p.l402(env), p.mpp(env)}
}

// x402 is the x402 method alone: what sign pays with, since its output is
// one payment header, never a credits token.
func (p *payFlags) x402(env Env) *client.X402 {
	return &client.X402{Decimals: p.decimals, LoadKey: func() (*eip3009.Key, error) { return p.loadKey(env) }}
}

// mpp is the Payment scheme's method: evm authorizations from the wallet,
// tempo pushes when --rpc names nodes, and lightning invoices paid
// through the node the l402 method pays with.
func (p *payFlags) mpp(env Env) *mppclient.Method {
	load := func() (*eip3009.Key, error) { return p.loadKey(env) }
	data := dataDir(p.data, env)
	m := &mppclient.Method{LoadKey: load, Decimals: p.decimals,
		Lightning: func() (lightning.Payer, error) { return p.lightningPayer(data, env) }}
	if len(p.rpc) > 0 {
		m.Pusher = &pusher{load: load, rpc: p.rpc}
	}
	return m
}

// pusher sends the mpp method's tempo transfers from the wallet through
// the --rpc nodes, dialed on the first transfer.
type pusher struct {
	load func() (*eip3009.Key, error)
	rpc  map[uint64]string

	once sync.Once
	p    *evm.Pusher
	err  error
}

func (p *pusher) PushTransfer(ctx context.Context, chainID uint64, token, to eip3009.Address, amount *big.Int, memo [32]byte) ([32]byte, bool, error) {
	p.once.Do(func() {
		key, err := p.load()
		if err != nil {
			p.err = err
			return
		}
		priv, err := crypto.ToECDSA(key.Bytes())
		if err != nil {
			p.err = err
			return
		}
		backends := map[uint64]evm.Backend{}
		for id, u := range p.rpc {
			cl, err := ethclient.DialContext(ctx, u)
			if err != nil {
				p.err = fmt.Errorf("--rpc eip155:%d: %w", id, err)
				return
			}
			backends[id] = cl
		}
		p.p = &evm.Pusher{Key: priv, Backends: backends}
	})
	if p.err != nil {
		return [32]byte{}, false, p.err
	}
	return p.p.PushTransfer(ctx, chainID, token, to, amount, memo)
}

// l402 is the L402 method: invoices paid through --lnd or the running
// coinop dev node, tokens kept per origin in the data dir.
func (p *payFlags) l402(env Env) *l402.Method {
	data := dataDir(p.data, env)
	return &l402.Method{Payer: func() (lightning.Payer, error) { return p.lightningPayer(data, env) }, Tokens: &l402.Tokens{Dir: filepath.Join(data, "l402", "tokens")}}
}

// lightningPayer is the node that pays L402 invoices: --lnd, or the
// development node of a running `coinop dev`.
func (p *payFlags) lightningPayer(data string, env Env) (lightning.Payer, error) {
	cfg := lnd.Config{URL: p.lnd, MacaroonFile: p.lndMacaroon, TLSCertFile: p.lndTLSCert}
	source := "--lnd"
	if p.lnd == "" {
		dev, err := devLightningNode(data)
		if err != nil {
			return nil, err
		}
		cfg = lnd.Config{URL: dev.URL, MacaroonFile: dev.MacaroonFile, TLSCertFile: dev.TLSCertFile}
		source = "coinop dev's Lightning node"
	}
	c, err := lnd.New(cfg)
	if err != nil {
		return nil, err
	}
	if !p.silent {
		fmt.Fprintf(env.Stderr, "* lightning node %s (%s)\n", cfg.URL, source)
	}
	return c, nil
}

// devLightningNode finds the one development Lightning node a gateway
// with data dir data describes (gateway.DevNodeFile).
func devLightningNode(data string) (*gateway.DevNode, error) {
	files, _ := filepath.Glob(gateway.DevNodeFile(data, "*"))
	if len(files) != 1 {
		return nil, errors.New("no Lightning node to pay with: pass --lnd, --lnd-macaroon and --lnd-tlscert, or run `coinop dev` first")
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return nil, err
	}
	var n gateway.DevNode
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("%s: %w", files[0], err)
	}
	return &n, nil
}

// policy is the spending policy of the flags: --max-amount per request, in
// whole tokens of --decimals, and --max-sats over Lightning.
func (p *payFlags) policy(max *big.Int) client.Policy {
	msat, _ := p.maxMsat() // checked by maxUnits
	return client.Policy{MaxAmount: max, MaxName: "--max-amount",
		Limits: map[string]client.Limit{client.UnitMsat: {Max: msat, Name: "--max-sats"}}}
}

// transport pays 402s as the flags say. never (curl -I) pays none.
func (p *payFlags) transport(base http.RoundTripper, max *big.Int, env Env, never bool) http.RoundTripper {
	if never {
		return base
	}
	tr := &client.Transport{Base: base, Methods: p.methods(env), Prefer: p.prefer, Policy: p.policy(max)}
	if !p.silent {
		tr.OnPayment = func(pay client.Payment) {
			fmt.Fprintf(env.Stderr, "* paying %s\n", pay.About)
		}
	}
	return &unpaidNote{base: tr, env: env, silent: p.silent}
}

// unpaidNote says why a 402 came back unpaid: it speaks no dialect the
// buyer's methods know.
type unpaidNote struct {
	base   http.RoundTripper
	env    Env
	silent bool
}

func (u *unpaidNote) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusPaymentRequired && !u.silent {
		fmt.Fprintln(u.env.Stderr, "* not paying: the 402 offers no way to pay that coinop speaks")
	}
	return resp, err
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

// reportSettlement prints what the payment response header says: x402's
// PAYMENT-RESPONSE, or the Payment scheme's Payment-Receipt.
func reportSettlement(w io.Writer, resp *http.Response) {
	if h := resp.Header.Get(mpp.HeaderReceipt); h != "" {
		if rc, err := mpp.ParseReceipt(h); err != nil {
			fmt.Fprintf(w, "* Payment-Receipt is unreadable: %v\n", err)
		} else {
			fmt.Fprintf(w, "* paid through the Payment scheme (method %s): %s at %s\n", rc.Method, rc.Reference, rc.Timestamp)
		}
	}
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
