package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/x402"
	"golang.org/x/term"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// payFlags are the flags shared by curl and sign.
type payFlags struct {
	wallet, data, maxAmount string
	decimals                int
	silent                  bool
}

func (p *payFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.wallet, "wallet", "", "file holding the payer's hex private key")
	fs.StringVar(&p.data, "data", "", "coinop data dir (for the dev payer key); default $COINOP_DATA or ./.coinop")
	fs.StringVar(&p.maxAmount, "max-amount", "0.05", "most one request may cost, in whole tokens (e.g. 0.01 USDC); 0 refuses to pay")
	fs.IntVar(&p.decimals, "decimals", 6, "decimals of the token --max-amount is written in")
	fs.BoolVar(&p.silent, "s", false, "silent: no progress or payment lines on stderr")
}

// transport builds the paying transport and tells the user which wallet pays.
func (p *payFlags) transport(env Env) (*client.Transport, error) {
	max, err := coinop.ParseUnits(p.maxAmount, p.decimals)
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("--max-amount: %w", err)}
	}
	key, source, err := loadWallet(p.wallet, dataDir(p.data, env), env)
	if err != nil {
		return nil, err
	}
	if !p.silent {
		fmt.Fprintf(env.Stderr, "* wallet %s (%s)\n", key.Address().Hex(), source)
	}
	return &client.Transport{Key: key, Policy: client.Policy{MaxAmount: max}}, nil
}

func describe(q x402.PaymentRequirements, decimals int) string {
	amount, _ := new(big.Int).SetString(q.Amount, 10)
	name, _ := q.Extra["name"].(string)
	return fmt.Sprintf("%s %s (%s atomic units of %s) to %s on %s", coinop.FormatUnits(amount, decimals), name, q.Amount, q.Asset, q.PayTo, q.Network)
}

func runCurl(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("coinop curl", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		pf      payFlags
		method  string
		headers listFlag
		data    listFlag
		include bool
		output  string
		fail    bool
		maxTime time.Duration
	)
	pf.register(fs)
	fs.StringVar(&method, "X", "", "request method (default GET, or POST with -d)")
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	fs.Var(&data, "d", "request body; @FILE reads a file, @- stdin (repeatable, joined with &)")
	fs.BoolVar(&include, "i", false, "include the response status line and headers in the output")
	fs.StringVar(&output, "o", "", "write the body to FILE instead of stdout")
	fs.BoolVar(&fail, "f", false, "accepted for curl compatibility; coinop curl always exits 22 on status >= 400")
	fs.DurationVar(&maxTime, "m", 2*time.Minute, "maximum time for the whole operation")
	url, err := parseURLArg(fs, args)
	if err != nil {
		return err
	}

	var body io.Reader
	var bodyBytes []byte
	if len(data) > 0 {
		var parts []string
		for _, d := range data {
			s, err := readData(d, env)
			if err != nil {
				return err
			}
			parts = append(parts, s)
		}
		bodyBytes = []byte(strings.Join(parts, "&"))
		body = bytes.NewReader(bodyBytes)
		if method == "" {
			method = http.MethodPost
		}
	}
	if method == "" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(ctx, maxTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return &exitError{2, err}
	}
	req.Header.Set("User-Agent", "coinop-curl")
	if bodyBytes != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return &exitError{2, fmt.Errorf("-H %q: want 'Name: value'", h)}
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	tr, err := pf.transport(env)
	if err != nil {
		return err
	}
	if !pf.silent {
		tr.OnPayment = func(p client.Payment) {
			fmt.Fprintf(env.Stderr, "* paying %s\n", describe(p.Requirement, pf.decimals))
		}
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !pf.silent {
		reportSettlement(env.Stderr, resp)
	}
	out := env.Stdout
	if include {
		writeHead(out, resp)
	}
	if output != "" {
		f, err := os.Create(output)
		if err != nil {
			return err
		}
		defer f.Close()
		var w io.Writer = f
		if !pf.silent && isTerminal(env.Stderr) {
			p := &progress{out: env.Stderr, total: resp.ContentLength, start: time.Now()}
			defer p.done()
			w = io.MultiWriter(f, p)
		}
		if _, err := io.Copy(w, resp.Body); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	} else if _, err := io.Copy(out, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		return &exitError{22, fmt.Errorf("the server answered %s", resp.Status)}
	}
	return nil
}

func readData(d string, env Env) (string, error) {
	name, ok := strings.CutPrefix(d, "@")
	if !ok {
		return d, nil
	}
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(env.Stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	return string(b), err
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

func writeHead(w io.Writer, resp *http.Response) {
	fmt.Fprintf(w, "%s %s\r\n", resp.Proto, resp.Status)
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(w, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprint(w, "\r\n")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress writes a one-line download progress to a terminal.
type progress struct {
	out   io.Writer
	total int64
	n     int64
	start time.Time
	last  time.Time
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond {
		p.last = now
		p.print()
	}
	return len(b), nil
}

func (p *progress) print() {
	rate := float64(p.n) / max(time.Since(p.start).Seconds(), 0.001)
	if p.total > 0 {
		fmt.Fprintf(p.out, "\r%s / %s  %3d%%  %s/s   ", size(p.n), size(p.total), p.n*100/p.total, size(int64(rate)))
	} else {
		fmt.Fprintf(p.out, "\r%s  %s/s   ", size(p.n), size(int64(rate)))
	}
}

func (p *progress) done() {
	p.print()
	fmt.Fprintln(p.out)
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseURLArg parses flags around exactly one URL, curl-style; a URL without
// a scheme is http.
func parseURLArg(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", &exitError{2, errors.New("")}
	}
	if len(pos) != 1 {
		return "", &exitError{2, errors.New("want exactly one URL")}
	}
	if !strings.Contains(pos[0], "://") {
		return "http://" + pos[0], nil
	}
	return pos[0], nil
}
