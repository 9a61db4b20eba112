package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"
)

// runSign prints the payment header value for a URL's current 402, so a
// plain HTTP client can pay:
//
//	curl -H "PAYMENT-SIGNATURE: $(coinop sign URL)" URL
func runSign(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("coinop sign", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var pf payFlags
	var method string
	pf.register(fs)
	fs.StringVar(&method, "X", http.MethodGet, "method of the request to pay for")
	url, err := parseURLArg(fs, args)
	if err != nil {
		return err
	}
	tr, err := pf.transport(env)
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
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired {
		return fmt.Errorf("%s answered %s, not 402 Payment Required: nothing to sign", url, resp.Status)
	}
	p, err := tr.Pay(url, resp)
	if err != nil {
		return err
	}
	if !pf.silent {
		fmt.Fprintf(env.Stderr, "* signed %s; send it as the %s header\n", describe(p.Requirement, pf.decimals), p.Header)
	}
	fmt.Fprintln(env.Stdout, p.Value)
	return nil
}
