package cli

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coinop/coinop/client"
)

// runSign prints the payment header value for a URL's current 402, so a
// plain HTTP client can pay:
//
//	curl -H "PAYMENT-SIGNATURE: $(coinop sign URL)" URL
func runSign(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("sign", env)
	var pf payFlags
	var method string
	pf.register(fs)
	fs.StringVar(&pf.data, "data", "", "the same as --data-dir")
	fs.StringVar(&method, "X", http.MethodGet, "method of the request to pay for")
	url, err := parseURLArg(fs, env, args)
	if err != nil {
		return err
	}
	max, err := pf.maxUnits()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return &exitError{2, err}
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return transferError(err, time.Minute)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired {
		return fmt.Errorf("%s answered %s, not 402 Payment Required: nothing to sign", url, resp.Status)
	}
	tr := &client.Transport{Methods: []client.Method{pf.x402(env), pf.l402(env)}, Prefer: pf.prefer, Policy: pf.policy(max)}
	p, err := tr.Pay(url, resp)
	if err != nil {
		return err
	}
	if !pf.silent {
		fmt.Fprintf(env.Stderr, "* signed %s; send it as the %s header\n", p.About, p.Header)
	}
	fmt.Fprintln(env.Stdout, p.Value)
	return nil
}
